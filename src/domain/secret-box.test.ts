import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  SecretBoxError,
  createSecretBox,
  generateEncryptionKey,
  isSealed,
  parseEncryptionKeys,
  type EncryptionKey,
} from "./secret-box.ts";

const key = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });

void describe("createSecretBox", () => {
  void it("seals with AES-256-GCM under the first key, naming it, and opens what it sealed", () => {
    const k1 = key("k1");
    const box = createSecretBox([k1]);
    const sealed = box.seal("whsec_secret", "endpoint/ep_1/signing-key");
    assert.match(sealed, /^hsenc:v1:k1:[A-Za-z0-9_-]+$/);
    assert.ok(!sealed.includes("whsec_secret"));
    assert.ok(isSealed(sealed));
    assert.equal(box.open(sealed, "endpoint/ep_1/signing-key"), "whsec_secret");
    // A fresh IV each time: the same secret never gives the same ciphertext.
    assert.notEqual(box.seal("whsec_secret", "c"), box.seal("whsec_secret", "c"));
    assert.ok(box.isCurrent(sealed));
    assert.equal(box.primaryKeyId, "k1");
  });

  void it("rotation: a new first key seals, old keys still open, and isCurrent tells which to re-encrypt", () => {
    const k1 = key("k1");
    const k2 = key("k2");
    const old = createSecretBox([k1]).seal("whsec_a", "ctx");
    const rotated = createSecretBox([k2, k1]);
    assert.equal(rotated.open(old, "ctx"), "whsec_a");
    assert.ok(!rotated.isCurrent(old));
    const fresh = rotated.seal("whsec_b", "ctx");
    assert.match(fresh, /^hsenc:v1:k2:/);
    assert.ok(rotated.isCurrent(fresh));
    // Without the old key the old ciphertext cannot be read, and the error names the key.
    assert.throws(() => createSecretBox([k2]).open(old, "ctx"), /encryption key "k1", which is not in/);
  });

  void it("refuses a ciphertext that was altered, relabelled or moved to another context", () => {
    const k1 = key("k1");
    const k2 = { id: "k2", key: k1.key };
    const box = createSecretBox([k1, k2]);
    const sealed = box.seal("whsec_x", "endpoint/ep_1/signing-key");
    const body = sealed.slice("hsenc:v1:k1:".length);
    const flipped = Buffer.from(body, "base64url");
    flipped[20] = flipped[20]! ^ 1;
    assert.throws(
      () => box.open(`hsenc:v1:k1:${flipped.toString("base64url")}`, "endpoint/ep_1/signing-key"),
      SecretBoxError,
    );
    // Same key bytes under another id: the key id is authenticated.
    assert.throws(() => box.open(`hsenc:v1:k2:${body}`, "endpoint/ep_1/signing-key"), SecretBoxError);
    assert.throws(() => box.open(sealed, "endpoint/ep_2/signing-key"), /altered or misplaced/);
    assert.throws(() => box.open("hsenc:v1:k1:AAAA", "endpoint/ep_1/signing-key"), /truncated/);
  });

  void it("opens plaintext from before encryption as it is (the lazy path), and cannot seal without a key", () => {
    const box = createSecretBox([]);
    assert.equal(box.open("whsec_plain", "ctx"), "whsec_plain");
    assert.equal(box.primaryKeyId, undefined);
    assert.ok(!box.isCurrent("whsec_plain"));
    assert.throws(() => box.seal("whsec_plain", "ctx"), SecretBoxError);
    assert.ok(!createSecretBox([key("k1")]).isCurrent("whsec_plain"));
  });
});

void describe("parseEncryptionKeys / generateEncryptionKey", () => {
  void it("round-trips a generated key and keeps the configured order", () => {
    const a = generateEncryptionKey("a");
    const b = generateEncryptionKey("b-2");
    const { keys, problems } = parseEncryptionKeys(` ${b} , ${a} `);
    assert.deepEqual(problems, []);
    assert.deepEqual(
      keys.map((k) => k.id),
      ["b-2", "a"],
    );
    assert.equal(keys[0]!.key.length, 32);
    assert.throws(() => generateEncryptionKey("no spaces"), RangeError);
  });
});
