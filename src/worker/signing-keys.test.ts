import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { endpointSecretContext } from "../domain/endpoints.ts";
import type { EndpointRecord } from "../domain/records.ts";
import { createSecretBox } from "../domain/secret-box.ts";
import { generateSigningSecret, signatureHeader } from "../domain/signing.ts";
import { createSigningKeys } from "./signing-keys.ts";

const box = createSecretBox([{ id: "k1", key: randomBytes(32) }]);

function endpoint(
  id: string,
  secret: string,
  previous: string | null = null,
  until: Date | null = null,
): EndpointRecord {
  const at = new Date();
  return {
    id,
    workspaceId: "ws_1",
    url: "https://example.com/hook",
    description: "",
    metadata: {},
    enabled: true,
    headers: {},
    timeoutMs: 15_000,
    secret: box.seal(secret, endpointSecretContext(id)),
    previousSecret: previous === null ? null : box.seal(previous, endpointSecretContext(id)),
    previousSecretExpiresAt: until,
    createdAt: at,
    updatedAt: at,
  };
}

test("each sealed secret is decrypted once, then served from the cache for every attempt", () => {
  let opens = 0;
  const keys = createSigningKeys(box, { onOpen: () => (opens += 1) });
  const plain = generateSigningSecret();
  const ep = endpoint("ep_1", plain);
  const body = new TextEncoder().encode('{"a":1}');
  for (let i = 0; i < 1000; i++) {
    const header = signatureHeader(keys.keysFor(ep, new Date()), "dlv_1", 1_700_000_000, body);
    if (i === 0) assert.equal(header, signatureHeader([plain], "dlv_1", 1_700_000_000, body));
  }
  assert.equal(opens, 1);
  // The endpoint record reloaded from the database (same ciphertext) hits the same entry.
  keys.keysFor({ ...ep }, new Date());
  assert.equal(opens, 1);
});

test("a rotation (new ciphertext) opens the new secret once; the old one signs until its grace period ends", () => {
  let opens = 0;
  const keys = createSigningKeys(box, { onOpen: () => (opens += 1) });
  const oldSecret = generateSigningSecret();
  const newSecret = generateSigningSecret();
  const before = endpoint("ep_2", oldSecret);
  keys.keysFor(before, new Date());
  const until = new Date(Date.now() + 60_000);
  const rotated = { ...endpoint("ep_2", newSecret), previousSecret: before.secret, previousSecretExpiresAt: until };
  const now = new Date();
  const header = signatureHeader(
    keys.keysFor(rotated, now),
    "dlv_2",
    Math.floor(now.getTime() / 1000),
    Buffer.from("{}"),
  );
  assert.equal(opens, 2);
  const headers = {
    "webhook-id": "dlv_2",
    "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    "webhook-signature": header,
  };
  assert.equal(header.split(" ").length, 2);
  for (const secret of [oldSecret, newSecret]) assert.deepEqual(new Webhook(secret).verify("{}", headers), {});
  assert.equal(keys.keysFor(rotated, new Date(until.getTime() + 1)).length, 1);
});

test("a ciphertext copied onto another endpoint does not open there, and the cache is bounded", () => {
  const keys = createSigningKeys(box, { maxEntries: 2 });
  const a = endpoint("ep_a", generateSigningSecret());
  assert.throws(() => keys.keysFor({ ...a, id: "ep_b" }, new Date()), /altered or misplaced/);
  let opens = 0;
  const small = createSigningKeys(box, { maxEntries: 2, onOpen: () => (opens += 1) });
  const eps = ["ep_1", "ep_2", "ep_3"].map((id) => endpoint(id, generateSigningSecret()));
  for (const ep of eps) small.keysFor(ep, new Date());
  small.keysFor(eps[0]!, new Date()); // evicted by ep_3: opened again
  assert.equal(opens, 4);
});
