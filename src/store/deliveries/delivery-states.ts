import type { DeliveryRecord, DeliveryStatusName } from "../../domain/records.ts";

/** Statuses in which something may still happen to a delivery. */
export const NON_FINAL: DeliveryStatusName[] = [
  "scheduled",
  "queued",
  "delivering",
  "awaiting_ack",
  "pending_retry",
  "held",
];

/** Statuses the dispatcher releases when their time has come. */
export const DUE: DeliveryStatusName[] = ["pending_retry", "scheduled"];

/** The delivery as a cancellation leaves it. */
export function cancelledDelivery(d: DeliveryRecord, reason: string, at: Date): DeliveryRecord {
  return { ...d, status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at };
}
