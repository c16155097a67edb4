import { createHash, randomUUID } from "node:crypto";
import { DomainError, invalidArgument, Violations } from "./errors.ts";
import { checkEventTypeName, checkMessageEventType, type EventTypeLookup } from "./event-types.ts";
import { compileFilter, createFilterInput, evaluateFilter, type FilterInput } from "./filter-expression.ts";
import { newId } from "./ids.ts";
import {
  batchItemError,
  checkSendBody,
  DEFAULT_IDEMPOTENCY_TTL_MS,
  MAX_BATCH_ITEMS,
  requireSameEnvironment,
  type AcceptOutcome,
  type MessageIntake,
  type SendBody,
} from "./messages.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { publishCheckAt, queuedRows, type DirectPublisher } from "./publish-check.ts";
import type {
  DeliveryRecord,
  EndpointRecord,
  EnvironmentRecord,
  EventTypeRecord,
  MessageRecord,
  NewOutboxRecord,
  SubscriptionRecord,
} from "./records.ts";
import type { TtlCache } from "./ttl-cache.ts";
import { checkId, checkIdempotencyKey, checkStringMap } from "./validation.ts";
import { requireApplication, type ApplicationLookup } from "./applications.ts";
import { checkPublished, defaultEnvironmentId, type EnvironmentLookup } from "./environments.ts";
import type { Scope } from "./scope.ts";

/** Which endpoints a trigger may reach. */
export interface TriggerScope {
  workspaceId: string;
  eventType: string;
  /** Only this application's endpoints; null or absent: every endpoint of the workspace. */
  applicationId?: string | null | undefined;
  /**
   * Only this environment's endpoints (the producer key's); null or absent: every environment.
   * Endpoints older than environments (environment_id null) are the default environment's.
   */
  environmentId?: string | null | undefined;
}

/** An endpoint a trigger may reach, with every subscription it has (enabled or not). */
export interface TriggerTarget {
  endpoint: EndpointRecord;
  subscriptions: SubscriptionRecord[];
}

/**
 * Trigger's port: the non-deleted endpoints of the scope whose own event types allow the scope's
 * type (empty list: every type), in endpoint id order, each with its subscriptions. Disabled
 * endpoints are included: their deliveries are created queued and the worker holds them until
 * the endpoint is enabled again (delivery-worker.ts, gate), so a paused endpoint keeps its
 * messages. Filters are evaluated by the caller.
 */
export interface TriggerTargets {
  findTriggerTargets(scope: TriggerScope): Promise<TriggerTarget[]>;
}

/** A Trigger request in domain terms. */
export interface TriggerInput {
  eventType: string;
  body: SendBody;
  idempotencyKey: string;
  metadata: Record<string, string>;
  /** Only this application's endpoints receive it; "" or undefined: every subscribed endpoint. */
  applicationId?: string | undefined;
}

/** The answer to a Trigger. */
export interface TriggerResult {
  messageId: string;
  deliveries: { deliveryId: string; endpointId: string }[];
  idempotencyKey: string;
  replayed: boolean;
}

/** What Trigger needs. */
export interface TriggerDeps {
  messages: MessageIntake;
  targets: TriggerTargets;
  eventTypes: EventTypeLookup;
  /** The applications a trigger may be limited to. */
  applications: ApplicationLookup;
  /** The environments whose unpublished event types Trigger refuses. */
  environments: EnvironmentLookup;
  /** Environments recently read (null: none of that id). */
  environmentCache?: TtlCache<EnvironmentRecord | null> | undefined;
  eventTypeCache?: TtlCache<EventTypeRecord | null> | undefined;
  relay: OutboxRelay & DirectPublisher;
  /** How long after accepting a delivery the dispatcher checks its publish (publish-check.ts). */
  publishCheckDelayMs?: number | undefined;
  maxPayloadBytes: number;
  /** How long an idempotency key is held (default 24 h), as for Send. */
  idempotencyTtlMs?: number | undefined;
  /** Where a filter that fails at evaluation is reported (it then does not match). */
  onFilterError?: ((where: { endpointId: string; subscriptionId?: string }, error: string) => void) | undefined;
}

/**
 * What a trigger's idempotency key is bound to: everything that decides its deliveries (type,
 * content type, metadata, exact payload bytes). "trigger" first, so a Send under the same key
 * never matches.
 */
function fingerprint(input: TriggerInput, contentType: string, payload: Uint8Array): string {
  const metadata = JSON.stringify(Object.entries(input.metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  // The application only when given, so keys stored before it existed still replay.
  const app = input.applicationId ? `app=${input.applicationId}\0` : "";
  return createHash("sha256")
    .update(`trigger\0${input.eventType}\0${contentType}\0${metadata}\0${app}`)
    .update(payload)
    .digest("hex");
}

/**
 * The environment a trigger is sent in, for its unpublished event types; read once per
 * HOOKSTREAM_CACHE_TTL per API server (the cache Send and Trigger keep for event types).
 */
async function environmentOfTrigger(
  deps: TriggerDeps,
  workspaceId: string,
  id: string,
): Promise<EnvironmentRecord | null> {
  const cached = deps.environmentCache?.get(id);
  if (cached !== undefined) return cached;
  const env = await deps.environments.getEnvironment(workspaceId, id);
  deps.environmentCache?.set(id, env);
  return env;
}

function replay(key: string, message: MessageRecord, deliveries: DeliveryRecord[], hash: string): TriggerResult {
  if (message.payloadHash !== hash) {
    throw new DomainError(
      "already_exists",
      "IDEMPOTENCY_KEY_REUSED",
      `idempotency key ${JSON.stringify(key)} was already used for a different request`,
      { violations: [{ field: "idempotency_key", description: "was already used for a different request" }] },
    );
  }
  return {
    messageId: message.id,
    deliveries: deliveries.map((d) => ({ deliveryId: d.id, endpointId: d.endpointId })),
    idempotencyKey: key,
    replayed: true,
  };
}

function matches(
  deps: Pick<TriggerDeps, "onFilterError">,
  filter: string | null | undefined,
  input: FilterInput,
  where: { endpointId: string; subscriptionId?: string },
): boolean {
  if (filter === null || filter === undefined || filter === "") return true;
  const compiled = compileFilter(filter, "filter");
  // It compiled when it was saved; a filter that no longer compiles matches nothing.
  if (!compiled.ok) {
    deps.onFilterError?.(where, compiled.violation.description);
    return false;
  }
  const result = evaluateFilter(compiled.filter, input);
  if (result.error !== undefined) deps.onFilterError?.(where, result.error);
  return result.matched;
}

/**
 * Whether a target receives the message: its own filter matches, and it has no subscriptions or
 * an enabled one lists the type and its filter matches.
 */
function receives(
  deps: Pick<TriggerDeps, "onFilterError">,
  target: TriggerTarget,
  eventType: string,
  input: FilterInput,
): boolean {
  const endpointId = target.endpoint.id;
  if (!matches(deps, target.endpoint.filter, input, { endpointId })) return false;
  if (target.subscriptions.length === 0) return true;
  return target.subscriptions.some(
    (s) =>
      s.enabled &&
      s.eventTypes.includes(eventType) &&
      matches(deps, s.filter, input, { endpointId, subscriptionId: s.id }),
  );
}

/** A trigger ready to commit, or answered already (an idempotent replay). */
type PreparedTrigger =
  | { kind: "done"; result: TriggerResult }
  | {
      kind: "new";
      message: MessageRecord;
      deliveries: DeliveryRecord[];
      keyExpiresAt: Date | null;
      key: string;
      hash: string;
    };

/**
 * The targets that receive a message of `eventType` (see receives): what Trigger and the
 * operational events (operational-events.ts) share.
 */
export function selectTriggerTargets(
  targets: readonly TriggerTarget[],
  eventType: string,
  input: FilterInput,
  onFilterError?: TriggerDeps["onFilterError"],
): TriggerTarget[] {
  return targets.filter((t) => receives({ onFilterError }, t, eventType, input));
}

/**
 * Everything of a trigger before its transaction: validate, idempotency check, the event type's
 * rules (it must exist, not be archived, and its schema must accept the payload), and the
 * matching endpoints, evaluated into the message and its deliveries.
 */
async function prepareTrigger(
  deps: TriggerDeps,
  scope: Scope,
  input: TriggerInput,
  now: Date,
): Promise<PreparedTrigger> {
  const workspaceId = scope.workspaceId;
  const environmentId = scope.environmentId ?? defaultEnvironmentId(workspaceId);
  const v = new Violations();
  checkEventTypeName(v, "event_type", input.eventType);
  checkIdempotencyKey(v, "idempotency_key", input.idempotencyKey);
  checkStringMap(v, "metadata", input.metadata, { maxEntries: 50, maxKey: 64, maxValue: 512 });
  const body = input.body;
  checkSendBody(v, body, deps.maxPayloadBytes);
  const applicationId = input.applicationId ?? "";
  if (applicationId !== "") checkId(v, "application_id", "application", applicationId);
  v.throwIfAny();
  const payload = body!.bytes;
  const contentType = body!.kind === "json" ? "application/json" : body!.contentType;
  const key = input.idempotencyKey === "" ? `auto_${randomUUID()}` : input.idempotencyKey;
  const hash = fingerprint(input, contentType, payload);

  if (input.idempotencyKey !== "") {
    const earlier = await deps.messages.findMessageByIdempotencyKey(workspaceId, key);
    if (earlier) {
      requireSameEnvironment(scope, earlier.message, key);
      return { kind: "done", result: replay(key, earlier.message, earlier.deliveries, hash) };
    }
  }
  checkPublished(await environmentOfTrigger(deps, workspaceId, environmentId), input.eventType, "event_type");
  await checkMessageEventType(
    { lookup: deps.eventTypes, cache: deps.eventTypeCache, requireKnown: true, field: "event_type" },
    workspaceId,
    input.eventType,
    {
      json: body!.kind === "json",
      bytes: payload,
      field: body!.kind === "json" ? (body!.field ?? "payload") : "raw_payload",
    },
  );

  if (applicationId !== "") {
    const app = await requireApplication(deps.applications, workspaceId, applicationId, "application_id");
    // Another environment's application is as unknown to this key as a missing one.
    if (app.environmentId !== environmentId) {
      throw new DomainError(
        "not_found",
        "APPLICATION_NOT_FOUND",
        `application ${JSON.stringify(applicationId)} not found`,
        {
          violations: [{ field: "application_id", description: "is not an application of this environment" }],
        },
      );
    }
  }
  const targets = await deps.targets.findTriggerTargets({
    workspaceId,
    eventType: input.eventType,
    applicationId: applicationId === "" ? null : applicationId,
    environmentId,
  });
  const filterInput = createFilterInput(payload, input.metadata, input.eventType);
  const message: MessageRecord = {
    id: newId("message"),
    workspaceId,
    environmentId,
    eventType: input.eventType,
    payload,
    contentType,
    idempotencyKey: key,
    payloadHash: hash,
    createdAt: now,
    metadata: Object.keys(input.metadata).length > 0 ? { ...input.metadata } : null,
  };
  const deliveries: DeliveryRecord[] = selectTriggerTargets(
    targets,
    input.eventType,
    filterInput,
    deps.onFilterError,
  ).map((t) => ({
    id: newId("delivery"),
    workspaceId,
    messageId: message.id,
    endpointId: t.endpoint.id,
    eventType: input.eventType,
    status: "queued",
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: now,
    updatedAt: now,
    publishCheckAt: publishCheckAt(now, deps.publishCheckDelayMs),
  }));
  // A generated key is never looked up again: it needs no key row.
  const keyExpiresAt =
    input.idempotencyKey === ""
      ? null
      : new Date(now.getTime() + (deps.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS));
  return { kind: "new", message, deliveries, keyExpiresAt, key, hash };
}

/**
 * The answer of a committed trigger; its status events and jobs are added to `burst` (each
 * delivery's status event before its job, so a watcher sees "queued" before any worker's
 * outcome). A key another request took meanwhile answers with that request's result (or
 * already_exists).
 */
function finishTrigger(
  p: Extract<PreparedTrigger, { kind: "new" }>,
  outcome: AcceptOutcome,
  burst: NewOutboxRecord[],
  now: Date,
): TriggerResult {
  if (!outcome.created) return replay(p.key, outcome.existing, outcome.deliveries, p.hash);
  // No outbox rows: each delivery's publish check recovers its status event and job (publish-check.ts).
  burst.push(...p.deliveries.flatMap((d) => queuedRows(d, now)));
  return {
    messageId: p.message.id,
    deliveries: p.deliveries.map((d) => ({ deliveryId: d.id, endpointId: d.endpointId })),
    idempotencyKey: p.key,
    replayed: false,
  };
}

/**
 * Fans one event out by its type (see prepareTrigger), then one transaction writing the message
 * and every delivery, published after commit. No match is accepted: the message is stored with
 * no delivery.
 */
export async function trigger(deps: TriggerDeps, scope: Scope, input: TriggerInput): Promise<TriggerResult> {
  const now = new Date();
  const p = await prepareTrigger(deps, scope, input, now);
  if (p.kind === "done") return p.result;
  const accepted = await deps.messages.acceptMessage(p.message, p.deliveries, [], p.keyExpiresAt);
  const burst: NewOutboxRecord[] = [];
  const result = finishTrigger(p, accepted.outcome, burst, now);
  void deps.relay.publishDirect(burst);
  return result;
}

/** One item's outcome in a TriggerBatch: its answer, or its own error. */
export type TriggerBatchItemResult = { ok: true; result: TriggerResult } | { ok: false; error: DomainError };

/**
 * TriggerBatch: up to 20 Triggers, each validated and answered on its own (its index and error,
 * field violations under `items[i].`), the new messages and deliveries of every valid item
 * written in one transaction and published in one pipelined burst. An error that is not about
 * one item (the database is down) fails the whole call.
 */
export async function triggerBatch(
  deps: TriggerDeps,
  scope: Scope,
  items: readonly (TriggerInput | { failed: DomainError })[],
): Promise<TriggerBatchItemResult[]> {
  if (items.length === 0) throw invalidArgument([{ field: "items", description: "must have at least one item" }]);
  if (items.length > MAX_BATCH_ITEMS)
    throw invalidArgument([{ field: "items", description: `must have at most ${MAX_BATCH_ITEMS} items` }]);
  const now = new Date();
  const results: (TriggerBatchItemResult | undefined)[] = [];
  const fresh: { index: number; p: Extract<PreparedTrigger, { kind: "new" }> }[] = [];
  for (const [index, input] of items.entries()) {
    if ("failed" in input) {
      results[index] = { ok: false, error: batchItemError(index, input.failed) };
      continue;
    }
    try {
      const p = await prepareTrigger(deps, scope, input, now);
      if (p.kind === "done") results[index] = { ok: true, result: p.result };
      else fresh.push({ index, p });
    } catch (err) {
      if (!(err instanceof DomainError) || err.kind === "unavailable" || err.kind === "internal") throw err;
      results[index] = { ok: false, error: batchItemError(index, err) };
    }
  }
  if (fresh.length > 0) {
    const written = await deps.messages.acceptMessages(
      fresh.map(({ p }) => ({
        message: p.message,
        deliveries: p.deliveries,
        outbox: [],
        keyExpiresAt: p.keyExpiresAt,
      })),
    );
    const burst: NewOutboxRecord[] = [];
    for (const [i, { index, p }] of fresh.entries()) {
      try {
        results[index] = { ok: true, result: finishTrigger(p, written[i]!.outcome, burst, now) };
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        results[index] = { ok: false, error: batchItemError(index, err) };
      }
    }
    void deps.relay.publishDirect(burst);
  }
  return results.map((r) => r!);
}
