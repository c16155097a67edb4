/**
 * Crash and outage tests of the delivery engine, with counts (api, dispatcher and worker as
 * processes, a private nats-server, both databases):
 * - 3,000 deliveries, a fifth of them failing once (so retries go through the dispatcher), with
 *   kill -9 of the worker and then of the dispatcher while many are in flight;
 * - a NATS restart in the middle of a run;
 * - PostgreSQL unreachable for ten seconds in the middle of a run (the roles reach it through a
 *   TCP proxy the test cuts), PostgreSQL only;
 * - a bulk replay of 5,000 dead letters with kill -9 of the dispatcher, the api and the worker,
 *   one each, while it runs: the operation finishes with exactly 5,000 matched and affected and
 *   every delivery is replayed once (attempt 2) and succeeds. The dead letters are seeded with one
 *   INSERT … SELECT (as a first attempt refused with 400 would leave them), so the run is spent on
 *   the replay rather than on sending.
 * Every accepted message must reach the receiver (zero lost) and end SUCCEEDED; duplicates are
 * allowed by at-least-once delivery and reported. A Send that was refused (e.g. `unavailable`
 * during the database outage) was never accepted and is not counted.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { BulkOperationState, DeliveryAction, type BulkOperation } from "../gen/hookstream/v1/bulk_operation_pb.ts";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import { pino } from "pino";
import { createOrmOptions } from "../src/store/orm-options.ts";
import { isBusyError } from "../src/store/store-errors.ts";
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

type RigOptions = { proxy?: boolean; delayMs?: number; env?: Record<string, string> };

/**
 * The stack of one test. Setting it up starts processes and takes ports; if that fails, what was
 * started is stopped (so the file's process can end and report) and it is set up once more, the
 * first error printed. Nothing of the behaviour under test runs before it returns.
 */
async function rig(kind: "sqlite" | "postgresql", opts: RigOptions = {}): Promise<Rig> {
  try {
    return await rigOnce(kind, opts);
  } catch (error) {
    console.log(`crash rig (${kind}) failed to start, starting it again: ${String(error)}`);
    return await rigOnce(kind, opts);
  }
}

async function rigOnce(kind: "sqlite" | "postgresql", opts: RigOptions): Promise<Rig> {
  const started: Partial<Rig> = {};
  try {
    return await startRig(kind, opts, started);
  } catch (error) {
    await teardown(started).catch(() => undefined);
    throw error;
  }
}

async function startRig(kind: "sqlite" | "postgresql", opts: RigOptions, started: Partial<Rig>): Promise<Rig> {
  const receiver = (started.receiver = await startReceiver({ delayMs: opts.delayMs ?? 5, keepBodies: false }));
  const nats = (started.nats = await startNatsServer());
  const database = (started.database = await createTestDatabase(kind));
  let url = database.url;
  let proxy: TcpProxy | undefined;
  if (opts.proxy === true) {
    const target = new URL(database.url);
    proxy = started.proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    target.port = String(proxy.port);
    url = target.toString();
  }
  const stack = (started.stack = await startStack({
    databaseUrl: url,
    natsUrl: nats.url,
    env: {
      HOOKSTREAM_RETRY_SCHEDULE: "1s",
      HOOKSTREAM_MAX_ATTEMPTS: "20",
      HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "200ms",
      HOOKSTREAM_PUBLISH_CHECK_DELAY: "2s",
      ...opts.env,
    },
  }));
  const admin = createClients(stack.apiUrl, stack.adminToken);
  const ws = await admin.admin.createWorkspace({ name: "crash" });
  const management = createClients(stack.apiUrl, ws.managementToken);
  const key = await management.apiKeys.createApiKey({ label: "crash" });
  const producer = createClients(stack.apiUrl, key.secret, { binary: true });
  const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/crash` } });
  return { nats, database, receiver, stack, producer, management, endpointId: ep.endpoint!.id, proxy };
}

async function teardown(r: Partial<Rig> | undefined): Promise<void> {
  r?.stack?.destroy();
  await r?.receiver?.close();
  await r?.proxy?.close();
  await r?.nats?.stop();
  await r?.database?.drop();
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

/** Polls `probe` until it returns a value; `what` names it when the wait gives up. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** Deliveries of the endpoint counted by status, and whether every one has `status` and `attempts`. */
async function tally(
  r: Rig,
  status: DeliveryStatus,
  attempts?: number,
): Promise<{ total: number; all: boolean; by: string }> {
  const list = await listAllDeliveries(r.management, r.endpointId);
  const by = new Map<string, number>();
  for (const d of list) {
    const key = `status ${d.status}/attempt ${d.attemptCount}`;
    by.set(key, (by.get(key) ?? 0) + 1);
  }
  const all = list.every((d) => d.status === status && (attempts === undefined || d.attemptCount === attempts));
  return { total: list.length, all, by: JSON.stringify([...by]) };
}

/** Runs `fn` again while SQLite reports another process's write lock, for at most 60 s. */
async function whileBusy<T>(fn: () => Promise<T>): Promise<T> {
  for (const started = Date.now(); ;) {
    try {
      return await fn();
    } catch (error) {
      if (!isBusyError(error) || Date.now() - started > 60_000) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200));
    }
  }
}

/**
 * Seeds `count` dead letters of one message to `endpointId` straight into the database, in one
 * statement: status failed after one attempt answered 400, as a delivery refused for good is
 * left. Ids "dlv_zzb<23 digits>" sort after every generated id.
 */
async function seedDeadLetters(
  database: TestDatabase,
  at: { count: number; workspaceId: string; messageId: string; endpointId: string },
): Promise<string[]> {
  const orm = await MikroORM.init<AbstractSqlDriver, SqlEntityManager>(
    createOrmOptions(database.config, { logger: pino({ level: "silent" }), ensureDatabase: false }),
  );
  const columns =
    "id, workspace_id, message_id, endpoint_id, event_type, status, attempt_count, next_attempt_at, " +
    "last_response_status, last_error, created_at, updated_at";
  const values = "?, ?, ?, 'crash.bulk', 'failed', 1, null, 400, 'HTTP 400', ";
  try {
    const em = orm.em.fork();
    if (database.config.kind === "postgresql") {
      await em.execute(
        `insert into delivery (${columns})
         select 'dlv_zzb' || lpad(g::text, 23, '0'), ${values} now(), now() from generate_series(1, ?::int) as g`,
        [at.workspaceId, at.messageId, at.endpointId, at.count],
      );
    } else {
      const t = Date.now();
      // The stack's processes share the file: wait out their write lock as the store does (one
      // statement, so a retry cannot insert twice).
      await whileBusy(() =>
        em.execute(
          `insert into delivery (${columns})
         select 'dlv_zzb' || printf('%023d', n), ${values} ?, ?
         from (with recursive g(n) as (select 1 union all select n + 1 from g where n < ?) select n from g)`,
          [at.workspaceId, at.messageId, at.endpointId, t, t, at.count],
        ),
      );
    }
  } finally {
    await orm.close(true);
  }
  return Array.from({ length: at.count }, (_, i) => `dlv_zzb${String(i + 1).padStart(23, "0")}`);
}

for (const kind of testDbKinds()) {
  void describe(`engine crashes and outages on ${kind}`, { timeout: 600_000 }, () => {
    let current: Rig | undefined;
    after(() => teardown(current));

    void it("kill -9 of the worker and then of the dispatcher during 3,000 deliveries loses nothing", async (t) => {
      const MESSAGES = 3_000;
      const r = (current = await rig(kind, { delayMs: 10 }));
      // A fifth of the deliveries fail their first attempt, so their retries go through the dispatcher.
      r.receiver.addRule((req, count) =>
        count === 1 && req.webhookId.charCodeAt(req.webhookId.length - 1) % 5 === 0 ? 503 : undefined,
      );
      const kills = (async () => {
        await r.receiver.waitFor((q) => q.length >= 800, 240_000, "800 requests");
        await r.stack.kill("worker", "SIGKILL");
        await sleep(300);
        await r.stack.restart("worker");
        await r.receiver.waitFor((q) => q.length >= 1_800, 240_000, "1,800 requests");
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

    void it("kill -9 of the api while Sends commit and publish loses nothing accepted", async (t) => {
      // A Send's job is published after its commit, with no outbox row: a kill between the two is
      // recovered by the dispatcher's publish check from the delivery row alone.
      const MESSAGES = 2_000;
      const r = (current = await rig(kind));
      const kills = (async () => {
        for (const after of [400, 1_000]) {
          await r.receiver.waitFor((q) => q.length >= after, 120_000, `${after} requests`);
          await r.stack.kill("api", "SIGKILL");
          await sleep(300);
          await r.stack.restart("api");
        }
      })();
      const { accepted, refused } = await sendAll(r, MESSAGES, 32, kills);
      await kills;
      assert.ok(refused > 0, "Sends while the api was down were refused");
      const duplicates = await expectAllDelivered(r, accepted, 240_000);
      t.diagnostic(`${accepted.length} accepted (${refused} refused), 0 lost, ${duplicates} duplicates`);
      console.log(
        `api kill (${kind}): ${accepted.length} accepted, ${refused} refused, 0 lost, ${duplicates} duplicates`,
      );
      await teardown(r);
      current = undefined;
    });

    void it("a NATS restart in the middle of a run loses nothing", async (t) => {
      const MESSAGES = 1_200;
      const r = (current = await rig(kind));
      const outage = (async () => {
        await r.receiver.waitFor((q) => q.length >= 300, 120_000, "300 requests");
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

for (const kind of testDbKinds()) {
  void describe(`bulk replay under kill -9 on ${kind}`, { timeout: 1_800_000 }, () => {
    let current: Rig | undefined;
    after(() => teardown(current));

    void it(
      "kill -9 of the dispatcher, the api and the worker during a bulk replay of 5,000 deliveries",
      {
        timeout: 1_800_000,
      },
      async (t) => {
        // Large enough for 50 bulk rounds of 100, so each kill lands inside the operation.
        const BULK = 5_000;
        // Small bulk rounds, so the operation spans many dispatcher rounds and the kills land inside it.
        const r = (current = await rig(kind, {
          delayMs: 2,
          env: { HOOKSTREAM_BULK_BATCH_SIZE: "100", HOOKSTREAM_JOB_ACK_WAIT: "5s" },
        }));
        // One real message (delivered elsewhere) that the seeded dead letters belong to.
        const me = await r.management.workspaces.getWorkspace({});
        const other = await r.management.endpoints.createEndpoint({ endpoint: { url: `${r.receiver.url}/other` } });
        const probe = await r.producer.messages.send({
          endpointId: other.endpoint!.id,
          eventType: "crash.bulk",
          body: { case: "payloadJson", value: `{"bulk":true}` },
        });
        const ids = await seedDeadLetters(r.database, {
          count: BULK,
          workspaceId: me.workspace!.id,
          messageId: probe.messageId,
          endpointId: r.endpointId,
        });
        const seeded = await tally(r, DeliveryStatus.FAILED, 1);
        assert.ok(seeded.total === BULK && seeded.all, seeded.by);

        const started = await r.management.recovery.startBulkOperation({
          action: DeliveryAction.REPLAY,
          filter: { endpointId: r.endpointId, statuses: [DeliveryStatus.FAILED] },
        });
        const opId = started.operation!.id;
        const op = async (): Promise<BulkOperation> =>
          (await r.management.recovery.getBulkOperation({ id: opId })).operation!;
        const killedAt: string[] = [];
        const note = (role: string, o: BulkOperation): void =>
          void killedAt.push(`${role} at matched=${o.matched} (state ${o.state})`);

        // The dispatcher, which runs the operation, once it has made progress.
        await until("bulk progress", 300_000, async () => ((await op()).matched > 0n ? true : undefined));
        await r.stack.kill("dispatcher", "SIGKILL");
        const atDispatcherKill = await op();
        note("dispatcher", atDispatcherKill);
        assert.equal(atDispatcherKill.state, BulkOperationState.RUNNING, "the dispatcher died mid-operation");
        await sleep(500);
        await r.stack.restart("dispatcher");
        // The api, once the restarted dispatcher goes on with the operation.
        await until("progress after the dispatcher restart", 300_000, async () =>
          (await op()).matched > atDispatcherKill.matched ? true : undefined,
        );
        note("api", await op());
        await r.stack.kill("api", "SIGKILL");
        await sleep(500);
        await r.stack.restart("api");
        // The worker, while the replays are being delivered.
        const replayed = (): number =>
          r.receiver.requests.filter((q) => q.path === "/crash" && q.status >= 200 && q.status < 300).length;
        await r.receiver.waitFor(() => replayed() >= BULK / 4, 600_000, `${BULK / 4} replays delivered`);
        note("worker", await op());
        await r.stack.kill("worker", "SIGKILL");
        await sleep(300);
        await r.stack.restart("worker");

        // Watch the operation to its end through the restarted api.
        let last = await op();
        for await (const item of r.management.recovery.watchBulkOperation({ id: opId })) last = item.operation!;
        assert.equal(last.state, BulkOperationState.SUCCEEDED);
        assert.equal(last.matched, BigInt(BULK), "matched");
        assert.equal(last.affected, BigInt(BULK), "every dead letter replayed exactly once");

        // Every delivery replayed: a second attempt that succeeded, each reaching the receiver.
        const final = await until(`${BULK} replays succeeded`, 600_000, async () => {
          const now = await tally(r, DeliveryStatus.SUCCEEDED, 2);
          return now.total === BULK && now.all ? now : undefined;
        });
        const ok = new Map<string, number>();
        for (const q of r.receiver.requests) {
          if (q.path === "/crash" && q.status >= 200 && q.status < 300)
            ok.set(q.webhookId, (ok.get(q.webhookId) ?? 0) + 1);
        }
        assert.equal(ok.size, BULK, final.by);
        assert.ok(
          ids.every((id) => ok.has(id)),
          "every dead letter was replayed to the receiver",
        );
        const duplicates = [...ok.values()].reduce((sum, n) => sum + n - 1, 0);
        t.diagnostic(`${BULK} replayed, killed ${killedAt.join(", ")}, ${duplicates} duplicates`);
        console.log(
          `bulk replay crash (${kind}): ${BULK} replayed, 0 lost, killed ${killedAt.join(", ")}, ${duplicates} duplicates`,
        );
        await teardown(r);
        current = undefined;
      },
    );
  });
}
