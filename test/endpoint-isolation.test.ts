/**
 * The per-endpoint concurrency cap on the real stack (both databases, real NATS, worker
 * processes): a fast endpoint at its cap makes its jobs wait in the worker for a slot instead of
 * bouncing them through JetStream, so 300 messages to one endpoint at a cap of 2 and of 8 are
 * each delivered exactly once with at most a quarter of them deferred (the worker's deferral
 * counter on /metrics). Without the wait, every job that finds the endpoint at its cap would be
 * deferred (most of the 300: the worker takes them many at a time); with it, a quiet machine
 * defers 0 (cap 8) and about 11 (cap 2) of 300, and a busy one up to 61 at cap 2, because the
 * guard stops waiting when its latency estimate of the endpoint rises with the machine's stalls.
 * The bound tells the two behaviours apart without failing on a busy machine. A dead endpoint
 * (accepts connections, never answers) never holds more than its cap of connections; and a
 * kill -9 of a worker while jobs wait for a slot loses nothing.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import {
  createClients,
  listAllDeliveries,
  metricSamples,
  metricValue,
  startStack,
  type Clients,
  type Stack,
} from "./support/stack.ts";
import { sleep, until } from "./support/wait.ts";

const DEFERRALS = "hookstream_delivery_deferrals_total";
const WAITERS = "hookstream_delivery_slot_waiters";

/**
 * A TCP server that accepts connections, reads requests and never answers. `most()` is the most
 * connections carrying a request it held at once (the HTTP client may also keep an idle spare
 * connection without a request; that is no attempt and not what the cap limits). Each is
 * counted after the event loop has also handled whatever else arrived with it, so a connection
 * the worker gave up on (its FIN or RST sent before the next request) is no longer counted.
 */
async function startDeadEndpoint(): Promise<{ url: string; most: () => number; close(): Promise<void> }> {
  const all = new Set<Socket>();
  const busy = new Set<Socket>();
  let most = 0;
  const server: Server = createServer((socket) => {
    all.add(socket);
    const gone = (): void => {
      all.delete(socket);
      busy.delete(socket);
    };
    socket.on("end", gone);
    socket.on("error", gone);
    socket.on("close", gone);
    socket.on("data", () => {
      if (busy.has(socket) || !all.has(socket)) return;
      busy.add(socket);
      setImmediate(() => {
        if (busy.has(socket)) most = Math.max(most, busy.size);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/dead`,
    most: () => most,
    async close() {
      for (const s of all) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function sendAll(producer: Clients, endpointId: string, total: number): Promise<string[]> {
  const ids: string[] = [];
  // A few sends at a time, the way a producer's backlog arrives.
  for (let i = 0; i < total; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, total - i) }, (_, k) =>
        producer.messages.send({
          endpointId,
          eventType: "isolation.test",
          body: { case: "payloadJson", value: `{"i":${i + k}}` },
        }),
      ),
    );
    ids.push(...batch.map((r) => r.deliveryId));
  }
  return ids;
}

for (const kind of testDbKinds()) {
  for (const cap of [2, 8]) {
    void describe(`endpoint concurrency cap ${cap} on ${kind}`, { timeout: 300_000 }, () => {
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
          env: {
            HOOKSTREAM_ENDPOINT_CONCURRENCY: String(cap),
            HOOKSTREAM_WORKER_CONCURRENCY: "32",
            // Short, so the dead endpoint's half-open probes are part of the picture too.
            HOOKSTREAM_BREAKER_COOLDOWN: "2s",
          },
        });
        const admin = createClients(stack.apiUrl, stack.adminToken);
        const ws = await admin.admin.createWorkspace({ name: `cap${cap}` });
        management = createClients(stack.apiUrl, ws.managementToken);
        const key = await management.apiKeys.createApiKey({ label: "cap" });
        producer = createClients(stack.apiUrl, key.secret);
      });

      after(async () => {
        stack?.destroy();
        await receiver?.close();
        await nats?.stop();
        await database?.drop();
      });

      void it(`300 messages to one endpoint are each delivered once, at most a quarter deferred`, async (t) => {
        const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/one` } })).endpoint!;
        const deferredBefore = await metricValue(stack!, "worker", DEFERRALS);
        const ids = await sendAll(producer, ep.id, 300);
        await until("every message received", 120_000, async () =>
          ids.every((id) => receiver!.byId(id).length > 0) ? true : undefined,
        );
        await until("every delivery recorded", 60_000, async () => {
          const all = await listAllDeliveries(management, ep.id);
          return all.length === 300 && all.every((d) => d.status === DeliveryStatus.SUCCEEDED) ? all : undefined;
        });
        for (const id of ids) assert.equal(receiver!.byId(id).length, 1, `${id} received once`);
        const deferred = (await metricValue(stack!, "worker", DEFERRALS)) - deferredBefore;
        const why = JSON.stringify(await metricSamples(stack!, "worker", DEFERRALS));
        t.diagnostic(`cap ${cap}: ${deferred} of 300 deferred ${why}`);
        assert.ok(deferred <= 75, `${deferred} of 300 jobs deferred (at most a quarter): ${why}`);
      });

      if (cap !== 2) return;

      void it("a dead endpoint never holds more than its cap of connections", async (t) => {
        const dead = await startDeadEndpoint();
        try {
          const ep = (
            await management.endpoints.createEndpoint({
              endpoint: { url: dead.url, timeout: { seconds: 1n, nanos: 0 } },
            })
          ).endpoint!;
          await sendAll(producer, ep.id, 40);
          // Several rounds of timeouts, retries and probes (each attempt times out after 1 s).
          await until("the dead endpoint's attempts time out", 60_000, async () => {
            const failures = stack!
              .logRecords("worker")
              .filter((r) => r["msg"] === "delivery attempt" && r["endpointId"] === ep.id).length;
            return failures >= 8 ? true : undefined;
          });
          t.diagnostic(`the dead endpoint held at most ${dead.most()} requests at once`);
          assert.ok(dead.most() >= 1, "the dead endpoint was tried");
          assert.ok(dead.most() <= cap, `the dead endpoint held ${dead.most()} connections at once (cap ${cap})`);
          await management.endpoints.deleteEndpoint({ id: ep.id });
        } finally {
          await dead.close();
        }
      });

      void it("a kill -9 of the worker while jobs wait for a slot loses nothing", async () => {
        // 30 ms per answer: fast enough that jobs at the cap wait for a slot in the worker.
        receiver!.setDelay(30);
        try {
          const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/kill` } }))
            .endpoint!;
          const ids = await sendAll(producer, ep.id, 120);
          const waiters = await until("jobs waiting for a slot", 60_000, async () => {
            const n = await metricValue(stack!, "worker", WAITERS);
            return n > 0 ? n : undefined;
          });
          assert.ok(waiters > 0);
          const seenAtKill = new Set(receiver!.requests.filter((r) => r.path === "/kill").map((r) => r.webhookId));
          assert.ok(seenAtKill.size < ids.length, "killed before everything was delivered");
          await stack!.kill("worker", "SIGKILL");
          await sleep(200);
          await stack!.restart("worker");
          await until("every message received after the restart", 120_000, async () =>
            ids.every((id) => receiver!.byId(id).length > 0) ? true : undefined,
          );
          await until("every delivery succeeded", 60_000, async () => {
            const all = await listAllDeliveries(management, ep.id);
            return all.length === ids.length && all.every((d) => d.status === DeliveryStatus.SUCCEEDED)
              ? true
              : undefined;
          });
        } finally {
          receiver!.setDelay(0);
        }
      });
    });
  }
}
