/**
 * Per-endpoint retry policy on the real stack (api, dispatcher and worker as processes, real NATS,
 * the database of HOOKSTREAM_TEST_DB): Endpoint.retry_policy is set on create, returned by Get and
 * List, replaced and cleared through UpdateEndpoint's mask (also through the SDK), refused with
 * field violations under endpoint.retry_policy.* (changing nothing); the worker retries a failing
 * endpoint by it (min_retries + 1 attempts, spaced by the policy, then the dead letter), a
 * message's own override on the same endpoint wins over it, and without either the installation's
 * default applies.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, type Attempt, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { RetryStrategy } from "../gen/hookstream/v1/retry_override_pb.ts";
import { HookstreamManagement } from "../src/client/index.ts";
import { durationFromMs } from "../src/domain/proto-views.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";
import { until } from "./support/wait.ts";

/** Asserts an invalid_argument naming exactly these fields. */
async function rejectsFields(p: Promise<unknown>, fields: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, Code.InvalidArgument, err.message);
    const detail = err.findDetails(ErrorDetailSchema)[0];
    assert.deepEqual(detail?.fieldViolations.map((f) => f.field).sort(), [...fields].sort(), err.message);
    return true;
  });
}

const ms = (t: Parameters<typeof timestampDate>[0] | undefined): number => timestampDate(t!).getTime();

/** A fixed policy: `retries` retries `delayMs` apart, no jitter. */
const fixed = (retries: number, delayMs: number) => ({
  minRetries: retries,
  firstDelay: durationFromMs(delayMs),
  strategy: RetryStrategy.FIXED,
  jitter: 0,
});

for (const kind of testDbKinds()) {
  void describe(`endpoint retry policy on ${kind}`, { timeout: 180_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;
    let managementToken = "";

    before(async () => {
      receiver = await startReceiver();
      receiver.addRule((req) => (req.path.startsWith("/always-500") ? 500 : undefined));
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        // The installation's default is 1 h between retries: any retry within the test is a policy's.
        env: { HOOKSTREAM_RETRY_SCHEDULE: "1h", HOOKSTREAM_RELEASE_INTERVAL: "100ms" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "retry-policy" });
      managementToken = ws.managementToken;
      management = createClients(stack.apiUrl, ws.managementToken);
      producer = createClients(stack.apiUrl, (await management.apiKeys.createApiKey({ label: "p" })).secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const failedDelivery = (id: string): Promise<Delivery> =>
      until(`${id} dead-lettered`, 60_000, async () => {
        const d = (await management.deliveries.getDelivery({ id })).delivery!;
        return d.status === DeliveryStatus.FAILED ? d : undefined;
      });
    const attemptsOf = async (deliveryId: string): Promise<Attempt[]> =>
      [...(await management.deliveries.listAttempts({ deliveryId })).attempts].sort((a, b) => a.number - b.number);
    /**
     * Each attempt's scheduled retry is `delayMs` after it (from its end: its start plus its
     * latency, give or take the few ms of recording), and the next attempt starts no earlier.
     */
    const assertSpacing = (attempts: Attempt[], delayMs: number): void => {
      attempts.slice(0, -1).forEach((a, i) => {
        const start = ms(a.startTime);
        const latency = Number(a.latency?.seconds ?? 0) * 1000 + (a.latency?.nanos ?? 0) / 1e6;
        const scheduled = ms(a.nextRetryTime) - start;
        assert.ok(
          scheduled >= delayMs && scheduled <= delayMs + latency + 250,
          `attempt ${a.number}: retry scheduled ${scheduled} ms after its start (policy ${delayMs} ms, latency ${latency} ms)`,
        );
        assert.ok(ms(attempts[i + 1]!.startTime) >= ms(a.nextRetryTime), `attempt ${a.number + 1} not before its time`);
      });
      assert.equal(attempts.at(-1)!.nextRetryTime, undefined, "no retry after the last attempt");
    };

    void it("set on create, returned by Get and List, replaced and cleared by UpdateEndpoint's mask", async () => {
      const created = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/ok`, retryPolicy: fixed(2, 1_000) },
        })
      ).endpoint!;
      const p = created.retryPolicy!;
      assert.deepEqual(
        [p.minRetries, Number(p.firstDelay?.seconds), p.strategy, p.jitter, Number(p.maxDelay?.seconds)],
        [2, 1, RetryStrategy.FIXED, 0, 86_400],
        "the policy with its defaults filled in (max_delay 24 h)",
      );
      const got = (await management.endpoints.getEndpoint({ id: created.id })).endpoint!;
      assert.deepEqual(got.retryPolicy, p);
      const listed = (await management.endpoints.listEndpoints({})).endpoints.find((e) => e.id === created.id);
      assert.deepEqual(listed?.retryPolicy, p);

      // Another field's mask leaves the policy alone.
      const described = await management.endpoints.updateEndpoint({
        endpoint: { id: created.id, description: "renamed" },
        updateMask: { paths: ["description"] },
      });
      assert.deepEqual(described.endpoint?.retryPolicy, p);

      const replaced = await management.endpoints.updateEndpoint({
        endpoint: {
          id: created.id,
          retryPolicy: {
            minRetries: 4,
            firstDelay: durationFromMs(2_000),
            factor: 3,
            maxDelay: durationFromMs(60_000),
          },
        },
        updateMask: { paths: ["retry_policy"] },
      });
      const r = replaced.endpoint!.retryPolicy!;
      assert.deepEqual(
        [r.minRetries, Number(r.firstDelay?.seconds), r.strategy, r.factor, Number(r.maxDelay?.seconds), r.jitter],
        [4, 2, RetryStrategy.EXPONENTIAL, 3, 60, undefined],
      );
      assert.equal(replaced.endpoint!.description, "renamed");

      const cleared = await management.endpoints.updateEndpoint({
        endpoint: { id: created.id },
        updateMask: { paths: ["retry_policy"] },
      });
      assert.equal(cleared.endpoint!.retryPolicy, undefined);
      assert.equal((await management.endpoints.getEndpoint({ id: created.id })).endpoint!.retryPolicy, undefined);

      // The SDK: durations as strings, enums by name, the patch's keys as the mask.
      await using sdk = new HookstreamManagement({ baseUrl: stack!.apiUrl, managementToken });
      const viaSdk = await sdk.endpoints.update(created.id, {
        retryPolicy: { minRetries: 3, firstDelay: "5s", strategy: "FIXED" },
      });
      assert.deepEqual([viaSdk.retryPolicy?.minRetries, viaSdk.retryPolicy?.firstDelay], [3, 5_000]);
      assert.equal((await sdk.endpoints.update(created.id, { retryPolicy: undefined })).retryPolicy, undefined);
    });

    void it("a bad policy is invalid_argument naming each field under endpoint.retry_policy, and changes nothing", async () => {
      await rejectsFields(
        management.endpoints.createEndpoint({
          endpoint: {
            url: `${receiver!.url}/ok`,
            retryPolicy: { minRetries: 51, strategy: RetryStrategy.FIXED, factor: 3, jitter: 2 },
          },
        }),
        [
          "endpoint.retry_policy.min_retries",
          "endpoint.retry_policy.first_delay",
          "endpoint.retry_policy.factor",
          "endpoint.retry_policy.jitter",
        ],
      );
      const before = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/ok`, retryPolicy: fixed(1, 1_000) },
        })
      ).endpoint!;
      await rejectsFields(
        management.endpoints.updateEndpoint({
          endpoint: {
            id: before.id,
            url: "not a url",
            retryPolicy: { minRetries: 1, firstDelay: durationFromMs(10_000), maxDelay: durationFromMs(5_000) },
          },
          updateMask: { paths: ["retry_policy", "url"] },
        }),
        ["endpoint.retry_policy.max_delay", "endpoint.url"],
      );
      await rejectsFields(
        management.endpoints.updateEndpoint({
          endpoint: { id: before.id, retryPolicy: { minRetries: 1, firstDelay: durationFromMs(500) } },
          updateMask: { paths: ["retry_policy"] },
        }),
        ["endpoint.retry_policy.first_delay"],
      );
      const after = (await management.endpoints.getEndpoint({ id: before.id })).endpoint!;
      assert.deepEqual(after.retryPolicy, before.retryPolicy);
      assert.equal(after.url, before.url);
    });

    void it("a failing endpoint retries by its policy (3 attempts 1 s apart, then the dead letter); a message's override wins", async () => {
      const ep = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/always-500`, retryPolicy: fixed(2, 1_000) },
        })
      ).endpoint!.id;
      const byEndpoint = await producer.messages.send({
        endpointId: ep,
        eventType: "retry.policy",
        body: { case: "payloadJson", value: '{"n":1}' },
      });
      const byMessage = await producer.messages.send({
        endpointId: ep,
        eventType: "retry.policy",
        body: { case: "payloadJson", value: '{"n":2}' },
        retry: fixed(1, 2_000),
      });

      const dead = await failedDelivery(byEndpoint.deliveryId);
      assert.equal(dead.attemptCount, 3, "the first attempt and min_retries = 2 retries (the installation allows 9)");
      assert.equal(dead.lastResponseStatus, 500);
      const attempts = await attemptsOf(byEndpoint.deliveryId);
      assert.deepEqual(
        attempts.map((a) => [a.number, a.responseStatus]),
        [
          [1, 500],
          [2, 500],
          [3, 500],
        ],
      );
      assertSpacing(attempts, 1_000);
      assert.equal(receiver!.byId(byEndpoint.deliveryId).length, 3, "the receiver got exactly 3 requests");

      const overridden = await failedDelivery(byMessage.deliveryId);
      assert.equal(overridden.attemptCount, 2, "the message's min_retries = 1, not the endpoint's 2");
      const own = await attemptsOf(byMessage.deliveryId);
      assert.equal(own.length, 2);
      assertSpacing(own, 2_000);

      const dl = await management.recovery.listDeadLetters({ filter: { endpointId: ep } });
      assert.deepEqual(
        dl.deliveries.map((d) => d.id).sort(),
        [byEndpoint.deliveryId, byMessage.deliveryId].sort(),
        "both dead-lettered",
      );
    });

    void it("without an endpoint policy or a message override the installation's default applies", async () => {
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/always-500/d` } }))
        .endpoint!.id;
      const res = await producer.messages.send({
        endpointId: ep,
        eventType: "retry.policy",
        body: { case: "payloadJson", value: '{"n":3}' },
      });
      const d = await until("the first attempt's retry", 30_000, async () => {
        const x = (await management.deliveries.getDelivery({ id: res.deliveryId })).delivery!;
        return x.status === DeliveryStatus.PENDING_RETRY ? x : undefined;
      });
      const [first] = await attemptsOf(res.deliveryId);
      const scheduled = ms(d.nextAttemptTime) - ms(first!.startTime);
      // 1 h ± the default 20 % jitter.
      assert.ok(scheduled >= 0.8 * 3_600_000 && scheduled <= 1.2 * 3_600_000 + 1_000, `${scheduled} ms`);
    });
  });
}
