import { DeliveryJobSchema, DeliveryStatusEventSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { attemptView, deliveryView } from "./proto-views.ts";
import { outboxRow } from "./queue-kinds.ts";
import type { AttemptRecord, DeliveryRecord, NewOutboxRecord } from "./records.ts";

/**
 * The work-stream row for a delivery's next attempt, on the workspace's subject. Its msgId is
 * delivery id + attempt number + the time the delivery was queued, so a re-publish of the same
 * row is deduplicated by JetStream, while queueing the same attempt again later (a held delivery
 * released when its endpoint is enabled) is not mistaken for one. The job names its endpoint,
 * so a worker can hold it back without loading the delivery.
 */
export function jobRow(d: DeliveryRecord, now: Date): NewOutboxRecord {
  const attemptNumber = d.attemptCount + 1;
  return outboxRow(
    DeliveryJobSchema,
    { workspaceId: d.workspaceId, deliveryId: d.id, attemptNumber, endpointId: d.endpointId },
    {
      workspaceId: d.workspaceId,
      subject: d.workspaceId,
      msgId: `${d.id}:${attemptNumber}:${d.updatedAt.getTime()}`,
    },
    now,
  );
}

/** The status-stream row announcing a delivery's state (and the attempt that caused it). */
export function statusRow(d: DeliveryRecord, attempt: AttemptRecord | null, now: Date): NewOutboxRecord {
  return outboxRow(
    DeliveryStatusEventSchema,
    {
      workspaceId: d.workspaceId,
      delivery: deliveryView(d),
      attempt: attempt === null ? undefined : attemptView(attempt),
      eventTimeMs: BigInt(now.getTime()),
    },
    { workspaceId: d.workspaceId, subject: d.workspaceId, msgId: `${d.id}:${d.status}:${d.attemptCount}` },
    now,
  );
}
