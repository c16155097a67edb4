import { randomFillSync } from "node:crypto";

/** Id prefixes of every resource; the prefix tells the kind of an id at a glance. */
export const ID_PREFIX = {
  workspace: "ws",
  apiKey: "key",
  endpoint: "ep",
  message: "msg",
  delivery: "dlv",
  attempt: "atm",
  bulkOperation: "bulk",
  eventType: "evt",
  subscription: "sub",
  application: "app",
  portalSession: "pts",
  environment: "env",
  statusLease: "lease",
} as const;

/** The resource kinds that have prefixed ids. */
export type IdKind = keyof typeof ID_PREFIX;

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

let lastMs = 0;
let lastRandom: Uint8Array = new Uint8Array(10);

// Random bytes are drawn 4 KiB at a time: one randomFillSync call per ~400 ids instead of one each.
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function randomTen(): Uint8Array {
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += 10;
  return pool.slice(poolAt - 10, poolAt);
}

/** The big-endian number `bytes` in `chars` base-32 digits (least significant digit last). */
export function encodeBase32(bytes: Uint8Array, chars: number): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  let i = bytes.length - 1;
  for (let n = 0; n < chars; n++) {
    if (bits < 5 && i >= 0) {
      acc |= bytes[i--]! << bits;
      bits += 8;
    }
    out = ALPHABET[acc & 31]! + out;
    acc >>>= 5;
    bits = Math.max(0, bits - 5);
  }
  return out;
}

/**
 * Returns a new prefixed id (`msg_` + 26 characters: 48-bit millisecond time, 80 random bits),
 * monotonic within one process so ids sort by creation time and keyset pages are newest-first.
 */
export function newId(kind: IdKind, now: number = Date.now()): string {
  let random: Uint8Array;
  if (now <= lastMs) {
    now = lastMs;
    random = lastRandom.slice();
    for (let i = random.length - 1; i >= 0; i--) {
      random[i] = (random[i]! + 1) & 0xff;
      if (random[i] !== 0) break;
    }
  } else {
    random = randomTen();
  }
  lastMs = now;
  lastRandom = random;
  const bytes = new Uint8Array(16);
  // 48 bits of milliseconds, big-endian: the high 16 and the low 32 are exact in doubles.
  const high = Math.floor(now / 2 ** 32);
  const low = now - high * 2 ** 32;
  bytes[0] = (high >>> 8) & 0xff;
  bytes[1] = high & 0xff;
  bytes[2] = (low >>> 24) & 0xff;
  bytes[3] = (low >>> 16) & 0xff;
  bytes[4] = (low >>> 8) & 0xff;
  bytes[5] = low & 0xff;
  bytes.set(random, 6);
  return `${ID_PREFIX[kind]}_${encodeBase32(bytes, 26)}`;
}

const ID_BODY = /^[0-9a-hjkmnp-tv-z]{26}$/;

/** Whether `id` is syntactically an id of `kind` (says nothing about existence). */
export function isIdOf(kind: IdKind, id: string): boolean {
  const prefix = `${ID_PREFIX[kind]}_`;
  return id.startsWith(prefix) && ID_BODY.test(id.slice(prefix.length));
}
