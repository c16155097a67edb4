/**
 * The operator's actions on deliveries: replay a final delivery, retry a pending one now, cancel a
 * pending retry (dead-letter it), the dead letter queue, and bulk operations that apply an action
 * to many deliveries in the background (run by the dispatcher in batches, each batch one
 * transaction, so a restart of any role resumes where the last committed batch ended and the
 * counts stay exact).
 */
import { DomainError, Violations, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { jobRow, statusRow } from "./outbox-rows.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { DeliveryRecord, DeliveryStatusName, NewOutboxRecord, OutboxRecord, PageQuery } from "./records.ts";
import { checkEventType, checkId } from "./validation.ts";

/** What an operator does to a delivery. */
export type DeliveryActionName = "replay" | "retry_now" | "cancel_retry";

/** Filter of the dead letter list and of bulk operations (undefined: any). */
export interface DeliverySelection {
  endpointId?: string | undefined;
  messageId?: string | undefined;
  eventType?: string | undefined;
  statuses?: readonly DeliveryStatusName[] | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
}

/** A bulk operation as stored. `cursor` is the last delivery id visited (ids ascending). */
export interface BulkOperationRecord {
  id: string;
  workspaceId: string;
  action: DeliveryActionName;
  filter: DeliverySelection;
  deliveryIds: string[];
  /** At most this many deliveries are visited; 0 means no limit. */
  limit: number;
  state: "running" | "succeeded";
  matched: number;
  affected: number;
  cursor: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

/** The new state an action gives a delivery, or null when the action does not apply to it. */
export type Transition = (d: DeliveryRecord) => DeliveryRecord | null;

/** The recovery RPCs' port. */
export interface DeliveryRecovery {
  /**
   * In one transaction: applies `transition` to each of the workspace's deliveries with these ids
   * (rows locked; those it returns null for are left alone) and writes the outbox rows `outbox`
   * builds for each changed one. Returns the changed deliveries, in id order.
   */
  applyToDeliveries(
    workspaceId: string,
    ids: readonly string[],
    transition: Transition,
    outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ changed: DeliveryRecord[]; outbox: OutboxRecord[] }>;
  /** The workspace's deliveries matching the selection, newest first. */
  selectDeliveries(workspaceId: string, selection: DeliverySelection, page: PageQuery): Promise<DeliveryRecord[]>;
  /** The workspace's deliveries of a message, oldest first. */
  listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]>;
  /** Stores a new bulk operation. */
  createBulkOperation(op: BulkOperationRecord): Promise<void>;
  /** Null when missing or in another workspace. */
  getBulkOperation(workspaceId: string, id: string): Promise<BulkOperationRecord | null>;
}

/** The dispatcher's port for bulk operations. */
export interface BulkOperationRunner {
  /**
   * Claims one running bulk operation (concurrent dispatchers get different ones; SKIP LOCKED on
   * PostgreSQL) and, in one transaction, visits its next `batchSize` deliveries after its cursor
   * (ids ascending, matching its filter or ids, up to its limit), applies the transition that
   * `transitionOf(op)` gives to each, writes their outbox rows, and advances the cursor and counts,
   * finishing the operation when nothing is left. Null when no operation is running.
   */
  runBulkBatch(
    batchSize: number,
    at: Date,
    transitionOf: (op: BulkOperationRecord) => Transition,
    outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ operation: BulkOperationRecord; outbox: OutboxRecord[] } | null>;
}

const FINAL: ReadonlySet<DeliveryStatusName> = new Set(["succeeded", "failed", "cancelled"]);
/** Why an operator cancelled a retry (the dead-lettered delivery's last_error). */
export const RETRY_CANCELLED = "retry cancelled by an operator";

/** The transition of an action at time `at`. */
export function transitionFor(action: DeliveryActionName, at: Date): Transition {
  switch (action) {
    case "replay":
      return (d) =>
        FINAL.has(d.status) ? { ...d, status: "queued", nextAttemptAt: null, lastError: "", updatedAt: at } : null;
    case "retry_now":
      return (d) =>
        d.status === "pending_retry" ? { ...d, status: "queued", nextAttemptAt: null, updatedAt: at } : null;
    case "cancel_retry":
      return (d) =>
        d.status === "pending_retry"
          ? { ...d, status: "failed", nextAttemptAt: null, lastError: RETRY_CANCELLED, updatedAt: at }
          : null;
  }
}

/** The outbox rows announcing a changed delivery: its status event, and a job when it is queued. */
export function outboxFor(at: Date): (d: DeliveryRecord) => NewOutboxRecord[] {
  return (d) => (d.status === "queued" ? [statusRow(d, null, at), jobRow(d, at)] : [statusRow(d, null, at)]);
}

/** The statuses an action's bulk filter selects when the caller names none. */
export function defaultStatuses(action: DeliveryActionName): DeliveryStatusName[] {
  return action === "replay" ? ["cancelled", "failed", "succeeded"] : ["pending_retry"];
}

/** What the recovery use cases need. */
export interface RecoveryDeps {
  store: DeliveryRecovery;
  relay: OutboxRelay;
}

const ELIGIBLE: Record<DeliveryActionName, string> = {
  replay: "only a final delivery (succeeded, failed or cancelled) can be replayed",
  retry_now: "only a delivery waiting for a retry (pending_retry) can be retried now",
  cancel_retry: "only a delivery waiting for a retry (pending_retry) can have its retry cancelled",
};

/** Applies an action to one delivery; not_found or failed_precondition (with its status) otherwise. */
export async function actOnDelivery(
  deps: RecoveryDeps,
  workspaceId: string,
  id: string,
  action: DeliveryActionName,
): Promise<DeliveryRecord> {
  const v = new Violations();
  checkId(v, "id", "delivery", id);
  v.throwIfAny();
  const at = new Date();
  let seen: DeliveryRecord | undefined;
  const transition = transitionFor(action, at);
  const { changed, outbox } = await deps.store.applyToDeliveries(
    workspaceId,
    [id],
    (d) => {
      seen = d;
      return transition(d);
    },
    outboxFor(at),
  );
  const [delivery] = changed;
  if (delivery === undefined) {
    if (seen === undefined) throw notFound("delivery", id);
    throw new DomainError(
      "failed_precondition",
      "DELIVERY_STATUS_CONFLICT",
      `${ELIGIBLE[action]}; delivery ${id} is ${seen.status}`,
    );
  }
  void deps.relay.publishNow(outbox);
  return delivery;
}

/** Replays every final delivery of a message; the others are reported as skipped. */
export async function replayMessage(
  deps: RecoveryDeps,
  workspaceId: string,
  id: string,
): Promise<{ replayed: DeliveryRecord[]; skipped: string[] }> {
  const v = new Violations();
  checkId(v, "id", "message", id);
  v.throwIfAny();
  const deliveries = await deps.store.listDeliveriesOfMessage(workspaceId, id);
  if (deliveries.length === 0) throw notFound("message", id);
  const at = new Date();
  const { changed, outbox } = await deps.store.applyToDeliveries(
    workspaceId,
    deliveries.map((d) => d.id),
    transitionFor("replay", at),
    outboxFor(at),
  );
  void deps.relay.publishNow(outbox);
  const done = new Set(changed.map((d) => d.id));
  return { replayed: changed, skipped: deliveries.filter((d) => !done.has(d.id)).map((d) => d.id) };
}

/** A selection as the API received it (empty strings and no dates: not filtered). */
export interface SelectionInput {
  endpointId: string;
  messageId: string;
  eventType: string;
  statuses: readonly (DeliveryStatusName | undefined)[];
  createdAfter: Date | undefined;
  createdBefore: Date | undefined;
}

function checkSelection(v: Violations, field: string, input: SelectionInput): DeliverySelection {
  if (input.endpointId !== "") checkId(v, `${field}.endpoint_id`, "endpoint", input.endpointId);
  if (input.messageId !== "") checkId(v, `${field}.message_id`, "message", input.messageId);
  if (input.eventType !== "") checkEventType(v, `${field}.event_type`, input.eventType);
  input.statuses.forEach((s, i) => {
    if (s === undefined) v.add(`${field}.statuses[${i}]`, "is not a delivery status");
  });
  for (const [name, d] of [
    ["create_time_after", input.createdAfter],
    ["create_time_before", input.createdBefore],
  ] as const) {
    if (d !== undefined && !Number.isFinite(d.getTime())) v.add(`${field}.${name}`, "is not a valid time");
  }
  if (
    input.createdAfter !== undefined &&
    input.createdBefore !== undefined &&
    input.createdAfter >= input.createdBefore
  ) {
    v.add(`${field}.create_time_before`, "must be after create_time_after");
  }
  const statuses = [...new Set(input.statuses.filter((s): s is DeliveryStatusName => s !== undefined))].sort();
  return {
    endpointId: input.endpointId || undefined,
    messageId: input.messageId || undefined,
    eventType: input.eventType || undefined,
    statuses: statuses.length > 0 ? statuses : undefined,
    createdAfter: input.createdAfter,
    createdBefore: input.createdBefore,
  };
}

/** The dead letter queue: failed deliveries, newest first. */
export async function listDeadLetters(
  store: Pick<DeliveryRecovery, "selectDeliveries">,
  workspaceId: string,
  req: { pageSize: number; pageToken: string; filter: SelectionInput },
): Promise<{ items: DeliveryRecord[]; nextPageToken: string }> {
  const v = new Violations();
  if (req.filter.statuses.length > 0) v.add("filter.statuses", "must be empty: the list holds failed deliveries only");
  const selection = { ...checkSelection(v, "filter", req.filter), statuses: ["failed" as const] };
  let limit = 0;
  try {
    limit = pageSize(req.pageSize);
  } catch {
    v.add("page_size", "must not be negative");
  }
  v.throwIfAny();
  const token = {
    ...selection,
    createdAfter: selection.createdAfter?.toISOString(),
    createdBefore: selection.createdBefore?.toISOString(),
  };
  const afterId = decodePageToken(req.pageToken, "dead_letters", token);
  const rows = await store.selectDeliveries(workspaceId, selection, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "dead_letters", token);
}

/** The most deliveries a bulk operation may name by id. */
export const MAX_BULK_IDS = 1000;

/** Starts a bulk operation; the dispatcher works through it in the background. */
export async function startBulkOperation(
  store: Pick<DeliveryRecovery, "createBulkOperation">,
  workspaceId: string,
  req: {
    action: DeliveryActionName | undefined;
    deliveryIds: readonly string[];
    filter: SelectionInput | undefined;
    limit: number;
  },
): Promise<BulkOperationRecord> {
  const v = new Violations();
  if (req.action === undefined) v.add("action", "is required: replay, retry_now or cancel_retry");
  if (req.deliveryIds.length > MAX_BULK_IDS) v.add("delivery_ids", `must name at most ${MAX_BULK_IDS} deliveries`);
  req.deliveryIds.forEach((id, i) => checkId(v, `delivery_ids[${i}]`, "delivery", id));
  if (req.deliveryIds.length > 0 && req.filter !== undefined) {
    v.add("filter", "must be empty when delivery_ids are given");
  }
  if (!Number.isInteger(req.limit) || req.limit < 0) v.add("limit", "must be 0 (no limit) or a positive number");
  const selection = req.filter === undefined ? {} : checkSelection(v, "filter", req.filter);
  v.throwIfAny();
  const action = req.action!;
  const now = new Date();
  const op: BulkOperationRecord = {
    id: newId("bulkOperation", now.getTime()),
    workspaceId,
    action,
    filter: req.deliveryIds.length > 0 ? {} : { ...selection, statuses: selection.statuses ?? defaultStatuses(action) },
    deliveryIds: [...new Set(req.deliveryIds)].sort(),
    limit: req.limit,
    state: "running",
    matched: 0,
    affected: 0,
    cursor: "",
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
  await store.createBulkOperation(op);
  return op;
}

/** A bulk operation of the workspace. */
export async function getBulkOperation(
  store: Pick<DeliveryRecovery, "getBulkOperation">,
  workspaceId: string,
  id: string,
): Promise<BulkOperationRecord> {
  const v = new Violations();
  checkId(v, "id", "bulkOperation", id);
  v.throwIfAny();
  const op = await store.getBulkOperation(workspaceId, id);
  if (op === null) throw notFound("bulk_operation", id);
  return op;
}
