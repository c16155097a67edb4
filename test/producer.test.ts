/**
 * The producer API on the real stack (api, dispatcher and worker as processes, real NATS, the
 * database of HOOKSTREAM_TEST_DB): scheduled sends (deliver_in, deliver_at, deliver_at_local),
 * their release after every role is killed with SIGKILL and restarted, CancelMessage and
 * RescheduleMessage with their precise errors, and bad schedules that change nothing; per-message
 * headers (sent), metadata (returned) and a retry override the worker follows; idempotency (replay,
 * conflicts naming the field, racing identical requests, expiry after HOOKSTREAM_IDEMPOTENCY_TTL);
 * ListMessages with its filters and pages; GetMessage's not_found, and unavailable during a
 * PostgreSQL outage (the roles reach PostgreSQL through a TCP proxy the test cuts); SendBatch.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "../src/domain/proto-views.ts";
import { RetryStrategy } from "../gen/hookstream/v1/retry_override_pb.ts";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";
import { sleep, until } from "./support/wait.ts";

/** Asserts a Connect error's code, reason and (optionally) the fields it names. */
async function rejectsWith(p: Promise<unknown>, code: Code, reason: string, fields?: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    const detail = err.findDetails(ErrorDetailSchema)[0];
    assert.equal(detail?.reason, reason, err.message);
    if (fields !== undefined) {
      assert.deepEqual(detail?.fieldViolations.map((f) => f.field).sort(), [...fields].sort(), err.message);
    }
    return true;
  });
}

for (const kind of testDbKinds()) {
  void describe(`producer API on ${kind}`, { timeout: 300_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;
    let otherProducer: Clients;
    let endpointId = "";
    let proxy: TcpProxy | undefined;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      let url = database.url;
      if (kind === "postgresql") {
        const target = new URL(database.url);
        proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
        target.port = String(proxy.port);
        url = target.toString();
      }
      stack = await startStack({
        databaseUrl: url,
        natsUrl: nats.url,
        // Keys are held 8 s here (24 h by default), so a test can watch one expire.
        env: {
          HOOKSTREAM_RELEASE_INTERVAL: "100ms",
          HOOKSTREAM_IDEMPOTENCY_TTL: "8s",
          HOOKSTREAM_QUOTA_LIMIT: "100000",
        },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "producer" });
      management = createClients(stack.apiUrl, ws.managementToken);
      producer = createClients(stack.apiUrl, (await management.apiKeys.createApiKey({ label: "p" })).secret);
      const ws2 = await admin.admin.createWorkspace({ name: "someone else" });
      const other = createClients(stack.apiUrl, ws2.managementToken);
      otherProducer = createClients(stack.apiUrl, (await other.apiKeys.createApiKey({ label: "o" })).secret);
      endpointId = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks` } })).endpoint!
        .id;
    });

    after(async () => {
      stack?.destroy();
      await proxy?.close();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const body = (n: number) => ({ case: "payloadJson" as const, value: JSON.stringify({ n }) });
    const deliveryOf = async (messageId: string): Promise<Delivery> =>
      (await producer.messages.getMessage({ id: messageId })).deliveries[0]!;

    void it("a scheduled message waits as scheduled, survives kill -9 of every role, and goes out at its time", async () => {
      const sentAt = Date.now();
      const res = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(1),
        deliverIn: "4s",
      });
      const due = timestampDate(res.deliverTime!).getTime();
      assert.ok(due >= sentAt + 4_000 && due <= Date.now() + 4_000, "deliver_time is now + 4 s");
      const got = await producer.messages.getMessage({ id: res.messageId });
      assert.equal(got.deliveries[0]?.status, DeliveryStatus.SCHEDULED);
      assert.equal(timestampDate(got.deliveries[0].nextAttemptTime!).getTime(), due);
      assert.equal(timestampDate(got.message!.deliverTime!).getTime(), due);

      // Every role dies without a chance to clean up, and comes back.
      for (const role of ["dispatcher", "worker", "api"] as const) await stack!.kill(role, "SIGKILL");
      for (const role of ["api", "dispatcher", "worker"] as const) await stack!.restart(role);
      const restartedAt = Date.now();

      await receiver!.waitFor((r) => r.some((x) => x.webhookId === res.deliveryId), 60_000, "the scheduled delivery");
      const hits = receiver!.byId(res.deliveryId);
      assert.equal(hits.length, 1, "delivered once");
      assert.ok(hits[0]!.receivedAt >= due, `not before its time (${hits[0]!.receivedAt - due} ms)`);
      // Lateness is reported, not asserted: it depends on how long the restarts took.
      console.log(
        `# scheduled delivery: roles back ${restartedAt - due} ms after its time, arrived ${Math.round(hits[0]!.receivedAt - Math.max(due, restartedAt))} ms after that`,
      );
      await until("succeeded", 30_000, async () =>
        (await deliveryOf(res.messageId)).status === DeliveryStatus.SUCCEEDED ? true : undefined,
      );
    });

    void it("deliver_at and deliver_at_local resolve to their instants; a near-future schedule goes out after its time", async () => {
      const at = new Date(Date.now() + 1_500);
      const res = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(2),
        deliverAt: timestampFromDate(at),
      });
      assert.equal(timestampDate(res.deliverTime!).getTime(), at.getTime());
      await receiver!.waitFor((r) => r.some((x) => x.webhookId === res.deliveryId), 30_000, "deliver_at");
      const hit = receiver!.byId(res.deliveryId)[0]!;
      assert.ok(hit.receivedAt >= at.getTime());
      console.log(`# deliver_at delivery arrived ${Math.round(hit.receivedAt - at.getTime())} ms after its time`);

      // 2027-01-15T09:30 in Paris (CET, UTC+1) is 08:30Z; in Sydney (AEDT, UTC+11) 22:30Z the day before.
      const paris = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(3),
        deliverAtLocal: "2027-01-15T09:30:00",
        timeZone: "Europe/Paris",
      });
      assert.equal(timestampDate(paris.deliverTime!).toISOString(), "2027-01-15T08:30:00.000Z");
      const sydney = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(4),
        deliverAtLocal: "2027-01-15T09:30",
        timeZone: "australia/sydney",
      });
      assert.equal(timestampDate(sydney.deliverTime!).toISOString(), "2027-01-14T22:30:00.000Z");
      for (const id of [paris.messageId, sydney.messageId]) await producer.messages.cancelMessage({ id });
    });

    void it("bad schedules are invalid_argument naming each field, and create nothing", async () => {
      const before = (await management.deliveries.listDeliveries({ endpointId, pageSize: 200 })).deliveries.length;
      const send = (extra: Record<string, unknown>) =>
        producer.messages.send({ endpointId, eventType: "schedule.test", body: body(5), ...extra });
      await rejectsWith(send({ deliverIn: "5x" }), Code.InvalidArgument, "INVALID_ARGUMENT", ["deliver_in"]);
      await rejectsWith(send({ deliverIn: "91d" }), Code.InvalidArgument, "INVALID_ARGUMENT", ["deliver_in"]);
      await rejectsWith(
        send({ deliverAt: timestampFromDate(new Date(Date.now() - 3_600_000)) }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["deliver_at"],
      );
      await rejectsWith(
        send({ deliverIn: "30s", deliverAt: timestampFromDate(new Date(Date.now() + 60_000)) }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["deliver_in", "deliver_at"],
      );
      await rejectsWith(send({ deliverAtLocal: "2027-01-15T09:30:00" }), Code.InvalidArgument, "INVALID_ARGUMENT", [
        "time_zone",
      ]);
      await rejectsWith(
        send({ deliverAtLocal: "2027-01-15T09:30:00+01:00", timeZone: "Mars/Olympus" }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["time_zone", "deliver_at_local"],
      );
      await rejectsWith(send({ timeZone: "Europe/Paris" }), Code.InvalidArgument, "INVALID_ARGUMENT", ["time_zone"]);
      const afterCount = (await management.deliveries.listDeliveries({ endpointId, pageSize: 200 })).deliveries.length;
      assert.equal(afterCount, before, "nothing was created");
    });

    void it("CancelMessage cancels a scheduled message; sent, cancelled, foreign and unknown messages are refused precisely", async () => {
      const res = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(6),
        deliverIn: "1h",
      });
      const cancelled = await producer.messages.cancelMessage({ id: res.messageId });
      assert.equal(cancelled.deliveries[0]?.status, DeliveryStatus.CANCELLED);
      assert.match(cancelled.deliveries[0].lastError, /cancelled by the producer/);
      assert.equal((await deliveryOf(res.messageId)).status, DeliveryStatus.CANCELLED);

      await rejectsWith(
        producer.messages.cancelMessage({ id: res.messageId }),
        Code.FailedPrecondition,
        "MESSAGE_NOT_SCHEDULED",
      );
      await rejectsWith(
        producer.messages.rescheduleMessage({ id: res.messageId, deliverIn: "1m" }),
        Code.FailedPrecondition,
        "MESSAGE_NOT_SCHEDULED",
      );
      const now = await producer.messages.send({ endpointId, eventType: "schedule.test", body: body(7) });
      await receiver!.waitFor((r) => r.some((x) => x.webhookId === now.deliveryId), 30_000, "immediate delivery");
      await rejectsWith(
        producer.messages.cancelMessage({ id: now.messageId }),
        Code.FailedPrecondition,
        "MESSAGE_NOT_SCHEDULED",
      );

      const mine = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(8),
        deliverIn: "1h",
      });
      await rejectsWith(
        otherProducer.messages.cancelMessage({ id: mine.messageId }),
        Code.NotFound,
        "MESSAGE_NOT_FOUND",
      );
      await rejectsWith(
        otherProducer.messages.rescheduleMessage({ id: mine.messageId, deliverIn: "1s" }),
        Code.NotFound,
        "MESSAGE_NOT_FOUND",
      );
      assert.equal(
        (await deliveryOf(mine.messageId)).status,
        DeliveryStatus.SCHEDULED,
        "a foreign call changed nothing",
      );
      await rejectsWith(
        producer.messages.cancelMessage({ id: "msg_00000000000000000000000000" }),
        Code.NotFound,
        "MESSAGE_NOT_FOUND",
      );
      await rejectsWith(producer.messages.cancelMessage({ id: "nope" }), Code.InvalidArgument, "INVALID_ARGUMENT", [
        "id",
      ]);
      await producer.messages.cancelMessage({ id: mine.messageId });
    });

    void it("RescheduleMessage moves a scheduled message (later, then sooner) and validates the new time", async () => {
      const res = await producer.messages.send({
        endpointId,
        eventType: "schedule.test",
        body: body(9),
        deliverIn: "1h",
      });
      await rejectsWith(
        producer.messages.rescheduleMessage({ id: res.messageId }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["deliver_in"],
      );
      await rejectsWith(
        producer.messages.rescheduleMessage({ id: res.messageId, deliverIn: "1m", deliverAtLocal: "2027-01-01T00:00" }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["deliver_in", "deliver_at_local"],
      );
      const later = await producer.messages.rescheduleMessage({ id: res.messageId, deliverIn: "2h" });
      const laterDue = timestampDate(later.deliveries[0]!.nextAttemptTime!).getTime();
      assert.ok(laterDue > Date.now() + 7_000_000, "moved two hours ahead");
      assert.equal(timestampDate(later.message!.deliverTime!).getTime(), laterDue);

      const soon = await producer.messages.rescheduleMessage({ id: res.messageId, deliverIn: "1s" });
      const due = timestampDate(soon.deliveries[0]!.nextAttemptTime!).getTime();
      assert.equal(soon.deliveries[0]?.status, DeliveryStatus.SCHEDULED);
      await receiver!.waitFor((r) => r.some((x) => x.webhookId === res.deliveryId), 30_000, "rescheduled delivery");
      const hits = receiver!.byId(res.deliveryId);
      assert.equal(hits.length, 1);
      assert.ok(hits[0]!.receivedAt >= due);
      await rejectsWith(
        producer.messages.rescheduleMessage({ id: res.messageId, deliverIn: "1h" }),
        Code.FailedPrecondition,
        "MESSAGE_NOT_SCHEDULED",
      );
    });

    void it("per-message headers are sent over the endpoint's, metadata and the retry override are stored and returned", async () => {
      const ep = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver!.url}/headers`, headers: { "X-Team": "endpoint", "X-Only-Endpoint": "1" } },
      });
      const res = await producer.messages.send({
        endpointId: ep.endpoint!.id,
        eventType: "extras.test",
        body: body(10),
        headers: { "x-team": "message", "X-Trace-Id": "t-1" },
        metadata: { region: "eu", customer: "c-42" },
        retry: { minRetries: 2, firstDelay: durationFromMs(1_000), strategy: RetryStrategy.FIXED, jitter: 0 },
      });
      await receiver!.waitFor((r) => r.some((x) => x.webhookId === res.deliveryId), 30_000, "headers delivery");
      const h = receiver!.byId(res.deliveryId)[0]!.headers;
      assert.equal(h["x-team"], "message", "the message's header wins over the endpoint's");
      assert.equal(h["x-trace-id"], "t-1");
      assert.equal(h["x-only-endpoint"], "1");
      assert.match(h["webhook-signature"] ?? "", /^v1,/);
      const got = await producer.messages.getMessage({ id: res.messageId });
      assert.deepEqual(got.message!.metadata, { region: "eu", customer: "c-42" });
      assert.deepEqual(got.message!.headers, { "x-team": "message", "X-Trace-Id": "t-1" });
      assert.equal(got.message!.retry?.minRetries, 2);
      assert.equal(got.message!.retry?.strategy, RetryStrategy.FIXED);
      assert.equal(Number(got.message!.retry?.firstDelay?.seconds), 1);
    });

    void it("the worker retries by the message's override: min_retries + 1 attempts, its delays, then the dead letter", async () => {
      receiver!.addRule((req) => (req.path === "/always-503" ? 503 : undefined));
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/always-503` } }))
        .endpoint!.id;
      const res = await producer.messages.send({
        endpointId: ep,
        eventType: "retry.test",
        body: body(11),
        retry: {
          minRetries: 2,
          firstDelay: durationFromMs(1_000),
          strategy: RetryStrategy.EXPONENTIAL,
          factor: 2.5,
          jitter: 0,
        },
      });
      const failed = await until("dead letter", 60_000, async () => {
        const d = await deliveryOf(res.messageId);
        return d.status === DeliveryStatus.FAILED ? d : undefined;
      });
      assert.equal(failed.attemptCount, 3, "the first attempt and min_retries = 2 retries (the installation allows 9)");
      const hits = receiver!.byId(res.deliveryId).map((x) => x.receivedAt);
      assert.equal(hits.length, 3);
      assert.ok(hits[1]! - hits[0]! >= 1_000, `first retry after at least 1 s (${hits[1]! - hits[0]!} ms)`);
      assert.ok(hits[2]! - hits[1]! >= 2_500, `second retry after at least 2.5 s (${hits[2]! - hits[1]!} ms)`);
    });

    void it("bad headers, metadata and retry overrides are invalid_argument naming each field", async () => {
      const send = (extra: Record<string, unknown>) =>
        producer.messages.send({ endpointId, eventType: "extras.test", body: body(12), ...extra });
      await rejectsWith(
        send({
          headers: { "webhook-id": "x", "Content-Type": "text/plain", "bad name": "v", "X-Ok": "a\r\nInjected: 1" },
        }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ['headers["webhook-id"]', 'headers["Content-Type"]', 'headers["bad name"]', 'headers["X-Ok"]'],
      );
      await rejectsWith(
        send({ metadata: { ["k".repeat(65)]: "v", ok: "v".repeat(513) } }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        [`metadata["${"k".repeat(65)}"]`, 'metadata["ok"]'],
      );
      await rejectsWith(
        send({ retry: { minRetries: 51, strategy: RetryStrategy.FIXED, factor: 3, jitter: 2 } }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["retry.min_retries", "retry.first_delay", "retry.factor", "retry.jitter"],
      );
      await rejectsWith(
        send({ retry: { minRetries: 1, firstDelay: durationFromMs(10_000), maxDelay: durationFromMs(5_000) } }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["retry.max_delay"],
      );
    });

    void it("idempotency: the same request replays, other content is already_exists naming the field, a race makes one message", async () => {
      const key = `idem-${Date.now()}-${Math.random()}`;
      const req = {
        endpointId,
        eventType: "idem.test",
        body: body(20),
        idempotencyKey: key,
        metadata: { a: "1" },
        deliverIn: "1h",
      };
      const first = await producer.messages.send(req);
      assert.equal(first.replayed, false);
      const again = await producer.messages.send(req);
      assert.deepEqual(
        { ...again, $typeName: undefined },
        { ...first, replayed: true, $typeName: undefined },
        "the original result, replayed",
      );
      await rejectsWith(
        producer.messages.send({ ...req, body: body(21) }),
        Code.AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
        ["payload"],
      );
      await rejectsWith(
        producer.messages.send({ ...req, eventType: "idem.other" }),
        Code.AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
        ["event_type"],
      );
      await rejectsWith(
        producer.messages.send({ ...req, metadata: { a: "2" } }),
        Code.AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
        ["metadata"],
      );
      await rejectsWith(
        producer.messages.send({ ...req, deliverIn: "2h" }),
        Code.AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
        ["schedule"],
      );
      await producer.messages.cancelMessage({ id: first.messageId });

      // 20 identical requests at once: one message, one delivery, every answer names it.
      const raceKey = `race-${Date.now()}-${Math.random()}`;
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          producer.messages.send({ endpointId, eventType: "idem.race", body: body(22), idempotencyKey: raceKey }),
        ),
      );
      assert.equal(new Set(answers.map((a) => a.messageId)).size, 1, "one message");
      assert.equal(answers.filter((a) => !a.replayed).length, 1, "one original, the rest replayed");
      const id = answers[0]!.deliveryId;
      await receiver!.waitFor((r) => r.some((x) => x.webhookId === id), 30_000, "the raced delivery");
      const all = await management.deliveries.listDeliveries({ messageId: answers[0]!.messageId });
      assert.equal(all.deliveries.length, 1, "one delivery");
    });

    void it("an idempotency key expires after HOOKSTREAM_IDEMPOTENCY_TTL and may then be used again", async () => {
      const key = `ttl-${Date.now()}-${Math.random()}`;
      const first = await producer.messages.send({
        endpointId,
        eventType: "idem.ttl",
        body: body(30),
        idempotencyKey: key,
      });
      await rejectsWith(
        producer.messages.send({ endpointId, eventType: "idem.ttl", body: body(31), idempotencyKey: key }),
        Code.AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
      );
      await sleep(8_500);
      const later = await producer.messages.send({
        endpointId,
        eventType: "idem.ttl",
        body: body(31),
        idempotencyKey: key,
      });
      assert.equal(later.replayed, false);
      assert.notEqual(later.messageId, first.messageId, "a new message under the released key");
      const old = await producer.messages.getMessage({ id: first.messageId });
      assert.equal(old.message?.idempotencyKey, key, "the old message keeps its key for the record");
    });

    void it("ListMessages filters by event type, time range and delivery status, in pages bound to their filters", async () => {
      const tag = `list${Date.now().toString(36)}`;
      const sent: { messageId: string; deliveryId: string }[] = [];
      for (let i = 0; i < 3; i++)
        sent.push(await producer.messages.send({ endpointId, eventType: `${tag}.a`, body: body(40 + i) }));
      const later = await producer.messages.send({
        endpointId,
        eventType: `${tag}.b`,
        body: body(43),
        deliverIn: "1h",
      });
      const ids = (r: { messages: { id: string }[] }) => r.messages.map((m) => m.id);

      const first = await producer.messages.listMessages({ eventType: `${tag}.a`, pageSize: 2 });
      assert.deepEqual(ids(first), [sent[2]!.messageId, sent[1]!.messageId], "newest first");
      assert.notEqual(first.nextPageToken, "");
      const second = await producer.messages.listMessages({
        eventType: `${tag}.a`,
        pageSize: 2,
        pageToken: first.nextPageToken,
      });
      assert.deepEqual(ids(second), [sent[0]!.messageId]);
      assert.equal(second.nextPageToken, "");
      await rejectsWith(
        producer.messages.listMessages({ eventType: `${tag}.b`, pageToken: first.nextPageToken }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["page_token"],
      );

      const scheduled = await producer.messages.listMessages({
        statuses: [DeliveryStatus.SCHEDULED],
        eventType: `${tag}.b`,
      });
      assert.deepEqual(ids(scheduled), [later.messageId]);
      assert.deepEqual(
        ids(await producer.messages.listMessages({ statuses: [DeliveryStatus.SCHEDULED], eventType: `${tag}.a` })),
        [],
      );

      const created = async (id: string) => (await producer.messages.getMessage({ id })).message!.createTime!;
      const window = await producer.messages.listMessages({
        eventType: `${tag}.a`,
        createTimeAfter: await created(sent[1]!.messageId),
        createTimeBefore: await created(sent[2]!.messageId),
      });
      assert.deepEqual(ids(window), [sent[1]!.messageId], "after inclusive, before exclusive");

      await rejectsWith(
        producer.messages.listMessages({ statuses: [DeliveryStatus.UNSPECIFIED], eventType: "bad type!" }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["statuses[0]", "event_type"],
      );
      await rejectsWith(
        producer.messages.listMessages({
          createTimeAfter: await created(sent[2]!.messageId),
          createTimeBefore: await created(sent[0]!.messageId),
        }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["create_time_before"],
      );
      assert.deepEqual(
        ids(await otherProducer.messages.listMessages({ eventType: `${tag}.a` })),
        [],
        "another workspace sees none",
      );
      await producer.messages.cancelMessage({ id: later.messageId });
    });

    void it("every accepted send reports the workspace's quota; a replay counts nothing", async () => {
      const key = `quota-${Date.now()}`;
      const a = await producer.messages.send({
        endpointId,
        eventType: "quota.test",
        body: body(70),
        idempotencyKey: key,
      });
      const b = await producer.messages.send({ endpointId, eventType: "quota.test", body: body(71) });
      const again = await producer.messages.send({
        endpointId,
        eventType: "quota.test",
        body: body(70),
        idempotencyKey: key,
      });
      assert.equal(a.quota?.limit, 100000n);
      assert.equal(b.quota?.used, a.quota.used + 1n, "one more message, one more used");
      assert.equal(b.quota?.remaining, 100000n - b.quota.used);
      assert.equal(again.replayed, true);
      assert.equal(again.quota?.used, b.quota?.used, "a replay is not counted");
      const reset = timestampDate(a.quota.resetTime!);
      assert.equal(reset.getTime() % 86_400_000, 0, "the daily window resets at 00:00 UTC");
      assert.ok(reset.getTime() > Date.now() && reset.getTime() <= Date.now() + 86_400_000);
    });

    void it("GetMessage: every delivery of the message; a missing or foreign message is not_found", async () => {
      const res = await producer.messages.send({ endpointId, eventType: "get.test", body: body(50) });
      const got = await producer.messages.getMessage({ id: res.messageId });
      assert.equal(got.message?.id, res.messageId);
      assert.equal(got.message?.payloadJson, JSON.stringify({ n: 50 }));
      assert.deepEqual(
        got.deliveries.map((d) => d.id),
        [res.deliveryId],
      );
      await rejectsWith(
        producer.messages.getMessage({ id: "msg_00000000000000000000000000" }),
        Code.NotFound,
        "MESSAGE_NOT_FOUND",
      );
      await rejectsWith(otherProducer.messages.getMessage({ id: res.messageId }), Code.NotFound, "MESSAGE_NOT_FOUND");
    });

    void it("SendBatch: each item succeeds or fails on its own with its index and code; the valid ones are delivered", async () => {
      const key = `batch-${Date.now()}`;
      const earlier = await producer.messages.send({
        endpointId,
        eventType: "batch.test",
        body: body(80),
        idempotencyKey: key,
      });
      const res = await producer.messages.sendBatch({
        items: [
          { endpointId, eventType: "batch.test", body: body(81) },
          { endpointId, eventType: "bad type!", body: body(82), deliverIn: "5x" },
          { endpointId: "ep_00000000000000000000000000", eventType: "batch.test", body: body(83) },
          {
            endpointId,
            eventType: "batch.test",
            body: { case: "payload", value: fromJson(ValueSchema, { n: 84, s: "é" }) },
          },
          { endpointId, eventType: "batch.test", body: body(80), idempotencyKey: key },
        ],
      });
      assert.equal(res.allSucceeded, false);
      assert.deepEqual(
        res.results.map((r) => [r.index, r.code, r.error?.reason ?? ""]),
        [
          [0, "", ""],
          [1, "invalid_argument", "INVALID_ARGUMENT"],
          [2, "not_found", "ENDPOINT_NOT_FOUND"],
          [3, "", ""],
          [4, "", ""],
        ],
      );
      assert.deepEqual(res.results[1]!.error?.fieldViolations.map((f) => f.field).sort(), [
        "items[1].deliver_in",
        "items[1].event_type",
      ]);
      assert.equal(res.results[4]!.response?.replayed, true);
      assert.equal(res.results[4]!.response?.messageId, earlier.messageId);
      for (const i of [0, 3]) {
        const id = res.results[i]!.response!.deliveryId;
        await receiver!.waitFor((r) => r.some((x) => x.webhookId === id), 30_000, `batch item ${i}`);
      }
      const third = receiver!.byId(res.results[3]!.response!.deliveryId)[0]!;
      assert.equal(third.body.toString("utf8"), JSON.stringify({ n: 84, s: "é" }));

      const all = await producer.messages.sendBatch({
        items: Array.from({ length: 20 }, (_, i) => ({ endpointId, eventType: "batch.full", body: body(100 + i) })),
      });
      assert.equal(all.allSucceeded, true);
      assert.equal(new Set(all.results.map((r) => r.response?.messageId)).size, 20);
      await rejectsWith(
        producer.messages.sendBatch({
          items: Array.from({ length: 21 }, (_, i) => ({ endpointId, eventType: "batch.full", body: body(i) })),
        }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["items"],
      );
      await rejectsWith(producer.messages.sendBatch({ items: [] }), Code.InvalidArgument, "INVALID_ARGUMENT", [
        "items",
      ]);
    });

    if (kind === "postgresql") {
      void it("GetMessage during a PostgreSQL outage is unavailable, for existing and missing ids alike, never not_found", async () => {
        const res = await producer.messages.send({ endpointId, eventType: "outage.test", body: body(60) });
        proxy!.down();
        try {
          for (const id of [res.messageId, "msg_00000000000000000000000000"]) {
            await assert.rejects(producer.messages.getMessage({ id }), (err: unknown) => {
              assert.ok(err instanceof ConnectError, String(err));
              assert.equal(err.code, Code.Unavailable, `${id}: ${err.message}`);
              return true;
            });
          }
        } finally {
          proxy!.up();
        }
        const back = await until("the database back", 60_000, async () =>
          producer.messages.getMessage({ id: res.messageId }).then(
            (r) => r,
            () => undefined,
          ),
        );
        assert.equal(back.message?.id, res.messageId);
        await rejectsWith(
          producer.messages.getMessage({ id: "msg_00000000000000000000000000" }),
          Code.NotFound,
          "MESSAGE_NOT_FOUND",
        );
      });
    }
  });
}
