// Streams, connection and outbox publisher against a private nats-server.
import { create, toBinary } from "@bufbuild/protobuf";
import { jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DeliveryJobSchema } from "../gen/hookstream/internal/v1/jobs_pb.ts";
import { DomainError } from "../src/domain/errors.ts";
import type { OutboxRecord } from "../src/domain/records.ts";
import { connectNats } from "../src/queue/nats-connection.ts";
import { createOutboxPublisher } from "../src/queue/outbox-publisher.ts";
import { ensureStreams, streamNames } from "../src/queue/streams.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";

const logger = pino({ level: "silent" });
let server: TestNats;
let nc: NatsConnection;

before(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: server.url, name: "queue-test", logger });
});

after(async () => {
  await nc.close();
  await server.stop();
});

function jobRow(seq: number, ws: string, deliveryId: string): OutboxRecord {
  const job = create(DeliveryJobSchema, { workspaceId: ws, deliveryId, attemptNumber: 1 });
  return { seq, kind: "job", workspaceId: ws, msgId: `${deliveryId}:1`, payload: toBinary(DeliveryJobSchema, job), createdAt: new Date() };
}

void describe("connectNats", () => {
  void it("fails a first connection with unavailable naming the URL", async () => {
    const url = `nats://127.0.0.1:${server.port + 1}`;
    await assert.rejects(connectNats({ url, name: "nobody-home", logger }), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "unavailable");
      assert.equal(err.reason, "NATS_UNAVAILABLE");
      assert.match(err.message, new RegExp(url.replaceAll(".", "\\.")));
      return true;
    });
  });
});

void describe("ensureStreams", () => {
  void it("creates both streams as specified and is idempotent", async () => {
    const names = streamNames("ENS");
    await ensureStreams(nc, names);
    await ensureStreams(nc, names);
    const jsm = await jetstreamManager(nc);
    const work = await jsm.streams.info(names.work);
    assert.equal(work.config.retention, RetentionPolicy.Workqueue);
    assert.equal(work.config.storage, StorageType.File);
    assert.deepEqual(work.config.subjects, ["ENS.work.>"]);
    assert.equal(work.config.duplicate_window, 120 * 1e9);
    const status = await jsm.streams.info(names.status);
    assert.equal(status.config.retention, RetentionPolicy.Limits);
    assert.equal(status.config.storage, StorageType.File);
    assert.deepEqual(status.config.subjects, ["ENS.status.>"]);
    assert.equal(status.config.max_age, 7 * 24 * 3600 * 1e9);
    assert.equal(status.config.duplicate_window, 120 * 1e9);
    const streams: string[] = [];
    for await (const name of jsm.streams.names()) streams.push(name);
    assert.deepEqual(streams.filter((s) => s.startsWith("ENS_")).sort(), ["ENS_STATUS", "ENS_WORK"]);
  });

  void it("updates an existing stream to new options", async () => {
    const names = streamNames("UPD");
    await ensureStreams(nc, names);
    await ensureStreams(nc, names, { statusMaxAgeMs: 3_600_000 });
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(names.status)).config.max_age, 3600 * 1e9);
  });

  void it("names subjects per workspace under the prefix", () => {
    const names = streamNames("HS");
    assert.equal(names.work, "HS_WORK");
    assert.equal(names.status, "HS_STATUS");
    assert.equal(names.workSubject("ws_1"), "HS.work.ws_1");
    assert.equal(names.statusSubject("ws_1"), "HS.status.ws_1");
    assert.equal(names.statusFilter("ws_1"), "HS.status.ws_1");
    assert.equal(names.workFilter, "HS.work.>");
  });
});

void describe("createOutboxPublisher", () => {
  void it("routes rows by kind and deduplicates a re-published row by msgId", async () => {
    const names = streamNames("PUB");
    await ensureStreams(nc, names);
    const publisher = createOutboxPublisher(nc, names);
    const job = jobRow(1, "ws_a", "dlv_1");
    const status: OutboxRecord = { seq: 2, kind: "status", workspaceId: "ws_a", msgId: "dlv_1:st:1", payload: new Uint8Array([1, 2]), createdAt: new Date() };
    await publisher.publish([job, status]);
    // The same rows again, as after a crash between publish and delete.
    await publisher.publish([job, status]);
    await publisher.publish([job]);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(names.work)).state.messages, 1);
    const statusInfo = await jsm.streams.info(names.status);
    assert.equal(statusInfo.state.messages, 1);
    const stored = await jsm.streams.getMessage(names.status, { seq: statusInfo.state.last_seq });
    assert.equal(stored?.subject, "PUB.status.ws_a");
    assert.deepEqual([...(stored?.data ?? [])], [1, 2]);
  });

  void it("publishes many rows pipelined, all stored in order", async () => {
    const names = streamNames("MANY");
    await ensureStreams(nc, names);
    const publisher = createOutboxPublisher(nc, names);
    const rows = Array.from({ length: 200 }, (_, i) => jobRow(i + 1, "ws_m", `dlv_${i}`));
    await publisher.publish(rows);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names.work);
    assert.equal(info.state.messages, 200);
    const last = await jsm.streams.getMessage(names.work, { seq: info.state.last_seq });
    assert.equal(last?.header.get("Nats-Msg-Id"), "dlv_199:1");
  });

  void it("fails with unavailable when the stream does not exist", async () => {
    const publisher = createOutboxPublisher(nc, streamNames("NOSUCH"));
    await assert.rejects(publisher.publish([jobRow(1, "ws_x", "dlv_x")]), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "unavailable");
      assert.equal(err.reason, "QUEUE_UNAVAILABLE");
      assert.ok(err.cause !== undefined);
      return true;
    });
  });
});
