/**
 * GetDeliveryStats over the store on both databases: counts by status, success rate, attempt
 * latency percentiles (nearest rank) and the time series of a window, with the endpoint,
 * application and event type filters, a portal session's scope and another workspace's view;
 * and every bad field of the request reported at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { getDeliveryStats, type DeliveryStatsInput } from "../src/domain/delivery-stats.ts";
import { DomainError } from "../src/domain/errors.ts";
import { newId } from "../src/domain/ids.ts";
import type { DeliveryRecord, DeliveryStatusName, EndpointRecord, MessageRecord } from "../src/domain/records.ts";
import { workspaceScope } from "../src/domain/scope.ts";
import { Attempt } from "../src/store/entities.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";

const logger = pino({ level: "silent" });
const T0 = new Date("2026-12-01T10:00:00.000Z");
const MIN = 60_000;
const at = (minutes: number): Date => new Date(T0.getTime() + minutes * MIN);

function endpointOf(workspaceId: string, applicationId: string | null = null): EndpointRecord {
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
    applicationId,
  };
}

const input = (overrides: Partial<DeliveryStatsInput> = {}): DeliveryStatsInput => ({
  windowMs: 120 * MIN,
  endTime: at(120),
  bucketMs: 60 * MIN,
  endpointId: "",
  applicationId: "",
  eventType: "",
  ...overrides,
});

for (const kind of testDbKinds()) {
  void describe(`delivery stats on ${kind}`, () => {
    let db: TestDatabase;
    let store: OpenedStore;
    let ws: string;
    let appId: string;
    let a: EndpointRecord;
    let b: EndpointRecord;

    /** One message to `ep` created at `minute`, its delivery in `status`, with attempts (minute, latency, status). */
    async function seed(
      ep: EndpointRecord,
      minute: number,
      status: DeliveryStatusName,
      attempts: [number, number, number][],
      eventType = "order.paid",
    ): Promise<void> {
      const message: MessageRecord = {
        id: newId("message"),
        workspaceId: ws,
        eventType,
        payload: new TextEncoder().encode("{}"),
        contentType: "application/json",
        idempotencyKey: newId("message"),
        payloadHash: "ab".repeat(32),
        createdAt: at(minute),
      };
      const delivery: DeliveryRecord = {
        id: newId("delivery"),
        workspaceId: ws,
        messageId: message.id,
        endpointId: ep.id,
        eventType,
        status,
        attemptCount: attempts.length,
        nextAttemptAt: null,
        lastResponseStatus: 0,
        lastError: "",
        createdAt: at(minute),
        updatedAt: at(minute),
      };
      await store.messages.acceptMessage(message, [delivery], []);
      const em = store.orm.em.fork();
      for (const [i, [m, latencyMs, responseStatus]] of attempts.entries()) {
        await em.insert(Attempt, {
          id: newId("attempt"),
          workspaceId: ws,
          deliveryId: delivery.id,
          number: i + 1,
          startedAt: at(m),
          latencyMs,
          requestHeaders: {},
          responseStatus,
          responseHeaders: {},
          responseBody: "",
          errorKind: responseStatus >= 200 && responseStatus < 300 ? null : "http_status",
          errorMessage: "",
          nextRetryAt: null,
        });
      }
    }

    before(async () => {
      db = await createTestDatabase(kind);
      await migrateDatabase(db.config, { logger });
      store = await openStore(db.config, { logger });
      ws = newId("workspace");
      await store.workspaces.createWorkspace({ id: ws, name: "stats", createdAt: T0 }, `hash-${ws}`);
      appId = newId("application");
      await store.applications.createApplication({
        id: appId,
        workspaceId: ws,
        environmentId: `env_${ws.slice(3)}`,
        name: "A",
        uid: null,
        metadata: {},
        createdAt: T0,
        updatedAt: T0,
      });
      a = endpointOf(ws);
      b = endpointOf(ws, appId);
      await store.endpoints.createEndpoint(a);
      await store.endpoints.createEndpoint(b);
      await seed(a, -60, "succeeded", [[-60, 999, 200]]); // before the window
      await seed(a, 10, "succeeded", [[10, 100, 200]]);
      await seed(a, 20, "failed", [
        [20, 200, 500],
        [25, 300, 500],
      ]);
      await seed(b, 70, "succeeded", [[70, 50, 200]], "invoice.paid");
      await seed(b, 80, "queued", []);
      await seed(a, 130, "succeeded", [[130, 999, 200]]); // after the window
    });

    after(async () => {
      await store?.close();
      await db?.drop();
    });

    void it("counts, success rate, latency percentiles and the series of a window", async () => {
      const s = await getDeliveryStats(store.deliveryStats, workspaceScope(ws), input());
      assert.deepEqual(s.start, at(0));
      assert.deepEqual(s.end, at(120));
      assert.equal(s.deliveries, 4);
      assert.deepEqual(s.counts, [
        { status: "failed", count: 1 },
        { status: "queued", count: 1 },
        { status: "succeeded", count: 2 },
      ]);
      assert.equal(s.successRate, 2 / 3);
      assert.equal(s.attempts, 4);
      assert.equal(s.successfulAttempts, 2);
      // Latencies 50, 100, 200, 300: nearest-rank p50 is the 2nd, p95 and p99 the 4th.
      assert.deepEqual(s.latency, { count: 4, averageMs: 162.5, p50Ms: 100, p95Ms: 300, p99Ms: 300 });
      assert.deepEqual(
        s.series.map((p) => ({ ...p, start: p.start.toISOString() })),
        [
          {
            start: at(0).toISOString(),
            deliveries: 2,
            succeeded: 1,
            failed: 1,
            attempts: 3,
            successfulAttempts: 1,
            averageLatencyMs: 200,
          },
          {
            start: at(60).toISOString(),
            deliveries: 2,
            succeeded: 1,
            failed: 0,
            attempts: 1,
            successfulAttempts: 1,
            averageLatencyMs: 50,
          },
        ],
      );
    });

    void it("filters: endpoint, application, event type; a portal's scope; another workspace sees nothing", async () => {
      const byEndpoint = await getDeliveryStats(store.deliveryStats, workspaceScope(ws), input({ endpointId: a.id }));
      assert.equal(byEndpoint.deliveries, 2);
      assert.equal(byEndpoint.attempts, 3);
      const byApp = await getDeliveryStats(store.deliveryStats, workspaceScope(ws), input({ applicationId: appId }));
      assert.equal(byApp.deliveries, 2);
      assert.deepEqual(byApp.latency, { count: 1, averageMs: 50, p50Ms: 50, p95Ms: 50, p99Ms: 50 });
      const byType = await getDeliveryStats(
        store.deliveryStats,
        workspaceScope(ws),
        input({ eventType: "order.paid" }),
      );
      assert.equal(byType.deliveries, 3, "order.paid: the two to a and the queued one to b");
      // A portal session of the application sees its endpoints' deliveries only, and nothing of another application.
      const portal = { workspaceId: ws, applicationId: appId, environmentId: null };
      assert.equal((await getDeliveryStats(store.deliveryStats, portal, input())).deliveries, 2);
      const otherApp = await getDeliveryStats(
        store.deliveryStats,
        portal,
        input({ applicationId: newId("application") }),
      );
      assert.equal(otherApp.deliveries, 0);
      assert.equal(otherApp.series.length, 2, "empty points are kept");
      const other = await getDeliveryStats(store.deliveryStats, workspaceScope(newId("workspace")), input());
      assert.equal(other.deliveries + other.attempts, 0);
      // A 7-day window with the default bucket (window / 24).
      const week = await getDeliveryStats(
        store.deliveryStats,
        workspaceScope(ws),
        input({ windowMs: 7 * 24 * 60 * MIN, bucketMs: undefined, endTime: at(24 * 60) }),
      );
      assert.equal(week.series.length, 24);
      assert.equal(week.deliveries, 6);
      assert.equal(
        week.series.reduce((n, p) => n + p.deliveries, 0),
        6,
      );
    });

    void it("every bad field is reported at once and nothing is read", async () => {
      await assert.rejects(
        getDeliveryStats(
          store.deliveryStats,
          workspaceScope(ws),
          input({ windowMs: 32 * 24 * 60 * MIN, endpointId: "bad", applicationId: "bad", eventType: "a b" }),
        ),
        (e: unknown) =>
          e instanceof DomainError &&
          e.kind === "invalid_argument" &&
          JSON.stringify(e.violations.map((x) => x.field).sort()) ===
            JSON.stringify(["application_id", "endpoint_id", "event_type", "window"]),
      );
      await assert.rejects(
        getDeliveryStats(store.deliveryStats, workspaceScope(ws), input({ bucketMs: 1000 })),
        (e: unknown) => e instanceof DomainError && e.violations[0]?.field === "bucket",
      );
    });
  });
}
