import { defaultEnvironmentId } from "../domain/environments.ts";
import type {
  ApiKeyRecord,
  AttemptRecord,
  DeliveryRecord,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
  WorkspaceRecord,
} from "../domain/records.ts";
import type { RetryOverride } from "../domain/retry-policy.ts";
import type { ApiKey } from "./api-keys/api-key.entity.ts";
import type { Attempt } from "./deliveries/attempt.entity.ts";
import type { Delivery } from "./deliveries/delivery.entity.ts";
import type { Endpoint } from "./endpoints/endpoint.entity.ts";
import type { Message } from "./messages/message.entity.ts";
import type { Outbox } from "./outbox/outbox.entity.ts";
import type { Workspace } from "./workspaces/workspace.entity.ts";

/** A Buffer view of bytes without copying (the blob column type wants a Buffer). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Records carry plain Uint8Arrays so callers comparing bytes never trip over Buffer's subclass.
function toBytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

// JSON columns come back parsed on PostgreSQL; on SQLite the ORM parses them too, but a raw
// string can still appear if a column was written outside the ORM.
function toStringMap(value: unknown): Record<string, string> {
  const parsed: unknown = typeof value === "string" ? JSON.parse(value) : value;
  return parsed !== null && typeof parsed === "object" ? { ...(parsed as Record<string, string>) } : {};
}

function toObject<T>(value: unknown): T {
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
}

/** Workspace row → record. */
export function workspaceRecord(row: Workspace): WorkspaceRecord {
  return { id: row.id, name: row.name, createdAt: row.createdAt, payloadRetentionMs: Number(row.payloadRetentionMs) };
}

/** ApiKey row → record. */
export function apiKeyRecord(row: ApiKey): ApiKeyRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    label: row.label,
    secretPrefix: row.secretPrefix,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt ?? null,
    scope: row.scope,
    mode: row.mode,
    lastUsedAt: row.lastUsedAt ?? null,
    environmentId: row.scope === "management" ? null : (row.environmentId ?? defaultEnvironmentId(row.workspaceId)),
  };
}

/** Endpoint row → record. */
export function endpointRecord(row: Endpoint): EndpointRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    url: row.url,
    description: row.description,
    metadata: toStringMap(row.metadata),
    enabled: Boolean(row.enabled),
    headers: toStringMap(row.headers),
    timeoutMs: row.timeoutMs,
    secret: row.secret,
    previousSecret: row.previousSecret ?? null,
    previousSecretExpiresAt: row.previousSecretExpiresAt ?? null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    asyncAck: Boolean(row.asyncAck),
    ordered: Boolean(row.ordered),
    retryPolicy:
      row.retryPolicy === null || row.retryPolicy === undefined ? null : toObject<RetryOverride>(row.retryPolicy),
    health: row.health ?? null,
    type: row.type ?? "webhook",
    eventTypes: toStringList(row.eventTypes),
    filter: row.filter ?? "",
    publicKey: row.publicKey ?? null,
    previousPublicKey: row.previousPublicKey ?? null,
    clientCertificatePem: row.clientCertificatePem ?? null,
    clientKey: row.clientKey ?? null,
    rateLimit: row.rateLimit ?? 0,
    rateLimitBurst: row.rateLimitBurst ?? 0,
    applicationId: row.applicationId ?? null,
    environmentId: row.environmentId ?? defaultEnvironmentId(row.workspaceId),
  };
}

/** A JSON list of strings as stored (parsed, or text written outside the ORM); null is empty. */
export function toStringList(value: unknown): string[] {
  const parsed: unknown = typeof value === "string" ? JSON.parse(value) : value;
  return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === "string") : [];
}

/** Message row → record. */
export function messageRecord(row: Message): MessageRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    eventType: row.eventType,
    payload: toBytes(row.payload),
    contentType: row.contentType,
    idempotencyKey: row.idempotencyKey,
    payloadHash: row.payloadHash,
    createdAt: row.createdAt,
    payloadDeletedAt: row.payloadDeletedAt ?? null,
    deliverAt: row.deliverAt ?? null,
    headers: row.headers === null || row.headers === undefined ? null : toStringMap(row.headers),
    metadata: row.metadata === null || row.metadata === undefined ? null : toStringMap(row.metadata),
    retry: row.retry === null || row.retry === undefined ? null : toObject<RetryOverride>(row.retry),
    environmentId: row.environmentId ?? defaultEnvironmentId(row.workspaceId),
  };
}

/** Delivery row → record. */
export function deliveryRecord(row: Delivery): DeliveryRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    messageId: row.messageId,
    endpointId: row.endpointId,
    eventType: row.eventType,
    status: row.status,
    attemptCount: row.attemptCount,
    nextAttemptAt: row.nextAttemptAt ?? null,
    lastResponseStatus: row.lastResponseStatus,
    lastError: row.lastError,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** Attempt row → record. */
export function attemptRecord(row: Attempt): AttemptRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    deliveryId: row.deliveryId,
    number: row.number,
    startedAt: row.startedAt,
    latencyMs: row.latencyMs,
    requestHeaders: toStringMap(row.requestHeaders),
    responseStatus: row.responseStatus,
    responseHeaders: toStringMap(row.responseHeaders),
    responseBody: row.responseBody,
    errorKind: row.errorKind ?? null,
    errorMessage: row.errorMessage,
    nextRetryAt: row.nextRetryAt ?? null,
    recordedBy: row.recordedBy ?? null,
  };
}

/** Outbox row → record. */
export function outboxRecord(row: Outbox): OutboxRecord {
  return {
    seq: Number(row.seq),
    stream: row.stream,
    subject: row.subject,
    workspaceId: row.workspaceId,
    msgId: row.msgId,
    payload: toBytes(row.payload),
    createdAt: row.createdAt,
  };
}

/** Column values of a new outbox row. */
export function outboxInsert(row: NewOutboxRecord): {
  stream: string;
  subject: string;
  workspaceId: string;
  msgId: string;
  payload: Buffer;
  createdAt: Date;
} {
  return {
    stream: row.stream,
    subject: row.subject,
    workspaceId: row.workspaceId,
    msgId: row.msgId,
    payload: toBuffer(row.payload),
    createdAt: row.createdAt,
  };
}
