import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { Webhook } from "standardwebhooks";
import { generateSigningSecret, isValidSigningSecret, signatureHeader, webhookHeaders } from "./signing.ts";

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
