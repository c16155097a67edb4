import { endpointInScope, environmentOf, inScopeEnvironment, type Scope } from "./scope.ts";
import { createHash, randomUUID } from "node:crypto";
import { endpointCacheKey, getEndpoint, type EndpointLookup } from "./endpoints.ts";
import { DomainError, Violations, invalidArgument, notFound } from "./errors.ts";
import { checkMessageEventType, type EventTypeLookup } from "./event-types.ts";
import { newId } from "./ids.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import { publishCheckAt, queuedRows, type DirectPublisher } from "./publish-check.ts";
import type {
  DeliveryRecord,
  EndpointRecord,
  EventTypeRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
} from "./records.ts";
import type { QuotaMeter, QuotaState } from "./quota.ts";
import { resolveSchedule, type ScheduleInput } from "./schedule.ts";
import type { TtlCache } from "./ttl-cache.ts";
import { checkRetryOverride, type RetryOverride, type RetryOverrideInput } from "./retry-policy.ts";
import { checkEventType, checkHeaders, checkId, checkIdempotencyKey, checkStringMap } from "./validation.ts";

/** Outcome of writing a new message: created, or an earlier message under the same key. */
export type AcceptOutcome =
  { created: true } | { created: false; existing: MessageRecord; deliveries: DeliveryRecord[] };

/** Message intake: how Send stores what it accepted. */
export interface MessageIntake {
  /**
   * The message stored under this idempotency key while the key is live (it expires
   * HOOKSTREAM_IDEMPOTENCY_TTL after its message was accepted; `now` defaults to the clock), with
   * its deliveries (oldest first).
   */
  findMessageByIdempotencyKey(
    workspaceId: string,
    key: string,
    now?: Date,
  ): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] } | null>;
  /**
   * Writes message, deliveries and outbox rows in one transaction, and holds the message's
   * idempotency key until `keyExpiresAt` (null: no key row, for generated keys; undefined: 24 h
   * after message.createdAt, or none for "auto_" keys). When a live key row of the same
   * (workspace, key) exists, writes nothing and returns its message (primary key, so concurrent
   * senders cannot both win); an expired one is taken over.
   */
  acceptMessage(
    message: MessageRecord,
    deliveries: DeliveryRecord[],
    outbox: NewOutboxRecord[],
    keyExpiresAt?: Date | null,
  ): Promise<{ outcome: AcceptOutcome; outbox: OutboxRecord[] }>;
  /**
   * acceptMessage for several messages in one transaction (SendBatch); outcomes in input order.
   * A message whose key is live is not written and its outcome names the holder.
   */
  acceptMessages(
    batch: readonly {
      message: MessageRecord;
      deliveries: DeliveryRecord[];
      outbox: NewOutboxRecord[];
      keyExpiresAt: Date | null;
    }[],
  ): Promise<{ outcome: AcceptOutcome; outbox: OutboxRecord[] }[]>;
}

/** Reads messages back: GetMessage's port. */
export interface MessageReader {
  /** Null when missing or in another workspace. */
  getMessage(workspaceId: string, id: string): Promise<MessageRecord | null>;
  /** Deliveries of a message, oldest first. */
  listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]>;
}

/**
 * The body of a Send: JSON text (delivered as application/json) or raw bytes; `field` names the
 * request field violations refer to (default "payload" for JSON, "raw_payload" for raw).
 */
export type SendBody =
  | { kind: "json"; bytes: Uint8Array; field?: string }
  | { kind: "raw"; bytes: Uint8Array; contentType: string }
  | undefined;

/** A Send request in domain terms. */
export interface SendInput {
  endpointId: string;
  eventType: string;
  body: SendBody;
  idempotencyKey: string;
  /** When to deliver (at most one form; none means now), by the rules of schedule.ts. */
  schedule?: ScheduleInput | undefined;
  /** Extra HTTP headers of every attempt. */
  headers?: Record<string, string> | undefined;
  /** The producer's metadata. */
  metadata?: Record<string, string> | undefined;
  /** The message's own retry schedule. */
  retry?: RetryOverrideInput | undefined;
}

/** How long an idempotency key is held when the installation does not say (HOOKSTREAM_IDEMPOTENCY_TTL). */
export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

/** Limits of a message's metadata (the same as an endpoint's). */
export const MESSAGE_METADATA_LIMITS = { maxEntries: 50, maxKey: 64, maxValue: 512 } as const;

/** The optional per-message parts of a Send, checked; null where the producer gave none. */
export interface MessageExtras {
  headers: Record<string, string> | null;
  metadata: Record<string, string> | null;
  retry: RetryOverride | null;
}

/** Checks headers, metadata and retry override (violations into `v`, fields under `prefix`). */
export function checkMessageExtras(
  v: Violations,
  prefix: string,
  input: Pick<SendInput, "headers" | "metadata" | "retry">,
): MessageExtras {
  const at = (f: string) => (prefix === "" ? f : `${prefix}.${f}`);
  const headers = input.headers ?? {};
  const metadata = input.metadata ?? {};
  checkHeaders(v, at("headers"), headers);
  checkStringMap(v, at("metadata"), metadata, MESSAGE_METADATA_LIMITS);
  const retry = input.retry === undefined ? null : (checkRetryOverride(v, at("retry"), input.retry) ?? null);
  return {
    headers: Object.keys(headers).length === 0 ? null : { ...headers },
    metadata: Object.keys(metadata).length === 0 ? null : { ...metadata },
    retry,
  };
}

/** The extras in one canonical text for the idempotency fingerprint ("" when there are none). */
function extrasText(e: MessageExtras): string {
  if (e.headers === null && e.metadata === null && e.retry === null) return "";
  const sorted = (m: Record<string, string> | null) =>
    m === null ? null : Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const r = e.retry;
  return JSON.stringify([
    sorted(e.headers),
    sorted(e.metadata),
    r === null ? null : [r.minRetries, r.firstDelayMs, r.strategy, r.factor, r.maxDelayMs, r.jitter ?? null],
  ]);
}

/** The answer to a Send. */
export interface SendResult {
  messageId: string;
  deliveryId: string;
  idempotencyKey: string;
  replayed: boolean;
  /** When the message is due, if it was scheduled (null: delivered now). */
  deliverAt: Date | null;
  /** The workspace's quota after this send (a replay counts nothing). */
  quota?: QuotaState | undefined;
}

/** What the message use cases need. */
export interface MessageDeps {
  messages: MessageIntake;
  endpoints: EndpointLookup;
  relay: OutboxRelay & DirectPublisher;
  /** How long after accepting a delivery the dispatcher checks its publish (publish-check.ts). */
  publishCheckDelayMs?: number | undefined;
  maxPayloadBytes: number;
  /** How long an idempotency key is held after its message was accepted (default 24 h). */
  idempotencyTtlMs?: number | undefined;
  /** The workspace message quota; nothing is counted when undefined. */
  quota?: QuotaMeter | undefined;
  /**
   * Recently read endpoints. A Send within the TTL of an endpoint's deletion or disabling on
   * another server is still accepted; its worker then cancels the delivery, as the record says.
   */
  endpointCache?: TtlCache<EndpointRecord> | undefined;
  /** The workspace's event types: archived ones are refused, payload schemas enforced. */
  eventTypes: EventTypeLookup;
  /**
   * Recently read event types (null: known not to exist), so Send does not read one per call. A
   * change made on another API server applies here within the cache's TTL.
   */
  eventTypeCache?: TtlCache<EventTypeRecord | null> | undefined;
}

const CONTENT_TYPE =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+=("[^"\r\n]*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+))*$/;

/**
 * The payload rules Send and Trigger share: present, within the size limit (named by the field
 * it came in), and a valid media type for raw bytes.
 */
export function checkSendBody(v: Violations, body: SendBody | undefined, maxPayloadBytes: number): void {
  if (body === undefined) {
    v.add("payload", "is required (payload or payload_json for JSON, or raw_payload with content_type)");
    return;
  }
  const field = body.kind === "json" ? (body.field ?? "payload") : "raw_payload";
  if (body.bytes.byteLength > maxPayloadBytes) {
    v.add(field, `is ${body.bytes.byteLength} bytes; the limit is ${maxPayloadBytes}`);
  }
  if (body.kind === "raw" && !CONTENT_TYPE.test(body.contentType)) {
    v.add("content_type", "is not a valid media type such as text/plain or application/xml");
  }
}

/**
 * The fingerprint an idempotency key is bound to: the whole request that matters for
 * delivery (endpoint, type, content type, exact payload bytes, the schedule as it was given),
 * not only the payload. A request without a schedule hashes as it always has, so keys stored
 * before scheduling existed still match.
 */
function fingerprint(
  endpointId: string,
  eventType: string,
  contentType: string,
  payload: Uint8Array,
  schedule: ScheduleInput | undefined,
  extras: MessageExtras,
): string {
  const h = createHash("sha256").update(`${endpointId}\0${eventType}\0${contentType}\0`).update(payload);
  const s = scheduleText(schedule);
  if (s !== "") h.update(`\0schedule\0${s}`);
  const x = extrasText(extras);
  if (x !== "") h.update(`\0extras\0${x}`);
  return h.digest("hex");
}

/** The schedule as the producer gave it, in one canonical text ("" when none). */
function scheduleText(s: ScheduleInput | undefined): string {
  if (s === undefined) return "";
  const at =
    s.deliverAt === undefined ? undefined : typeof s.deliverAt === "number" ? s.deliverAt : s.deliverAt.getTime();
  const parts = [
    s.deliverIn === undefined ? "" : `in=${s.deliverIn}`,
    at === undefined ? "" : `at=${at}`,
    s.deliverAtLocal === undefined ? "" : `local=${s.deliverAtLocal}`,
    s.timeZone === undefined ? "" : `zone=${s.timeZone}`,
  ];
  return parts.filter((p) => p !== "").join("\0");
}

/** What a Send under a used key asked for, to name what differs from the stored message. */
interface Requested {
  endpointId: string;
  eventType: string;
  contentType: string;
  payload: Uint8Array;
  extras: MessageExtras;
}

const sameMap = (a: Record<string, string> | null | undefined, b: Record<string, string> | null | undefined) =>
  extrasText({ headers: a ?? null, metadata: null, retry: null }) ===
  extrasText({ headers: b ?? null, metadata: null, retry: null });

/**
 * The request fields in which a Send under a used key differs from the message stored under it
 * (best effort: the payload is compared only while the stored one is kept; a difference found in
 * none of them is the schedule).
 */
function conflictingFields(stored: MessageRecord, deliveries: readonly DeliveryRecord[], req: Requested): string[] {
  const out: string[] = [];
  if (deliveries.length > 0 && !deliveries.some((d) => d.endpointId === req.endpointId)) out.push("endpoint_id");
  if (stored.eventType !== req.eventType) out.push("event_type");
  if (stored.contentType !== req.contentType) out.push("content_type");
  if (stored.payloadDeletedAt == null && !Buffer.from(stored.payload).equals(Buffer.from(req.payload)))
    out.push("payload");
  if (!sameMap(stored.headers, req.extras.headers)) out.push("headers");
  if (!sameMap(stored.metadata, req.extras.metadata)) out.push("metadata");
  if (JSON.stringify(stored.retry ?? null) !== JSON.stringify(req.extras.retry)) out.push("retry");
  return out.length > 0 ? out : ["schedule (deliver_in, deliver_at, deliver_at_local, time_zone)"];
}

/** The result with the quota state after counting `count` accepted messages. */
function withQuota(deps: MessageDeps, workspaceId: string, count: number, now: Date, result: SendResult): SendResult {
  return deps.quota === undefined ? result : { ...result, quota: deps.quota.record(workspaceId, count, now) };
}

/**
 * Refuses an idempotency key held by a message of another environment (a staging key and a
 * production key of one workspace share its idempotency keys): already_exists, naming nothing
 * of the other environment's message.
 */
export function requireSameEnvironment(scope: Scope, earlier: MessageRecord, key: string): void {
  if (inScopeEnvironment(scope, earlier)) return;
  throw new DomainError(
    "already_exists",
    "IDEMPOTENCY_KEY_REUSED",
    `idempotency key ${JSON.stringify(key)} is already used by a message of another environment of this workspace`,
    { violations: [{ field: "idempotency_key", description: "is already used in another environment" }] },
  );
}

function replay(
  key: string,
  message: MessageRecord,
  deliveries: DeliveryRecord[],
  hash: string,
  req: Requested,
): SendResult {
  if (message.payloadHash !== hash) {
    const fields = conflictingFields(message, deliveries, req);
    throw new DomainError(
      "already_exists",
      "IDEMPOTENCY_KEY_REUSED",
      `idempotency key ${JSON.stringify(key)} was already used by message ${message.id} for a different request (it differs in ${fields.join(", ")})`,
      {
        violations: fields.map((f) => ({
          field: f.split(" ")[0]!,
          description: `differs from message ${message.id}, sent earlier with idempotency key ${JSON.stringify(key)}`,
        })),
      },
    );
  }
  return {
    messageId: message.id,
    deliveryId: deliveries[0]?.id ?? "",
    idempotencyKey: key,
    replayed: true,
    deliverAt: message.deliverAt ?? null,
  };
}

/**
 * Accepts one message for one endpoint: validate, idempotency check, one transaction writing
 * message + delivery + outbox rows, then (after commit) hand the rows to the relay. Resolves
 * only once the message is committed.
 */
/** A validated Send: already answered (a replay), or a new message ready to be written. */
type Prepared =
  | { kind: "done"; result: SendResult }
  | {
      kind: "new";
      message: MessageRecord;
      delivery: DeliveryRecord;
      /** Outbox rows, written with the message. */
      rows: NewOutboxRecord[];
      /** Rows published straight after the commit, recovered by the delivery's publish check. */
      direct: NewOutboxRecord[];
      keyExpiresAt: Date | null;
      key: string;
      hash: string;
      requested: Requested;
    };

/** Validates one Send and builds its rows (nothing is written); `quota` checks one more message. */
async function prepareSend(
  deps: MessageDeps,
  scope: Scope,
  input: SendInput,
  now: Date,
  quota: boolean,
): Promise<Prepared> {
  const workspaceId = scope.workspaceId;
  const v = new Violations();
  checkId(v, "endpoint_id", "endpoint", input.endpointId);
  checkEventType(v, "event_type", input.eventType);
  checkIdempotencyKey(v, "idempotency_key", input.idempotencyKey);
  const deliverAt = resolveSchedule(v, "", input.schedule ?? {}, now.getTime());
  const extras = checkMessageExtras(v, "", input);
  const body = input.body;
  checkSendBody(v, body, deps.maxPayloadBytes);
  v.throwIfAny();
  const payload = body!.bytes;
  const contentType = body!.kind === "json" ? "application/json" : body!.contentType;
  const key = input.idempotencyKey === "" ? `auto_${randomUUID()}` : input.idempotencyKey;
  const hash = fingerprint(input.endpointId, input.eventType, contentType, payload, input.schedule, extras);

  const requested: Requested = {
    endpointId: input.endpointId,
    eventType: input.eventType,
    contentType,
    payload,
    extras,
  };
  if (input.idempotencyKey !== "") {
    const earlier = await deps.messages.findMessageByIdempotencyKey(workspaceId, key, now);
    if (earlier) {
      requireSameEnvironment(scope, earlier.message, key);
      return { kind: "done", result: replay(key, earlier.message, earlier.deliveries, hash, requested) };
    }
  }
  // The quota is checked before anything is written (resource_exhausted with the delay until its reset).
  if (quota) await deps.quota?.check(workspaceId, 1, now);
  // Send is addressed to one endpoint, so a name that is no event type of the workspace is
  // allowed (Trigger, which routes by type, requires a known one).
  await checkMessageEventType(
    { lookup: deps.eventTypes, cache: deps.eventTypeCache, requireKnown: false, field: "event_type" },
    workspaceId,
    input.eventType,
    {
      json: body!.kind === "json",
      bytes: payload,
      field: body!.kind === "json" ? (body!.field ?? "payload") : "raw_payload",
    },
  );
  const cacheKey = endpointCacheKey(workspaceId, input.endpointId);
  const cached = deps.endpointCache?.get(cacheKey);
  // A producer key reaches its own environment's endpoints only: any other is not_found.
  if (cached !== undefined && !endpointInScope(scope, cached)) throw notFound("endpoint", input.endpointId);
  const endpoint = cached ?? (await getEndpoint(deps.endpoints, scope, input.endpointId, "endpoint_id"));
  deps.endpointCache?.set(cacheKey, endpoint);
  // A disabled endpoint's message is accepted and kept: the worker holds its delivery until the
  // endpoint is enabled again.

  const message: MessageRecord = {
    id: newId("message"),
    workspaceId,
    environmentId: environmentOf(endpoint),
    eventType: input.eventType,
    payload,
    contentType,
    idempotencyKey: key,
    payloadHash: hash,
    createdAt: now,
    deliverAt,
    ...extras,
  };
  const delivery: DeliveryRecord = {
    id: newId("delivery"),
    workspaceId,
    messageId: message.id,
    endpointId: endpoint.id,
    eventType: input.eventType,
    // A scheduled delivery waits in the database; the dispatcher queues it when it is due.
    status: deliverAt === null ? "queued" : "scheduled",
    attemptCount: 0,
    nextAttemptAt: deliverAt,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: now,
    updatedAt: now,
    publishCheckAt: deliverAt === null ? publishCheckAt(now, deps.publishCheckDelayMs) : null,
  };
  // A queued delivery's status event and job need no outbox rows: its publish check recovers them.
  // The status event goes first, so a watcher sees "queued" before any worker's outcome.
  const rows = deliverAt === null ? [] : [statusRow(delivery, null, now)];
  const direct = deliverAt === null ? queuedRows(delivery, now) : [];
  // A generated key is never looked up again: it needs no key row.
  const keyExpiresAt =
    input.idempotencyKey === ""
      ? null
      : new Date(now.getTime() + (deps.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS));
  return { kind: "new", message, delivery, rows, direct, keyExpiresAt, key, hash, requested };
}

/**
 * Accepts one message for one endpoint: validate, idempotency check, one transaction writing
 * message + delivery + outbox rows, then (after commit) hand the rows to the relay. Resolves
 * only once the message is committed.
 */
export async function send(deps: MessageDeps, scope: Scope, input: SendInput): Promise<SendResult> {
  const workspaceId = scope.workspaceId;
  const now = new Date();
  const p = await prepareSend(deps, scope, input, now, true);
  if (p.kind === "done") return withQuota(deps, workspaceId, 0, now, p.result);
  const { outcome, outbox } = await deps.messages.acceptMessage(p.message, [p.delivery], p.rows, p.keyExpiresAt);
  return finish(deps, workspaceId, now, p, outcome, outbox);
}

/**
 * The answer for a written (or, in a race, already taken) message; publishes its rows, or adds
 * the direct ones to `burst` for the caller to publish with others in one call.
 */
function finish(
  deps: MessageDeps,
  workspaceId: string,
  now: Date,
  p: Extract<Prepared, { kind: "new" }>,
  outcome: AcceptOutcome,
  outbox: OutboxRecord[],
  burst?: NewOutboxRecord[],
): SendResult {
  if (!outcome.created)
    return withQuota(
      deps,
      workspaceId,
      0,
      now,
      replay(p.key, outcome.existing, outcome.deliveries, p.hash, p.requested),
    );
  void deps.relay.publishNow(outbox);
  if (burst === undefined) void deps.relay.publishDirect(p.direct);
  else burst.push(...p.direct);
  return withQuota(deps, workspaceId, 1, now, {
    messageId: p.message.id,
    deliveryId: p.delivery.id,
    idempotencyKey: p.key,
    replayed: false,
    deliverAt: p.message.deliverAt ?? null,
  });
}

/** The largest SendBatch. */
export const MAX_BATCH_ITEMS = 20;

/** One item's outcome in a batch: its answer, or its own error. */
export type BatchItemResult = { ok: true; result: SendResult } | { ok: false; error: DomainError };

/** An item's error with its field violations under `items[index].` (SendBatch, TriggerBatch). */
export function batchItemError(index: number, err: DomainError): DomainError {
  if (err.violations.length === 0) return err;
  const violations = err.violations.map((v) => ({ ...v, field: `items[${index}].${v.field}` }));
  return new DomainError(err.kind, err.reason, err.message, {
    violations,
    ...(err.retryDelayMs === undefined ? {} : { retryDelayMs: err.retryDelayMs }),
  });
}

/**
 * SendBatch: up to 20 Sends, each validated and answered on its own (its index and error), the
 * new messages of every valid item written in one transaction. An error that is not about one
 * item (the database is down) fails the whole call.
 */
export async function sendBatch(
  deps: MessageDeps,
  scope: Scope,
  items: readonly (SendInput | { failed: DomainError })[],
): Promise<BatchItemResult[]> {
  const workspaceId = scope.workspaceId;
  if (items.length === 0) throw invalidArgument([{ field: "items", description: "must have at least one item" }]);
  if (items.length > MAX_BATCH_ITEMS)
    throw invalidArgument([{ field: "items", description: `must have at most ${MAX_BATCH_ITEMS} items` }]);
  const now = new Date();
  const results: (BatchItemResult | undefined)[] = [];
  const fresh: { index: number; p: Extract<Prepared, { kind: "new" }> }[] = [];
  for (const [index, input] of items.entries()) {
    if ("failed" in input) {
      results[index] = { ok: false, error: batchItemError(index, input.failed) };
      continue;
    }
    try {
      const p = await prepareSend(deps, scope, input, now, false);
      if (p.kind === "done") results[index] = { ok: true, result: withQuota(deps, workspaceId, 0, now, p.result) };
      else fresh.push({ index, p });
    } catch (err) {
      if (!(err instanceof DomainError) || err.kind === "unavailable" || err.kind === "internal") throw err;
      results[index] = { ok: false, error: batchItemError(index, err) };
    }
  }
  if (fresh.length > 0) {
    let quotaError: DomainError | undefined;
    try {
      await deps.quota?.check(workspaceId, fresh.length, now);
    } catch (err) {
      if (!(err instanceof DomainError) || err.kind !== "resource_exhausted") throw err;
      quotaError = err;
    }
    if (quotaError !== undefined) {
      for (const { index } of fresh) results[index] = { ok: false, error: quotaError };
    } else {
      const written = await deps.messages.acceptMessages(
        fresh.map(({ p }) => ({
          message: p.message,
          deliveries: [p.delivery],
          outbox: p.rows,
          keyExpiresAt: p.keyExpiresAt,
        })),
      );
      // Every new item's status event and job go out in one pipelined publish.
      const burst: NewOutboxRecord[] = [];
      for (const [i, { index, p }] of fresh.entries()) {
        const w = written[i]!;
        try {
          results[index] = { ok: true, result: finish(deps, workspaceId, now, p, w.outcome, w.outbox, burst) };
        } catch (err) {
          if (!(err instanceof DomainError)) throw err;
          results[index] = { ok: false, error: batchItemError(index, err) };
        }
      }
      void deps.relay.publishDirect(burst);
    }
  }
  return results.map((r) => r!);
}

/** A message of the workspace with its deliveries. */
export async function getMessage(
  store: MessageReader,
  scope: Scope,
  id: string,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const v = new Violations();
  checkId(v, "id", "message", id);
  v.throwIfAny();
  const message = await store.getMessage(scope.workspaceId, id);
  if (!message || !inScopeEnvironment(scope, message)) throw notFound("message", id);
  return { message, deliveries: await store.listDeliveriesOfMessage(scope.workspaceId, id) };
}
