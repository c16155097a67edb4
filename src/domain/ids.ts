import { randomBytes } from "node:crypto";

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

function encodeBase32(bytes: Uint8Array, chars: number): string {
  let out = "";
  let acc = 0n;
  for (const b of bytes) acc = (acc << 8n) | BigInt(b);
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[Number(acc & 31n)]! + out;
    acc >>= 5n;
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
    random = new Uint8Array(randomBytes(10));
  }
  lastMs = now;
  lastRandom = random;
  const bytes = new Uint8Array(16);
  let t = BigInt(now);
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  bytes.set(random, 6);
  return `${ID_PREFIX[kind]}_${encodeBase32(bytes, 26)}`;
}

const ID_BODY = /^[0-9a-hjkmnp-tv-z]{26}$/;

/** Whether `id` is syntactically an id of `kind` (says nothing about existence). */
export function isIdOf(kind: IdKind, id: string): boolean {
  const prefix = `${ID_PREFIX[kind]}_`;
  return id.startsWith(prefix) && ID_BODY.test(id.slice(prefix.length));
}
