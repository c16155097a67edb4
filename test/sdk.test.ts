/**
 * `@hookstream/client` (src/client) against a real stack (api, dispatcher, worker processes on
 * real NATS and each database): the producer and management clients end to end, byte-exact
 * payloads verified with the SDK's own receiver helper, typed errors, opt-in retries with one
 * idempotency key, listAll, and a watch stream that reconnects across an api restart.
 *
 * test-pass: first only: scripts/test.sh runs it in the SQLite pass alone, because
 * the SDK is a client: the server it talks to is proven on both databases by the other files
 * (HOOKSTREAM_TEST_DB=postgresql runs it on PostgreSQL).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Code,
  DeliveryStatus,
  Hookstream,
  HookstreamManagement,
  HookstreamOperator,
  HookstreamError,
  NetworkError,
  TimeoutError,
  rawJson,
  verifyWebhook,
  type DeliveryEvent,
} from "../src/client/index.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { freePort, startStack, type Stack } from "./support/stack.ts";

for (const kind of testDbKinds()) {
  void describe(`the TypeScript SDK against a real stack on ${kind}`, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let stack: Stack | undefined;
    let receiver: Receiver | undefined;
    let management: HookstreamManagement;
    let producer: Hookstream;
    let endpointId = "";
    let signingSecret = "";

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({ databaseUrl: database.url, natsUrl: nats.url });
      await using operator = new HookstreamOperator({ baseUrl: stack.apiUrl, operatorToken: stack.adminToken });
      const ws = await operator.workspaces.create("sdk");
      assert.match(ws.workspace?.id ?? "", /^ws_/);
      management = new HookstreamManagement({ baseUrl: stack.apiUrl, managementToken: ws.managementToken });
      const key = await management.apiKeys.create("sdk producer");
      producer = new Hookstream({ baseUrl: stack.apiUrl, apiKey: key.secret });
      const created = await management.endpoints.create({ url: `${receiver.url}/hooks/sdk`, description: "sdk" });
      endpointId = created.endpoint?.id ?? "";
      signingSecret = created.signingSecret;
    });

    after(async () => {
      await producer?.close();
      await management?.close();
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("sends byte-exact payloads (bigint, pre-serialised JSON) that verify with verifyWebhook", async () => {
      assert.ok(receiver !== undefined);
      const r = receiver;
      const big = { orderId: 12345678901234567890n, total: 9007199254740993n, note: "café" };
      const a = await producer.send(endpointId, big, { eventType: "order.paid" });
      const text = '{"amount": 1.0, "n":1e3,"s":"\\u00e9"}';
      const b = await producer.send(endpointId, rawJson(text), { eventType: "order.raw" });
      assert.match(a.messageId, /^msg_/);
      assert.equal(a.replayed, false);
      await r.waitFor(() => r.byId(a.deliveryId).length > 0 && r.byId(b.deliveryId).length > 0, 60_000, "both");
      const gotA = r.byId(a.deliveryId)[0]!;
      assert.equal(
        gotA.body.toString("utf8"),
        '{"orderId":12345678901234567890,"total":9007199254740993,"note":"café"}',
      );
      const gotB = r.byId(b.deliveryId)[0]!;
      assert.equal(gotB.body.toString("utf8"), text);
      const verified = await verifyWebhook(gotB.body, gotB.headers, signingSecret);
      assert.equal(verified.id, b.deliveryId);
      const read = await producer.messages.get(b.messageId);
      assert.equal(read.message?.payloadJson, text);
      assert.ok(read.message?.createTime instanceof Date, "timestamps are Dates");
      assert.equal(read.deliveries[0]?.id, b.deliveryId);
      // Raw bytes with a content type.
      const bytes = new Uint8Array([0, 1, 2, 255]);
      const c = await producer.send(endpointId, bytes, { contentType: "application/x-test", eventType: "bin" });
      await r.waitFor(() => r.byId(c.deliveryId).length > 0, 60_000, "the bytes");
      assert.deepEqual([...r.byId(c.deliveryId)[0]!.body], [0, 1, 2, 255]);
      assert.equal(r.byId(c.deliveryId)[0]!.headers["content-type"], "application/x-test");
    });

    void it("schedules sends with deliverIn, deliverAt, deliverAtLocal + timeZone; cancels and reschedules", async () => {
      const scheduled = async (deliveryId: string): Promise<Date | undefined> => {
        const d = (await management.deliveries.get(deliveryId)).delivery!;
        assert.equal(d.status, DeliveryStatus.SCHEDULED, `${deliveryId} is scheduled`);
        return d.nextAttemptTime;
      };
      const near = (actual: Date | undefined, expected: number, what: string): void =>
        assert.ok(
          actual !== undefined && Math.abs(actual.getTime() - expected) < 5_000,
          `${what}: ${actual?.toISOString()}`,
        );
      const t0 = Date.now();
      const inOneHour = await producer.send(endpointId, { s: 1 }, { eventType: "sched", deliverIn: "1h" });
      near(await scheduled(inOneHour.deliveryId), t0 + 3_600_000, "deliverIn 1h");
      const inMs = await producer.send(endpointId, { s: 2 }, { eventType: "sched", deliverIn: 90 * 60_000 });
      near(await scheduled(inMs.deliveryId), t0 + 5_400_000, "deliverIn 90 min as milliseconds");
      const at = new Date(t0 + 2 * 3_600_000);
      const atSent = await producer.send(endpointId, { s: 3 }, { eventType: "sched", deliverAt: at });
      near(await scheduled(atSent.deliveryId), at.getTime(), "deliverAt");
      const day = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Tokyo" }).format(new Date(t0 + 2 * 86_400_000));
      const local = await producer.send(
        endpointId,
        { s: 4 },
        {
          eventType: "sched",
          deliverAtLocal: `${day}T09:30:00`,
          timeZone: "Asia/Tokyo",
          metadata: { origin: "sdk" },
        },
      );
      // Tokyo has no daylight saving time: 09:30 there is 00:30 UTC.
      near(await scheduled(local.deliveryId), Date.parse(`${day}T00:30:00Z`), "deliverAtLocal in Asia/Tokyo");

      const bad = await producer
        .send(endpointId, {}, { eventType: "sched", deliverIn: "5m", deliverAt: new Date() })
        .catch((e: unknown) => e);
      assert.ok(bad instanceof HookstreamError && bad.isValidation(), String(bad));

      const cancelled = await producer.messages.cancel(inOneHour.messageId);
      assert.ok(cancelled.message !== undefined);
      assert.equal((await management.deliveries.get(inOneHour.deliveryId)).delivery?.status, DeliveryStatus.CANCELLED);
      await producer.messages.reschedule(atSent.messageId, { deliverIn: "1s" });
      assert.ok(receiver !== undefined);
      const r = receiver;
      await r.waitFor(() => r.byId(atSent.deliveryId).length > 0, 60_000, "the rescheduled delivery");
    });

    void it("throws typed errors: not found, validation with field violations, auth, conflict", async () => {
      const notFound = await producer.messages.get("msg_00000000000000000000000000").catch((e: unknown) => e);
      assert.ok(notFound instanceof HookstreamError, String(notFound));
      const nf = notFound;
      assert.equal(nf.isNotFound() || nf.isValidation(), true, nf.describe());

      const bad = await management.endpoints.create({ url: "ftp://nope" }).catch((e: unknown) => e);
      assert.ok(bad instanceof HookstreamError);
      assert.equal(bad.code, Code.InvalidArgument);
      assert.ok(bad.isValidation());
      assert.equal(bad.reason, "INVALID_ARGUMENT");
      assert.ok(
        bad.fieldViolations.some((v) => v.field.includes("url")),
        JSON.stringify(bad.fieldViolations),
      );
      assert.equal(bad.isRetryable(), false);

      const asProducer = new HookstreamManagement({ baseUrl: stack!.apiUrl, managementToken: "hsk_not-a-token" });
      const auth = await asProducer.endpoints.list().catch((e: unknown) => e);
      assert.ok(auth instanceof HookstreamError);
      assert.ok(auth.isAuthError(), auth.describe());

      const key = `order-${Date.now()}`;
      await producer.send(endpointId, { n: 1 }, { idempotencyKey: key, eventType: "idem" });
      const again = await producer.send(endpointId, { n: 1 }, { idempotencyKey: key, eventType: "idem" });
      assert.equal(again.replayed, true);
      const conflict = await producer
        .send(endpointId, { n: 2 }, { idempotencyKey: key, eventType: "idem" })
        .catch((e: unknown) => e);
      assert.ok(conflict instanceof HookstreamError);
      assert.ok(conflict.isConflict(), conflict.describe());
      assert.equal(conflict.reason, "IDEMPOTENCY_KEY_REUSED");
    });

    void it("keeps the cause of network errors and timeouts", async () => {
      const port = await freePort();
      const down = new Hookstream({ baseUrl: `http://127.0.0.1:${port}`, apiKey: "k" });
      const err = await down.send(endpointId, {}).catch((e: unknown) => e);
      assert.ok(err instanceof NetworkError, String(err));
      assert.ok(err.isRetryable());
      assert.ok(err.cause !== undefined);

      // A fetch that never answers: the client's timeout ends the call.
      const hanging: typeof fetch = (_input, init) =>
        new Promise((_resolve, reject) =>
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason as Error)),
        );
      const slow = new Hookstream({ baseUrl: stack!.apiUrl, apiKey: "k", fetch: hanging, timeout: "200ms" });
      const timeout = await slow.send(endpointId, {}).catch((e: unknown) => e);
      assert.ok(timeout instanceof TimeoutError, String(timeout));
      assert.equal(timeout.code, Code.DeadlineExceeded);
    });

    void it("retries network failures with one idempotency key, so a retry never sends twice", async () => {
      let calls = 0;
      const bodies: string[] = [];
      // The first two requests reach the server, but their answers are lost on the way back.
      const flaky: typeof fetch = async (input, init) => {
        calls++;
        bodies.push(typeof init?.body === "string" ? init.body : new TextDecoder().decode(init?.body as Uint8Array));
        const res = await fetch(input, init);
        if (calls <= 2) {
          await res.arrayBuffer();
          throw new TypeError("fetch failed", { cause: new Error("socket hang up") });
        }
        return res;
      };
      const p = new Hookstream({
        baseUrl: stack!.apiUrl,
        apiKey: (await management.apiKeys.create("retries")).secret,
        fetch: flaky,
        retry: { maxAttempts: 5, baseDelay: 10, maxDelay: 50 },
      });
      const sent = await p.send(endpointId, { retried: true }, { eventType: "retry.test" });
      assert.equal(calls, 3);
      const keys = new Set(bodies.map((b) => (JSON.parse(b) as { idempotencyKey: string }).idempotencyKey));
      assert.equal(keys.size, 1, "every attempt carries the same idempotency key");
      assert.match([...keys][0]!, /^sdk_/);
      assert.equal(sent.replayed, true, "the third attempt found the message the first one created");
      const all = [];
      for await (const d of management.deliveries.listAll({ endpointId, pageSize: 2 })) {
        if (d.eventType === "retry.test") all.push(d);
      }
      assert.equal(all.length, 1, "one message, one delivery");
      // Without retry the first failure surfaces.
      calls = 0;
      const once = new Hookstream({ baseUrl: stack!.apiUrl, apiKey: "k", fetch: flaky });
      assert.ok((await once.send(endpointId, {}).catch((e: unknown) => e)) instanceof NetworkError);
    });

    void it("manages every resource with plain objects, and lists everything with listAll", async () => {
      const ep = await management.endpoints.create({
        url: `${receiver!.url}/hooks/managed`,
        metadata: { team: "billing" },
        timeout: "5s",
      });
      const id = ep.endpoint!.id;
      assert.equal(ep.endpoint!.timeout, 5000, "durations are milliseconds");
      const updated = await management.endpoints.update(id, { description: "renamed", enabled: false });
      assert.equal(updated.description, "renamed");
      assert.equal(updated.enabled, false);
      assert.equal((await management.endpoints.get(id)).metadata["team"], "billing");
      const rotated = await management.endpoints.rotateSecret(id);
      assert.match(rotated.signingSecret, /^whsec_/);
      assert.ok(rotated.previousSecretExpireTime instanceof Date);
      const ids: string[] = [];
      for await (const e of management.endpoints.listAll({ pageSize: 1 })) ids.push(e.id);
      assert.ok(ids.includes(id) && ids.includes(endpointId), ids.join());
      await management.endpoints.delete(id);
      assert.ok((await management.endpoints.get(id).catch((e: unknown) => e)) instanceof HookstreamError);

      const schema = { type: "object", required: ["orderId"], properties: { orderId: { type: "integer" } } };
      const et = await management.eventTypes.create({ name: "invoice.sent", description: "an invoice", schema });
      assert.deepEqual(et.schema, schema, "a JSON Schema is a plain object");
      assert.equal((await management.eventTypes.get("invoice.sent")).description, "an invoice");
      const refused = await producer
        .send(endpointId, { orderId: "x" }, { eventType: "invoice.sent" })
        .catch((e: unknown) => e);
      assert.ok(refused instanceof HookstreamError && refused.isValidation(), String(refused));
      assert.ok(refused.fieldViolations.length > 0);
      assert.equal((await management.eventTypes.update("invoice.sent", { archived: true })).archived, true);
      const names: string[] = [];
      for await (const t of management.eventTypes.listAll({ includeArchived: true, pageSize: 1 })) names.push(t.name);
      assert.ok(names.includes("invoice.sent"));
      await management.eventTypes.delete("invoice.sent");
      assert.ok((await management.eventTypes.get("invoice.sent").catch((e: unknown) => e)) instanceof HookstreamError);

      const keys: string[] = [];
      for await (const k of management.apiKeys.listAll({ pageSize: 1 })) keys.push(k.label);
      assert.ok(keys.includes("sdk producer"));
      const k = await management.apiKeys.create("to revoke");
      assert.ok((await management.apiKeys.revoke(k.apiKey!.id)).revokeTime instanceof Date);

      const ws = await management.workspace.update({ payloadRetention: "7d" });
      assert.equal(ws.payloadRetention, 7 * 86_400_000);
      assert.equal((await management.workspace.get()).payloadRetention, 7 * 86_400_000);

      const managed = await producer.send(endpointId, { managed: true }, { eventType: "managed" });
      for (let i = 0; i < 300; i++) {
        const now = await management.deliveries.get(managed.deliveryId);
        if (now.delivery?.status === DeliveryStatus.SUCCEEDED) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const first = await management.deliveries.list({ endpointId, pageSize: 1, statuses: ["succeeded"] });
      const d = first.deliveries[0]!;
      assert.equal(d.status, DeliveryStatus.SUCCEEDED);
      const got = await management.deliveries.get(d.id, { includePayload: true });
      assert.equal(got.delivery?.id, d.id);
      const attempts = [];
      for await (const a of management.deliveries.listAllAttempts(d.id)) attempts.push(a);
      assert.ok(attempts.length >= 1 && attempts[0]!.responseStatus === 200);
      const replayed = await management.deliveries.replay(d.id);
      assert.equal(replayed.id, d.id);
      const dead = [];
      for await (const x of management.deadLetters.listAll({ endpointId })) dead.push(x);
      assert.deepEqual(dead, []);
      const op = await management.bulk.start({ action: "replay", deliveryIds: [d.id] });
      let last = op;
      for await (const progress of management.bulk.watch(op.id)) last = progress;
      assert.equal(last.id, op.id);
      assert.equal((await management.bulk.get(op.id)).id, op.id);
    });

    void it("follows one message with watchMessage until it is final, then the loop ends", async () => {
      const sent = await producer.send(endpointId, { follow: 1 }, { eventType: "watch.message" });
      const seen = [];
      for await (const e of producer.watchMessage(sent.messageId)) seen.push(e);
      assert.ok(seen.length > 0 && seen.every((e) => e.delivery?.id === sent.deliveryId));
      assert.equal(seen.at(-1)?.delivery?.status, DeliveryStatus.SUCCEEDED);
      const again = [];
      for await (const e of management.watchMessage(sent.messageId)) again.push(e.delivery?.status);
      assert.deepEqual(again, [DeliveryStatus.SUCCEEDED], "already final: how it stands, then the end");
    });

    void it("watches deliveries as an async iterable that reconnects across an api restart", async () => {
      assert.ok(stack !== undefined);
      const seen: DeliveryEvent[] = [];
      const controller = new AbortController();
      const watching = (async () => {
        for await (const e of management.watchDeliveries({ endpointId }, { signal: controller.signal })) seen.push(e);
      })();
      const succeeded = (id: string) => () =>
        seen.some((e) => e.delivery?.id === id && e.delivery.status === DeliveryStatus.SUCCEEDED);
      // A first message tells that the watch is subscribed (it starts at "now").
      const warmUp = await producer.send(endpointId, { watch: 0 }, { eventType: "watch.warm-up" });
      await waitUntil(succeeded(warmUp.deliveryId));
      // The first delivery succeeds while the api is down (killed with SIGKILL): the watcher
      // learns it only by reconnecting and resuming from its last token.
      receiver!.setDelay(4_000);
      const first = await producer.send(endpointId, { watch: 1 }, { eventType: "watch.before" });
      await waitUntil(() => seen.some((e) => e.delivery?.id === first.deliveryId));
      await stack.kill("api", "SIGKILL");
      await receiver!.waitFor((rs) => rs.some((r) => r.webhookId === first.deliveryId), 60_000, "the first delivery");
      await new Promise((r) => setTimeout(r, 5_000));
      assert.ok(
        !succeeded(first.deliveryId)(),
        `the success happened while the api was down: ${JSON.stringify(seen.map((e) => [e.delivery?.id, e.delivery?.status, e.eventTime]))} ${stack.isRunning("api")}`,
      );
      await stack.restart("api");
      receiver!.setDelay(0);
      await waitUntil(succeeded(first.deliveryId));
      // The producer is on the same (restarted) api: its next call just works.
      const second = await producer.send(endpointId, { watch: 2 }, { eventType: "watch.after", timeout: "20s" });
      await waitUntil(succeeded(second.deliveryId));
      controller.abort();
      await watching;
      const statuses = seen.filter((e) => e.delivery?.id === second.deliveryId).map((e) => e.delivery!.status);
      assert.equal(statuses.at(-1), DeliveryStatus.SUCCEEDED, `after the restart: ${statuses.join()}`);
      assert.ok(seen.every((e) => e.resumeToken !== ""));
    });
  });
}

async function waitUntil(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !predicate(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(predicate(), "condition not reached");
}
