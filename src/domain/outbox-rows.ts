import { create, toBinary } from "@bufbuild/protobuf";
import { DeliveryJobSchema, DeliveryStatusEventSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { attemptView, deliveryView } from "./proto-views.ts";
import type { AttemptRecord, DeliveryRecord, NewOutboxRecord } from "./records.ts";

/**
 * The work-stream row for a delivery's next attempt. Its msgId is delivery id + attempt
 * number, so a re-publish of the same attempt is deduplicated by JetStream.
 */
export function jobRow(d: DeliveryRecord, now: Date): NewOutboxRecord {
  const attemptNumber = d.attemptCount + 1;
  return {
    kind: "job",
    workspaceId: d.workspaceId,
    msgId: `${d.id}:${attemptNumber}`,
    payload: toBinary(
      DeliveryJobSchema,
      create(DeliveryJobSchema, { workspaceId: d.workspaceId, deliveryId: d.id, attemptNumber }),
    ),
    createdAt: now,
  };
}

/** The status-stream row announcing a delivery's state (and the attempt that caused it). */
export function statusRow(d: DeliveryRecord, attempt: AttemptRecord | null, now: Date): NewOutboxRecord {
  return {
    kind: "status",
    workspaceId: d.workspaceId,
    msgId: `${d.id}:${d.status}:${d.attemptCount}`,
    payload: toBinary(
      DeliveryStatusEventSchema,
      create(DeliveryStatusEventSchema, {
        workspaceId: d.workspaceId,
        delivery: deliveryView(d),
        attempt: attempt === null ? undefined : attemptView(attempt),
        eventTimeMs: BigInt(now.getTime()),
      }),
    ),
    createdAt: now,
  };
}
