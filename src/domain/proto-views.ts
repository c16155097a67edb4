import { ApplicationSchema, type Application } from "../../gen/hookstream/v1/application_pb.ts";
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { DurationSchema, ValueSchema, timestampFromDate, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import { ApiKeyMode, ApiKeySchema, ApiKeyScope, type ApiKey } from "../../gen/hookstream/v1/api_key_pb.ts";
import {
  AttemptErrorKind,
  AttemptSchema,
  DeliveryStatus,
  DeliverySchema,
  type Attempt,
  type Delivery,
} from "../../gen/hookstream/v1/delivery_pb.ts";
import { EndpointHealthSchema, type EndpointHealth } from "../../gen/hookstream/v1/endpoint_health_pb.ts";
import { EndpointSchema, EndpointType, type Endpoint } from "../../gen/hookstream/v1/endpoint_pb.ts";
import { ClientCertificateSchema, SignatureScheme } from "../../gen/hookstream/v1/endpoint_security_pb.ts";
import { describeClientCertificate } from "./client-certificate.ts";
import { signatureSchemeOf } from "./endpoints.ts";
import { EventTypeSchema, type EventType } from "../../gen/hookstream/v1/event_type_pb.ts";
import { SubscriptionSchema, type Subscription } from "../../gen/hookstream/v1/subscription_pb.ts";
import { MessageSchema, type Message } from "../../gen/hookstream/v1/message_pb.ts";
import {
  RetryOverrideSchema,
  RetryStrategy,
  type RetryOverride as RetryOverrideProto,
} from "../../gen/hookstream/v1/retry_override_pb.ts";
import type { RetryOverride } from "./retry-policy.ts";
import { EnvironmentSchema, type Environment } from "../../gen/hookstream/v1/environment_pb.ts";
import { isDefaultEnvironment } from "./environments.ts";
import { environmentOf } from "./scope.ts";
import { WorkspaceSchema, type Workspace } from "../../gen/hookstream/v1/workspace_pb.ts";
import type {
  ApiKeyModeName,
  ApiKeyRecord,
  ApiKeyScopeName,
  AttemptErrorKindName,
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatusName,
  ApplicationRecord,
  EndpointRecord,
  EndpointTypeName,
  EnvironmentRecord,
  EventTypeRecord,
  MessageRecord,
  SubscriptionRecord,
  RecentOutcomes,
  WorkspaceRecord,
} from "./records.ts";

const STATUS_TO_PROTO: Record<DeliveryStatusName, DeliveryStatus> = {
  scheduled: DeliveryStatus.SCHEDULED,
  queued: DeliveryStatus.QUEUED,
  delivering: DeliveryStatus.DELIVERING,
  awaiting_ack: DeliveryStatus.AWAITING_ACK,
  pending_retry: DeliveryStatus.PENDING_RETRY,
  succeeded: DeliveryStatus.SUCCEEDED,
  failed: DeliveryStatus.FAILED,
  cancelled: DeliveryStatus.CANCELLED,
  held: DeliveryStatus.HELD,
};

const ERROR_KIND_TO_PROTO: Record<AttemptErrorKindName, AttemptErrorKind> = {
  timeout: AttemptErrorKind.TIMEOUT,
  dns: AttemptErrorKind.DNS,
  connect: AttemptErrorKind.CONNECT,
  tls: AttemptErrorKind.TLS,
  refused_by_policy: AttemptErrorKind.REFUSED_BY_POLICY,
  http_status: AttemptErrorKind.HTTP_STATUS,
  response_too_large: AttemptErrorKind.RESPONSE_TOO_LARGE,
};

/** The proto enum value of a stored failure class. */
export function errorKindToProto(kind: AttemptErrorKindName | null): AttemptErrorKind {
  return kind === null ? AttemptErrorKind.UNSPECIFIED : ERROR_KIND_TO_PROTO[kind];
}

/** The proto enum value of a stored status. */
export function statusToProto(status: DeliveryStatusName): DeliveryStatus {
  return STATUS_TO_PROTO[status];
}

/** The stored status of a proto enum value, or undefined for UNSPECIFIED and unknown values. */
export function statusFromProto(status: DeliveryStatus): DeliveryStatusName | undefined {
  for (const [name, value] of Object.entries(STATUS_TO_PROTO)) {
    if (value === status) return name as DeliveryStatusName;
  }
  return undefined;
}

function ts(d: Date | null): Timestamp | undefined {
  return d === null ? undefined : timestampFromDate(d);
}

/** Milliseconds (fractions allowed) as a google.protobuf.Duration. */
export function durationFromMs(ms: number): ReturnType<typeof create<typeof DurationSchema>> {
  const totalNanos = Math.round(ms * 1e6);
  const seconds = Math.floor(totalNanos / 1e9);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: totalNanos - seconds * 1e9 });
}

/** The API view of a workspace. */
export function workspaceView(w: WorkspaceRecord): Workspace {
  return create(WorkspaceSchema, { id: w.id, name: w.name, createTime: timestampFromDate(w.createdAt) });
}

/** The API view of an API key (never the secret). */
export function apiKeyView(k: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    id: k.id,
    label: k.label,
    secretPrefix: k.secretPrefix,
    createTime: timestampFromDate(k.createdAt),
    revokeTime: ts(k.revokedAt),
    scope: k.scope === "management" ? ApiKeyScope.MANAGEMENT : ApiKeyScope.PRODUCER,
    mode: k.mode === "test" ? ApiKeyMode.TEST : ApiKeyMode.LIVE,
    lastUsedTime: ts(k.lastUsedAt),
    environmentId: k.environmentId ?? "",
  });
}

/** A CreateApiKey scope in domain terms: undefined for UNSPECIFIED (the default), null for unknown values. */
export function apiKeyScopeFromProto(scope: ApiKeyScope): ApiKeyScopeName | null | undefined {
  if (scope === ApiKeyScope.UNSPECIFIED) return undefined;
  if (scope === ApiKeyScope.PRODUCER) return "producer";
  if (scope === ApiKeyScope.MANAGEMENT) return "management";
  return null;
}

/** A CreateApiKey mode in domain terms: undefined for UNSPECIFIED (the default), null for unknown values. */
export function apiKeyModeFromProto(mode: ApiKeyMode): ApiKeyModeName | null | undefined {
  if (mode === ApiKeyMode.UNSPECIFIED) return undefined;
  if (mode === ApiKeyMode.LIVE) return "live";
  if (mode === ApiKeyMode.TEST) return "test";
  return null;
}

/** The health part of an endpoint's view. */
export function endpointHealthView(e: EndpointRecord, recent: RecentOutcomes): EndpointHealth {
  const h = e.health ?? null;
  const at = (ms: number | null | undefined): Timestamp | undefined =>
    ms === null || ms === undefined ? undefined : timestampFromDate(new Date(ms));
  return create(EndpointHealthSchema, {
    recentSuccessRate: recent.total === 0 ? 0 : recent.succeeded / recent.total,
    recentDeliveries: recent.total,
    consecutiveFailures: h?.consecutiveFailures ?? 0,
    failingSince: at(h?.failingSinceMs),
    lastFailureKind: errorKindToProto(h?.lastFailureKind ?? null),
    lastFailureTime: at(h?.lastFailureAtMs),
    lastFailure: h?.lastFailure ?? "",
    disabledReason: e.enabled ? "" : (h?.disabledReason ?? ""),
    disableTime: e.enabled ? undefined : at(h?.disabledAtMs),
  });
}

const ENDPOINT_TYPE_TO_PROTO: Record<EndpointTypeName, EndpointType> = {
  webhook: EndpointType.WEBHOOK,
  slack: EndpointType.SLACK,
};

/** The proto enum value of a stored endpoint type. */
export function endpointTypeToProto(type: EndpointTypeName): EndpointType {
  return ENDPOINT_TYPE_TO_PROTO[type];
}

/** The stored endpoint type of a proto value: undefined for UNSPECIFIED, null for unknown values. */
export function endpointTypeFromProto(type: EndpointType): EndpointTypeName | null | undefined {
  if (type === EndpointType.UNSPECIFIED) return undefined;
  for (const [name, value] of Object.entries(ENDPOINT_TYPE_TO_PROTO)) {
    if (value === type) return name as EndpointTypeName;
  }
  return null;
}

/** The API view of an endpoint (never its secrets); `recent` adds its health. */
export function endpointView(e: EndpointRecord, recent?: RecentOutcomes): Endpoint {
  return create(EndpointSchema, {
    ...(recent === undefined ? {} : { health: endpointHealthView(e, recent) }),
    id: e.id,
    url: e.url,
    description: e.description,
    metadata: { ...e.metadata },
    enabled: e.enabled,
    headers: { ...e.headers },
    timeout: durationFromMs(e.timeoutMs),
    asyncAck: e.asyncAck ?? false,
    ordered: e.ordered ?? false,
    ...(e.retryPolicy === null || e.retryPolicy === undefined ? {} : { retryPolicy: retryOverrideView(e.retryPolicy) }),
    type: endpointTypeToProto(e.type ?? "webhook"),
    eventTypes: [...(e.eventTypes ?? [])],
    filter: e.filter ?? "",
    rateLimit: e.rateLimit ?? 0,
    rateLimitBurst: e.rateLimitBurst ?? 0,
    applicationId: e.applicationId ?? "",
    environmentId: environmentOf(e),
    createTime: timestampFromDate(e.createdAt),
    updateTime: timestampFromDate(e.updatedAt),
    ...endpointSecurityView(e, new Date()),
  });
}

/** The signing scheme, public keys, grace period and client certificate of an endpoint's view. */
function endpointSecurityView(
  e: EndpointRecord,
  now: Date,
): Pick<Endpoint, "signatureScheme" | "publicKey" | "previousPublicKey"> &
  Partial<Pick<Endpoint, "previousSecretExpireTime" | "clientCertificate">> {
  const inGrace = e.previousSecret !== null && e.previousSecretExpiresAt !== null && e.previousSecretExpiresAt > now;
  const cert =
    e.clientCertificatePem === null || e.clientCertificatePem === undefined
      ? undefined
      : describeClientCertificate(e.clientCertificatePem);
  return {
    signatureScheme: signatureSchemeOf(e) === "ed25519" ? SignatureScheme.ED25519 : SignatureScheme.HMAC_SHA256,
    publicKey: e.publicKey ?? "",
    previousPublicKey: inGrace ? (e.previousPublicKey ?? "") : "",
    ...(inGrace ? { previousSecretExpireTime: timestampFromDate(e.previousSecretExpiresAt!) } : {}),
    ...(cert === undefined
      ? {}
      : {
          clientCertificate: create(ClientCertificateSchema, {
            certificatePem: e.clientCertificatePem!,
            fingerprintSha256: cert.fingerprintSha256,
            subject: cert.subject,
            notAfter: timestampFromDate(cert.notAfter),
          }),
        }),
  };
}

/** The API view of an application. */
export function applicationView(a: ApplicationRecord): Application {
  return create(ApplicationSchema, {
    id: a.id,
    name: a.name,
    uid: a.uid ?? "",
    environmentId: a.environmentId,
    metadata: { ...a.metadata },
    createTime: timestampFromDate(a.createdAt),
    updateTime: timestampFromDate(a.updatedAt),
  });
}

/** The API view of an environment. */
export function environmentView(e: EnvironmentRecord): Environment {
  return create(EnvironmentSchema, {
    id: e.id,
    name: e.name,
    slug: e.slug,
    default: isDefaultEnvironment(e),
    unpublishedEventTypes: [...e.unpublishedEventTypes],
    createTime: timestampFromDate(e.createdAt),
    updateTime: timestampFromDate(e.updatedAt),
  });
}

/** The API view of an event type, its schema as the JSON object it was saved as. */
export function eventTypeView(e: EventTypeRecord): EventType {
  return create(EventTypeSchema, {
    name: e.name,
    description: e.description,
    schema: e.schema === null ? undefined : (JSON.parse(e.schema) as JsonObject),
    archived: e.archived,
    createTime: timestampFromDate(e.createdAt),
    updateTime: timestampFromDate(e.updatedAt),
  });
}

/** The API view of a retry override. */
export function retryOverrideView(r: RetryOverride): RetryOverrideProto {
  return create(RetryOverrideSchema, {
    minRetries: r.minRetries,
    firstDelay: durationFromMs(r.firstDelayMs),
    strategy: r.strategy === "fixed" ? RetryStrategy.FIXED : RetryStrategy.EXPONENTIAL,
    factor: r.strategy === "fixed" ? 0 : r.factor,
    maxDelay: durationFromMs(r.maxDelayMs),
    ...(r.jitter === undefined ? {} : { jitter: r.jitter }),
  });
}

/** The API view of a subscription. */
export function subscriptionView(s: SubscriptionRecord): Subscription {
  return create(SubscriptionSchema, {
    id: s.id,
    endpointId: s.endpointId,
    eventTypes: [...s.eventTypes],
    enabled: s.enabled,
    filter: s.filter,
    createTime: timestampFromDate(s.createdAt),
    updateTime: timestampFromDate(s.updatedAt),
  });
}

/** The API view of a message: JSON payloads as a Value, anything else as raw bytes. */
export function messageView(m: MessageRecord): Message {
  const view = create(MessageSchema, {
    id: m.id,
    eventType: m.eventType,
    contentType: m.contentType,
    idempotencyKey: m.idempotencyKey,
    createTime: timestampFromDate(m.createdAt),
    deliverTime: ts(m.deliverAt ?? null),
    headers: { ...m.headers },
    metadata: { ...m.metadata },
    retry: m.retry === null || m.retry === undefined ? undefined : retryOverrideView(m.retry),
    environmentId: environmentOf(m),
  });
  if (m.contentType === "application/json") {
    // payload_json is the stored bytes as they are delivered; payload the (lossy) Value of them.
    view.payloadJson = Buffer.from(m.payload).toString("utf8");
    view.payload = payloadValue(view.payloadJson);
  } else {
    view.rawPayload = m.payload;
  }
  return view;
}

/**
 * The google.protobuf.Value of a JSON payload, or undefined when a Value cannot hold it: a
 * number beyond the double range (`1e400` parses to Infinity, which Value's JSON form refuses)
 * or nesting too deep to convert. payload_json always has the exact text.
 */
function payloadValue(json: string): Value | undefined {
  let finite = true;
  const parsed = JSON.parse(json, (_key, value: unknown) => {
    if (typeof value === "number" && !Number.isFinite(value)) finite = false;
    return value;
  }) as JsonValue;
  if (!finite) return undefined;
  try {
    return fromJson(ValueSchema, parsed);
  } catch {
    return undefined; // nested deeper than protobuf-es converts (its limit is 100 levels)
  }
}

/** The API view of a delivery. */
export function deliveryView(d: DeliveryRecord): Delivery {
  return create(DeliverySchema, {
    id: d.id,
    messageId: d.messageId,
    endpointId: d.endpointId,
    eventType: d.eventType,
    status: statusToProto(d.status),
    attemptCount: d.attemptCount,
    nextAttemptTime: ts(d.nextAttemptAt),
    lastResponseStatus: d.lastResponseStatus,
    lastError: d.lastError,
    createTime: timestampFromDate(d.createdAt),
    updateTime: timestampFromDate(d.updatedAt),
  });
}

/** The API view of an attempt. */
export function attemptView(a: AttemptRecord): Attempt {
  return create(AttemptSchema, {
    id: a.id,
    deliveryId: a.deliveryId,
    number: a.number,
    startTime: timestampFromDate(a.startedAt),
    latency: durationFromMs(a.latencyMs),
    requestHeaders: { ...a.requestHeaders },
    responseStatus: a.responseStatus,
    responseHeaders: { ...a.responseHeaders },
    responseBody: a.responseBody,
    errorKind: a.errorKind === null ? AttemptErrorKind.UNSPECIFIED : ERROR_KIND_TO_PROTO[a.errorKind],
    errorMessage: a.errorMessage,
    nextRetryTime: ts(a.nextRetryAt),
  });
}
