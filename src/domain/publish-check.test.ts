import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { DeliveryJobSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { createOutboxRelay } from "./outbox-relay.ts";
import type { OutboxPublisher } from "./ports.ts";
import { publishCheckAt, queuedRows, sweepPublishChecks, type PublishChecks } from "./publish-check.ts";
import type { DeliveryRecord, NewOutboxRecord } from "./records.ts";

const t0 = new Date("2026-12-02T12:00:00.000Z");

const delivery = (id: string, status: DeliveryRecord["status"], checkAt: Date | null): DeliveryRecord => ({
  id,
  workspaceId: "ws_a",
  messageId: `msg_${id}`,
  endpointId: "ep_a",
  eventType: "e.t",
  status,
  attemptCount: 0,
  nextAttemptAt: null,
  lastResponseStatus: 0,
  lastError: "",
  createdAt: t0,
  updatedAt: t0,
  publishCheckAt: checkAt,
});

// In-memory deliveries: the port as the store implements it (queued and due only).
function memoryChecks(rows: DeliveryRecord[]): PublishChecks & { rows: DeliveryRecord[] } {
  return {
    rows,
    duePublishChecks: async (now, limit) =>
      rows.filter((d) => d.status === "queued" && d.publishCheckAt != null && d.publishCheckAt <= now).slice(0, limit),
    confirmPublished: async (ids) => {
      for (const d of rows) if (ids.includes(d.id)) d.publishCheckAt = null;
    },
  };
}

const quiet = { warn: () => undefined, error: () => undefined };

test("a delivery's rows are the same whenever they are built, so a re-publish is deduplicated", () => {
  const d = delivery("dlv_1", "queued", publishCheckAt(t0));
  const first = queuedRows(d, t0);
  const later = queuedRows(d, new Date(t0.getTime() + 60_000));
  assert.deepEqual(
    first.map((r) => [r.stream, r.msgId]),
    [
      ["status", "dlv_1:queued:0"],
      ["work", `dlv_1:1:${t0.getTime()}`],
    ],
  );
  assert.deepEqual(
    later.map((r) => r.msgId),
    first.map((r) => r.msgId),
  );
  const job = fromBinary(DeliveryJobSchema, first[1]!.payload);
  assert.equal(job.deliveryId, "dlv_1");
  assert.equal(job.attemptNumber, 1);
  assert.equal(publishCheckAt(t0, 2_500).getTime(), t0.getTime() + 2_500);
});

test("the sweep re-publishes due queued deliveries and confirms them; a failed publish leaves them due", async () => {
  const store = memoryChecks([
    delivery("dlv_due", "queued", new Date(t0.getTime() - 1)),
    delivery("dlv_young", "queued", new Date(t0.getTime() + 5_000)),
    delivery("dlv_done", "succeeded", new Date(t0.getTime() - 1)),
    delivery("dlv_outbox", "queued", null),
  ]);
  let fail = true;
  const published: string[] = [];
  const publisher: OutboxPublisher = {
    publish: async (rows) => {
      if (fail) throw new Error("nats down");
      published.push(...rows.map((r) => r.msgId));
    },
  };
  await assert.rejects(sweepPublishChecks(store, publisher, t0, 100), /nats down/);
  assert.deepEqual(published, []);
  assert.notEqual(store.rows[0]!.publishCheckAt, null, "still due after a failed publish");
  fail = false;
  assert.equal(await sweepPublishChecks(store, publisher, t0, 100), 1);
  assert.deepEqual(published, ["dlv_due:queued:0", `dlv_due:1:${t0.getTime()}`]);
  assert.equal(store.rows[0]!.publishCheckAt, null);
  assert.equal(await sweepPublishChecks(store, publisher, t0, 100), 0, "a confirmed delivery is not checked again");
});

test("publishDirect publishes without touching the outbox and reports a failure instead of throwing", async () => {
  let fail = true;
  const published: NewOutboxRecord[] = [];
  const deleted: number[][] = [];
  const relay = createOutboxRelay(
    { pendingOutbox: async () => [], deleteOutbox: async (seqs) => void deleted.push([...seqs]) },
    {
      publish: async (rows) => {
        if (fail) throw new Error("nats down");
        published.push(...rows);
      },
    },
    quiet,
  );
  const rows = queuedRows(delivery("dlv_1", "queued", t0), t0);
  assert.equal(await relay.publishDirect(rows), false);
  fail = false;
  assert.equal(await relay.publishDirect(rows), true);
  await relay.drain();
  assert.equal(published.length, 2);
  assert.deepEqual(deleted, []);
});
