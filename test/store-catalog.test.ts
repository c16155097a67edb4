/**
 * Conformance suite of the catalog's ports (event types, endpoint routing fields, subscriptions,
 * trigger targets) on SQLite and PostgreSQL, against the MikroORM reference and, on PostgreSQL,
 * with the dialect overrides switched on too, so the implementations of a port cannot drift.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { newId } from "../src/domain/ids.ts";
import type {
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  EventTypeRecord,
  MessageRecord,
  NewOutboxRecord,
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

function eventTypeOf(workspaceId: string, name: string, overrides: Partial<EventTypeRecord> = {}): EventTypeRecord {
  return {
    id: newId("eventType"),
    workspaceId,
    name,
    description: `the ${name} event ✓`,
    schema: null,
    archived: false,
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

const variants = testDbKinds().flatMap((kind): { kind: TestDbKind; overrides: boolean; label: string }[] =>
  kind === "postgresql"
    ? [
        { kind, overrides: true, label: "postgresql (with overrides)" },
        { kind, overrides: false, label: "postgresql (MikroORM reference)" },
      ]
    : [{ kind, overrides: false, label: kind }],
);

for (const { kind, overrides, label } of variants) {
  void describe(`catalog store on ${label}`, () => {
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

    void it("event types: create once per name, get, name-ordered pages with and without archived, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const schema = JSON.stringify({ type: "object", required: ["id"] });
      const paid = eventTypeOf(ws, "order.paid", { schema });
      assert.equal(await store.eventTypes.createEventType(paid), true);
      assert.equal(await store.eventTypes.createEventType(eventTypeOf(ws, "order.paid")), false, "name taken");
      assert.equal(await store.eventTypes.createEventType(eventTypeOf(other, "order.paid")), true, "per workspace");
      for (const name of ["a.first", "order.refunded", "z.last"]) {
        assert.equal(
          await store.eventTypes.createEventType(eventTypeOf(ws, name, { archived: name === "z.last" })),
          true,
        );
      }
      assert.deepEqual(await store.eventTypes.getEventType(ws, "order.paid"), paid);
      assert.equal(await store.eventTypes.getEventType(ws, "order.nope"), null);
      assert.equal((await store.eventTypes.getEventType(other, "order.paid"))?.workspaceId, other);

      const names = async (afterName: string | undefined, limit: number, includeArchived: boolean): Promise<string[]> =>
        (await store.eventTypes.listEventTypes(ws, { afterName, limit, includeArchived })).map((e) => e.name);
      assert.deepEqual(await names(undefined, 10, true), ["a.first", "order.paid", "order.refunded", "z.last"]);
      assert.deepEqual(await names(undefined, 10, false), ["a.first", "order.paid", "order.refunded"]);
      assert.deepEqual(await names(undefined, 2, true), ["a.first", "order.paid"]);
      assert.deepEqual(await names("order.paid", 2, true), ["order.refunded", "z.last"]);
      assert.deepEqual(await names("z.last", 2, true), []);
    });

    void it("updateEventType patches only the given fields, never another workspace's", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      await store.eventTypes.createEventType(eventTypeOf(ws, "user.created", { schema: '{"type":"object"}' }));
      assert.equal(await store.eventTypes.updateEventType(other, "user.created", { archived: true }, at(5)), null);
      const archived = await store.eventTypes.updateEventType(ws, "user.created", { archived: true }, at(5));
      assert.equal(archived?.archived, true);
      assert.equal(archived?.schema, '{"type":"object"}');
      assert.deepEqual(archived?.updatedAt, at(5));
      const cleared = await store.eventTypes.updateEventType(
        ws,
        "user.created",
        { schema: null, description: "" },
        at(6),
      );
      assert.deepEqual(await store.eventTypes.getEventType(ws, "user.created"), cleared);
      assert.equal(cleared?.schema, null);
      assert.equal(cleared?.archived, true);
      assert.equal(cleared?.description, "");
      assert.equal(await store.eventTypes.updateEventType(ws, "user.nope", { archived: false }, at(7)), null);
    });

    void it("endpoint routing fields round-trip, patch, and reach the worker's attempt context", async () => {
      const ws = await workspace(store);
      const plain = endpointOf(ws);
      await store.endpoints.createEndpoint(plain);
      const got = await store.endpoints.getEndpoint(ws, plain.id);
      assert.equal(got?.type, "webhook");
      assert.deepEqual(got?.eventTypes, []);
      assert.equal(got?.filter, "");

      const slack = endpointOf(ws, {
        type: "slack",
        eventTypes: ["order.paid", "order.refunded"],
        filter: 'payload.total > 100 && metadata.region == "eu"',
      });
      await store.endpoints.createEndpoint(slack);
      const read = await store.endpoints.getEndpoint(ws, slack.id);
      assert.equal(read?.type, "slack");
      assert.deepEqual(read?.eventTypes, ["order.paid", "order.refunded"]);
      assert.equal(read?.filter, 'payload.total > 100 && metadata.region == "eu"');
      assert.deepEqual(
        (await store.endpoints.listEndpoints(ws, { afterId: undefined, limit: 10 })).map((e) => [e.id, e.type]),
        [
          [slack.id, "slack"],
          [plain.id, "webhook"],
        ],
      );

      const patched = await store.endpoints.updateEndpoint(
        ws,
        slack.id,
        { type: "webhook", eventTypes: [], filter: "" },
        at(3),
      );
      assert.equal(patched?.type, "webhook");
      assert.deepEqual(patched?.eventTypes, []);
      assert.deepEqual(await store.endpoints.getEndpoint(ws, slack.id), patched);
      await store.endpoints.updateEndpoint(ws, slack.id, { type: "slack", eventTypes: ["a.b"] }, at(4));

      const msg = messageOf(ws, "a.b");
      const d = deliveryOf(msg, slack.id, "queued");
      await store.messages.acceptMessage(msg, [d], []);
      const ctx = await store.deliveries.loadAttemptContext(d.id);
      assert.equal(ctx?.endpoint?.type, "slack");
      assert.equal(ctx?.endpoint?.id, slack.id);
    });

    void it("subscriptions and trigger targets: routed types, disabled endpoints too (held later), isolation, gone with their endpoint", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const all = endpointOf(ws);
      const paidOnly = endpointOf(ws, { eventTypes: ["order.paid"], filter: "payload.a == 1" });
      const refundOnly = endpointOf(ws, { eventTypes: ["order.refunded"] });
      const disabled = endpointOf(ws, { enabled: false });
      const foreign = endpointOf(other);
      for (const e of [all, paidOnly, refundOnly, disabled, foreign]) await store.endpoints.createEndpoint(e);
      const sub = (endpointId: string, workspaceId = ws) => ({
        id: newId("subscription"),
        workspaceId,
        endpointId,
        eventTypes: ["order.paid", "order.shipped"],
        enabled: true,
        filter: 'metadata.region == "eu"',
        createdAt: T0,
        updatedAt: T0,
      });
      const s1 = sub(all.id);
      const s2 = { ...sub(all.id), enabled: false, eventTypes: ["order.paid"], filter: "" };
      const s3 = sub(foreign.id, other);
      for (const s of [s1, s2, s3]) await store.subscriptions.createSubscription(s);

      assert.deepEqual(await store.subscriptions.getSubscription(ws, s1.id), s1);
      assert.equal(await store.subscriptions.getSubscription(other, s1.id), null);
      const ids = async (endpointId: string | undefined, afterId?: string) =>
        (await store.subscriptions.listSubscriptions(ws, endpointId, { afterId, limit: 10 })).map((x) => x.id);
      assert.deepEqual(await ids(undefined), [s2.id, s1.id]);
      assert.deepEqual(await ids(all.id, s2.id), [s1.id]);
      assert.deepEqual(await ids(paidOnly.id), []);

      const targets = await store.subscriptions.findTriggerTargets({ workspaceId: ws, eventType: "order.paid" });
      assert.deepEqual(
        targets.map((t) => [t.endpoint.id, t.subscriptions.map((x) => x.id)]),
        [
          [all.id, [s1.id, s2.id]],
          [paidOnly.id, []],
          [disabled.id, []],
        ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
      );
      assert.equal(targets.find((t) => t.endpoint.id === paidOnly.id)?.endpoint.filter, "payload.a == 1");
      assert.deepEqual(
        (await store.subscriptions.findTriggerTargets({ workspaceId: ws, eventType: "order.refunded" })).map(
          (t) => t.endpoint.id,
        ),
        [all.id, refundOnly.id, disabled.id].sort(),
      );
      assert.equal(targets.find((t) => t.endpoint.id === disabled.id)?.endpoint.enabled, false);
      assert.deepEqual(
        (await store.subscriptions.findTriggerTargets({ workspaceId: other, eventType: "x.y" })).map(
          (t) => t.endpoint.id,
        ),
        [foreign.id],
      );

      const updated = await store.subscriptions.updateSubscription(
        ws,
        s2.id,
        { enabled: true, eventTypes: ["a.b"] },
        at(8),
      );
      assert.equal(updated?.enabled, true);
      assert.deepEqual(updated?.eventTypes, ["a.b"]);
      assert.equal(updated?.filter, "");
      assert.deepEqual(await store.subscriptions.getSubscription(ws, s2.id), updated);
      assert.equal(await store.subscriptions.updateSubscription(other, s2.id, { enabled: false }, at(9)), null);

      assert.equal(await store.subscriptions.deleteSubscription(other, s2.id), false);
      assert.equal(await store.subscriptions.deleteSubscription(ws, s2.id), true);
      assert.equal(await store.subscriptions.deleteSubscription(ws, s2.id), false);
      await store.endpoints.deleteEndpoint(ws, all.id, at(10), () => []);
      assert.equal(await store.subscriptions.getSubscription(ws, s1.id), null, "deleted with its endpoint");
      assert.ok(await store.subscriptions.getSubscription(other, s3.id));
    });

    void it("deleteEventType cancels only that type's non-final deliveries of its workspace, with outbox rows", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      const otherEp = endpointOf(other);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(otherEp);
      await store.eventTypes.createEventType(eventTypeOf(ws, "invoice.sent"));
      await store.eventTypes.createEventType(eventTypeOf(other, "invoice.sent"));
      const msg = messageOf(ws, "invoice.sent");
      const statuses: DeliveryStatusName[] = [
        "queued",
        "pending_retry",
        "scheduled",
        "awaiting_ack",
        "succeeded",
        "failed",
      ];
      const deliveries = statuses.map((s) => deliveryOf(msg, ep.id, s));
      await store.messages.acceptMessage(msg, deliveries, []);
      const unrelated = messageOf(ws, "invoice.paid");
      const unrelatedDelivery = deliveryOf(unrelated, ep.id, "queued");
      await store.messages.acceptMessage(unrelated, [unrelatedDelivery], []);
      const foreign = messageOf(other, "invoice.sent");
      const foreignDelivery = deliveryOf(foreign, otherEp.id, "queued");
      await store.messages.acceptMessage(foreign, [foreignDelivery], []);

      assert.equal(
        await store.eventTypes.deleteEventType(ws, "invoice.nope", at(9), "gone", (d) => [statusOf(d)]),
        null,
      );
      const result = await store.eventTypes.deleteEventType(ws, "invoice.sent", at(9), "event type deleted", (d) => [
        statusOf(d),
      ]);
      assert.ok(result);
      const cancelledIds = deliveries.slice(0, 4).map((d) => d.id);
      assert.deepEqual(
        result.cancelled.map((d) => d.id),
        [...cancelledIds].sort(),
      );
      for (const d of result.cancelled) {
        assert.equal(d.status, "cancelled");
        assert.equal(d.lastError, "event type deleted");
        assert.equal(d.nextAttemptAt, null);
      }
      assert.deepEqual(
        result.outbox.map((o) => o.msgId),
        result.cancelled.map((d) => `${d.id}:cancelled`),
      );
      assert.ok(result.outbox.every((o) => o.seq > 0));
      const after = await store.messages.listDeliveriesOfMessage(ws, msg.id);
      assert.deepEqual(
        after.map((d) => [d.status, d.lastError]),
        [
          ["cancelled", "event type deleted"],
          ["cancelled", "event type deleted"],
          ["cancelled", "event type deleted"],
          ["cancelled", "event type deleted"],
          ["succeeded", ""],
          ["failed", ""],
        ],
      );
      assert.equal((await store.messages.listDeliveriesOfMessage(ws, unrelated.id))[0]?.status, "queued");
      assert.equal((await store.messages.listDeliveriesOfMessage(other, foreign.id))[0]?.status, "queued");
      assert.equal(await store.eventTypes.getEventType(ws, "invoice.sent"), null);
      assert.ok(await store.eventTypes.getEventType(other, "invoice.sent"));
      // The name is free again.
      assert.equal(await store.eventTypes.createEventType(eventTypeOf(ws, "invoice.sent")), true);
    });
  });
}
