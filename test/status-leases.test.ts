/**
 * Status leases against real NATS and each database: a worker publishes each recorded attempt's
 * status event straight after the commit, with no outbox row; what a crash, a NATS outage or a
 * failed record statement leaves unpublished still reaches the status stream (by the worker's
 * next renewal, or by the dispatcher once the lease is stale), and the watermark never passes an
 * attempt whose event is not in.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { DeliveryStatusEventSchema } from "../gen/hookstream/internal/v1/jobs_pb.ts";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { createDispatcher } from "../src/dispatcher/dispatcher.ts";
import { hashSecret } from "../src/domain/credentials.ts";
import { newId } from "../src/domain/ids.ts";
import { createOutboxRelay } from "../src/domain/outbox-relay.ts";
import { statusRow } from "../src/domain/outbox-rows.ts";
import type { OutboxPublisher } from "../src/domain/ports.ts";
import type { AttemptRecord, DeliveryRecord, EndpointRecord, MessageRecord } from "../src/domain/records.ts";
import {
  createStatusAnnouncer,
  type AnnounceTicket,
  type StatusAnnouncer,
  type StatusLeaseStore,
} from "../src/domain/status-announcer.ts";
import { connectNats } from "../src/queue/nats-connection.ts";
import { createOutboxPublisher } from "../src/queue/outbox-publisher.ts";
import { ensureStreams, streamNames, type StreamNames } from "../src/queue/streams.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";

const logger = pino({ level: "silent" });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const kind of testDbKinds()) {
  void describe(`status leases on ${kind}`, { timeout: 120_000 }, () => {
    let db: TestDatabase;
    let nats: TestNats;
    let nc: NatsConnection;
    let store: OpenedStore;
    let names: StreamNames;
    let publisher: OutboxPublisher;
    const ws = newId("workspace");
    let endpoint: EndpointRecord;

    before(async () => {
      db = await createTestDatabase(kind);
      await migrateDatabase(db.config, { logger });
      store = await openStore(db.config, { logger });
      nats = await startNatsServer();
      nc = await connectNats({ url: nats.url, name: "status-lease-test", logger });
      names = streamNames(`L${Math.random().toString(36).slice(2, 8)}`);
      await ensureStreams(nc, names);
      publisher = createOutboxPublisher(nc, names);
      const now = new Date();
      await store.workspaces.createWorkspace({ id: ws, name: "w", createdAt: now }, hashSecret(`hsm_${ws}`));
      endpoint = {
        id: newId("endpoint"),
        workspaceId: ws,
        url: "http://127.0.0.1:9/",
        description: "",
        metadata: {},
        enabled: true,
        headers: {},
        timeoutMs: 5000,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        previousSecret: null,
        previousSecretExpiresAt: null,
        createdAt: now,
        updatedAt: now,
      };
      await store.endpoints.createEndpoint(endpoint);
    });

    after(async () => {
      await nc?.close();
      await nats?.stop();
      await store?.close();
      await db?.drop();
    });

    /** A queued delivery, committed (its own publish is not what these tests are about). */
    async function queuedDelivery(): Promise<DeliveryRecord> {
      const now = new Date();
      const message: MessageRecord = {
        id: newId("message"),
        workspaceId: ws,
        eventType: "order.paid",
        payload: new TextEncoder().encode('{"n":1}'),
        contentType: "application/json",
        idempotencyKey: newId("message"),
        payloadHash: "x",
        createdAt: now,
      };
      const delivery: DeliveryRecord = {
        id: newId("delivery"),
        workspaceId: ws,
        messageId: message.id,
        endpointId: endpoint.id,
        eventType: message.eventType,
        status: "queued",
        attemptCount: 0,
        nextAttemptAt: null,
        lastResponseStatus: 0,
        lastError: "",
        createdAt: now,
        updatedAt: now,
      };
      const { outcome } = await store.messages.acceptMessage(message, [delivery], []);
      assert.ok(outcome.created);
      return delivery;
    }

    /** What the worker does for one successful attempt up to (not including) publishing its event. */
    async function recordUnder(
      announcer: StatusAnnouncer,
      d: DeliveryRecord,
    ): Promise<{ ticket: AnnounceTicket; attempt: AttemptRecord; delivery: DeliveryRecord }> {
      const startedAt = new Date();
      const ticket = announcer.begin(startedAt);
      const attempt: AttemptRecord = {
        id: newId("attempt", startedAt.getTime()),
        workspaceId: ws,
        deliveryId: d.id,
        number: 1,
        startedAt,
        latencyMs: 3,
        requestHeaders: { "webhook-id": d.messageId },
        responseStatus: 200,
        responseHeaders: {},
        responseBody: "ok",
        errorKind: null,
        errorMessage: "",
        nextRetryAt: null,
        recordedBy: announcer.leaseId,
      };
      const now = new Date();
      const recorded = await store.deliveries.recordAttempt({
        attempt,
        delivery: { status: "succeeded", nextAttemptAt: null, lastResponseStatus: 200, lastError: "", updatedAt: now },
        outbox: () => [],
        expected: d,
      });
      assert.ok(recorded.applied);
      assert.deepEqual(recorded.outbox, [], "no outbox row is written for the attempt's event");
      return { ticket, attempt, delivery: recorded.delivery };
    }

    /** Status events on the stream for a delivery: [status, attempt number] in stream order. */
    async function eventsOf(deliveryId: string): Promise<[DeliveryStatus, number][]> {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.status);
      const out: [DeliveryStatus, number][] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(names.status, { seq }).catch(() => null);
        if (m === null) continue;
        const e = fromBinary(DeliveryStatusEventSchema, m.data);
        if (e.delivery?.id === deliveryId) out.push([e.delivery.status, e.attempt?.number ?? 0]);
      }
      return out;
    }

    async function leaseOf(id: string): Promise<{ settledBefore: Date; heartbeatAt: Date } | undefined> {
      const all = await store.statusLeases.staleStatusLeases(new Date(Date.now() + 3_600_000), 100);
      return all.find((l) => l.id === id);
    }

    void it("the dispatcher publishes the events a dead worker recorded and never published", async () => {
      const dead = createStatusAnnouncer({ store: store.statusLeases, publisher, logger, renewIntervalMs: 3_600_000 });
      await dead.start();
      const published = await recordUnder(dead, await queuedDelivery());
      await dead.announce(published.ticket, statusRow(published.delivery, published.attempt, new Date()));
      // The process dies between the commit and the publish of this one.
      const lost = await recordUnder(dead, await queuedDelivery());
      await dead.renew();
      const lease = await leaseOf(dead.leaseId);
      assert.ok(lease !== undefined);
      assert.ok(
        lease.settledBefore.getTime() <= lost.attempt.startedAt.getTime(),
        "the watermark stays before the attempt whose event is not in",
      );
      assert.deepEqual(await eventsOf(lost.delivery.id), []);

      // A live worker's lease, renewed just now, is left alone.
      const alive = createStatusAnnouncer({ store: store.statusLeases, publisher, logger, renewIntervalMs: 3_600_000 });
      await sleep(600);
      await alive.start();
      const aliveOpen = await recordUnder(alive, await queuedDelivery());

      const dispatcher = createDispatcher({
        store: store.deliveries,
        relay: createOutboxRelay(store.outbox, publisher, logger),
        statusLeases: { store: store.statusLeases, publisher, staleAfterMs: 500 },
        logger,
        intervalMs: 50,
      });
      await dispatcher.runOnce();
      assert.deepEqual(await eventsOf(lost.delivery.id), [[DeliveryStatus.SUCCEEDED, 1]], "re-announced once");
      assert.deepEqual(
        await eventsOf(published.delivery.id),
        [[DeliveryStatus.SUCCEEDED, 1]],
        "a repeat of an event that was in is dropped by its msgId",
      );
      assert.equal(await leaseOf(dead.leaseId), undefined, "the dead lease is dropped");
      assert.ok((await leaseOf(alive.leaseId)) !== undefined, "the live lease stays");
      assert.deepEqual(await eventsOf(aliveOpen.delivery.id), [], "the live worker's open attempt is its own");
      await dispatcher.runOnce();
      assert.deepEqual(await eventsOf(lost.delivery.id), [[DeliveryStatus.SUCCEEDED, 1]]);
      await alive.announce(aliveOpen.ticket, statusRow(aliveOpen.delivery, aliveOpen.attempt, new Date()));
      await alive.stop();
      assert.equal(await leaseOf(alive.leaseId), undefined, "a worker that stops with nothing open drops its lease");
    });

    void it("a failed publish is kept and published at the next renewal, holding the watermark back", async () => {
      let broken = true;
      const flaky: OutboxPublisher = {
        publish: (rows) => (broken ? Promise.reject(new Error("NATS is away")) : publisher.publish(rows)),
      };
      const announcer = createStatusAnnouncer({
        store: store.statusLeases,
        publisher: flaky,
        logger,
        renewIntervalMs: 3_600_000,
      });
      await announcer.start();
      const r = await recordUnder(announcer, await queuedDelivery());
      await announcer.announce(r.ticket, statusRow(r.delivery, r.attempt, new Date()));
      await announcer.renew();
      assert.deepEqual(await eventsOf(r.delivery.id), []);
      assert.ok((await leaseOf(announcer.leaseId))!.settledBefore.getTime() <= r.attempt.startedAt.getTime());
      broken = false;
      await announcer.renew();
      assert.deepEqual(await eventsOf(r.delivery.id), [[DeliveryStatus.SUCCEEDED, 1]]);
      assert.ok(
        (await leaseOf(announcer.leaseId))!.settledBefore.getTime() > r.attempt.startedAt.getTime() - 1_000,
        "the watermark moves on once the event is in",
      );
      await announcer.stop();
    });

    void it("an attempt whose record statement failed is looked up: announced when it committed, dropped when not", async () => {
      const announcer = createStatusAnnouncer({
        store: store.statusLeases,
        publisher,
        logger,
        renewIntervalMs: 3_600_000,
        doubtAfterMs: 0,
      });
      await announcer.start();
      // Committed, but the worker saw the statement fail (a connection lost after the commit).
      const committed = await recordUnder(announcer, await queuedDelivery());
      announcer.doubt(committed.ticket, committed.attempt.id);
      // Never committed.
      const never = announcer.begin(new Date());
      announcer.doubt(never, newId("attempt"));
      await announcer.renew();
      assert.deepEqual(await eventsOf(committed.delivery.id), [[DeliveryStatus.SUCCEEDED, 1]]);
      await announcer.stop();
      assert.equal(await leaseOf(announcer.leaseId), undefined, "nothing is left open");
    });

    void it("a worker whose lease cannot be renewed stops recording before the dispatcher may take it over", async () => {
      let down = false;
      const leases: StatusLeaseStore = {
        ...store.statusLeases,
        renewStatusLease: (...args) =>
          down ? Promise.reject(new Error("database is away")) : store.statusLeases.renewStatusLease(...args),
      };
      const announcer = createStatusAnnouncer({
        store: leases,
        publisher,
        logger,
        renewIntervalMs: 3_600_000,
        staleAfterMs: 400,
      });
      await announcer.start();
      assert.equal(announcer.canRecord(), true);
      down = true;
      await assert.rejects(announcer.renew());
      await sleep(250);
      assert.equal(announcer.canRecord(), false, "past half the stale age without a renewal");
      down = false;
      await announcer.renew();
      assert.equal(announcer.canRecord(), true);
      await announcer.stop();
    });
  });
}
