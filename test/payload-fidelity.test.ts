/**
 * Payloads are the producer's bytes: on the real stack (api, dispatcher, worker processes; the
 * database of HOOKSTREAM_TEST_DB; a private nats-server; a local receiver), a JSON payload with
 * integers beyond 2^53, number spellings, escapes, emoji, deep nesting, key order and odd
 * whitespace reaches the receiver byte-identical, signed over exactly those bytes, whether it
 * is sent as `payload` over Connect JSON (plain HTTP/1.1 POST, h2c, gzip) or as `payload_json`
 * over binary Connect and gRPC. GetMessage returns the same text; idempotency compares bytes.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { createClient, Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Webhook } from "standardwebhooks";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { MessageService } from "../gen/hookstream/v1/message_service_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";

const sendPath = "/hookstream.v1.MessageService/Send";

/** A payload JSON.stringify(JSON.parse(…)) would change in every way it can. */
function trickyPayload(tag: string): string {
  const deep = "[".repeat(100) + '{"bottom":1.50}' + "]".repeat(100);
  return (
    `{"tag":"${tag}","id":9007199254740993,"big":12345678901234567890,"neg":-12345678901234567890,` +
    `"one":1.0,"e":1e3,"E":2.50E-3,"zero":-0,"order":{"z":1,"a":2,"m":3},` +
    `"s":"caf\\u00e9 caf\u00e9 \u{1F600} \\ud83d\\ude00 \\"q\\" \\/ \\n","payload":"payload",` +
    `"ws" : [ 1 ,\n\t2 ] ,"deep":${deep}}`
  );
}

interface RawResponse {
  status: number;
  body: string;
}

/** A Connect JSON POST over HTTP/1.1 with plain fetch, as curl would send it. */
async function postH1(baseUrl: string, token: string, body: string | Uint8Array, gzip = false): Promise<RawResponse> {
  const headers: Record<string, string> = { "content-type": "application/json", authorization: `Bearer ${token}` };
  if (gzip) headers["content-encoding"] = "gzip";
  const res = await fetch(`${baseUrl}${sendPath}`, {
    method: "POST",
    headers,
    body: gzip ? gzipSync(body) : body,
  });
  return { status: res.status, body: await res.text() };
}

/** The same POST over cleartext HTTP/2 (prior knowledge), body in several DATA frames. */
function postH2(baseUrl: string, token: string, body: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": sendPath,
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
    });
    let status = 0;
    const chunks: Buffer[] = [];
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      session.close();
      resolve({ status, body: Buffer.concat(chunks).toString("utf8") });
    });
    req.on("error", reject);
    const bytes = Buffer.from(body, "utf8");
    const third = Math.ceil(bytes.length / 3);
    req.write(bytes.subarray(0, third));
    req.write(bytes.subarray(third, 2 * third));
    req.end(bytes.subarray(2 * third));
  });
}

/** The Connect JSON body of a Send with `payloadText` spliced in verbatim. */
function sendJson(endpointId: string, payloadText: string, extra = ""): string {
  return `{"endpointId":"${endpointId}", "eventType":"fidelity.test"${extra},\n  "payload": ${payloadText} }`;
}

const bearer =
  (token: string): Interceptor =>
  (next) =>
  async (req) => {
    req.header.set("Authorization", `Bearer ${token}`);
    return next(req);
  };

for (const kind of testDbKinds()) {
  void describe(`payload fidelity on ${kind}`, { timeout: 180_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver;
    let stack: Stack;
    let producerKey = "";
    let management: Clients;
    let endpointId = "";
    let signingSecret = "";

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({ databaseUrl: database.url, natsUrl: nats.url });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "fidelity" });
      management = createClients(stack.apiUrl, ws.managementToken);
      producerKey = (await management.apiKeys.createApiKey({ label: "fidelity" })).secret;
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks/fidelity` } });
      endpointId = ep.endpoint?.id ?? "";
      signingSecret = ep.signingSecret;
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    /** Waits for the delivery, checks its bytes are `expected` and the signature is over them. */
    async function assertDeliveredExactly(deliveryId: string, expected: string): Promise<void> {
      await receiver.waitFor(() => receiver.byId(deliveryId).length > 0, 30_000, `delivery ${deliveryId}`);
      const [request] = receiver.byId(deliveryId);
      assert.ok(request !== undefined);
      assert.equal(request.body.toString("utf8"), expected, "the delivered text is the sent text");
      assert.ok(request.body.equals(Buffer.from(expected, "utf8")), "byte-identical");
      assert.match(request.headers["content-type"] ?? "", /^application\/json/);
      // Verification recomputes the HMAC over the received bytes: it passes only if the
      // signature was made over exactly these bytes.
      new Webhook(signingSecret).verify(request.body.toString("utf8"), request.headers);
      const tampered = request.body.toString("utf8").replace("9007199254740993", "9007199254740992");
      if (tampered !== request.body.toString("utf8")) {
        assert.throws(() => new Webhook(signingSecret).verify(tampered, request.headers));
      }
    }

    /** GetMessage over Connect JSON (plain fetch) returns payloadJson equal to the exact text. */
    async function assertStoredExactly(messageId: string, expected: string): Promise<void> {
      const res = await fetch(`${stack.apiUrl}/hookstream.v1.MessageService/GetMessage`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${producerKey}` },
        body: JSON.stringify({ id: messageId }),
      });
      assert.equal(res.status, 200);
      const got = (await res.json()) as { message?: { payloadJson?: string } };
      assert.equal(got.message?.payloadJson, expected);
    }

    void it("delivers the exact text of payload sent as Connect JSON over HTTP/1.1 (fetch, like curl)", async () => {
      const payload = trickyPayload("h1");
      const res = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, payload));
      assert.equal(res.status, 200, res.body);
      const { messageId, deliveryId } = JSON.parse(res.body) as { messageId: string; deliveryId: string };
      await assertDeliveredExactly(deliveryId, payload);
      await assertStoredExactly(messageId, payload);
    });

    void it("delivers the exact text over h2c, with the body split across DATA frames", async () => {
      const payload = trickyPayload("h2c");
      const res = await postH2(stack.apiUrl, producerKey, sendJson(endpointId, payload));
      assert.equal(res.status, 200, res.body);
      const { messageId, deliveryId } = JSON.parse(res.body) as { messageId: string; deliveryId: string };
      await assertDeliveredExactly(deliveryId, payload);
      await assertStoredExactly(messageId, payload);
    });

    void it("delivers the exact text of a gzip-compressed Connect JSON body", async () => {
      const payload = trickyPayload("gzip");
      const res = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, payload), true);
      assert.equal(res.status, 200, res.body);
      await assertDeliveredExactly((JSON.parse(res.body) as { deliveryId: string }).deliveryId, payload);
    });

    void it("keeps a number beyond the double range, and GetMessage still answers", async () => {
      const payload = '{"x":-1e400,"y":1E+400}';
      const res = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, payload));
      assert.equal(res.status, 200, res.body);
      const { messageId, deliveryId } = JSON.parse(res.body) as { messageId: string; deliveryId: string };
      await assertDeliveredExactly(deliveryId, payload);
      await assertStoredExactly(messageId, payload);
    });

    void it("delivers payload_json byte-exact over binary Connect and over gRPC", async () => {
      const binary = createClients(stack.apiUrl, producerKey, { binary: true });
      const grpc = createClient(
        MessageService,
        createGrpcTransport({ baseUrl: stack.apiUrl, interceptors: [bearer(producerKey)] }),
      );
      for (const [name, client] of [
        ["binary Connect", binary.messages],
        ["gRPC", grpc],
      ] as const) {
        const payload = ` ${trickyPayload(name)}\n`; // whitespace around the value is kept too
        const res = await client.send({
          endpointId,
          eventType: "fidelity.test",
          body: { case: "payloadJson", value: payload },
        });
        await assertDeliveredExactly(res.deliveryId, payload);
        const got = await client.getMessage({ id: res.messageId });
        assert.equal(got.message?.payloadJson, payload, `${name}: GetMessage payload_json`);
        // 100 levels of nesting are beyond what protobuf-es converts to a Value: only the text.
        assert.equal(got.message?.payload, undefined, `${name}: no Value for a payload it cannot hold`);

        const shallow = '{"n":9007199254740993}';
        const small = await client.send({
          endpointId,
          eventType: "fidelity.test",
          body: { case: "payloadJson", value: shallow },
        });
        await assertDeliveredExactly(small.deliveryId, shallow);
        const read = (await client.getMessage({ id: small.messageId })).message;
        assert.equal(read?.payloadJson, shallow);
        assert.equal(read?.payload?.kind.case, "structValue", `${name}: the lossy Value is still there`);
      }
    });

    void it("delivers payloadJson sent in a Connect JSON body as the string's text", async () => {
      const payload = '{"b":1.0,"a":9007199254740993}';
      const body = `{"endpointId":"${endpointId}","eventType":"fidelity.test","payloadJson":${JSON.stringify(payload)}}`;
      const res = await postH1(stack.apiUrl, producerKey, body);
      assert.equal(res.status, 200, res.body);
      const { messageId, deliveryId } = JSON.parse(res.body) as { messageId: string; deliveryId: string };
      await assertDeliveredExactly(deliveryId, payload);
      await assertStoredExactly(messageId, payload);
    });

    void it("binds the idempotency key to the exact bytes: 1.0 is not 1", async () => {
      const key = `fidelity-${Date.now()}`;
      const extra = `, "idempotencyKey":"${key}"`;
      const first = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, '{"amount":1.0}', extra));
      assert.equal(first.status, 200, first.body);
      const again = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, '{"amount":1.0}', extra));
      assert.equal(again.status, 200, again.body);
      assert.equal((JSON.parse(again.body) as { replayed?: boolean }).replayed, true);
      await assertDeliveredExactly((JSON.parse(first.body) as { deliveryId: string }).deliveryId, '{"amount":1.0}');
      const respelt = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, '{"amount":1}', extra));
      assert.equal(respelt.status, 409, respelt.body);
      assert.equal((JSON.parse(respelt.body) as { code: string }).code, "already_exists");
    });

    void it("rejects bad payload_json and non-UTF-8 payload text with field violations, delivering nothing", async () => {
      const before = receiver.requests.length;
      const binary = createClients(stack.apiUrl, producerKey, { binary: true });
      for (const bad of ["", "{", '{"a":1} {"b":2}', "NaN", "{'a':1}", '{"a":1,}']) {
        const error = await binary.messages
          .send({ endpointId, eventType: "fidelity.test", body: { case: "payloadJson", value: bad } })
          .then(
            () => assert.fail(`payload_json ${JSON.stringify(bad)} was accepted`),
            (e: unknown) => ConnectError.from(e),
          );
        assert.equal(error.code, Code.InvalidArgument, `${JSON.stringify(bad)}: ${error.rawMessage}`);
        const [detail] = error.findDetails(ErrorDetailSchema);
        assert.deepEqual(
          detail?.fieldViolations.map((v) => v.field),
          ["payload_json"],
          `${JSON.stringify(bad)}: ${error.rawMessage}`,
        );
      }
      // A Connect JSON body whose payload holds a byte that is not UTF-8 (JSON.parse would
      // have made it U+FFFD): refused rather than delivered altered.
      const body = Buffer.concat([
        Buffer.from(sendJson(endpointId, '{"s":"X"}').replace('"X"', '"')),
        Buffer.from([0xff]),
        Buffer.from('"} }'),
      ]);
      const res = await postH1(stack.apiUrl, producerKey, body);
      assert.equal(res.status, 400, res.body);
      assert.match(res.body, /payload/);

      // Broken bodies on the captured path get connect's own answers.
      const zipped = gzipSync(sendJson(endpointId, '{"a":1}'));
      const cut = await fetch(`${stack.apiUrl}${sendPath}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-encoding": "gzip",
          authorization: `Bearer ${producerKey}`,
        },
        body: zipped.subarray(0, zipped.length - 12),
      });
      assert.equal(cut.status, 400, "a gzip body cut short");
      assert.equal(((await cut.json()) as { code: string }).code, "invalid_argument");
      const bomb = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, `"${"0".repeat(2_000_000)}"`), true);
      assert.equal((JSON.parse(bomb.body) as { code: string }).code, "resource_exhausted", "a gzip bomb");
      const big = await postH1(stack.apiUrl, producerKey, sendJson(endpointId, `"${"0".repeat(2_000_000)}"`));
      assert.equal((JSON.parse(big.body) as { code: string }).code, "resource_exhausted", "an oversized body");
      const broken = await postH1(stack.apiUrl, producerKey, `{"endpointId":"${endpointId}","payload":{"a":}}`);
      assert.equal(broken.status, 400);
      assert.equal((JSON.parse(broken.body) as { code: string }).code, "invalid_argument", "malformed JSON");

      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(receiver.requests.length, before, "nothing was delivered");
    });
  });
}
