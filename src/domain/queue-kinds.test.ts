import { fromBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { test } from "node:test";
import { DeliveryJobSchema, QueueSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { declaredStreams, outboxRow, queueOf } from "./queue-kinds.ts";

test("job kinds and event types declare their streams in the schema", () => {
  assert.deepEqual(queueOf(DeliveryJobSchema), { stream: "work", workQueue: true });
  assert.deepEqual(
    declaredStreams().sort((a, b) => a.stream.localeCompare(b.stream)),
    [
      { stream: "status", workQueue: false },
      { stream: "work", workQueue: true },
    ],
  );
});

test("a message type without a queue declaration is refused", () => {
  assert.throws(() => queueOf(QueueSchema), /hookstream\.internal\.v1\.Queue declares no/);
});

test("an outbox row names the declared stream and the given subject, and carries the encoded message", () => {
  const now = new Date(1_700_000_000_000);
  const row = outboxRow(
    DeliveryJobSchema,
    { workspaceId: "ws_1", deliveryId: "dlv_1", attemptNumber: 2 },
    { workspaceId: "ws_1", subject: "ws_1", msgId: "dlv_1:2" },
    now,
  );
  assert.equal(row.stream, "work");
  assert.equal(row.subject, "ws_1");
  assert.equal(row.msgId, "dlv_1:2");
  assert.equal(row.createdAt, now);
  const job = fromBinary(DeliveryJobSchema, row.payload);
  assert.deepEqual([job.workspaceId, job.deliveryId, job.attemptNumber], ["ws_1", "dlv_1", 2]);
});
