import assert from "node:assert/strict";
import { test } from "node:test";
import { randomBytes } from "node:crypto";
import { encodeBase32, isIdOf, newId } from "./ids.ts";

test("ids carry their prefix and validate by kind", () => {
  const id = newId("message");
  assert.match(id, /^msg_[0-9a-z]{26}$/);
  assert.ok(isIdOf("message", id));
  assert.ok(!isIdOf("endpoint", id));
  assert.ok(!isIdOf("message", "msg_short"));
  assert.ok(!isIdOf("message", id.toUpperCase()));
});

test("ids sort by creation time, also within one millisecond", () => {
  const ids = Array.from({ length: 2000 }, () => newId("delivery"));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(newId("delivery", Date.now() + 10_000) > ids[ids.length - 1]!);
});

/** The straightforward BigInt encoding the fast one must match digit for digit. */
function referenceBase32(bytes: Uint8Array, chars: number): string {
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  let acc = 0n;
  for (const b of bytes) acc = (acc << 8n) | BigInt(b);
  let out = "";
  for (let i = 0; i < chars; i++) {
    out = alphabet[Number(acc & 31n)]! + out;
    acc >>= 5n;
  }
  return out;
}

test("the base-32 encoding matches the BigInt reference, and the id's first 10 digits are its time", () => {
  for (let i = 0; i < 2000; i++) {
    const bytes = new Uint8Array(randomBytes(16));
    if (i === 0) bytes.fill(0xff);
    if (i === 1) bytes.fill(0);
    assert.equal(encodeBase32(bytes, 26), referenceBase32(bytes, 26));
  }
  // 130 bits in 26 digits: 2 zero bits and the 48 time bits are the first 10 digits, exactly.
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  for (const ms of [Date.now() + 1_000_000, 2 ** 41 + 2 ** 32 - 1, 2 ** 47 + 2 ** 32, 2 ** 48 - 1]) {
    const body = newId("message", ms).slice("msg_".length);
    let decoded = 0;
    for (const c of body.slice(0, 10)) decoded = decoded * 32 + alphabet.indexOf(c);
    assert.equal(decoded, ms);
  }
});
