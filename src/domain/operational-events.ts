/**
 * Operational events: messages Hookstream itself produces about what happens to endpoints and
 * deliveries (`endpoint.disabled`, `endpoint.enabled`, `message.attempt.exhausted`). A producer
 * subscribes to them like to any event type (an endpoint's event_types or a subscription); they
 * are fanned out by the same rules as Trigger and written in the same transaction as the state
 * change they announce, so a crash can lose neither without the other. Pure rules; the store
 * writes them (src/store/operational/operational-event-writer.ts).
 *
 * Rules kept here:
 * - Opt in: an endpoint receives an operational type only when it names it, in its own
 *   event_types or in an enabled subscription; a catch-all endpoint (no types, no
 *   subscriptions) does not, so existing endpoints never start receiving them unasked.
 * - Never to its subject: an event about endpoint X (its disable, its enable, a delivery to it
 *   that exhausted its retries) is never delivered to X itself. A disabled X would only hold it,
 *   and a failing X would fail it.
 * - Tenancy: an event about an endpoint of application A reaches A's endpoints and the
 *   workspace's endpoints that belong to no application; never another application's.
 * - No loops: a delivery of an operational event that exhausts its retries emits nothing.
 * - No recipient, no message: the event is then not stored at all.
 */
import { createHash } from "node:crypto";
import { isOperationalEventType, type OperationalEventType } from "./event-types.ts";
import { createFilterInput } from "./filter-expression.ts";
import { newId } from "./ids.ts";
import { publishCheckAt } from "./publish-check.ts";
import type {
  AttemptErrorKindName,
  AttemptRecord,
  DeliveryRecord,
  EndpointHealthState,
  MessageRecord,
} from "./records.ts";
import { selectTriggerTargets, type TriggerTarget } from "./triggers.ts";

export { OPERATIONAL_EVENT_TYPES, isOperationalEventType, type OperationalEventType } from "./event-types.ts";

/** Why an endpoint was disabled: sustained failure, a 410 Gone answer, or an UpdateEndpoint. */
export type DisableCause = "auto_disable" | "gone" | "manual";

/** An operational event before fan-out: its type, its subject endpoint and its data. */
export interface OperationalEvent {
  type: OperationalEventType;
  workspaceId: string;
  /** The endpoint the event is about; never a recipient of it. */
  endpointId: string;
  at: Date;
  /** The payload's `data` apart from endpointId and applicationId, which the writer adds. */
  data: Record<string, unknown>;
}

/** endpoint.disabled, from the endpoint's health when Hookstream disabled it. */
export function endpointDisabledEvent(
  endpoint: { id: string; workspaceId: string },
  cause: DisableCause,
  reason: string,
  health: EndpointHealthState | null | undefined,
  at: Date,
): OperationalEvent {
  const failure: Record<string, unknown> =
    cause === "manual" || health === null || health === undefined
      ? {}
      : {
          failureClass: health.lastFailureKind,
          lastFailure: health.lastFailure,
          consecutiveFailures: health.consecutiveFailures,
          failingSince: health.failingSinceMs === null ? null : new Date(health.failingSinceMs).toISOString(),
        };
  return {
    type: "endpoint.disabled",
    workspaceId: endpoint.workspaceId,
    endpointId: endpoint.id,
    at,
    data: { cause, reason, ...failure },
  };
}

/** endpoint.enabled, after an UpdateEndpoint enabled a disabled endpoint. */
export function endpointEnabledEvent(endpoint: { id: string; workspaceId: string }, at: Date): OperationalEvent {
  return {
    type: "endpoint.enabled",
    workspaceId: endpoint.workspaceId,
    endpointId: endpoint.id,
    at,
    data: { cause: "manual" },
  };
}

/**
 * message.attempt.exhausted for a delivery the worker just dead-lettered (its retries used up, or
 * a failure the policy does not retry); null for a delivery of an operational event (no loops).
 */
export function attemptExhaustedEvent(
  delivery: DeliveryRecord,
  attempt: Pick<AttemptRecord, "errorKind" | "responseStatus"> | null,
  at: Date,
): OperationalEvent | null {
  if (isOperationalEventType(delivery.eventType)) return null;
  const failureClass: AttemptErrorKindName | null = attempt?.errorKind ?? null;
  return {
    type: "message.attempt.exhausted",
    workspaceId: delivery.workspaceId,
    endpointId: delivery.endpointId,
    at,
    data: {
      messageId: delivery.messageId,
      deliveryId: delivery.id,
      eventType: delivery.eventType,
      attemptCount: delivery.attemptCount,
      lastResponseStatus: delivery.lastResponseStatus,
      lastError: delivery.lastError,
      failureClass,
    },
  };
}

/**
 * The payload bytes, produced once and delivered as they are:
 * `{"type":…,"timestamp":"<ISO 8601>","data":{"endpointId":…,"applicationId"?:…,…}}`.
 */
export function operationalPayload(event: OperationalEvent, applicationId: string | null): Uint8Array {
  const data = {
    endpointId: event.endpointId,
    ...(applicationId === null ? {} : { applicationId }),
    ...event.data,
  };
  return new TextEncoder().encode(JSON.stringify({ type: event.type, timestamp: event.at.toISOString(), data }));
}

/**
 * Which of `targets` receive the event: Trigger's rules (endpoint and subscription filters),
 * opted in by name, not the subject endpoint, not another application's.
 */
function recipients(
  event: OperationalEvent,
  applicationId: string | null,
  targets: readonly TriggerTarget[],
  payload: Uint8Array,
): TriggerTarget[] {
  const named = targets.filter(
    (t) =>
      t.endpoint.id !== event.endpointId &&
      (t.endpoint.applicationId === null ||
        t.endpoint.applicationId === undefined ||
        t.endpoint.applicationId === applicationId) &&
      ((t.endpoint.eventTypes ?? []).includes(event.type) ||
        t.subscriptions.some((s) => s.enabled && s.eventTypes.includes(event.type))),
  );
  return selectTriggerTargets(named, event.type, createFilterInput(payload, {}, event.type));
}

/**
 * The message and its deliveries for an operational event, or null when no endpoint receives it.
 * Deliveries are queued with a publish check like Trigger's (the delivery row is its own outbox),
 * so committing them with the state change is enough: publishing after the commit only saves the
 * dispatcher's check.
 */
export function planOperationalMessage(
  event: OperationalEvent,
  applicationId: string | null,
  targets: readonly TriggerTarget[],
  publishCheckDelayMs?: number,
  environmentId?: string,
): { message: MessageRecord; deliveries: DeliveryRecord[] } | null {
  const payload = operationalPayload(event, applicationId);
  const chosen = recipients(event, applicationId, targets, payload);
  if (chosen.length === 0) return null;
  const now = event.at;
  const id = newId("message");
  const message: MessageRecord = {
    id,
    workspaceId: event.workspaceId,
    ...(environmentId === undefined ? {} : { environmentId }),
    eventType: event.type,
    payload,
    contentType: "application/json",
    // A generated key has no key row: nothing to replay.
    idempotencyKey: `auto_op_${id}`,
    payloadHash: createHash("sha256").update(payload).digest("hex"),
    createdAt: now,
    metadata: null,
  };
  const deliveries = chosen.map((t): DeliveryRecord => ({
    id: newId("delivery"),
    workspaceId: event.workspaceId,
    messageId: id,
    endpointId: t.endpoint.id,
    eventType: event.type,
    status: "queued",
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: now,
    updatedAt: now,
    publishCheckAt: publishCheckAt(now, publishCheckDelayMs),
  }));
  return { message, deliveries };
}
