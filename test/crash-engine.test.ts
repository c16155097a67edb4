/**
 * Crash and outage tests of the delivery engine, with counts (api, dispatcher and worker as
 * processes, a private nats-server, both databases):
 * - 5,000 deliveries, a fifth of them failing once (so retries go through the dispatcher), with
 *   kill -9 of the worker and then of the dispatcher while many are in flight;
 * - a NATS restart in the middle of a run;
 * - PostgreSQL unreachable for ten seconds in the middle of a run (the roles reach it through a
 *   TCP proxy the test cuts), PostgreSQL only.
 * Every accepted message must reach the receiver (zero lost) and end SUCCEEDED; duplicates are
 * allowed by at-least-once delivery and reported. A Send that was refused (e.g. `unavailable`
 * during the database outage) was never accepted and is not counted.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, listAllDeliveries, startStack, type Clients, type Stack } from "./support/stack.ts";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.ts";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Rig {
  nats: TestNats;
  database: TestDatabase;
  receiver: Receiver;
  stack: Stack;
  producer: Clients;
  management: Clients;
  endpointId: string;
  proxy?: TcpProxy | undefined;
}

async function rig(kind: "sqlite" | "postgresql", opts: { proxy?: boolean; delayMs?: number } = {}): Promise<Rig> {
  const receiver = await startReceiver({ delayMs: opts.delayMs ?? 5, keepBodies: false });
  const nats = await startNatsServer();
  const database = await createTestDatabase(kind);
  let url = database.url;
  let proxy: TcpProxy | undefined;
  if (opts.proxy === true) {
    const target = new URL(database.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    target.port = String(proxy.port);
    url = target.toString();
  }
  const stack = await startStack({
    databaseUrl: url,
    natsUrl: nats.url,
    env: { HOOKSTREAM_RETRY_SCHEDULE: "1s", HOOKSTREAM_MAX_ATTEMPTS: "20", HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "200ms" },
  });
  const admin = createClients(stack.apiUrl, stack.adminToken);
  const ws = await admin.admin.createWorkspace({ name: "crash" });
  const management = createClients(stack.apiUrl, ws.managementToken);
  const key = await management.apiKeys.createApiKey({ label: "crash" });
  const producer = createClients(stack.apiUrl, key.secret, { binary: true });
  const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/crash` } });
  return { nats, database, receiver, stack, producer, management, endpointId: ep.endpoint!.id, proxy };
}

async function teardown(r: Rig | undefined): Promise<void> {
  r?.stack.destroy();
  await r?.receiver.close();
  await r?.proxy?.close();
  await r?.nats.stop();
  await r?.database.drop();
}

/**
 * Sends at least `count` messages with `lanes` concurrent senders, and goes on (up to 4×) until
 * `during` settles, so an outage always falls inside the run; returns the accepted delivery ids.
 */
async function sendAll(
  r: Rig,
  count: number,
  lanes: number,
  during?: Promise<unknown>,
): Promise<{ accepted: string[]; refused: number }> {
  const accepted: string[] = [];
  let refused = 0;
  let next = 0;
  let settled = during === undefined;
  void during?.finally(() => {
    settled = true;
  });
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count || (!settled && next < 4 * count)) {
        const n = next++;
        try {
          const res = await r.producer.messages.send({
            endpointId: r.endpointId,
            eventType: "crash.engine",
            body: { case: "payloadJson", value: `{"n":${n}}` },
            idempotencyKey: `crash-engine-${n}`,
          });
          accepted.push(res.deliveryId);
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          refused++;
          await sleep(50);
        }
      }
    }),
  );
  return { accepted, refused };
}

/** Waits until every accepted delivery reached the receiver and is SUCCEEDED; returns the duplicate count. */
async function expectAllDelivered(r: Rig, accepted: readonly string[], timeoutMs: number): Promise<number> {
  const expected = new Set(accepted);
  let seen = 0;
  await r.receiver.waitFor(
    (requests) => {
      for (; seen < requests.length; seen++) {
        const req = requests[seen]!;
        if (req.status >= 200 && req.status < 300) expected.delete(req.webhookId);
      }
      return expected.size === 0;
    },
    timeoutMs,
    `all ${accepted.length} deliveries answered 2xx`,
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const all = await listAllDeliveries(r.management, r.endpointId);
    const ours = all.filter((d) => accepted.includes(d.id));
    if (ours.length === accepted.length && ours.every((d) => d.status === DeliveryStatus.SUCCEEDED)) break;
    if (Date.now() > deadline) {
      const by = new Map<number, number>();
      for (const d of ours) by.set(d.status, (by.get(d.status) ?? 0) + 1);
      assert.fail(`${ours.length}/${accepted.length} deliveries, by status ${JSON.stringify([...by])}`);
    }
    await sleep(500);
  }
  const ok = r.receiver.requests.filter((q) => q.status >= 200 && q.status < 300);
  return ok.length - new Set(ok.map((q) => q.webhookId)).size;
}

for (const kind of testDbKinds()) {
  void describe(`engine crashes and outages on ${kind}`, { timeout: 600_000 }, () => {
    let current: Rig | undefined;
    after(() => teardown(current));

    void it("kill -9 of the worker and then of the dispatcher during 5,000 deliveries loses nothing", async (t) => {
      const MESSAGES = 5_000;
      const r = (current = await rig(kind, { delayMs: 10 }));
      // A fifth of the deliveries fail their first attempt, so their retries go through the dispatcher.
      r.receiver.addRule((req, count) =>
        count === 1 && req.webhookId.charCodeAt(req.webhookId.length - 1) % 5 === 0 ? 503 : undefined,
      );
      const kills = (async () => {
        await r.receiver.waitFor((q) => q.length >= 1_200, 240_000, "1,200 requests");
        await r.stack.kill("worker", "SIGKILL");
        await sleep(300);
        await r.stack.restart("worker");
        await r.receiver.waitFor((q) => q.length >= 2_600, 240_000, "2,600 requests");
        await r.stack.kill("dispatcher", "SIGKILL");
        await sleep(1_500);
        await r.stack.restart("dispatcher");
      })();
      const { accepted, refused } = await sendAll(r, MESSAGES, 32, kills);
      await kills;
      assert.equal(refused, 0, "no Send was refused: the api stayed up");
      assert.equal(new Set(accepted).size, accepted.length);
      assert.ok(accepted.length >= MESSAGES);
      const duplicates = await expectAllDelivered(r, accepted, 300_000);
      const retried = r.receiver.requests.filter((q) => q.status === 503).length;
      t.diagnostic(
        `${MESSAGES} accepted, 0 lost, ${retried} first attempts failed and retried, ${duplicates} duplicates`,
      );
      console.log(`engine crash (${kind}): ${MESSAGES} accepted, 0 lost, ${retried} retried, ${duplicates} duplicates`);
      await teardown(r);
      current = undefined;
    });

    void it("a NATS restart in the middle of a run loses nothing", async (t) => {
      const MESSAGES = 2_000;
      const r = (current = await rig(kind));
      const outage = (async () => {
        await r.receiver.waitFor((q) => q.length >= 500, 120_000, "500 requests");
        await r.nats.down();
        await sleep(3_000);
        await r.nats.up();
      })();
      const { accepted, refused } = await sendAll(r, MESSAGES, 16, outage);
      await outage;
      const duplicates = await expectAllDelivered(r, accepted, 240_000);
      t.diagnostic(`${accepted.length} accepted (${refused} refused), 0 lost, ${duplicates} duplicates`);
      console.log(
        `NATS restart (${kind}): ${accepted.length} accepted, ${refused} refused, 0 lost, ${duplicates} duplicates`,
      );
      await teardown(r);
      current = undefined;
    });

    if (kind === "postgresql") {
      void it("PostgreSQL unreachable for ten seconds in the middle of a run loses nothing", async (t) => {
        const MESSAGES = 2_000;
        const r = (current = await rig(kind, { proxy: true }));
        const outage = (async () => {
          await r.receiver.waitFor((q) => q.length >= 500, 120_000, "500 requests");
          r.proxy!.down();
          await sleep(10_000);
          r.proxy!.up();
        })();
        const { accepted, refused } = await sendAll(r, MESSAGES, 16, outage);
        await outage;
        assert.ok(refused > 0, "Sends during the outage were refused (unavailable), not accepted");
        const duplicates = await expectAllDelivered(r, accepted, 240_000);
        t.diagnostic(
          `${accepted.length} accepted, ${refused} refused during the outage, 0 lost, ${duplicates} duplicates`,
        );
        console.log(
          `PostgreSQL outage: ${accepted.length} accepted, ${refused} refused, 0 lost, ${duplicates} duplicates`,
        );
        await teardown(r);
        current = undefined;
      });
    }
  });
}
