/** Plain records the domain works with; the store maps them to and from its entities. */
import type { RetryOverride } from "./retry-policy.ts";

/** Delivery statuses, spelled as stored (the proto enum names without the prefix, lower case). */
export type DeliveryStatusName =
  | "scheduled"
  | "queued"
  | "delivering"
  | "awaiting_ack"
  | "pending_retry"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "held";

/** Statuses after which nothing more happens to a delivery. */
export const FINAL_STATUSES: ReadonlySet<DeliveryStatusName> = new Set(["succeeded", "failed", "cancelled"]);

/** Why an attempt failed, spelled as stored. */
export type AttemptErrorKindName =
  "timeout" | "dns" | "connect" | "tls" | "refused_by_policy" | "http_status" | "response_too_large";

/**
 * What the workers recorded about an endpoint's attempts (one JSON column; times in milliseconds
 * since the epoch). Written on every failed attempt and on the first success after failures, so a
 * healthy endpoint costs no write.
 */
export interface EndpointHealthState {
  /** Failed attempts in a row since the last success. */
  consecutiveFailures: number;
  /** When the current run of failures began; null while the last attempt succeeded. */
  failingSinceMs: number | null;
  lastFailureAtMs: number | null;
  lastFailureKind: AttemptErrorKindName | null;
  /** Short description of the last failure ("HTTP 503", …). */
  lastFailure: string;
  /** Why Hookstream disabled the endpoint; "" when it did not. */
  disabledReason: string;
  disabledAtMs: number | null;
}

/** A tenant. */
export interface WorkspaceRecord {
  id: string;
  name: string;
  createdAt: Date;
  /** How long payloads are kept; 0 or absent means the installation's default. */
  payloadRetentionMs?: number | undefined;
}

/** Which RPCs an API key may call: the producer's or the management ones. */
export type ApiKeyScopeName = "producer" | "management";

/** Live or test key (visible in the secret's prefix). */
export type ApiKeyModeName = "live" | "test";

/** A workspace API key (the secret itself is only ever stored as a hash). */
export interface ApiKeyRecord {
  id: string;
  workspaceId: string;
  label: string;
  secretPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
  scope: ApiKeyScopeName;
  mode: ApiKeyModeName;
  /** Coalesced: written at most once per flush interval per API server. */
  lastUsedAt: Date | null;
  /** A producer key's environment; null for a management-scoped key (the whole workspace). */
  environmentId: string | null;
}

/**
 * A customer's receiver. `secret`/`previousSecret` are stored forms: sealed by the SecretBox
 * (`hsenc:v1:…`), or a plaintext `whsec_` secret written before encryption was configured.
 */
export interface EndpointRecord {
  id: string;
  workspaceId: string;
  /** The environment it lives in (absent in older fixtures: the workspace's default one). */
  environmentId?: string | undefined;
  url: string;
  description: string;
  metadata: Record<string, string>;
  enabled: boolean;
  headers: Record<string, string>;
  timeoutMs: number;
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** 202 answers wait for the receiver's signed ack or nack (absent: false). */
  asyncAck?: boolean | undefined;
  /** Most deliveries per second across every worker; 0 or absent for no limit. */
  rateLimit?: number | undefined;
  /** Token bucket size of the rate limit; 0 or absent means rateLimit. */
  rateLimitBurst?: number | undefined;
  /** Ordered (FIFO) delivery: a delivery waits for every earlier one's final outcome (absent: false). */
  ordered?: boolean | undefined;
  /** The endpoint's own retry schedule (a message's override still wins); null or absent: the installation's. */
  retryPolicy?: RetryOverride | null | undefined;
  /** Recorded attempt health; null (or absent) until the first failure. */
  health?: EndpointHealthState | null | undefined;
  /** How deliveries are made (absent: webhook). */
  type?: EndpointTypeName | undefined;
  /** The event types Trigger routes here; empty, null or absent: every type. */
  eventTypes?: readonly string[] | null | undefined;
  /** CEL filter a triggered message must satisfy; "", null or absent: none. */
  filter?: string | null | undefined;
  /** ed25519 endpoints: the `whpk_` public key of `secret` (a sealed `whsk_`); null or absent for HMAC. */
  publicKey?: string | null | undefined;
  /** The `whpk_` public key of `previousSecret` when that is an ed25519 key. */
  previousPublicKey?: string | null | undefined;
  /** mTLS: the client certificate chain in PEM; null or absent when none. */
  clientCertificatePem?: string | null | undefined;
  /** mTLS: the client certificate's private key, sealed like `secret`. */
  clientKey?: string | null | undefined;
  /** The application the endpoint belongs to; null or absent for a workspace-wide endpoint. */
  applicationId?: string | null | undefined;
}

/**
 * A consumer portal session of one application: only hashes of its one-time code and of the
 * token the code is exchanged for are stored.
 */
export interface PortalSessionRecord {
  id: string;
  workspaceId: string;
  applicationId: string;
  codeHash: string;
  /** Null until the code is exchanged. */
  tokenHash: string | null;
  /** Until when the code can be exchanged. */
  codeExpiresAt: Date;
  /** When the session (its token) expires. */
  expiresAt: Date;
  /** When the code was exchanged; null before. */
  exchangedAt: Date | null;
  createdAt: Date;
}

/** One of a producer's customers (Svix's application): endpoints may be scoped to it. */
/** An isolated part of a workspace; see src/domain/environments.ts. */
export interface EnvironmentRecord {
  id: string;
  workspaceId: string;
  name: string;
  /** Unique in the workspace; "default" for the default environment. */
  slug: string;
  /** Event types Trigger refuses in this environment. */
  unpublishedEventTypes: string[];
  createdAt: Date;
  updatedAt: Date;
}

export interface ApplicationRecord {
  id: string;
  workspaceId: string;
  /** The environment it (and its endpoints) live in. */
  environmentId: string;
  name: string;
  /** The producer's own id of the customer, unique in the workspace; null for none. */
  uid: string | null;
  metadata: Record<string, string>;
  createdAt: Date;
  updatedAt: Date;
}

/** Endpoint types, spelled as stored. */
export type EndpointTypeName = "webhook" | "slack";

/** How an endpoint's latest deliveries with an attempt outcome went. */
export interface RecentOutcomes {
  succeeded: number;
  total: number;
}

/** What a producer sent once. `payload` holds the exact bytes that are delivered and signed. */
export interface MessageRecord {
  id: string;
  workspaceId: string;
  /** The environment it was sent in (absent: the workspace's default one). */
  environmentId?: string | undefined;
  eventType: string;
  payload: Uint8Array;
  contentType: string;
  idempotencyKey: string;
  /** sha256 hex of the payload bytes, for idempotency comparisons. */
  payloadHash: string;
  createdAt: Date;
  /** When the retention sweeper deleted the payload (then `payload` is empty); null while kept. */
  payloadDeletedAt?: Date | null | undefined;
  /** When a scheduled message is due (its deliveries wait as "scheduled" until then); null: at once. */
  deliverAt?: Date | null | undefined;
  /** Extra HTTP headers of every attempt (over the endpoint's); null or absent: none. */
  headers?: Record<string, string> | null | undefined;
  /** The producer's metadata; null or absent: none. */
  metadata?: Record<string, string> | null | undefined;
  /** The message's own retry schedule; null or absent: the installation's. */
  retry?: RetryOverride | null | undefined;
}

/** One message to one endpoint. */
export interface DeliveryRecord {
  id: string;
  workspaceId: string;
  messageId: string;
  endpointId: string;
  eventType: string;
  status: DeliveryStatusName;
  attemptCount: number;
  nextAttemptAt: Date | null;
  lastResponseStatus: number;
  lastError: string;
  createdAt: Date;
  updatedAt: Date;
  /**
   * Written only by intake: when the dispatcher checks that the delivery's job was published
   * (see publish-check.ts); never read back into a record.
   */
  publishCheckAt?: Date | null;
}

/** One HTTP try of a delivery; unique on (deliveryId, number). */
export interface AttemptRecord {
  id: string;
  workspaceId: string;
  deliveryId: string;
  number: number;
  startedAt: Date;
  latencyMs: number;
  requestHeaders: Record<string, string>;
  responseStatus: number;
  responseHeaders: Record<string, string>;
  responseBody: string;
  errorKind: AttemptErrorKindName | null;
  errorMessage: string;
  nextRetryAt: Date | null;
  /**
   * The status lease (status-announcer.ts) of the worker that recorded the attempt and publishes
   * its status event straight after the commit; null when an outbox row carries the event.
   */
  recordedBy: string | null;
}

/**
 * A row of the transactional outbox: written in the same transaction as the change it
 * announces, published to JetStream afterwards with `msgId` as Nats-Msg-Id, then deleted.
 */
export interface OutboxRecord {
  /** Store-assigned, increasing; rows are published in this order. */
  seq: number;
  /** Stream key the row is published to ("work", "status"; see the schema's queue declarations). */
  stream: string;
  /** Subject within the stream: published to "<PREFIX>.<stream>.<subject>". */
  subject: string;
  workspaceId: string;
  /** JetStream Nats-Msg-Id, so a re-publish is deduplicated. */
  msgId: string;
  /** Encoded protobuf of the message type that declares `stream` (hookstream.internal.v1). */
  payload: Uint8Array;
  createdAt: Date;
}

/** An outbox row before the store assigns its seq. */
export type NewOutboxRecord = Omit<OutboxRecord, "seq">;

/** Keyset page request: ids strictly "after" the cursor in the list's order. */
export interface PageQuery {
  afterId: string | undefined;
  limit: number;
}

/** A kind of event of a workspace, keyed by its name; `schema` is the JSON Schema text, if any. */
export interface EventTypeRecord {
  id: string;
  workspaceId: string;
  name: string;
  description: string;
  schema: string | null;
  archived: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** Routes triggered messages of some event types to one endpoint (see SubscriptionService). */
export interface SubscriptionRecord {
  id: string;
  workspaceId: string;
  endpointId: string;
  eventTypes: string[];
  enabled: boolean;
  /** CEL filter; "" for none. */
  filter: string;
  createdAt: Date;
  updatedAt: Date;
}
