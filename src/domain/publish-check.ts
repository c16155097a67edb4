/**
 * Publish checks: the outbox without outbox rows for the hot path. A Send (or Trigger) writes its
 * delivery queued with `publishCheckAt` = accept time + a grace period and, right after the commit,
 * publishes the delivery's "queued" status event and its job straight from memory. The delivery row
 * itself is the durable record of that publish: a dispatcher sweep re-publishes every delivery
 * still queued once its check is due (its msgIds derive from the row, so JetStream drops a
 * re-publish within its duplicate window), then clears the check. A crash between commit and
 * publish, or NATS being down, leaves the check due, so nothing committed is lost; a delivery the
 * worker moved on before its check left the partial index and costs nothing. Saves the outbox's
 * insert and delete of two rows per delivery (4 of 10 row writes per delivery on PostgreSQL).
 */
import type { OutboxPublisher } from "./ports.ts";
import { jobRow, statusRow } from "./outbox-rows.ts";
import type { DeliveryRecord, NewOutboxRecord } from "./records.ts";

/**
 * How long after accepting a delivery its publish is checked: long enough that a delivery worked
 * off promptly is never checked (a check costs one update), and shorter than the work stream's
 * two-minute duplicate window, so a re-publish of a job that did go out is dropped.
 */
export const DEFAULT_PUBLISH_CHECK_DELAY_MS = 10_000;

/** Publishes rows that were committed only as the delivery rows they derive from. */
export interface DirectPublisher {
  /** Publishes right after the commit; on failure leaves them to the publish check. Resolves true when published. */
  publishDirect(rows: readonly NewOutboxRecord[]): Promise<boolean>;
}

/** The dispatcher's port over deliveries with a publish check. */
export interface PublishChecks {
  /** Deliveries still queued whose publishCheckAt <= now, earliest check first, at most `limit`. */
  duePublishChecks(now: Date, limit: number): Promise<DeliveryRecord[]>;
  /** Clears the check of these deliveries: their rows are in JetStream. */
  confirmPublished(ids: readonly string[]): Promise<void>;
}

/** The rows a queued delivery stands for: its "queued" status event first, then its job. */
export function queuedRows(d: DeliveryRecord, now: Date): NewOutboxRecord[] {
  return [statusRow(d, null, now), jobRow(d, now)];
}

/**
 * Publishes committed queued deliveries (each one's status event, then its job) straight after
 * the commit when the relay can; a failure, or a relay that cannot, leaves them to their publish
 * check.
 */
export async function publishQueued(
  relay: Partial<DirectPublisher>,
  deliveries: readonly DeliveryRecord[],
  now: Date,
): Promise<void> {
  if (deliveries.length === 0 || relay.publishDirect === undefined) return;
  await relay.publishDirect(deliveries.flatMap((d) => queuedRows(d, now)));
}

/** A new delivery's check time. */
export function publishCheckAt(now: Date, delayMs: number = DEFAULT_PUBLISH_CHECK_DELAY_MS): Date {
  return new Date(now.getTime() + delayMs);
}

/**
 * One round of checks: re-publishes up to `limit` due deliveries' rows and confirms them; returns
 * how many. A failed publish throws and leaves every check due for the next round.
 */
export async function sweepPublishChecks(
  store: PublishChecks,
  publisher: OutboxPublisher,
  now: Date,
  limit: number,
): Promise<number> {
  const due = await store.duePublishChecks(now, limit);
  if (due.length === 0) return 0;
  await publisher.publish(due.flatMap((d) => queuedRows(d, now)));
  await store.confirmPublished(due.map((d) => d.id));
  return due.length;
}
