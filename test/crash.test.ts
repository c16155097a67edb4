/**
 * Crash test: 1,000 messages, the worker process killed with SIGKILL while deliveries are in
 * flight, then restarted. Every message must arrive (zero lost) and every delivery end
 * SUCCEEDED; duplicates are allowed by at-least-once delivery and reported. A watcher attached
 * before the first Send must see every delivery's SUCCEEDED status event: the events the killed
 * worker recorded but had not published come back through the dispatcher once its status lease
 * is stale (status-announcer.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, listAllDeliveries, startStack, type Stack } from "./support/stack.ts";

const MESSAGES = 1_000;
const KILL_AFTER = 300;
const SEND_CONCURRENCY = 32;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const kind of testDbKinds()) {
  void describe(`crash: kill -9 the worker mid-flight on ${kind}`, { timeout: 300_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;

    before(async () => {
      // A short answer delay keeps a worker's worth of deliveries in flight at any moment.
      receiver = await startReceiver({ delayMs: 20 });
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: { HOOKSTREAM_STATUS_LEASE_TIMEOUT: "4s" },
      });
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("loses nothing when the worker dies and comes back", async (t) => {
      assert.ok(stack !== undefined && receiver !== undefined);
      const rx = receiver;
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "crash" });
      const management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "crash" });
      const producer = createClients(stack.apiUrl, key.secret, { binary: true });
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${rx.url}/crash` } });
      const endpointId = ep.endpoint?.id ?? "";

      // Every SUCCEEDED status event of the run, from a watcher attached before the first Send.
      const succeeded = new Set<string>();
      const watching = new AbortController();
      let attach!: () => void;
      const attached = new Promise<void>((resolve) => (attach = resolve));
      const watcher = (async () => {
        try {
          for await (const item of management.watch.watchDeliveries({ endpointId }, { signal: watching.signal })) {
            attach();
            if (item.delivery?.status === DeliveryStatus.SUCCEEDED) succeeded.add(item.delivery.id);
          }
        } catch (error) {
          if (!watching.signal.aborted) throw error;
        } finally {
          attach();
        }
      })();
      await attached;

      // Kill the worker as soon as the receiver has seen KILL_AFTER requests, while sends go on.
      let killedAt = -1;
      const killed = rx
        .waitFor((requests) => requests.length >= KILL_AFTER, 120_000, `${KILL_AFTER} requests`)
        .then(async () => {
          killedAt = rx.requests.length;
          const exit = await stack?.kill("worker", "SIGKILL");
          return exit;
        });

      const deliveryIds: string[] = [];
      let next = 0;
      const sender = async (): Promise<void> => {
        while (next < MESSAGES) {
          const n = next++;
          const res = await producer.messages.send({
            endpointId,
            eventType: "crash.test",
            body: { case: "payload", value: fromJson(ValueSchema, { n }) },
            idempotencyKey: `crash-${n}`,
          });
          deliveryIds.push(res.deliveryId);
        }
      };
      await Promise.all(Array.from({ length: SEND_CONCURRENCY }, sender));
      assert.equal(new Set(deliveryIds).size, MESSAGES, "every Send was accepted with its own delivery");

      const exit = await killed;
      assert.equal(exit?.signal, "SIGKILL");
      const distinctAtKill = rx.distinctIds().size;
      t.diagnostic(`worker killed after ${killedAt} requests (${distinctAtKill} distinct webhook-ids at that point)`);
      assert.ok(distinctAtKill < MESSAGES, "the kill happened while deliveries were still outstanding");

      await sleep(500);
      await stack.restart("worker");

      const expected = new Set(deliveryIds);
      let seen = 0;
      await rx.waitFor(
        (requests) => {
          // Count new distinct ids incrementally: the predicate runs on every request.
          for (; seen < requests.length; seen++) expected.delete(requests[seen]?.webhookId ?? "");
          return expected.size === 0;
        },
        180_000,
        `all ${MESSAGES} distinct webhook-ids`,
      );
      const distinct = rx.distinctIds();
      const foreign = [...distinct].filter((id) => !deliveryIds.includes(id));
      assert.deepEqual(foreign, [], "the receiver saw only the sent deliveries");
      const duplicates = rx.requests.length - distinct.size;
      t.diagnostic(
        `received ${rx.requests.length} requests for ${distinct.size} deliveries: ${duplicates} duplicates, 0 lost`,
      );
      console.log(`crash test (${kind}): ${MESSAGES} sent, 0 lost, ${duplicates} duplicate deliveries`);

      // Every delivery ends SUCCEEDED (the status is recorded just after the receiver answers).
      let deliveries: Delivery[] = [];
      const deadline = Date.now() + 60_000;
      for (;;) {
        deliveries = await listAllDeliveries(management, endpointId);
        const done = deliveries.filter((d) => d.status === DeliveryStatus.SUCCEEDED).length;
        if (deliveries.length === MESSAGES && done === MESSAGES) break;
        if (Date.now() > deadline) {
          const byStatus = new Map<number, number>();
          for (const d of deliveries) byStatus.set(d.status, (byStatus.get(d.status) ?? 0) + 1);
          assert.fail(`after 60 s: ${deliveries.length} deliveries, by status ${JSON.stringify([...byStatus])}`);
        }
        await sleep(500);
      }
      assert.deepEqual(new Set(deliveries.map((d) => d.id)), new Set(deliveryIds));

      // The watcher saw every delivery succeed, including those whose event the kill left unpublished.
      const eventDeadline = Date.now() + 60_000;
      while (deliveryIds.some((id) => !succeeded.has(id)) && Date.now() < eventDeadline) await sleep(250);
      const unseen = deliveryIds.filter((id) => !succeeded.has(id));
      assert.deepEqual(unseen, [], `${unseen.length} deliveries without a SUCCEEDED status event`);
      const reannounced = stack
        .logRecords("dispatcher")
        .reduce((n, r) => n + (typeof r["events"] === "number" ? r["events"] : 0), 0);
      t.diagnostic(`every delivery's SUCCEEDED event seen; ${reannounced} re-published from the killed worker's lease`);
      watching.abort();
      await watcher;

      const exits = await stack.stopAll();
      for (const [role, info] of Object.entries(exits)) {
        assert.deepEqual(info, { code: 0, signal: null }, `${role} exit on SIGTERM`);
      }
    });
  });
}
