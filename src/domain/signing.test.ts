import assert from "node:assert/strict";
import { createHmac, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { describe, it } from "node:test";
import { Webhook } from "standardwebhooks";
import {
  decodeSigningKey,
  ed25519PublicKeyOf,
  generateEd25519SigningKey,
  generateSigningSecret,
  isValidSigningSecret,
  signatureHeader,
  webhookHeaders,
} from "./signing.ts";

// The reference verifier rejects timestamps more than 5 minutes from its clock, so sign "now".
const now = (): number => Math.floor(Date.now() / 1000);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

void describe("generateSigningSecret", () => {
  void it("makes whsec_ secrets of 32 random bytes that validate", () => {
    const a = generateSigningSecret();
    const b = generateSigningSecret();
    assert.match(a, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(a.slice(6), "base64").length, 32);
    assert.notEqual(a, b);
    assert.ok(isValidSigningSecret(a));
  });
});

void describe("isValidSigningSecret", () => {
  void it("rejects missing prefix, bad base64 and keys of the wrong size", () => {
    const key = (n: number): string => Buffer.alloc(n, 7).toString("base64");
    assert.ok(isValidSigningSecret(`whsec_${key(24)}`));
    assert.ok(isValidSigningSecret(`whsec_${key(64)}`));
    assert.ok(!isValidSigningSecret(key(32)));
    assert.ok(!isValidSigningSecret(`whsec_${key(23)}`));
    assert.ok(!isValidSigningSecret(`whsec_${key(65)}`));
    assert.ok(!isValidSigningSecret("whsec_not*base64!"));
    assert.ok(!isValidSigningSecret(`whsec_${key(32).replace(/=+$/, "")}`));
    assert.ok(!isValidSigningSecret("whsec_"));
    assert.ok(!isValidSigningSecret(""));
  });
});

void describe("signatureHeader / webhookHeaders", () => {
  void it("verifies with the standardwebhooks reference library for one secret", () => {
    const secret = generateSigningSecret();
    const payload = JSON.stringify({ type: "invoice.paid", data: { id: 42 } });
    const headers = webhookHeaders({
      secrets: [secret],
      msgId: "msg_01",
      timestampSeconds: now(),
      body: utf8(payload),
    });
    assert.deepEqual(Object.keys(headers).sort(), ["webhook-id", "webhook-signature", "webhook-timestamp"]);
    assert.equal(headers["webhook-id"], "msg_01");
    assert.match(headers["webhook-signature"] ?? "", /^v1,[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(new Webhook(secret).verify(payload, headers), { type: "invoice.paid", data: { id: 42 } });
  });

  void it("carries one signature per secret, each verifiable on its own (rotation)", () => {
    const oldSecret = generateSigningSecret();
    const newSecret = generateSigningSecret();
    const payload = '{"ok":true}';
    const headers = webhookHeaders({
      secrets: [newSecret, oldSecret],
      msgId: "msg_02",
      timestampSeconds: now(),
      body: utf8(payload),
    });
    const parts = (headers["webhook-signature"] ?? "").split(" ");
    assert.equal(parts.length, 2);
    assert.ok(parts.every((p) => p.startsWith("v1,")));
    assert.deepEqual(new Webhook(oldSecret).verify(payload, headers), { ok: true });
    assert.deepEqual(new Webhook(newSecret).verify(payload, headers), { ok: true });
    assert.throws(() => new Webhook(generateSigningSecret()).verify(payload, headers), /No matching signature/);
  });

  void it("fails verification when the body or id is tampered with", () => {
    const secret = generateSigningSecret();
    const headers = webhookHeaders({
      secrets: [secret],
      msgId: "msg_03",
      timestampSeconds: now(),
      body: utf8('{"amount":100}'),
    });
    assert.throws(() => new Webhook(secret).verify('{"amount":900}', headers), /No matching signature/);
    assert.throws(
      () => new Webhook(secret).verify('{"amount":100}', { ...headers, "webhook-id": "msg_04" }),
      /No matching signature/,
    );
  });

  void it("signs non-ASCII UTF-8 payloads as their raw bytes", () => {
    const secret = generateSigningSecret();
    const payload = JSON.stringify({ name: "Zoë 🚀 日本語", note: "naïve café" });
    const body = Buffer.from(payload, "utf8");
    const headers = webhookHeaders({ secrets: [secret], msgId: "msg_05", timestampSeconds: now(), body });
    assert.deepEqual(new Webhook(secret).verify(payload, headers), JSON.parse(payload));
    assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(payload));
  });

  void it("hashes arbitrary bytes exactly, without any text round-trip", () => {
    const secret = generateSigningSecret();
    const key = Buffer.from(secret.slice(6), "base64");
    // Not valid UTF-8: a decode/re-encode would replace these bytes and change the MAC.
    const body = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3]);
    const expected = createHmac("sha256", key)
      .update(Buffer.concat([Buffer.from("msg_06.1700000000."), body]))
      .digest("base64");
    assert.equal(signatureHeader([secret], "msg_06", 1700000000, body), `v1,${expected}`);
  });

  void it("refuses to sign with no secret, a malformed secret or a bad timestamp", () => {
    const body = utf8("{}");
    assert.throws(() => signatureHeader([], "msg", 1, body), RangeError);
    assert.throws(() => signatureHeader(["nope"], "msg", 1, body), /secret #0/);
    assert.throws(() => signatureHeader([generateSigningSecret()], "msg", 1.5, body), /timestamp/);
  });
});

// Verification with Node's own ed25519 (crypto.verify) from nothing but the whpk_ text, the
// webhook-* headers and the body, exactly as the specification defines the signed content.
function verifyV1a(publicKey: string, headers: Record<string, string>, body: Uint8Array): boolean {
  assert.ok(publicKey.startsWith("whpk_"));
  const raw = Buffer.from(publicKey.slice("whpk_".length), "base64");
  assert.equal(raw.length, 32);
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  const signed = Buffer.concat([
    Buffer.from(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.`, "utf8"),
    Buffer.from(body),
  ]);
  return (headers["webhook-signature"] ?? "")
    .split(" ")
    .filter((s) => s.startsWith("v1a,"))
    .some((s) => verify(null, signed, key, Buffer.from(s.slice(4), "base64")));
}

void describe("ed25519 (v1a)", () => {
  void it("generates whsk_ (64-byte seed + public key) and whpk_ (32-byte) keys that belong together", () => {
    const { secretKey, publicKey } = generateEd25519SigningKey();
    assert.match(secretKey, /^whsk_[A-Za-z0-9+/]{86}==$/);
    assert.match(publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);
    const raw = Buffer.from(secretKey.slice(5), "base64");
    assert.equal(raw.length, 64);
    assert.equal(raw.subarray(32).toString("base64"), publicKey.slice(5));
    assert.equal(ed25519PublicKeyOf(secretKey), publicKey);
    assert.notEqual(generateEd25519SigningKey().secretKey, secretKey);
  });

  void it("signs {id}.{timestamp}.{body} as v1a, verified by Node's crypto.verify with the whpk_ key", () => {
    const { secretKey, publicKey } = generateEd25519SigningKey();
    const body = Buffer.from('{"type":"contact.created","data":{"id":"1f81eb52"}}');
    const headers = webhookHeaders({
      secrets: [secretKey],
      msgId: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
      timestampSeconds: 1674087231,
      body,
    });
    assert.match(headers["webhook-signature"] ?? "", /^v1a,[A-Za-z0-9+/]{86}==$/);
    assert.ok(verifyV1a(publicKey, headers, body));
    // Tampering with the body, the id or the timestamp breaks it; another key does not verify.
    assert.ok(!verifyV1a(publicKey, headers, Buffer.from('{"type":"contact.created","data":{"id":"1f81eb53"}}')));
    assert.ok(!verifyV1a(publicKey, { ...headers, "webhook-id": "msg_other" }, body));
    assert.ok(!verifyV1a(publicKey, { ...headers, "webhook-timestamp": "1674087232" }, body));
    assert.ok(!verifyV1a(generateEd25519SigningKey().publicKey, headers, body));
  });

  void it("accepts a key made elsewhere: a 32-byte seed, or seed + public key, from Node's own generator", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
    const pub = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
    const whpk = `whpk_${pub.toString("base64")}`;
    const body = Buffer.from([0xff, 0x00, 0x7b]);
    for (const whsk of [`whsk_${seed.toString("base64")}`, `whsk_${Buffer.concat([seed, pub]).toString("base64")}`]) {
      assert.equal(ed25519PublicKeyOf(whsk), whpk);
      const headers = webhookHeaders({ secrets: [whsk], msgId: "msg_1", timestampSeconds: 1, body });
      assert.ok(verifyV1a(whpk, headers, body));
    }
    // A 64-byte key whose public half is not the seed's is corrupt.
    const other = Buffer.from(generateEd25519SigningKey().publicKey.slice(5), "base64");
    assert.throws(() => decodeSigningKey(`whsk_${Buffer.concat([seed, other]).toString("base64")}`), /whsk_/);
    assert.throws(() => decodeSigningKey(`whsk_${seed.subarray(0, 31).toString("base64")}`), /whsk_/);
    assert.equal(ed25519PublicKeyOf("whsec_abc"), undefined);
  });

  void it("mixes v1 and v1a in one header while a rotation changes the scheme", () => {
    const hmac = generateSigningSecret();
    const { secretKey, publicKey } = generateEd25519SigningKey();
    const payload = '{"ok":1}';
    const headers = webhookHeaders({
      secrets: [secretKey, hmac],
      msgId: "msg_7",
      timestampSeconds: now(),
      body: utf8(payload),
    });
    const parts = (headers["webhook-signature"] ?? "").split(" ");
    assert.deepEqual(
      parts.map((p) => p.split(",")[0]),
      ["v1a", "v1"],
    );
    assert.ok(verifyV1a(publicKey, headers, utf8(payload)));
    assert.deepEqual(new Webhook(hmac).verify(payload, headers), { ok: 1 });
    // A decoded key signs exactly as its text does.
    assert.equal(
      signatureHeader([decodeSigningKey(hmac)], "m", 5, utf8(payload)),
      signatureHeader([hmac], "m", 5, utf8(payload)),
    );
  });
});
