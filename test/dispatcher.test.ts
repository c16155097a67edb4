/**
 * The dispatcher against real NATS and each database: work a crash left committed but
 * unpublished reaches JetStream through the sweep, and due retries are queued again, each
 * exactly once on the work stream thanks to the msgId dedupe.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { DeliveryJobSchema } from "../gen/hookstream/internal/v1/jobs_pb.ts";
import { createDispatcher } from "../src/dispatcher/dispatcher.ts";
import { hashSecret } from "../src/domain/credentials.ts";
import { newId } from "../src/domain/ids.ts";
import { createOutboxRelay } from "../src/domain/outbox-relay.ts";
import { jobRow, statusRow } from "../src/domain/outbox-rows.ts";
import type { DeliveryRecord, EndpointRecord, MessageRecord } from "../src/domain/records.ts";
import { connectNats } from "../src/queue/nats-connection.ts";
import { createOutboxPublisher } from "../src/queue/outbox-publisher.ts";
import { ensureStreams, streamNames, type StreamNames } from "../src/queue/streams.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";

const logger = pino({ level: "silent" });

for (const kind of testDbKinds()) {
  void describe(`dispatcher on ${kind}`, { timeout: 120_000 }, () => {
    let db: TestDatabase;
    let nats: TestNats;
    let nc: NatsConnection;
    let store: OpenedStore;
    let names: StreamNames;
    const ws = newId("workspace");
    let endpoint: EndpointRecord;

    before(async () => {
      db = await createTestDatabase(kind);
      await migrateDatabase(db.config, { logger });
      store = await openStore(db.config, { logger });
      nats = await startNatsServer();
      nc = await connectNats({ url: nats.url, name: "dispatcher-test", logger });
      names = streamNames(`D${Math.random().toString(36).slice(2, 8)}`);
      await ensureStreams(nc, names);
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

    /** Accepts one message the way Send does, but never publishes it: a crash right after commit. */
    async function commitWithoutPublishing(status: DeliveryRecord["status"], createdAt: Date): Promise<DeliveryRecord> {
      const message: MessageRecord = {
        id: newId("message"),
        workspaceId: ws,
        eventType: "order.paid",
        payload: new TextEncoder().encode('{"n":1}'),
        contentType: "application/json",
        idempotencyKey: newId("message"),
        payloadHash: "x",
        createdAt,
      };
      const delivery: DeliveryRecord = {
        id: newId("delivery"),
        workspaceId: ws,
        messageId: message.id,
        endpointId: endpoint.id,
        eventType: message.eventType,
        status,
        attemptCount: status === "pending_retry" ? 1 : 0,
        nextAttemptAt: status === "pending_retry" ? new Date(createdAt.getTime() - 1) : null,
        lastResponseStatus: 0,
        lastError: "",
        createdAt,
        updatedAt: createdAt,
      };
      const rows = status === "queued" ? [statusRow(delivery, null, createdAt), jobRow(delivery, createdAt)] : [];
      const { outcome } = await store.messages.acceptMessage(message, [delivery], rows);
      assert.ok(outcome.created);
      return delivery;
    }

    async function jobsOnStream(): Promise<{ deliveryId: string; attemptNumber: number }[]> {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.work);
      const jobs = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(names.work, { seq }).catch(() => null);
        if (m) {
          const job = fromBinary(DeliveryJobSchema, m.data);
          jobs.push({ deliveryId: job.deliveryId, attemptNumber: job.attemptNumber });
        }
      }
      return jobs;
    }

    void it("publishes what a crash left in the outbox, and due retries, exactly once each", async () => {
      const old = new Date(Date.now() - 60_000);
      const orphan = await commitWithoutPublishing("queued", old);
      const retry = await commitWithoutPublishing("pending_retry", old);
      const fresh = await commitWithoutPublishing("queued", new Date());

      const relay = createOutboxRelay(store.outbox, createOutboxPublisher(nc, names), logger);
      const dispatcher = createDispatcher({
        store: store.deliveries,
        relay,
        logger,
        intervalMs: 50,
        outboxMinAgeMs: 5_000,
      });
      await dispatcher.runOnce();
      await relay.drain();

      let jobs = await jobsOnStream();
      assert.deepEqual(
        jobs.map((j) => `${j.deliveryId}:${j.attemptNumber}`).sort(),
        [`${orphan.id}:1`, `${retry.id}:2`].sort(),
        "the orphan (attempt 1) and the due retry (attempt 2); the fresh row is left to its writer",
      );
      const released = await store.deliveries.getDelivery(ws, retry.id);
      assert.equal(released?.status, "queued");
      assert.equal(released?.nextAttemptAt, null);

      // A second round and a re-publish of the same rows add nothing: the sweep deleted the
      // published rows and JetStream drops a repeated Nats-Msg-Id.
      await dispatcher.runOnce();
      await createOutboxPublisher(nc, names).publish(
        (await store.outbox.pendingOutbox(new Date(Date.now() + 60_000), 100)).filter((r) =>
          r.msgId.startsWith(orphan.id),
        ),
      );
      jobs = await jobsOnStream();
      assert.equal(jobs.filter((j) => j.deliveryId === orphan.id).length, 1);

      // The fresh row is swept once it is old enough.
      const eager = createDispatcher({ store: store.deliveries, relay, logger, intervalMs: 50, outboxMinAgeMs: 0 });
      await eager.runOnce();
      await relay.drain();
      jobs = await jobsOnStream();
      assert.equal(jobs.filter((j) => j.deliveryId === fresh.id).length, 1);
      assert.deepEqual(await store.outbox.pendingOutbox(new Date(Date.now() + 60_000), 100), []);
    });

    void it("keeps the work when NATS is down and publishes it once NATS is back", async () => {
      const orphan = await commitWithoutPublishing("queued", new Date(Date.now() - 60_000));
      const relay = createOutboxRelay(store.outbox, createOutboxPublisher(nc, names), logger);
      const dispatcher = createDispatcher({
        store: store.deliveries,
        relay,
        logger,
        intervalMs: 50,
        outboxMinAgeMs: 0,
      });
      await nats.down();
      await assert.rejects(dispatcher.runOnce());
      assert.equal(
        (await store.outbox.pendingOutbox(new Date(Date.now() + 60_000), 100)).length,
        2,
        "nothing was lost",
      );
      await nats.up();
      for (
        let i = 0;
        i < 100 && (await store.outbox.pendingOutbox(new Date(Date.now() + 60_000), 100)).length > 0;
        i++
      ) {
        await dispatcher.runOnce().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
      await relay.drain();
      const jobs = await jobsOnStream();
      assert.equal(jobs.filter((j) => j.deliveryId === orphan.id).length, 1);
    });
  });
}
