import { LockMode } from "@mikro-orm/core";
import type { FilterQuery } from "@mikro-orm/core";
import type {
  BulkOperationRecord,
  BulkOperationRunner,
  DeliveryRecovery,
  DeliverySelection,
  Transition,
} from "../../domain/recovery.ts";
import type { AckLedger, AckTransition } from "../../domain/async-ack.ts";
import type { RetryOverride, RetrySources } from "../../domain/retry-policy.ts";
import type { DeliveryRecord, NewOutboxRecord, OutboxRecord, PageQuery } from "../../domain/records.ts";
import { attemptExhaustedEvent } from "../../domain/operational-events.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { writeOperationalEvent } from "../operational/operational-event-writer.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { Message } from "../messages/message.entity.ts";
import { deliveryRecord } from "../record-mappers.ts";
import { DETACHED, keyset, limitOf, type Em, type StoreContext } from "../store-context.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { BulkOperation } from "./bulk-operation.entity.ts";

/** Recovery actions, bulk operations and acknowledgements on MikroORM (both databases). */
export interface RecoveryStore extends DeliveryRecovery, BulkOperationRunner, AckLedger {}

function selectionWhere(workspaceId: string, s: DeliverySelection): FilterQuery<Delivery> {
  const created: { $gte?: Date; $lt?: Date } = {};
  if (s.createdAfter !== undefined) created.$gte = s.createdAfter;
  if (s.createdBefore !== undefined) created.$lt = s.createdBefore;
  return {
    workspaceId,
    ...(s.endpointId === undefined ? {} : { endpointId: s.endpointId }),
    ...(s.messageId === undefined ? {} : { messageId: s.messageId }),
    ...(s.eventType === undefined ? {} : { eventType: s.eventType }),
    ...(s.statuses === undefined || s.statuses.length === 0 ? {} : { status: { $in: [...s.statuses] } }),
    ...(Object.keys(created).length === 0 ? {} : { createdAt: created }),
  };
}

function selectionJson(s: DeliverySelection): Record<string, unknown> {
  return {
    ...s,
    createdAfter: s.createdAfter?.toISOString(),
    createdBefore: s.createdBefore?.toISOString(),
  };
}

function selectionOf(json: Record<string, unknown>): DeliverySelection {
  const str = (k: string): string | undefined => (typeof json[k] === "string" ? json[k] : undefined);
  const date = (k: string): Date | undefined => (str(k) === undefined ? undefined : new Date(str(k)!));
  return {
    endpointId: str("endpointId"),
    messageId: str("messageId"),
    eventType: str("eventType"),
    statuses: Array.isArray(json["statuses"]) ? (json["statuses"] as DeliverySelection["statuses"]) : undefined,
    createdAfter: date("createdAfter"),
    createdBefore: date("createdBefore"),
  };
}

function bulkRecord(row: BulkOperation): BulkOperationRecord {
  const filter: unknown = typeof row.filter === "string" ? JSON.parse(row.filter) : row.filter;
  const ids: unknown = typeof row.deliveryIds === "string" ? JSON.parse(row.deliveryIds) : row.deliveryIds;
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    action: row.action,
    filter: selectionOf((filter ?? {}) as Record<string, unknown>),
    deliveryIds: Array.isArray(ids) ? (ids as string[]) : [],
    limit: row.limit,
    state: row.state,
    matched: row.matched,
    affected: row.affected,
    cursor: row.cursor,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    finishedAt: row.finishedAt ?? null,
  };
}

/**
 * Applies a transition to locked delivery rows, each update conditional on the status and attempt
 * count it was computed from, so a worker or dispatcher that changed the row meanwhile wins.
 */
/**
 * message.attempt.exhausted for each delivery an ack transition (a nack, an expired wait) just
 * dead-lettered, written in the caller's transaction like the worker's (delivery-repository.ts);
 * its deliveries are their own outbox, so committing them is enough for them to go out.
 */
async function announceDeadLetters(em: Em, changed: readonly DeliveryRecord[]): Promise<void> {
  for (const d of changed) {
    if (d.status !== "failed") continue;
    const event = attemptExhaustedEvent(d, null, d.updatedAt);
    if (event !== null) await writeOperationalEvent(em, event);
  }
}

async function applyTransition(em: Em, rows: readonly Delivery[], transition: Transition): Promise<DeliveryRecord[]> {
  const changed: DeliveryRecord[] = [];
  for (const row of rows) {
    const before = deliveryRecord(row);
    const after = transition(before);
    if (after === null) continue;
    const n = await em.nativeUpdate(
      Delivery,
      { id: before.id, status: before.status, attemptCount: before.attemptCount },
      {
        status: after.status,
        nextAttemptAt: after.nextAttemptAt,
        lastError: after.lastError,
        updatedAt: after.updatedAt,
      },
    );
    if (n === 1) changed.push(after);
  }
  return changed;
}

// A JSON column as stored (parsed, or text on some drivers); null when unset.
function jsonOrNull<T>(value: unknown): T | null {
  if (value === null || value === undefined) return null;
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
}

/**
 * The ack transition with each delivery's retry sources: its message's override and its
 * endpoint's policy, read in the transaction that holds the delivery rows (two lookups by id).
 */
async function withRetrySources(em: Em, rows: readonly Delivery[], transition: AckTransition): Promise<Transition> {
  if (rows.length === 0) return () => null;
  const messageIds = [...new Set(rows.map((r) => r.messageId))];
  const endpointIds = [...new Set(rows.map((r) => r.endpointId).filter((id) => id !== ""))];
  const messages = await em.find(Message, { id: { $in: messageIds } }, { ...DETACHED, fields: ["id", "retry"] });
  const endpoints =
    endpointIds.length === 0
      ? []
      : await em.find(Endpoint, { id: { $in: endpointIds } }, { ...DETACHED, fields: ["id", "retryPolicy"] });
  const byMessage = new Map(messages.map((m) => [m.id, jsonOrNull<RetryOverride>(m.retry)]));
  const byEndpoint = new Map(endpoints.map((e) => [e.id, jsonOrNull<RetryOverride>(e.retryPolicy)]));
  return (d) => {
    const sources: RetrySources = { message: byMessage.get(d.messageId), endpoint: byEndpoint.get(d.endpointId) };
    return transition(d, sources);
  };
}

/** Creates the recovery repository. */
export function createRecoveryRepository(ctx: StoreContext): RecoveryStore {
  return {
    async applyToDeliveries(
      workspaceId: string,
      ids: readonly string[],
      transition: Transition,
      outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ changed: DeliveryRecord[]; outbox: OutboxRecord[] }> {
      if (ids.length === 0) return { changed: [], outbox: [] };
      const done = await unitOfWork(ctx, async (em) => {
        const rows = await em.find(
          Delivery,
          { workspaceId, id: { $in: [...ids] } },
          { ...DETACHED, orderBy: { id: "asc" }, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        const changed = await applyTransition(em, rows, transition);
        return { value: changed, outbox: changed.flatMap(outbox) };
      });
      return done === null ? { changed: [], outbox: [] } : { changed: done.value, outbox: done.outbox };
    },

    async settleAck(
      deliveryId: string,
      attempt: number,
      transition: AckTransition,
      outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ changed: DeliveryRecord | null; current: DeliveryRecord | null; outbox: OutboxRecord[] }> {
      type Settled = { changed: DeliveryRecord | null; current: DeliveryRecord | null };
      const done = await unitOfWork<Settled>(ctx, async (em) => {
        const row = await em.findOne(
          Delivery,
          { id: deliveryId },
          { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        if (row === null) return { value: { changed: null, current: null }, outbox: [] };
        const current = deliveryRecord(row);
        if (current.attemptCount !== attempt || current.status !== "awaiting_ack")
          return { value: { changed: null, current }, outbox: [] };
        const [changed] = await applyTransition(em, [row], await withRetrySources(em, [row], transition));
        if (changed !== undefined) await announceDeadLetters(em, [changed]);
        return {
          value: { changed: changed ?? null, current: changed ?? current },
          outbox: changed === undefined ? [] : outbox(changed),
        };
      });
      return done === null
        ? { changed: null, current: null, outbox: [] }
        : { changed: done.value.changed, current: done.value.current, outbox: done.outbox };
    },

    async expireAcks(
      now: Date,
      limit: number,
      transition: AckTransition,
      outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ changed: DeliveryRecord[]; outbox: OutboxRecord[] }> {
      const done = await unitOfWork(ctx, async (em) => {
        // SKIP LOCKED on PostgreSQL: concurrent dispatchers expire disjoint rows.
        const rows = await em.find(
          Delivery,
          { status: "awaiting_ack", nextAttemptAt: { $lte: now } },
          {
            ...DETACHED,
            orderBy: { nextAttemptAt: "asc", id: "asc" },
            limit: Math.max(1, Math.trunc(limit)),
            lockMode: ctx.lock(LockMode.PESSIMISTIC_PARTIAL_WRITE),
          },
        );
        if (rows.length === 0) return null;
        const changed = await applyTransition(em, rows, await withRetrySources(em, rows, transition));
        await announceDeadLetters(em, changed);
        return { value: changed, outbox: changed.flatMap(outbox) };
      });
      return done === null ? { changed: [], outbox: [] } : { changed: done.value, outbox: done.outbox };
    },

    async selectDeliveries(
      workspaceId: string,
      selection: DeliverySelection,
      page: PageQuery,
    ): Promise<DeliveryRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Delivery,
          { ...(selectionWhere(workspaceId, selection) as object), ...keyset("desc", page.afterId) },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(deliveryRecord);
    },

    async listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(Delivery, { workspaceId, messageId }, { ...DETACHED, orderBy: { id: "asc" } }),
      );
      return rows.map(deliveryRecord);
    },

    async createBulkOperation(op: BulkOperationRecord): Promise<void> {
      await ctx.run((em) => em.insert(BulkOperation, { ...op, filter: selectionJson(op.filter) }));
    },

    async getBulkOperation(workspaceId: string, id: string): Promise<BulkOperationRecord | null> {
      const row = await ctx.run((em) => em.findOne(BulkOperation, { id, workspaceId }, DETACHED));
      return row === null ? null : bulkRecord(row);
    },

    async runBulkBatch(
      batchSize: number,
      at: Date,
      transitionOf: (op: BulkOperationRecord) => Transition,
      outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ operation: BulkOperationRecord; outbox: OutboxRecord[] } | null> {
      const done = await unitOfWork(ctx, async (em) => {
        const [row] = await em.find(
          BulkOperation,
          { state: "running" },
          { ...DETACHED, orderBy: { id: "asc" }, limit: 1, lockMode: ctx.lock(LockMode.PESSIMISTIC_PARTIAL_WRITE) },
        );
        if (row === undefined) return null;
        const op = bulkRecord(row);
        const remaining = op.limit > 0 ? op.limit - op.matched : Number.POSITIVE_INFINITY;
        const take = Math.max(0, Math.min(Math.max(1, Math.trunc(batchSize)), remaining));
        const after = op.cursor === "" ? {} : { $gt: op.cursor };
        const where: FilterQuery<Delivery> =
          op.deliveryIds.length > 0
            ? { workspaceId: op.workspaceId, id: { $in: op.deliveryIds, ...after } }
            : { ...(selectionWhere(op.workspaceId, op.filter) as object), ...(op.cursor === "" ? {} : { id: after }) };
        const rows =
          take === 0
            ? []
            : await em.find(Delivery, where, {
                ...DETACHED,
                orderBy: { id: "asc" },
                limit: take,
                lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE),
              });
        const changed = await applyTransition(em, rows, transitionOf(op));
        const matched = op.matched + rows.length;
        const finished = rows.length < take || take === 0 || (op.limit > 0 && matched >= op.limit);
        const next: BulkOperationRecord = {
          ...op,
          matched,
          affected: op.affected + changed.length,
          cursor: rows.at(-1)?.id ?? op.cursor,
          state: finished ? "succeeded" : "running",
          updatedAt: at,
          finishedAt: finished ? at : null,
        };
        await em.nativeUpdate(
          BulkOperation,
          { id: op.id },
          {
            matched: next.matched,
            affected: next.affected,
            cursor: next.cursor,
            state: next.state,
            updatedAt: next.updatedAt,
            finishedAt: next.finishedAt,
          },
        );
        return { value: next, outbox: changed.flatMap(outbox) };
      });
      return done === null ? null : { operation: done.value, outbox: done.outbox };
    },
  };
}
