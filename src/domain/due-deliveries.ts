import type { DeliveryRecord, NewOutboxRecord, OutboxRecord } from "./records.ts";

/** The dispatcher's port: deliveries whose time has come (retries, schedules). */
export interface DueReleaser {
  /**
   * Moves up to `limit` deliveries whose status is pending_retry or scheduled and whose
   * nextAttemptAt <= now to queued, writing the outbox rows `outbox` builds for each, in one
   * transaction; concurrent callers get disjoint rows (SKIP LOCKED on PostgreSQL).
   */
  releaseDue(
    now: Date,
    limit: number,
    outbox: (released: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ released: DeliveryRecord[]; outbox: OutboxRecord[] }>;
}
