/**
 * The receiver helpers against the official `standardwebhooks` package: what it signs, we verify
 * (v1, several secrets, raw bytes), what it refuses, we refuse; v1a with Ed25519 keys made by
 * node:crypto; parseDelivery's fields and its ack/nack calls.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Webhook } from "standardwebhooks";
import { parseDelivery, verifyWebhook, WebhookVerificationError } from "./index.ts";

const secret = (): string => `whsec_${randomBytes(32).toString("base64")}`;
const reasonOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return "verified";
  } catch (err) {
    assert.ok(err instanceof WebhookVerificationError, String(err));
    return err.reason;
  }
};

void describe("verifyWebhook", () => {
  const body = '{"amount":12345678901234567890,"note":"caf\\u00e9","x":1.0}';
  const now = new Date();
  const signed = (key: string, id = "dlv_1", at = now, payload: string | Buffer = body): Record<string, string> => ({
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(key).sign(id, at, payload),
  });

  void it("verifies what standardwebhooks signs, and standardwebhooks verifies the same inputs", async () => {
    const key = secret();
    const headers = signed(key);
    const out = await verifyWebhook(body, headers, key);
    assert.equal(out.id, "dlv_1");
    assert.equal(out.timestamp.getTime(), Math.floor(now.getTime() / 1000) * 1000);
    assert.equal(new TextDecoder().decode(out.body), body);
    assert.doesNotThrow(() => new Webhook(key).verify(body, headers));
    // A Headers object and raw bytes work the same.
    await verifyWebhook(new TextEncoder().encode(body), new Headers(headers), [key]);
  });

  void it("accepts any of several secrets (rotation) and several signatures in the header", async () => {
    const [oldKey, newKey] = [secret(), secret()];
    const a = signed(oldKey);
    const b = signed(newKey);
    const both = { ...a, "webhook-signature": `${a["webhook-signature"]} ${b["webhook-signature"]}` };
    assert.equal(await reasonOf(verifyWebhook(body, both, [newKey])), "verified");
    assert.equal(await reasonOf(verifyWebhook(body, a, [newKey, oldKey])), "verified");
    assert.equal(await reasonOf(verifyWebhook(body, a, [newKey])), "BAD_SIGNATURE");
  });

  void it("refuses what standardwebhooks refuses: changed body, id, stale or future timestamp, missing headers", async () => {
    const key = secret();
    const headers = signed(key);
    const cases: Array<[string, string, Record<string, string>, string]> = [
      ["changed body", body.replace("1.0", "1"), headers, "BAD_SIGNATURE"],
      ["changed id", body, { ...headers, "webhook-id": "dlv_2" }, "BAD_SIGNATURE"],
      ["stale", body, signed(key, "dlv_1", new Date(now.getTime() - 400_000)), "TIMESTAMP_OUT_OF_TOLERANCE"],
      ["future", body, signed(key, "dlv_1", new Date(now.getTime() + 400_000)), "TIMESTAMP_OUT_OF_TOLERANCE"],
      [
        "no signature",
        body,
        { "webhook-id": "x", "webhook-timestamp": headers["webhook-timestamp"]! },
        "MISSING_HEADERS",
      ],
    ];
    for (const [what, b, h, reason] of cases) {
      assert.equal(await reasonOf(verifyWebhook(b, h, key)), reason, what);
      assert.throws(() => new Webhook(key).verify(b, h), what);
    }
    // tolerance widens the window.
    const old = signed(key, "dlv_1", new Date(now.getTime() - 600_000));
    assert.equal(await reasonOf(verifyWebhook(body, old, key, { tolerance: 900 })), "verified");
  });

  void it("verifies v1a Ed25519 signatures with a whpk_ public key", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = sign(null, Buffer.from(`dlv_9.${ts}.${body}`), privateKey).toString("base64");
    const headers = { "webhook-id": "dlv_9", "webhook-timestamp": ts, "webhook-signature": `v1,bogus v1a,${sig}` };
    assert.equal(await reasonOf(verifyWebhook(body, headers, `whpk_${raw.toString("base64")}`)), "verified");
    const other = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
    assert.equal(await reasonOf(verifyWebhook(body, headers, `whpk_${other.toString("base64")}`)), "BAD_SIGNATURE");
  });
});

void describe("parseDelivery", () => {
  void it("returns the verified delivery with its data, and acks through the ack URL", async () => {
    const calls: string[] = [];
    const server = createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ applied: calls.length === 1, status: "succeeded" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const key = secret();
      const body = '{"type":"order.paid","orderId":42}';
      const at = new Date();
      const headers = {
        "webhook-id": "dlv_7",
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": new Webhook(key).sign("dlv_7", at, body),
        "content-type": "application/json",
        "webhook-ack-url": `${base}/ack/t1`,
        "webhook-nack-url": `${base}/nack/t1`,
      };
      const d = await parseDelivery<{ orderId: number }>(body, headers, key);
      assert.equal(d.id, "dlv_7");
      assert.equal(d.eventType, "order.paid");
      assert.equal(d.data.orderId, 42);
      assert.equal(d.ackUrl, `${base}/ack/t1`);
      assert.deepEqual(await d.ack(), { applied: true, status: "succeeded" });
      assert.deepEqual(await d.ack(), { applied: false, status: "succeeded" });
      assert.deepEqual(calls, ["POST /ack/t1", "POST /ack/t1"]);
      await assert.rejects(parseDelivery(body, { ...headers, "webhook-id": "dlv_8" }, key), WebhookVerificationError);
      const plain = await parseDelivery(body, { ...headers, "webhook-ack-url": undefined });
      await assert.rejects(plain.ack(), /no ack URL/);
    } finally {
      server.close();
    }
  });
});
