/**
 * Per-endpoint rate limits on the real stack (both databases) with two worker processes sharing
 * the limit through the NATS KV bucket: the receiver never sees more than rate_limit +
 * rate_limit_burst requests in any one-second window, both workers deliver, every message
 * arrives, and a delivery waiting for the limit holds no worker slot (another endpoint's message
 * sent behind the backlog is delivered long before the backlog drains). Bad limits are
 * invalid_argument with field violations and change nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConnectError, Code } from "@connectrpc/connect";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, listAllDeliveries, startStack, type Clients, type Stack } from "./support/stack.ts";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { errorDetailOf } from "../src/api/error-mapping.ts";
import { until } from "./support/wait.ts";

/** The most of `times` (ms) in any window [t, t + windowMs). */
function maxInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

for (const kind of testDbKinds()) {
  void describe(`rate limits on ${kind}`, { timeout: 240_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;

    before(async () => {
      receiver = await startReceiver({ keepBodies: false });
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        roles: ["api", "dispatcher", "worker", "worker2"],
        // Two slots per worker: a waiting delivery that held one would stall everything else.
        env: { HOOKSTREAM_WORKER_CONCURRENCY: "2" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "rate" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "rate" });
      producer = createClients(stack.apiUrl, key.secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("refuses bad limits with field violations and changes nothing", async () => {
      const bad = async (endpoint: Record<string, unknown>, field: string): Promise<void> => {
        await assert.rejects(
          management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/x`, ...endpoint } }),
          (err: unknown) => {
            assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument, String(err));
            assert.deepEqual(
              errorDetailOf(err)?.fieldViolations.map((v) => v.field),
              [field],
            );
            return true;
          },
        );
      };
      await bad({ rateLimit: 100_001 }, "endpoint.rate_limit");
      await bad({ rateLimit: 10, rateLimitBurst: 100_001 }, "endpoint.rate_limit_burst");
      await bad({ rateLimitBurst: 5 }, "endpoint.rate_limit_burst");
      assert.equal((await management.endpoints.listEndpoints({})).endpoints.length, 0);
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/x`, rateLimit: 3 } }))
        .endpoint!;
      assert.equal(ep.rateLimit, 3);
      assert.equal(ep.rateLimitBurst, 0);
      await assert.rejects(
        management.endpoints.updateEndpoint({
          endpoint: { id: ep.id, rateLimit: 200_000 },
          updateMask: { paths: ["rate_limit"] },
        }),
        (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument,
      );
      assert.equal((await management.endpoints.getEndpoint({ id: ep.id })).endpoint?.rateLimit, 3);
      const updated = await management.endpoints.updateEndpoint({
        endpoint: { id: ep.id, rateLimit: 50, rateLimitBurst: 7 },
        updateMask: { paths: ["rate_limit", "rate_limit_burst"] },
      });
      assert.equal(updated.endpoint?.rateLimit, 50);
      assert.equal(updated.endpoint?.rateLimitBurst, 7);
      await management.endpoints.deleteEndpoint({ id: ep.id });
    });

    void it("two workers together never exceed rate + burst in any one-second window; waits hold no slot", async () => {
      const rate = 10;
      const burst = 5;
      const limited = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/limited`, rateLimit: rate, rateLimitBurst: burst },
        })
      ).endpoint!;
      const other = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/other` } }))
        .endpoint!;
      const total = 200;
      const ids = new Set<string>();
      await Promise.all(
        Array.from({ length: total }, async (_, i) => {
          const r = await producer.messages.send({
            endpointId: limited.id,
            eventType: "rate.test",
            body: { case: "payloadJson", value: `{"i":${i}}` },
          });
          ids.add(r.deliveryId);
        }),
      );
      // Behind a backlog of ~20 s at the limit: another endpoint's message.
      const { deliveryId: otherId } = await producer.messages.send({
        endpointId: other.id,
        eventType: "rate.test",
        body: { case: "payloadJson", value: "{}" },
      });
      await until("every limited message delivered", 120_000, async () => {
        const seen = receiver!.requests.filter((r) => r.path === "/limited").map((r) => r.webhookId);
        return [...ids].every((id) => seen.includes(id)) ? true : undefined;
      });
      const limitedTimes = receiver!.requests.filter((r) => r.path === "/limited").map((r) => r.receivedAt);
      const most = maxInWindow(limitedTimes, 1_000);
      assert.ok(most <= rate + burst, `the receiver saw ${most} requests in one second (limit ${rate} + ${burst})`);
      // It is a limit, not a stall: the busiest window is close to it.
      assert.ok(most >= rate, `only ${most} in the busiest second`);
      const otherAt = receiver!.byId(otherId)[0]?.receivedAt;
      assert.ok(otherAt !== undefined, "the other endpoint's message arrived");
      // When it arrived, a good part of the backlog was still waiting for the limit.
      const behind = limitedTimes.filter((t) => t > otherAt).length;
      assert.ok(behind >= total / 4, `only ${behind} of ${total} limited deliveries came after the other endpoint's`);
      // Both workers took part, and every limited delivery succeeded at its first attempt: a wait
      // for the limit is never counted as one.
      await until("every limited delivery recorded", 60_000, async () => {
        const all = await listAllDeliveries(management, limited.id);
        return all.length === total && all.every((d) => d.status === DeliveryStatus.SUCCEEDED && d.attemptCount === 1)
          ? true
          : undefined;
      });
      const attempted = (role: "worker" | "worker2") =>
        stack!
          .logRecords(role)
          .filter((r) => r["msg"] === "delivery attempt" && r["endpointId"] === limited.id && r["recorded"] === true)
          .length;
      assert.ok(
        attempted("worker") > 0 && attempted("worker2") > 0,
        `${attempted("worker")} / ${attempted("worker2")}`,
      );
      assert.equal(attempted("worker") + attempted("worker2"), total);
    });
  });
}
