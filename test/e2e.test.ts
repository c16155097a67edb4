/**
 * End to end on the real stack: api, dispatcher and worker as separate processes, the database
 * of HOOKSTREAM_TEST_DB, a private nats-server and a local receiver. Follows messages from Send
 * to a receiver that verifies their Standard Webhooks signature with the official package, and
 * on WatchDeliveries from queued to succeeded; then retries, idempotency, bad input, shutdown.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { fromJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Webhook } from "standardwebhooks";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import {
  WatchService,
  type WatchDeliveriesRequestSchema,
  type WatchDeliveriesResponse,
} from "../gen/hookstream/v1/watch_service_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "./support/receiver.ts";
import { createClients, listAllDeliveries, startStack, type Clients, type Stack } from "./support/stack.ts";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The name of a Connect code, for messages. */
const codeName = (code: Code): string => Object.entries(Code).find(([, v]) => v === code)?.[0] ?? String(code);

/** Awaits a call that must fail with `code`; returns the error for further checks. */
async function rejectsWith(call: Promise<unknown>, codes: Code | readonly Code[], what: string): Promise<ConnectError> {
  const expected = Array.isArray(codes) ? codes : [codes];
  try {
    await call;
  } catch (error) {
    const ce = ConnectError.from(error);
    assert.ok(
      expected.includes(ce.code),
      `${what}: expected ${expected.map(codeName).join(" or ")}, got ${codeName(ce.code)}: ${ce.rawMessage}`,
    );
    return ce;
  }
  return assert.fail(`${what}: expected ${expected.map(codeName).join(" or ")}, but the call succeeded`);
}

/** A JSON payload as the SendRequest body oneof. */
function jsonBody(payload: JsonValue): { case: "payload"; value: Value } {
  return { case: "payload", value: fromJson(ValueSchema, payload) };
}

/** A live WatchDeliveries stream collecting every item. */
interface Watch {
  /** Status changes, in stream order (heartbeats apart). */
  readonly items: WatchDeliveriesResponse[];
  /** Heartbeat items. */
  readonly heartbeats: WatchDeliveriesResponse[];
  /** Settles with the first item, the heartbeat the stream starts with: the watch is attached. */
  readonly attached: Promise<void>;
  /** Statuses seen for one delivery, in stream order. */
  statusesOf(deliveryId: string): DeliveryStatus[];
  stop(): Promise<void>;
  /** The stream's error, if it ended with one other than our own cancel. */
  error(): unknown;
}

function openWatch(clients: Clients, request: MessageInitShape<typeof WatchDeliveriesRequestSchema>): Watch {
  const controller = new AbortController();
  const items: WatchDeliveriesResponse[] = [];
  const heartbeats: WatchDeliveriesResponse[] = [];
  let failure: unknown;
  let attach!: () => void;
  const attached = new Promise<void>((resolve) => (attach = resolve));
  const done = (async () => {
    try {
      for await (const item of clients.watch.watchDeliveries(request, { signal: controller.signal })) {
        attach();
        (item.heartbeat ? heartbeats : items).push(item);
      }
    } catch (error) {
      if (!controller.signal.aborted) failure = error;
    } finally {
      attach();
    }
  })();
  return {
    items,
    heartbeats,
    attached,
    statusesOf: (deliveryId) =>
      items.filter((i) => i.delivery?.id === deliveryId).map((i) => i.delivery?.status ?? DeliveryStatus.UNSPECIFIED),
    async stop() {
      controller.abort();
      await done;
    },
    error: () => failure,
  };
}

/** Checks the Standard Webhooks headers and signature of one received request. */
function verifySigned(request: ReceivedRequest, secret: string, deliveryId: string): unknown {
  assert.equal(request.method, "POST");
  assert.equal(request.webhookId, deliveryId, "webhook-id is the delivery id");
  assert.match(request.headers["webhook-timestamp"] ?? "", /^\d+$/);
  assert.match(request.headers["webhook-signature"] ?? "", /(^| )v1,[A-Za-z0-9+/=]+/);
  assert.match(request.headers["content-type"] ?? "", /^application\/json/);
  return new Webhook(secret).verify(request.body.toString("utf8"), request.headers);
}

/** The stack's watch heartbeat interval (HOOKSTREAM_WATCH_HEARTBEAT). */
const heartbeatMs = 300;

/** Authorized transports of every protocol a watcher may use. */
function watchTransports(baseUrl: string, token: string): Array<{ name: string; transport: Transport }> {
  const interceptors: Interceptor[] = [
    (next) => async (req) => {
      req.header.set("Authorization", `Bearer ${token}`);
      return next(req);
    },
  ];
  return [
    {
      name: "Connect JSON over HTTP/1.1",
      transport: createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }),
    },
    {
      name: "Connect binary over h2c",
      transport: createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors }),
    },
    { name: "gRPC over h2c", transport: createGrpcTransport({ baseUrl, interceptors }) },
    {
      name: "gRPC-Web over HTTP/1.1",
      transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors }),
    },
  ];
}

const statusName = (s: DeliveryStatus): string =>
  Object.entries(DeliveryStatus).find(([, v]) => v === s)?.[0] ?? String(s);

for (const kind of testDbKinds()) {
  void describe(`end to end on ${kind}, roles as separate processes`, { timeout: 240_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver;
    let stack: Stack;
    let admin: Clients;
    let management: Clients;
    let producer: Clients;
    let endpointId = "";
    let signingSecret = "";
    let managementToken = "";
    let producerSecret = "";
    let watch: Watch | undefined;
    const sent: Array<{ messageId: string; deliveryId: string; payload: JsonValue }> = [];
    /** Attempts each delivery needed, for the one-log-line-per-attempt check. */
    const attemptsMade = new Map<string, number>();

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: { HOOKSTREAM_WATCH_HEARTBEAT: `${heartbeatMs}ms` },
      });
      admin = createClients(stack.apiUrl, stack.adminToken);
    });

    after(async () => {
      await watch?.stop();
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("creates a workspace, an API key and an endpoint", async () => {
      const ws = await admin.admin.createWorkspace({ name: "e2e" });
      assert.match(ws.workspace?.id ?? "", /^ws_/);
      assert.notEqual(ws.managementToken, "");
      management = createClients(stack.apiUrl, ws.managementToken);
      managementToken = ws.managementToken;

      const key = await management.apiKeys.createApiKey({ label: "e2e producer" });
      assert.match(key.apiKey?.id ?? "", /^key_/);
      assert.notEqual(key.secret, "");
      producer = createClients(stack.apiUrl, key.secret, { binary: true });
      producerSecret = key.secret;

      const ep = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver.url}/hooks/e2e`, description: "e2e receiver" },
      });
      endpointId = ep.endpoint?.id ?? "";
      assert.match(endpointId, /^ep_/);
      assert.match(ep.signingSecret, /^whsec_/);
      signingSecret = ep.signingSecret;
    });

    void it("delivers signed messages and streams them from queued to succeeded", async () => {
      watch = openWatch(management, { endpointId });
      await watch.attached;
      for (let i = 0; i < 5; i++) {
        const payload = { type: "order.paid", n: i, note: `héllo ${i}`, nested: { ok: true, list: [1, 2, 3] } };
        const res = await producer.messages.send({ endpointId, eventType: "order.paid", body: jsonBody(payload) });
        assert.match(res.messageId, /^msg_/);
        assert.match(res.deliveryId, /^dlv_/);
        assert.notEqual(res.idempotencyKey, "", "a key is generated when none is given");
        assert.equal(res.replayed, false);
        sent.push({ messageId: res.messageId, deliveryId: res.deliveryId, payload });
      }

      await receiver.waitFor(
        () => sent.every((s) => receiver.byId(s.deliveryId).length > 0),
        30_000,
        "every sent delivery",
      );
      for (const s of sent) {
        const [request] = receiver.byId(s.deliveryId);
        assert.ok(request !== undefined);
        assert.equal(request.path, "/hooks/e2e");
        const verified = verifySigned(request, signingSecret, s.deliveryId);
        assert.deepEqual(verified, s.payload, "the delivered body is the sent JSON");
      }

      const w = watch;
      await eventually(
        () => sent.every((s) => w.statusesOf(s.deliveryId).includes(DeliveryStatus.SUCCEEDED)),
        30_000,
        "SUCCEEDED on the watch stream for every delivery",
      );
      assert.equal(w.error(), undefined);
      for (const s of sent) {
        const statuses = w.statusesOf(s.deliveryId);
        const queued = statuses.indexOf(DeliveryStatus.QUEUED);
        const succeeded = statuses.indexOf(DeliveryStatus.SUCCEEDED);
        assert.ok(
          queued !== -1 && queued < succeeded,
          `${s.deliveryId}: expected QUEUED before SUCCEEDED, saw ${statuses.map(statusName).join(" → ")}`,
        );
      }
      for (const item of w.items) assert.notEqual(item.resumeToken, "", "every item carries a resume token");
      for (const s of sent) attemptsMade.set(s.deliveryId, 1);
    });

    void it("reports succeeded deliveries and their attempt", async () => {
      for (const s of sent) {
        const msg = await producer.messages.getMessage({ id: s.messageId });
        assert.equal(msg.message?.id, s.messageId);
        assert.equal(msg.message?.eventType, "order.paid");
        assert.equal(msg.deliveries.length, 1);
        assert.equal(msg.deliveries[0]?.id, s.deliveryId);
        assert.equal(msg.deliveries[0]?.status, DeliveryStatus.SUCCEEDED);

        const attempts = await management.deliveries.listAttempts({ deliveryId: s.deliveryId });
        assert.equal(attempts.attempts.length, 1, "one attempt");
        assert.equal(attempts.attempts[0]?.responseStatus, 200);
        assert.equal(attempts.attempts[0]?.number, 1);

        const dlv = await management.deliveries.getDelivery({ id: s.deliveryId });
        assert.equal(dlv.delivery?.status, DeliveryStatus.SUCCEEDED);
        assert.equal(dlv.delivery?.attemptCount, 1);
      }
    });

    void it("resumes a watch exactly after a resume token", async () => {
      assert.ok(watch !== undefined);
      const seen = [...watch.items];
      assert.ok(seen.length >= 2, `need at least two watch items, have ${seen.length}`);
      const mid = Math.floor(seen.length / 2);
      const expected = seen.slice(mid + 1);
      const key = (i: WatchDeliveriesResponse): string =>
        `${i.resumeToken}|${i.delivery?.id}|${statusName(i.delivery?.status ?? 0)}|${i.attempt?.number ?? "-"}`;

      const resumed = openWatch(management, { endpointId, resumeToken: seen[mid]?.resumeToken ?? "" });
      try {
        await eventually(() => resumed.items.length >= expected.length, 15_000, `${expected.length} resumed items`);
        await sleep(500);
        assert.equal(resumed.error(), undefined);
        assert.deepEqual(resumed.items.map(key), expected.map(key));
      } finally {
        await resumed.stop();
      }
    });

    void it("a watch starts with a heartbeat and sends more while quiet, on every protocol", async () => {
      for (const { name, transport } of watchTransports(stack.apiUrl, managementToken)) {
        // An endpoint of its own per protocol: nothing happens on it until this test sends.
        const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks/quiet` } });
        const quietEndpoint = created.endpoint?.id ?? "";
        const client = createClient(WatchService, transport);
        const controller = new AbortController();
        const it = client
          .watchDeliveries({ endpointId: quietEndpoint }, { signal: controller.signal })
          [Symbol.asyncIterator]();
        try {
          // Nothing happens on this endpoint: only heartbeats can arrive, the first one at once.
          const beats: WatchDeliveriesResponse[] = [];
          while (beats.length < 3) {
            const next = await it.next();
            assert.equal(next.done, false, `${name}: the stream stays open`);
            assert.equal(next.value.heartbeat, true, `${name}: a heartbeat`);
            assert.equal(next.value.delivery, undefined, `${name}: a heartbeat has no delivery`);
            assert.notEqual(next.value.resumeToken, "", `${name}: a heartbeat carries a resume token`);
            beats.push(next.value);
          }
          // The heartbeat's token resumes from where the stream stood: a message sent now is seen.
          const sentNow = await producer.messages.send({
            endpointId: quietEndpoint,
            eventType: "order.quiet",
            body: jsonBody({ name }),
          });
          const resumed = openWatch(management, { endpointId: quietEndpoint, resumeToken: beats[2]!.resumeToken });
          try {
            await eventually(
              () => resumed.items.some((i) => i.delivery?.id === sentNow.deliveryId),
              30_000,
              `${name}: the message sent after the heartbeat, resumed from its token`,
            );
          } finally {
            await resumed.stop();
          }
        } finally {
          controller.abort();
          await it.return?.();
        }
      }
    });

    void it("WatchMessage follows one message until every delivery is final, then ends, on every protocol", async () => {
      for (const { name, transport } of watchTransports(stack.apiUrl, producerSecret)) {
        const client = createClient(WatchService, transport);
        const res = await producer.messages.send({ endpointId, eventType: "order.watched", body: jsonBody({ name }) });
        const items = [];
        for await (const item of client.watchMessage({ id: res.messageId })) items.push(item);
        const changes = items.filter((i) => !i.heartbeat);
        assert.ok(changes.length > 0, `${name}: the delivery as it stands comes first`);
        assert.ok(
          changes.every((i) => i.delivery?.id === res.deliveryId && i.delivery.messageId === res.messageId),
          `${name}: only this message's delivery`,
        );
        assert.equal(changes.at(-1)?.delivery?.status, DeliveryStatus.SUCCEEDED, `${name}: ends when final`);
        assert.ok(changes.every((i) => i.resumeToken !== ""));

        // Already final: the stream says how it stands and ends at once.
        const again = [];
        for await (const item of client.watchMessage({ id: res.messageId })) again.push(item);
        assert.deepEqual(
          again.filter((i) => !i.heartbeat).map((i) => i.delivery?.status),
          [DeliveryStatus.SUCCEEDED],
          name,
        );
      }
      const other = await admin.admin.createWorkspace({ name: "e2e other" });
      const stranger = createClient(WatchService, watchTransports(stack.apiUrl, other.managementToken)[0]!.transport);
      const foreign = rejectsWith(
        (async () => {
          for await (const _ of stranger.watchMessage({ id: sent[0]?.messageId ?? "" })) assert.fail("no item");
        })(),
        Code.NotFound,
        "WatchMessage of another workspace's message",
      );
      await foreign;
      await rejectsWith(
        (async () => {
          for await (const _ of stranger.watchMessage({ id: "msg_nope" })) assert.fail("no item");
        })(),
        Code.InvalidArgument,
        "WatchMessage of a malformed id",
      );
    });

    void it("retries a failed attempt: PENDING_RETRY then SUCCEEDED with two attempts", async () => {
      receiver.failFirst(1, 500, (r) => r.body.toString("utf8").includes('"flaky"'));
      const payload = { type: "flaky" };
      const res = await producer.messages.send({ endpointId, eventType: "order.flaky", body: jsonBody(payload) });
      const w = watch;
      assert.ok(w !== undefined);
      await eventually(
        () => w.statusesOf(res.deliveryId).includes(DeliveryStatus.SUCCEEDED),
        30_000,
        "the flaky delivery to succeed",
      );
      const statuses = w.statusesOf(res.deliveryId);
      const pending = statuses.indexOf(DeliveryStatus.PENDING_RETRY);
      assert.ok(
        pending !== -1 && pending < statuses.indexOf(DeliveryStatus.SUCCEEDED),
        `expected PENDING_RETRY before SUCCEEDED, saw ${statuses.map(statusName).join(" → ")}`,
      );

      const requests = receiver.byId(res.deliveryId);
      assert.deepEqual(
        requests.map((r) => r.status),
        [500, 200],
      );
      for (const r of requests) verifySigned(r, signingSecret, res.deliveryId);

      const attempts = await management.deliveries.listAttempts({ deliveryId: res.deliveryId });
      assert.deepEqual(
        attempts.attempts.map((a) => [a.number, a.responseStatus]),
        [
          [1, 500],
          [2, 200],
        ],
      );
      const dlv = await management.deliveries.getDelivery({ id: res.deliveryId });
      assert.equal(dlv.delivery?.status, DeliveryStatus.SUCCEEDED);
      assert.equal(dlv.delivery?.attemptCount, 2);
      attemptsMade.set(res.deliveryId, 2);
    });

    void it("replays an idempotent Send and refuses the same key with other bytes", async () => {
      const idempotencyKey = `idem-${randomBytes(8).toString("hex")}`;
      const payload = { type: "idempotent", n: 1 };
      const first = await producer.messages.send({
        endpointId,
        eventType: "order.paid",
        body: jsonBody(payload),
        idempotencyKey,
      });
      assert.equal(first.replayed, false);
      assert.equal(first.idempotencyKey, idempotencyKey);

      const again = await producer.messages.send({
        endpointId,
        eventType: "order.paid",
        body: jsonBody(payload),
        idempotencyKey,
      });
      assert.equal(again.replayed, true);
      assert.equal(again.messageId, first.messageId);
      assert.equal(again.deliveryId, first.deliveryId);
      assert.equal(again.idempotencyKey, idempotencyKey);

      await rejectsWith(
        producer.messages.send({
          endpointId,
          eventType: "order.paid",
          body: jsonBody({ type: "idempotent", n: 2 }),
          idempotencyKey,
        }),
        Code.AlreadyExists,
        "same idempotency key, other payload",
      );

      await receiver.waitFor(() => receiver.byId(first.deliveryId).length > 0, 30_000, "the idempotent delivery");
      await sleep(1_500);
      assert.equal(receiver.byId(first.deliveryId).length, 1, "a replayed Send delivers nothing more");
      attemptsMade.set(first.deliveryId, 1);
    });

    void it("answers bad input with precise errors and changes nothing", async () => {
      const deliveriesBefore = (await listAllDeliveries(management, endpointId)).length;
      const endpointsBefore = (await management.endpoints.listEndpoints({ pageSize: 100 })).endpoints.length;
      const requestsBefore = receiver.requests.length;

      // Missing or wrong credentials.
      const anonymous = createClients(stack.apiUrl);
      await rejectsWith(
        anonymous.messages.send({ endpointId, eventType: "x.y", body: jsonBody({}) }),
        Code.Unauthenticated,
        "Send without credentials",
      );
      await rejectsWith(
        anonymous.endpoints.listEndpoints({}),
        Code.Unauthenticated,
        "ListEndpoints without credentials",
      );
      await rejectsWith(
        anonymous.admin.createWorkspace({ name: "x" }),
        Code.Unauthenticated,
        "CreateWorkspace without token",
      );
      const forged = createClients(stack.apiUrl, "not-a-real-credential");
      await rejectsWith(
        forged.messages.send({ endpointId, eventType: "x.y", body: jsonBody({}) }),
        Code.Unauthenticated,
        "Send with a wrong key",
      );
      await rejectsWith(
        management.admin.createWorkspace({ name: "x" }),
        [Code.Unauthenticated, Code.PermissionDenied],
        "CreateWorkspace with a management token",
      );

      // Another workspace's credentials see nothing of this one.
      const ws2 = await admin.admin.createWorkspace({ name: "e2e other" });
      const management2 = createClients(stack.apiUrl, ws2.managementToken);
      const key2 = await management2.apiKeys.createApiKey({ label: "other" });
      const producer2 = createClients(stack.apiUrl, key2.secret);
      const foreign = sent[0];
      assert.ok(foreign !== undefined);
      await rejectsWith(
        producer2.messages.getMessage({ id: foreign.messageId }),
        Code.NotFound,
        "GetMessage of another workspace",
      );
      await rejectsWith(
        producer2.messages.send({ endpointId, eventType: "x.y", body: jsonBody({}) }),
        Code.NotFound,
        "Send to another workspace's endpoint",
      );
      await rejectsWith(
        management2.endpoints.getEndpoint({ id: endpointId }),
        Code.NotFound,
        "GetEndpoint of another workspace",
      );
      await rejectsWith(
        management2.deliveries.getDelivery({ id: foreign.deliveryId }),
        Code.NotFound,
        "GetDelivery of another workspace",
      );
      assert.equal((await management2.deliveries.listDeliveries({})).deliveries.length, 0);

      // Invalid endpoint URL: invalid_argument with a violation on endpoint.url.
      const badUrl = await rejectsWith(
        management.endpoints.createEndpoint({ endpoint: { url: "not a url" } }),
        Code.InvalidArgument,
        "CreateEndpoint with an invalid URL",
      );
      const details = badUrl.findDetails(ErrorDetailSchema);
      const fields = details.flatMap((d) => d.fieldViolations.map((v) => v.field));
      assert.ok(fields.includes("endpoint.url"), `field violations: ${JSON.stringify(fields)}`);
      assert.ok(
        details.every((d) => d.reason !== ""),
        "the error detail carries a machine-readable reason",
      );

      // Oversized payload (default limit 256 KiB).
      await rejectsWith(
        producer.messages.send({ endpointId, eventType: "x.big", body: jsonBody({ big: "x".repeat(300 * 1024) }) }),
        [Code.InvalidArgument, Code.ResourceExhausted],
        "Send with a 300 KiB payload",
      );

      // Invalid event type and unknown endpoint.
      await rejectsWith(
        producer.messages.send({ endpointId, eventType: "", body: jsonBody({}) }),
        Code.InvalidArgument,
        "Send without an event type",
      );
      await rejectsWith(
        producer.messages.send({ endpointId: "ep_doesnotexist", eventType: "x.y", body: jsonBody({}) }),
        [Code.NotFound, Code.InvalidArgument],
        "Send to an unknown endpoint",
      );

      // Malformed JSON on the Connect protocol.
      const malformed = await fetch(`${stack.apiUrl}/hookstream.v1.MessageService/Send`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key2.secret}` },
        body: "{ not json",
      });
      const malformedBody = (await malformed.json()) as { code?: string };
      assert.equal(malformedBody.code, "invalid_argument", `malformed JSON: ${JSON.stringify(malformedBody)}`);
      assert.equal(malformed.status, 400);

      await sleep(1_000);
      assert.equal((await listAllDeliveries(management, endpointId)).length, deliveriesBefore, "no delivery was added");
      assert.equal(
        (await management.endpoints.listEndpoints({ pageSize: 100 })).endpoints.length,
        endpointsBefore,
        "no endpoint was added",
      );
      assert.equal(receiver.requests.length, requestsBefore, "nothing was delivered");
    });

    void it("every role exits 0 on SIGTERM and logged one line per attempt", async () => {
      await watch?.stop();
      watch = undefined;
      const exits = await stack.stopAll();
      for (const [role, info] of Object.entries(exits)) {
        assert.deepEqual(info, { code: 0, signal: null }, `${role} exit`);
      }
      const attemptLines = stack.logRecords("worker").filter((r) => r["msg"] === "delivery attempt");
      assert.ok(attemptsMade.size > 0);
      for (const [deliveryId, attempts] of attemptsMade) {
        const lines = attemptLines.filter((r) => r["deliveryId"] === deliveryId);
        assert.deepEqual(
          lines.map((r) => r["attempt"]),
          Array.from({ length: attempts }, (_, i) => i + 1),
          `one "delivery attempt" log line per attempt of ${deliveryId}`,
        );
      }
    });
  });
}
