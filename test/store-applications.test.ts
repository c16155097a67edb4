/**
 * Conformance suite of the application ports (applications, endpoints scoped to one, the
 * application filters of deliveries and trigger targets, deleting an application) on SQLite
 * and PostgreSQL, against the MikroORM reference and, on PostgreSQL, with the dialect overrides
 * switched on too.
 */
import { defaultEnvironmentId } from "../src/domain/environments.ts";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { newId } from "../src/domain/ids.ts";
import type {
  ApplicationRecord,
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  PortalSessionRecord,
} from "../src/domain/records.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { createTestDatabase, testDbKinds, type TestDatabase, type TestDbKind } from "./support/database.ts";

const logger = pino({ level: "silent" });
const T0 = new Date("2030-01-02T03:04:05.678Z");
const at = (ms: number): Date => new Date(T0.getTime() + ms);

async function workspace(store: OpenedStore): Promise<string> {
  const id = newId("workspace");
  await store.workspaces.createWorkspace({ id, name: `ws ${id}`, createdAt: T0 }, `hash-${id}`);
  return id;
}

function applicationOf(workspaceId: string, overrides: Partial<ApplicationRecord> = {}): ApplicationRecord {
  return {
    id: newId("application"),
    workspaceId,
    environmentId: defaultEnvironmentId(workspaceId),
    name: "Acme ✓",
    uid: null,
    metadata: { plan: "gold", ключ: "значение" },
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

function endpointOf(workspaceId: string, overrides: Partial<EndpointRecord> = {}): EndpointRecord {
  return {
    id: newId("endpoint"),
    workspaceId,
    url: "https://example.com/hook",
    description: "",
    metadata: {},
    enabled: true,
    headers: {},
    timeoutMs: 15_000,
    secret: "whsec_AAAA",
    previousSecret: null,
    previousSecretExpiresAt: null,
    createdAt: T0,
    updatedAt: T0,
    asyncAck: false,
    ...overrides,
  };
}

function messageOf(workspaceId: string, eventType: string): MessageRecord {
  return {
    id: newId("message"),
    workspaceId,
    eventType,
    payload: new TextEncoder().encode('{"a":1}'),
    contentType: "application/json",
    idempotencyKey: newId("message"),
    payloadHash: "ab".repeat(32),
    createdAt: at(1),
    payloadDeletedAt: null,
  };
}

function deliveryOf(msg: MessageRecord, endpointId: string, status: DeliveryStatusName): DeliveryRecord {
  return {
    id: newId("delivery"),
    workspaceId: msg.workspaceId,
    messageId: msg.id,
    endpointId,
    eventType: msg.eventType,
    status,
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: msg.createdAt,
    updatedAt: msg.createdAt,
  };
}

function statusOf(d: DeliveryRecord): NewOutboxRecord {
  return {
    stream: "status",
    subject: d.workspaceId,
    workspaceId: d.workspaceId,
    msgId: `${d.id}:${d.status}`,
    payload: new Uint8Array([1]),
    createdAt: d.updatedAt,
  };
}

function sessionOf(app: ApplicationRecord, overrides: Partial<PortalSessionRecord> = {}): PortalSessionRecord {
  return {
    id: newId("portalSession"),
    workspaceId: app.workspaceId,
    applicationId: app.id,
    codeHash: newId("portalSession").padEnd(64, "c").slice(0, 64),
    tokenHash: null,
    codeExpiresAt: at(600_000),
    expiresAt: at(3_600_000),
    exchangedAt: null,
    createdAt: T0,
    ...overrides,
  };
}

const variants = testDbKinds().flatMap((kind): { kind: TestDbKind; overrides: boolean; label: string }[] =>
  kind === "postgresql"
    ? [
        { kind, overrides: true, label: "postgresql (with overrides)" },
        { kind, overrides: false, label: "postgresql (MikroORM reference)" },
      ]
    : [{ kind, overrides: false, label: kind }],
);

for (const { kind, overrides, label } of variants) {
  void describe(`application store on ${label}`, () => {
    let db: TestDatabase;
    let store: OpenedStore;

    before(async () => {
      db = await createTestDatabase(kind);
      await migrateDatabase(db.config, { logger });
      store = await openStore(db.config, { logger, overrides });
    });

    after(async () => {
      await store?.close();
      await db?.drop();
    });

    void it("applications: create, uid unique per workspace, get by id and uid, newest-first pages, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const a = applicationOf(ws, { uid: "cust-1" });
      assert.equal(await store.applications.createApplication(a), true);
      assert.equal(
        await store.applications.createApplication(applicationOf(ws, { uid: "cust-1" })),
        false,
        "uid taken",
      );
      assert.equal(await store.applications.createApplication(applicationOf(other, { uid: "cust-1" })), true);
      const b = applicationOf(ws);
      const c = applicationOf(ws);
      assert.equal(await store.applications.createApplication(b), true, "several without uid");
      assert.equal(await store.applications.createApplication(c), true);
      assert.deepEqual(await store.applications.getApplication(ws, a.id), a);
      assert.deepEqual(await store.applications.getApplicationByUid(ws, "cust-1"), a);
      assert.equal(await store.applications.getApplication(other, a.id), null, "other workspace");
      assert.equal((await store.applications.getApplicationByUid(other, "cust-1"))?.workspaceId, other);
      assert.equal(await store.applications.getApplicationByUid(ws, "nope"), null);
      const ids = async (afterId: string | undefined, limit: number): Promise<string[]> =>
        (await store.applications.listApplications(ws, { afterId, limit })).map((x) => x.id);
      assert.deepEqual(await ids(undefined, 10), [c.id, b.id, a.id]);
      assert.deepEqual(await ids(undefined, 2), [c.id, b.id]);
      assert.deepEqual(await ids(b.id, 2), [a.id]);
    });

    void it("updateApplication patches only given fields; a taken uid changes nothing; never another workspace's", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const a = applicationOf(ws, { uid: "a" });
      const b = applicationOf(ws, { uid: "b" });
      await store.applications.createApplication(a);
      await store.applications.createApplication(b);
      const renamed = await store.applications.updateApplication(ws, a.id, { name: "Renamed" }, at(5));
      assert.deepEqual(renamed, { ...a, name: "Renamed", updatedAt: at(5) });
      assert.equal(
        await store.applications.updateApplication(ws, a.id, { uid: "b", name: "Nope" }, at(6)),
        "uid_taken",
      );
      assert.deepEqual(await store.applications.getApplication(ws, a.id), renamed, "nothing changed");
      assert.equal(await store.applications.updateApplication(other, a.id, { name: "x" }, at(7)), null);
      const cleared = await store.applications.updateApplication(ws, a.id, { uid: null, metadata: {} }, at(8));
      assert.deepEqual(await store.applications.getApplication(ws, a.id), cleared);
      assert.equal(cleared !== null && cleared !== "uid_taken" ? cleared.uid : "?", null);
      assert.equal(await store.applications.createApplication(applicationOf(ws, { uid: "a" })), true, "uid free again");
    });

    void it("endpoints under an application: created only while it exists, listed by application, filter deliveries", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const app = applicationOf(ws);
      const app2 = applicationOf(ws);
      await store.applications.createApplication(app);
      await store.applications.createApplication(app2);
      const e1 = endpointOf(ws, { applicationId: app.id });
      const e2 = endpointOf(ws, { applicationId: app2.id });
      const e3 = endpointOf(ws);
      for (const e of [e1, e2, e3]) assert.equal(await store.endpoints.createEndpoint(e), true);
      assert.equal(
        await store.endpoints.createEndpoint(endpointOf(ws, { applicationId: newId("application") })),
        false,
        "unknown application",
      );
      assert.equal(
        await store.endpoints.createEndpoint(endpointOf(other, { applicationId: app.id })),
        false,
        "another workspace's application",
      );
      assert.equal((await store.endpoints.getEndpoint(ws, e1.id))?.applicationId, app.id);
      assert.equal((await store.endpoints.getEndpoint(ws, e3.id))?.applicationId, null);
      const list = async (applicationId?: string): Promise<string[]> =>
        (await store.endpoints.listEndpoints(ws, { afterId: undefined, limit: 10 }, applicationId)).map((e) => e.id);
      assert.deepEqual(await list(app.id), [e1.id]);
      assert.deepEqual(await list(app2.id), [e2.id]);
      assert.deepEqual(await list(), [e3.id, e2.id, e1.id]);
      assert.deepEqual(await list(newId("application")), []);

      const msg = messageOf(ws, "order.paid");
      const d1 = deliveryOf(msg, e1.id, "queued");
      const d2 = deliveryOf(msg, e2.id, "queued");
      const d3 = deliveryOf(msg, e3.id, "queued");
      await store.messages.acceptMessage(msg, [d1, d2, d3], []);
      const deliveries = async (filter: { applicationId?: string; endpointId?: string }): Promise<string[]> =>
        (await store.deliveries.listDeliveries(ws, filter, { afterId: undefined, limit: 10 })).map((d) => d.id);
      assert.deepEqual(await deliveries({ applicationId: app.id }), [d1.id]);
      assert.deepEqual(await deliveries({ applicationId: app.id, endpointId: e2.id }), [], "both filters apply");
      assert.deepEqual(await deliveries({ applicationId: app2.id, endpointId: e2.id }), [d2.id]);
      assert.deepEqual(await deliveries({ applicationId: newId("application") }), []);
      assert.equal((await store.deliveries.getDelivery(ws, d1.id, app.id))?.id, d1.id);
      assert.equal(await store.deliveries.getDelivery(ws, d1.id, app2.id), null, "another application's");
      assert.equal(await store.deliveries.getDelivery(ws, d3.id, app.id), null, "a workspace-wide endpoint's");
      assert.equal((await store.deliveries.getDelivery(ws, d3.id))?.id, d3.id);

      // Messages by application: through any delivery to its endpoints (with the same delivery's status).
      const msg2 = messageOf(ws, "order.paid");
      const d4 = deliveryOf(msg2, e2.id, "failed");
      await store.messages.acceptMessage(msg2, [d4], []);
      const messages = async (filter: { applicationId?: string; statuses?: DeliveryStatusName[] }): Promise<string[]> =>
        (await store.messages.listMessages(ws, filter, { afterId: undefined, limit: 10 })).map((m) => m.id);
      assert.deepEqual(await messages({ applicationId: app.id }), [msg.id]);
      assert.deepEqual(await messages({ applicationId: app2.id }), [msg2.id, msg.id]);
      assert.deepEqual(await messages({ applicationId: app2.id, statuses: ["failed"] }), [msg2.id]);
      assert.deepEqual(await messages({ applicationId: app.id, statuses: ["failed"] }), [], "the same delivery");
      assert.deepEqual(await messages({ applicationId: newId("application") }), []);
      assert.deepEqual(await messages({}), [msg2.id, msg.id]);

      const targets = async (applicationId: string | null): Promise<string[]> =>
        (await store.subscriptions.findTriggerTargets({ workspaceId: ws, eventType: "order.paid", applicationId }))
          .map((t) => t.endpoint.id)
          .sort();
      assert.deepEqual(await targets(app.id), [e1.id]);
      assert.deepEqual(await targets(null), [e1.id, e2.id, e3.id].sort());
    });

    void it("deleteApplication deletes its endpoints and cancels their pending deliveries only, in one transaction", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const app = applicationOf(ws, { uid: "doomed" });
      const keep = applicationOf(ws);
      const foreignApp = applicationOf(other);
      for (const a of [app, keep, foreignApp]) await store.applications.createApplication(a);
      const mine = [endpointOf(ws, { applicationId: app.id }), endpointOf(ws, { applicationId: app.id })];
      const kept = endpointOf(ws, { applicationId: keep.id });
      const wide = endpointOf(ws);
      const foreign = endpointOf(other, { applicationId: foreignApp.id });
      for (const e of [...mine, kept, wide, foreign]) await store.endpoints.createEndpoint(e);
      const msg = messageOf(ws, "order.paid");
      const statuses: DeliveryStatusName[] = [
        "queued",
        "pending_retry",
        "scheduled",
        "awaiting_ack",
        "succeeded",
        "failed",
      ];
      const doomed = statuses.map((s) => deliveryOf(msg, mine[0]!.id, s));
      const doomed2 = deliveryOf(msg, mine[1]!.id, "queued");
      const survivors = [deliveryOf(msg, kept.id, "queued"), deliveryOf(msg, wide.id, "queued")];
      await store.messages.acceptMessage(msg, [...doomed, doomed2, ...survivors], []);
      const foreignMsg = messageOf(other, "order.paid");
      const foreignDelivery = deliveryOf(foreignMsg, foreign.id, "queued");
      await store.messages.acceptMessage(foreignMsg, [foreignDelivery], []);

      assert.equal(await store.applications.deleteApplication(other, app.id, at(9), "x", (d) => [statusOf(d)]), null);
      assert.equal(await store.applications.deleteApplication(ws, newId("application"), at(9), "x", () => []), null);
      const result = await store.applications.deleteApplication(ws, app.id, at(9), "application deleted", (d) => [
        statusOf(d),
      ]);
      assert.ok(result);
      assert.deepEqual(result.endpointIds, mine.map((e) => e.id).sort());
      const cancelledIds = [...doomed.slice(0, 4), doomed2].map((d) => d.id).sort();
      assert.deepEqual(result.cancelled.map((d) => d.id).sort(), cancelledIds);
      assert.ok(result.cancelled.every((d) => d.status === "cancelled" && d.lastError === "application deleted"));
      assert.deepEqual(
        result.outbox.map((o) => o.msgId).sort(),
        result.cancelled.map((d) => `${d.id}:cancelled`).sort(),
      );
      assert.ok(result.outbox.every((o) => o.seq > 0));

      assert.equal(await store.applications.getApplication(ws, app.id), null);
      assert.equal(await store.applications.getApplicationByUid(ws, "doomed"), null);
      for (const e of mine) assert.equal(await store.endpoints.getEndpoint(ws, e.id), null, "endpoint deleted");
      assert.equal(
        await store.endpoints.createEndpoint(endpointOf(ws, { applicationId: app.id })),
        false,
        "no endpoint under a deleted application",
      );
      const after = new Map((await store.messages.listDeliveriesOfMessage(ws, msg.id)).map((d) => [d.id, d]));
      for (const d of [...doomed.slice(0, 4), doomed2]) assert.equal(after.get(d.id)?.status, "cancelled");
      assert.equal(after.get(doomed[4]!.id)?.status, "succeeded");
      assert.equal(after.get(doomed[5]!.id)?.status, "failed");
      for (const d of survivors) assert.equal(after.get(d.id)?.status, "queued", "other endpoints untouched");
      assert.equal((await store.messages.listDeliveriesOfMessage(other, foreignMsg.id))[0]?.status, "queued");
      assert.ok(await store.endpoints.getEndpoint(ws, kept.id));
      assert.ok(await store.applications.getApplication(ws, keep.id));
      // Its history stays readable by application (deleted endpoints included).
      const history = await store.deliveries.listDeliveries(
        ws,
        { applicationId: app.id },
        { afterId: undefined, limit: 20 },
      );
      assert.equal(history.length, doomed.length + 1);
      assert.equal(await store.applications.deleteApplication(ws, app.id, at(10), "x", () => []), null, "only once");
      assert.equal(await store.applications.createApplication(applicationOf(ws, { uid: "doomed" })), true);
    });

    void it("portal sessions: only for a live application; a code is exchanged once, atomically; expired codes are not", async () => {
      const ws = await workspace(store);
      const app = applicationOf(ws);
      await store.applications.createApplication(app);
      assert.equal(
        await store.portalSessions.createPortalSession(sessionOf({ ...app, id: newId("application") })),
        false,
        "unknown application",
      );
      const session = sessionOf(app);
      assert.equal(await store.portalSessions.createPortalSession(session), true);

      // 20 concurrent exchanges of one code, each with its own token: exactly one wins.
      const tokens = Array.from({ length: 20 }, (_, i) => `${i}`.padStart(64, "t"));
      const results = await Promise.all(
        tokens.map((t) => store.portalSessions.exchangePortalCode(session.codeHash, t, at(1000))),
      );
      const winners = results.flatMap((r, i) => (r.ok ? [{ r, token: tokens[i]! }] : []));
      assert.equal(winners.length, 1, JSON.stringify(results.map((r) => (r.ok ? "ok" : r.why))));
      assert.ok(results.every((r) => r.ok || r.why === "used"));
      const won = winners[0]!;
      assert.ok(won.r.ok);
      assert.deepEqual(won.r.session, { ...session, tokenHash: won.token, exchangedAt: at(1000) });
      assert.deepEqual(await store.portalSessions.findPortalSessionByTokenHash(won.token), won.r.session);
      for (const t of tokens.filter((t) => t !== won.token)) {
        assert.equal(await store.portalSessions.findPortalSessionByTokenHash(t), null, "losers' tokens never stored");
      }
      assert.deepEqual(await store.portalSessions.exchangePortalCode(session.codeHash, "x".repeat(64), at(2000)), {
        ok: false,
        why: "used",
      });
      assert.deepEqual(await store.portalSessions.exchangePortalCode("n".repeat(64), "y".repeat(64), at(2000)), {
        ok: false,
        why: "unknown",
      });
      const late = sessionOf(app, { codeExpiresAt: at(5000) });
      await store.portalSessions.createPortalSession(late);
      assert.deepEqual(await store.portalSessions.exchangePortalCode(late.codeHash, "z".repeat(64), at(5000)), {
        ok: false,
        why: "expired",
      });
      assert.equal(await store.portalSessions.findPortalSessionByTokenHash("z".repeat(64)), null);

      // Deleting the application ends its sessions; none can be opened for it afterwards.
      await store.applications.deleteApplication(ws, app.id, at(9), "application deleted", () => []);
      assert.equal(await store.portalSessions.findPortalSessionByTokenHash(won.token), null);
      assert.equal(await store.portalSessions.createPortalSession(sessionOf(app)), false);
    });

    void it("endpoints created while their application is deleted: each is either refused or deleted with it", async () => {
      const ws = await workspace(store);
      for (let round = 0; round < 5; round++) {
        const app = applicationOf(ws);
        await store.applications.createApplication(app);
        const creations = Array.from({ length: 8 }, () => endpointOf(ws, { applicationId: app.id }));
        const [deleted, ...created] = await Promise.all([
          store.applications.deleteApplication(ws, app.id, at(9), "application deleted", () => []),
          ...creations.map((e) => store.endpoints.createEndpoint(e)),
        ]);
        assert.ok(deleted);
        const live = await store.endpoints.listEndpoints(ws, { afterId: undefined, limit: 100 }, app.id);
        assert.deepEqual(live, [], "no live endpoint under a deleted application");
        // Every creation that succeeded committed before the deletion, which took it along.
        const accepted = creations.filter((_, i) => created[i] === true).map((e) => e.id);
        assert.deepEqual([...deleted.endpointIds].sort(), accepted.sort());
      }
    });
  });
}
