import type { AutoDisablePolicy, HealthEvent } from "./endpoint-health.ts";
import type {
  AttemptRecord,
  DeliveryRecord,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
} from "./records.ts";

/** What the worker records after one attempt, in one transaction. */
export interface AttemptOutcome {
  attempt: AttemptRecord;
  /** The delivery's new state; attemptCount must equal attempt.number. */
  delivery: Pick<DeliveryRecord, "status" | "nextAttemptAt" | "lastResponseStatus" | "lastError" | "updatedAt">;
  /** Built from the recorded state: usually the status event. */
  outbox: (delivery: DeliveryRecord) => NewOutboxRecord[];
  /**
   * The delivery as the caller loaded it (optional). Lets the store build the recorded state
   * without reading the row first; it is checked, never trusted: a row whose identity differs is
   * re-read, and the attempt-count condition still decides whether anything is written.
   */
  expected?: DeliveryRecord | undefined;
  /**
   * Receives, once the attempt is committed, the deliveries of the operational event committed
   * with it (message.attempt.exhausted when the delivery was dead-lettered), for the caller to
   * publish; they are safe without that (each is its own outbox).
   */
  emitted?: DeliveryRecord[] | undefined;
}

/** Everything needed to perform one attempt. */
export interface AttemptContext {
  delivery: DeliveryRecord;
  message: MessageRecord;
  /** Null when the endpoint was deleted. */
  endpoint: EndpointRecord | null;
}

/**
 * The delivery ledger: the worker's port. Calls are unscoped (the worker is a trusted internal
 * process that reads ids from its own queue).
 */
export interface DeliveryLedger {
  /** Delivery, message and endpoint (null when deleted) for the worker; null if no delivery. */
  loadAttemptContext(deliveryId: string): Promise<AttemptContext | null>;
  /**
   * Records an attempt and the delivery's new state in one transaction, idempotent on
   * (delivery, attempt number): when that attempt is already recorded, or the delivery's
   * attemptCount is no longer number - 1, nothing is written and `applied` is false.
   */
  recordAttempt(
    outcome: AttemptOutcome,
  ): Promise<{ applied: boolean; delivery: DeliveryRecord; outbox: OutboxRecord[] }>;
  /**
   * Cancels a non-final delivery (e.g. its endpoint is gone) with the given reason;
   * returns null when it was already final.
   */
  cancelDelivery(
    deliveryId: string,
    reason: string,
    at: Date,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ delivery: DeliveryRecord; outbox: OutboxRecord[] } | null>;
  /**
   * Applies one attempt's outcome to its endpoint's health (endpoint-health.ts) under a row lock,
   * and disables the endpoint when the rules say so; returns the reason it was disabled by this
   * call, or null (also when the endpoint is gone or was already disabled). A disable writes its
   * endpoint.disabled operational event in the same transaction; its deliveries are pushed onto
   * `emitted` after the commit, for the caller to publish.
   */
  recordEndpointHealth(
    endpointId: string,
    event: HealthEvent,
    at: Date,
    policy: AutoDisablePolicy,
    emitted?: DeliveryRecord[],
  ): Promise<string | null>;
  /**
   * Holds a queued delivery while its endpoint is disabled (status held, the outbox rows
   * `outbox` builds, one transaction). The endpoint's row is read under a share lock, so this
   * cannot interleave with enabling it (which releases held deliveries under an exclusive lock):
   * returns "held", "enabled" (nothing written: the endpoint is enabled after all), "gone" (it
   * was deleted) or "not_queued" (the delivery moved on).
   */
  holdDelivery(
    deliveryId: string,
    endpointId: string,
    at: Date,
    outbox: (held: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ result: "held"; outbox: OutboxRecord[] } | { result: "enabled" | "gone" | "not_queued" }>;
  /** Disables an endpoint (e.g. its receiver answered 410 Gone); false when it was not enabled. */
  disableEndpoint(workspaceId: string, endpointId: string, at: Date): Promise<boolean>;
  /**
   * Ordered endpoints: the earliest delivery of the endpoint created before `deliveryId` (ids
   * are time-sortable, so id order is send order) that has no final outcome yet and is not
   * waiting for its schedule; null when there is none, i.e. `deliveryId` is the head of the
   * endpoint's queue. Read from the committed rows, so every worker sees the same head.
   */
  earlierOpenDelivery(
    endpointId: string,
    deliveryId: string,
  ): Promise<Pick<DeliveryRecord, "id" | "status" | "nextAttemptAt"> | null>;
}
