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

/**
 * Statuses of a delivery that holds up the later deliveries of an ordered endpoint: every
 * non-final one except "scheduled" (a scheduled message takes its place when it comes due).
 * The predicate of the partial index delivery_ordered_open_index.
 */
export const ORDER_BLOCKING: DeliveryStatusName[] = ["queued", "delivering", "awaiting_ack", "pending_retry", "held"];

/** Statuses the dispatcher releases when their time has come. */
export const DUE: DeliveryStatusName[] = ["pending_retry", "scheduled"];

/** The delivery as a cancellation leaves it. */
export function cancelledDelivery(d: DeliveryRecord, reason: string, at: Date): DeliveryRecord {
  return { ...d, status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at };
}
