import type {
  ApiKeyRecord,
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
  PageQuery,
  WorkspaceRecord,
} from "./records.ts";

/** Filters of ListDeliveries. */
export interface DeliveryFilter {
  endpointId?: string | undefined;
  messageId?: string | undefined;
  statuses?: readonly DeliveryStatusName[] | undefined;
}

/** Partial update of an endpoint (only the present keys change). */
export type EndpointPatch = Partial<
  Pick<
    EndpointRecord,
    | "url"
    | "description"
    | "metadata"
    | "enabled"
    | "headers"
    | "timeoutMs"
    | "secret"
    | "previousSecret"
    | "previousSecretExpiresAt"
  >
>;

/** Outcome of writing a new message: created, or an earlier message under the same key. */
export type AcceptOutcome =
  { created: true } | { created: false; existing: MessageRecord; deliveries: DeliveryRecord[] };

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
}

/** Everything needed to perform one attempt. */
export interface AttemptContext {
  delivery: DeliveryRecord;
  message: MessageRecord;
  /** Null when the endpoint was deleted. */
  endpoint: EndpointRecord | null;
}

/**
 * The persistence port. Every method is one transaction; every read is scoped to a workspace
 * except where the caller is a trusted internal process (worker, dispatcher).
 * Errors: a database that cannot be reached surfaces as DomainError("unavailable").
 */
export interface Store {
  /** Checks the database answers (readiness). */
  ping(): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;

  createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void>;
  findWorkspaceByTokenHash(managementTokenHash: string): Promise<WorkspaceRecord | null>;

  createApiKey(key: ApiKeyRecord, secretHash: string): Promise<void>;
  /** The key with this secret hash, revoked or not (the caller checks revokedAt). */
  findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | null>;
  /** Newest first. */
  listApiKeys(workspaceId: string, page: PageQuery): Promise<ApiKeyRecord[]>;
  /** Sets revokedAt if unset; returns the key, or null when not in the workspace. */
  revokeApiKey(workspaceId: string, id: string, at: Date): Promise<ApiKeyRecord | null>;

  createEndpoint(ep: EndpointRecord): Promise<void>;
  /** Null when missing, deleted, or in another workspace. */
  getEndpoint(workspaceId: string, id: string): Promise<EndpointRecord | null>;
  /** Newest first, deleted ones excluded. */
  listEndpoints(workspaceId: string, page: PageQuery): Promise<EndpointRecord[]>;
  /** Applies the patch and sets updatedAt; null when not found. */
  updateEndpoint(workspaceId: string, id: string, patch: EndpointPatch, at: Date): Promise<EndpointRecord | null>;
  /**
   * Marks the endpoint deleted and cancels its non-final deliveries, writing the outbox rows
   * `outbox` builds for each cancelled delivery; returns null when not found.
   */
  deleteEndpoint(
    workspaceId: string,
    id: string,
    at: Date,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null>;

  /** The message stored under this idempotency key, with its deliveries. */
  findMessageByIdempotencyKey(
    workspaceId: string,
    key: string,
  ): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] } | null>;
  /**
   * Writes message, deliveries and outbox rows in one transaction. When another message holds
   * the same (workspace, idempotency key), writes nothing and returns it (unique constraint,
   * so concurrent senders cannot both win).
   */
  acceptMessage(
    message: MessageRecord,
    deliveries: DeliveryRecord[],
    outbox: NewOutboxRecord[],
  ): Promise<{ outcome: AcceptOutcome; outbox: OutboxRecord[] }>;
  getMessage(workspaceId: string, id: string): Promise<MessageRecord | null>;
  /** Deliveries of a message, oldest first. */
  listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]>;

  getDelivery(workspaceId: string, id: string): Promise<DeliveryRecord | null>;
  /** Newest first. */
  listDeliveries(workspaceId: string, filter: DeliveryFilter, page: PageQuery): Promise<DeliveryRecord[]>;
  /** Oldest first; afterId is an attempt id. */
  listAttempts(workspaceId: string, deliveryId: string, page: PageQuery): Promise<AttemptRecord[]>;

  /** Unpublished outbox rows created at or before `createdBefore`, in seq order. */
  pendingOutbox(createdBefore: Date, limit: number): Promise<OutboxRecord[]>;
  /** Deletes published rows. */
  deleteOutbox(seqs: readonly number[]): Promise<void>;

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
}

/**
 * Publishes outbox rows to JetStream: kind "job" to the work stream, "status" to the status
 * stream (subject per workspace), each with its msgId as Nats-Msg-Id, in the given order.
 * Resolves once every row is stored by JetStream; throws DomainError("unavailable") otherwise.
 */
export interface OutboxPublisher {
  publish(rows: readonly OutboxRecord[]): Promise<void>;
}

/** One stored status event, with its position in the status stream. */
export interface StatusFeedItem {
  /** Stream sequence: the resume point. */
  seq: number;
  /** Encoded hookstream.internal.v1.DeliveryStatusEvent. */
  payload: Uint8Array;
}

/** Reads the status stream of one workspace, from any API server. */
export interface StatusFeed {
  /**
   * Status events of the workspace, in stream order, starting right after `afterSeq` (or with
   * events stored from now on when undefined), until `signal` aborts. Throws
   * DomainError("invalid_argument") when afterSeq is past the stream's end or already expired
   * ("RESUME_TOKEN_EXPIRED" as failed_precondition), and "unavailable" when NATS is down.
   */
  watch(workspaceId: string, afterSeq: number | undefined, signal: AbortSignal): AsyncIterable<StatusFeedItem>;
}
