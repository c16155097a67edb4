// Streams, connection and outbox publisher against a private nats-server.
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
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
  return {
    seq,
    stream: "work",
    subject: ws,
    workspaceId: ws,
    msgId: `${deliveryId}:1`,
    payload: toBinary(DeliveryJobSchema, job),
    createdAt: new Date(),
  };
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
  void it("routes rows by stream and subject and deduplicates a re-published row by msgId", async () => {
    const names = streamNames("PUB");
    await ensureStreams(nc, names);
    const publisher = createOutboxPublisher(nc, names);
    const job = jobRow(1, "ws_a", "dlv_1");
    const status: OutboxRecord = {
      seq: 2,
      stream: "status",
      subject: "ws_a",
      workspaceId: "ws_a",
      msgId: "dlv_1:st:1",
      payload: new Uint8Array([1, 2]),
      createdAt: new Date(),
    };
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
    await assert.rejects(publisher.publish([jobRow(1, "ws_x", "dlv_x")]), queueUnavailable(/no responders/));
  });

  void it("publishes 1,000 rows in one call, all stored in order under their msgIds", async () => {
    const names = streamNames("THOUSAND");
    await ensureStreams(nc, names);
    const publisher = createOutboxPublisher(nc, names);
    const rows = Array.from({ length: 1000 }, (_, i) => jobRow(i + 1, `ws_${i % 7}`, `dlv_${i}`));
    await publisher.publish(rows);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names.work);
    assert.equal(info.state.messages, 1000);
    assert.equal(info.state.first_seq, 1);
    for (let seq = 1; seq <= 1000; seq++) {
      const stored = await jsm.streams.getMessage(names.work, { seq });
      assert.equal(stored?.header.get("Nats-Msg-Id"), `dlv_${seq - 1}:1`);
      assert.equal(stored.subject, `THOUSAND.work.ws_${(seq - 1) % 7}`);
    }
    // All of them again, from another publisher (as after a crash): every one is a duplicate.
    await createOutboxPublisher(nc, names).publish(rows);
    assert.equal((await jsm.streams.info(names.work)).state.messages, 1000);
  });

  void it("keeps calls apart: concurrent calls each resolve once their own rows are stored", async () => {
    const names = streamNames("CONC");
    await ensureStreams(nc, names);
    const publisher = createOutboxPublisher(nc, names);
    const calls = Array.from({ length: 50 }, (_, c) =>
      publisher.publish([jobRow(0, "ws_c", `dlv_${c}_a`), jobRow(0, "ws_c", `dlv_${c}_b`)]),
    );
    // One call in the middle fails (its stream is missing) without disturbing the others.
    const broken = assert.rejects(
      createOutboxPublisher(nc, streamNames("CONCX")).publish([jobRow(0, "ws_c", "dlv_x")]),
      queueUnavailable(),
    );
    await Promise.all(calls);
    await broken;
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(names.work)).state.messages, 100);
  });

  void it("rejects a call when a PubAck carries a JetStream error", async () => {
    const names = streamNames("FULL");
    const jsm = await jetstreamManager(nc);
    // A stream that accepts one message and refuses the rest.
    await jsm.streams.add({
      name: names.work,
      subjects: [names.workFilter],
      storage: StorageType.Memory,
      max_msgs: 1,
      discard: DiscardPolicy.New,
    });
    const publisher = createOutboxPublisher(nc, names);
    await publisher.publish([jobRow(1, "ws_f", "dlv_1")]);
    await assert.rejects(
      publisher.publish([jobRow(2, "ws_f", "dlv_2")]),
      queueUnavailable(/JetStream error 503.*maximum messages/),
    );
    // The same publisher goes on working for rows the stream takes (a duplicate is acked).
    await publisher.publish([jobRow(1, "ws_f", "dlv_1")]);
  });

  void it("rejects a call whose rows land in a stream that is not ours", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "FOREIGN", subjects: ["ALIEN.work.>"], storage: StorageType.Memory });
    const publisher = createOutboxPublisher(nc, streamNames("ALIEN"));
    await assert.rejects(
      publisher.publish([jobRow(1, "ws_a", "dlv_1")]),
      queueUnavailable(/unexpected stream FOREIGN/),
    );
  });

  void it("rejects a call after its timeout when nothing acknowledges, and drops the late PubAcks", async () => {
    const names = streamNames("SILENT");
    const held: string[] = [];
    // Something listens on the subject (so no "no responders") but never answers in time.
    const listener = nc.subscribe(names.workFilter, { callback: (_err, msg) => void held.push(msg.reply ?? "") });
    const publisher = createOutboxPublisher(nc, names, { timeoutMs: 200 });
    await assert.rejects(
      publisher.publish([jobRow(1, "ws_s", "dlv_1"), jobRow(2, "ws_s", "dlv_2")]),
      queueUnavailable(/no PubAck within 200 ms for 2 rows/),
    );
    assert.equal(held.length, 2);
    // The PubAcks come late: they are dropped, and a later call still needs its own.
    for (const reply of held) nc.publish(reply, JSON.stringify({ stream: names.work, seq: 1 }));
    await nc.flush();
    await assert.rejects(publisher.publish([jobRow(3, "ws_s", "dlv_3")]), queueUnavailable(/no PubAck/));
    listener.unsubscribe();
  });
});

void describe("createOutboxPublisher across server outages", () => {
  let own: TestNats;
  let ownNc: NatsConnection;
  const names = streamNames("OUT");

  before(async () => {
    own = await startNatsServer();
    ownNc = await connectNats({ url: own.url, name: "queue-outage-test", logger });
    await ensureStreams(ownNc, names);
  });

  after(async () => {
    if (!ownNc.isClosed()) await ownNc.close();
    await own.stop();
  });

  void it(
    "fails outstanding calls when the connection drops, and works again after a restart",
    { timeout: 60_000 },
    async () => {
      const publisher = createOutboxPublisher(ownNc, names, { timeoutMs: 120_000 });
      await publisher.publish([jobRow(1, "ws_o", "dlv_1")]);
      // A call that will never be acknowledged (a listener that does not answer, no stream).
      const silentNames = streamNames("OUTSILENT");
      ownNc.subscribe(silentNames.workFilter, { callback: () => undefined });
      const waiting = createOutboxPublisher(ownNc, silentNames, { timeoutMs: 120_000 }).publish([
        jobRow(2, "ws_o", "dlv_2"),
      ]);
      const failed = assert.rejects(waiting, queueUnavailable(/connection lost/));
      await ownNc.flush();
      // The server goes away: the call fails on the disconnect, long before its timeout.
      await own.restart();
      await failed;
      // Once reconnected, the long-lived reply subscription is back and PubAcks flow again.
      await eventually(async () => {
        try {
          await publisher.publish([jobRow(3, "ws_o", "dlv_3")]);
          return true;
        } catch (err) {
          assert.ok(err instanceof DomainError && err.reason === "QUEUE_UNAVAILABLE", String(err));
          return false;
        }
      });
      await publisher.publish([jobRow(1, "ws_o", "dlv_1")]);
      const jsm = await jetstreamManager(ownNc);
      assert.equal((await jsm.streams.info(names.work)).state.messages, 2);
    },
  );

  void it(
    "rejects within its timeout while the server is stopped, and at once on a closed connection",
    { timeout: 60_000 },
    async () => {
      const publisher = createOutboxPublisher(ownNc, names);
      await eventually(async () => {
        try {
          await publisher.publish([jobRow(4, "ws_o", "dlv_4")]);
          return true;
        } catch {
          return false;
        }
      });
      await own.stop();
      await assert.rejects(publisher.publish([jobRow(5, "ws_o", "dlv_5")]), queueUnavailable());
      await ownNc.close();
      await assert.rejects(publisher.publish([jobRow(6, "ws_o", "dlv_6")]), queueUnavailable(/closed/));
    },
  );
});

/** An assert.rejects check for DomainError("unavailable", "QUEUE_UNAVAILABLE") with a cause. */
function queueUnavailable(message?: RegExp): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof DomainError, String(err));
    assert.equal(err.kind, "unavailable");
    assert.equal(err.reason, "QUEUE_UNAVAILABLE");
    assert.ok(err.cause !== undefined);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  };
}

/** Polls `check` until it holds (server restarts take a while; no wall-clock assertion). */
async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail("timed out waiting for the condition");
}
