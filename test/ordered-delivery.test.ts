/**
 * Ordered (FIFO) delivery on the real stack (both databases, real NATS, two worker processes):
 * `ordered` is set on create and changed through the update mask; 50 messages sent one after
 * another to an ordered endpoint whose receiver fails about a third of first attempts arrive in
 * send order by their successful receipt (each one only after the previous one succeeded, its
 * retries included), across a kill -9 of one worker in the middle.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import {
  createClients,
  listAllDeliveries,
  metricValue,
  startStack,
  type Clients,
  type Stack,
} from "./support/stack.ts";
import { until } from "./support/wait.ts";

for (const kind of testDbKinds()) {
  void describe(`ordered delivery on ${kind}`, { timeout: 300_000 }, () => {
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
        env: { HOOKSTREAM_WORKER_CONCURRENCY: "8" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "ordered" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "ordered" });
      producer = createClients(stack.apiUrl, key.secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("is set on create, read back, and changed through the update mask only", async () => {
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/o`, ordered: true } }))
        .endpoint!;
      assert.equal(ep.ordered, true);
      assert.equal((await management.endpoints.getEndpoint({ id: ep.id })).endpoint?.ordered, true);
      const other = await management.endpoints.updateEndpoint({
        endpoint: { id: ep.id, description: "x", ordered: false },
        updateMask: { paths: ["description"] },
      });
      assert.equal(other.endpoint?.ordered, true, "not in the mask: unchanged");
      const off = await management.endpoints.updateEndpoint({
        endpoint: { id: ep.id, ordered: false },
        updateMask: { paths: ["ordered"] },
      });
      assert.equal(off.endpoint?.ordered, false);
      const plain = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/p` } })).endpoint!;
      assert.equal(plain.ordered, false);
      await management.endpoints.deleteEndpoint({ id: ep.id });
      await management.endpoints.deleteEndpoint({ id: plain.id });
    });

    void it("50 messages arrive in send order, retries and a kill -9 of a worker included", async (t) => {
      const ep = (
        await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/fifo`, ordered: true } })
      ).endpoint!;
      // About a third of first attempts fail; every retry succeeds.
      receiver!.addRule((r, countForId) =>
        r.path === "/fifo" && countForId === 1 && Math.random() < 0.33 ? 503 : undefined,
      );
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await producer.messages.send({
          endpointId: ep.id,
          eventType: "fifo.test",
          body: { case: "payloadJson", value: `{"i":${i}}` },
        });
        ids.push(r.deliveryId);
        if (i === 20) {
          // Mid-stream: kill -9 one worker while deliveries wait their turn, start it again.
          await stack!.kill("worker", "SIGKILL");
          await stack!.restart("worker");
        }
      }
      await until("every message succeeded", 240_000, async () => {
        const all = await listAllDeliveries(management, ep.id);
        return all.length === 50 && all.every((d) => d.status === DeliveryStatus.SUCCEEDED) ? true : undefined;
      });
      const successes = receiver!.requests.filter((r) => r.path === "/fifo" && r.status === 200);
      const firstSuccess = ids.map((id) => successes.find((r) => r.webhookId === id));
      for (const [i, r] of firstSuccess.entries()) assert.ok(r !== undefined, `${ids[i]} received`);
      const order = [...firstSuccess].sort((a, b) => a!.seq - b!.seq).map((r) => r!.webhookId);
      assert.deepEqual(order, ids, "successful receipts in send order");
      // Each message was first sent only after the previous one's success: no overtaking at all.
      const fifo = receiver!.requests.filter((r) => r.path === "/fifo");
      for (let i = 1; i < ids.length; i++) {
        const firstTry = fifo.find((r) => r.webhookId === ids[i])!;
        assert.ok(firstTry.seq > firstSuccess[i - 1]!.seq, `${ids[i]} was tried before ${ids[i - 1]} succeeded`);
      }
      const retried = ids.filter((id) => fifo.filter((r) => r.webhookId === id).length > 1).length;
      const deferred =
        (await metricValue(stack!, "worker", "hookstream_delivery_deferrals_total")) +
        (await metricValue(stack!, "worker2", "hookstream_delivery_deferrals_total"));
      t.diagnostic(`${retried} of 50 retried; ${deferred} deferrals since the last worker start`);
      assert.ok(retried > 0, "some head messages were retried (and blocked the queue meanwhile)");
      receiver!.clearRules();
    });
  });
}
