import { LockMode, raw } from "@mikro-orm/core";
import type { DeliveryFilter, DeliveryReader } from "../../domain/deliveries.ts";
import type { AttemptContext, AttemptOutcome, DeliveryLedger } from "../../domain/delivery-ledger.ts";
import type { DueReleaser } from "../../domain/due-deliveries.ts";
import type { PublishChecks } from "../../domain/publish-check.ts";
import { GONE_REASON, nextHealth, type AutoDisablePolicy, type HealthEvent } from "../../domain/endpoint-health.ts";
import { attemptExhaustedEvent, endpointDisabledEvent } from "../../domain/operational-events.ts";
import { FINAL_STATUSES } from "../../domain/records.ts";
import type { AttemptRecord, DeliveryRecord, NewOutboxRecord, OutboxRecord, PageQuery } from "../../domain/records.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { Message } from "../messages/message.entity.ts";
import { attemptRecord, deliveryRecord, endpointRecord, messageRecord } from "../record-mappers.ts";
import { DETACHED, keyset, limitOf, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { writeOperationalEvent } from "../operational/operational-event-writer.ts";
import { Attempt } from "./attempt.entity.ts";
import { DUE, NON_FINAL, ORDER_BLOCKING, cancelledDelivery } from "./delivery-states.ts";
import { Delivery } from "./delivery.entity.ts";
import { createPgDeliveryLedger } from "./pg-delivery-ledger.ts";

/** Deliveries and attempts: reads, the worker's ledger, the dispatcher's due release and publish checks. */
export interface DeliveryStore extends DeliveryReader, DeliveryLedger, DueReleaser, PublishChecks {}

/** `status = 'queued'`: the predicate of the partial index delivery_publish_check_index, as a literal. */
const QUEUED_PREDICATE = raw(`status = 'queued'`);
/**
 * Untouched since intake: every transition sets updated_at, so a delivery that was held, retried,
 * replayed or released and is queued again (its check perhaps never cleared) is not re-published
 * by its stale check: its job went through the outbox, and a second job would mean a second attempt.
 */
const UNTOUCHED_PREDICATE = raw(`updated_at = created_at`);

/** last_error of a delivery held while its endpoint is disabled. */
export const ENDPOINT_DISABLED_HELD = "endpoint disabled: held until it is enabled again";

/** Thrown inside a transaction to roll it back and hand a value out of it. */
class Rollback<T> extends Error {
  readonly value: T;
  constructor(value: T) {
    super("rollback");
    this.value = value;
  }
}

/** The worker's ledger on MikroORM (the reference implementation, both databases). */
/** `status in ('pending_retry', 'scheduled')`: the predicate of the partial index delivery_due_index. */
const DUE_PREDICATE = raw(`status in (${DUE.map((status) => `'${status}'`).join(", ")})`);

export function createDeliveryLedger(ctx: StoreContext): DeliveryLedger {
  return {
    async earlierOpenDelivery(endpointId: string, deliveryId: string) {
      const row = await ctx.run((em) =>
        em.findOne(
          Delivery,
          { endpointId, id: { $lt: deliveryId }, status: { $in: ORDER_BLOCKING } },
          { ...DETACHED, orderBy: { id: "asc" }, fields: ["id", "status", "nextAttemptAt"] },
        ),
      );
      return row === null ? null : { id: row.id, status: row.status, nextAttemptAt: row.nextAttemptAt ?? null };
    },

    async loadAttemptContext(deliveryId: string): Promise<AttemptContext | null> {
      return ctx.run(async (em) => {
        const row = await em.findOne(Delivery, { id: deliveryId }, DETACHED);
        if (row === null) return null;
        // Two forks so the two reads run at once on PostgreSQL's pool.
        const [message, endpoint] = await Promise.all([
          em.fork().findOne(Message, { id: row.messageId }, DETACHED),
          em.fork().findOne(Endpoint, { id: row.endpointId, deletedAt: null }, DETACHED),
        ]);
        if (message === null) return null;
        return {
          delivery: deliveryRecord(row),
          message: messageRecord(message),
          endpoint: endpoint === null ? null : endpointRecord(endpoint),
        };
      });
    },

    async recordAttempt(
      outcome: AttemptOutcome,
    ): Promise<{ applied: boolean; delivery: DeliveryRecord; outbox: OutboxRecord[] }> {
      const { attempt } = outcome;
      const notApplied = async (): Promise<{ applied: false; delivery: DeliveryRecord; outbox: OutboxRecord[] }> => {
        const row = await ctx.run((em) => em.findOne(Delivery, { id: attempt.deliveryId }, DETACHED));
        if (row === null) throw new Error(`delivery ${attempt.deliveryId} does not exist`);
        return { applied: false, delivery: deliveryRecord(row), outbox: [] };
      };
      try {
        const done = await unitOfWork(ctx, async (em) => {
          const row = await em.findOne(Delivery, { id: attempt.deliveryId }, DETACHED);
          if (row === null || row.attemptCount !== attempt.number - 1) {
            throw new Rollback(row === null ? null : deliveryRecord(row));
          }
          const change = {
            status: outcome.delivery.status,
            attemptCount: attempt.number,
            nextAttemptAt: outcome.delivery.nextAttemptAt,
            lastResponseStatus: outcome.delivery.lastResponseStatus,
            lastError: outcome.delivery.lastError,
            updatedAt: outcome.delivery.updatedAt,
          };
          // Conditional on the count we read: a concurrent recorder of the same attempt loses here.
          const updated = await em.nativeUpdate(
            Delivery,
            { id: attempt.deliveryId, attemptCount: attempt.number - 1 },
            change,
          );
          if (updated === 0) throw new Rollback(null);
          await em.insert(Attempt, attempt);
          const delivery: DeliveryRecord = { ...deliveryRecord(row), ...change };
          // A dead letter announces itself in the same transaction (none for an operational event's).
          const exhausted =
            delivery.status === "failed" ? attemptExhaustedEvent(delivery, attempt, change.updatedAt) : null;
          const emitted = exhausted === null ? [] : await writeOperationalEvent(em, exhausted);
          return { value: { delivery, emitted }, outbox: outcome.outbox(delivery) };
        });
        if (done === null) return await notApplied();
        outcome.emitted?.push(...done.value.emitted);
        return { applied: true, delivery: done.value.delivery, outbox: done.outbox };
      } catch (error) {
        if (error instanceof Rollback) {
          const value = error.value as DeliveryRecord | null;
          return value === null ? notApplied() : { applied: false, delivery: value, outbox: [] };
        }
        if (isUniqueViolation(error)) return notApplied();
        throw error;
      }
    },

    async recordEndpointHealth(
      endpointId: string,
      event: HealthEvent,
      at: Date,
      policy: AutoDisablePolicy,
      emitted?: DeliveryRecord[],
    ): Promise<string | null> {
      const done = await ctx.tx(async (em) => {
        const where = { id: endpointId, deletedAt: null };
        const row = await em.findOne(Endpoint, where, { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) });
        if (row === null) return null;
        const next = nextHealth(row.health, event, at.getTime(), policy);
        // An endpoint already disabled keeps the reason it was disabled for.
        const disable = next.disable !== null && Boolean(row.enabled);
        const health = disable
          ? next.health
          : {
              ...next.health,
              disabledReason: row.health?.disabledReason ?? "",
              disabledAtMs: row.health?.disabledAtMs ?? null,
            };
        await em.nativeUpdate(Endpoint, where, disable ? { health, enabled: false, updatedAt: at } : { health });
        if (!disable) return null;
        const reason = next.disable!;
        const announced = endpointDisabledEvent(
          { id: endpointId, workspaceId: row.workspaceId },
          reason === GONE_REASON ? "gone" : "auto_disable",
          reason,
          health,
          at,
        );
        return { reason, emitted: await writeOperationalEvent(em, announced) };
      });
      if (done === null) return null;
      emitted?.push(...done.emitted);
      return done.reason;
    },

    async holdDelivery(
      deliveryId: string,
      endpointId: string,
      at: Date,
      outbox: (held: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ result: "held"; outbox: OutboxRecord[] } | { result: "enabled" | "gone" | "not_queued" }> {
      type Verdict = "enabled" | "gone" | "not_queued";
      const done = await unitOfWork(ctx, async (em) => {
        const endpoint = await em.findOne(
          Endpoint,
          { id: endpointId, deletedAt: null },
          { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_READ) },
        );
        if (endpoint === null) throw new Rollback<Verdict>("gone");
        if (endpoint.enabled) throw new Rollback<Verdict>("enabled");
        const row = await em.findOne(Delivery, { id: deliveryId, status: "queued" }, DETACHED);
        if (row === null) throw new Rollback<Verdict>("not_queued");
        const updated = await em.nativeUpdate(
          Delivery,
          { id: deliveryId, status: "queued" },
          { status: "held", nextAttemptAt: null, lastError: ENDPOINT_DISABLED_HELD, updatedAt: at },
        );
        if (updated === 0) throw new Rollback<Verdict>("not_queued");
        const held: DeliveryRecord = {
          ...deliveryRecord(row),
          status: "held",
          nextAttemptAt: null,
          lastError: ENDPOINT_DISABLED_HELD,
          updatedAt: at,
        };
        return { value: held, outbox: outbox(held) };
      }).catch((error: unknown) => {
        if (error instanceof Rollback) return error.value as Verdict;
        throw error;
      });
      if (typeof done === "string") return { result: done };
      if (done === null) return { result: "not_queued" };
      return { result: "held", outbox: done.outbox };
    },

    async disableEndpoint(workspaceId: string, endpointId: string, at: Date): Promise<boolean> {
      const changed = await ctx.run((em) =>
        em.nativeUpdate(
          Endpoint,
          { id: endpointId, workspaceId, enabled: true, deletedAt: null },
          { enabled: false, updatedAt: at },
        ),
      );
      return changed > 0;
    },

    async cancelDelivery(
      deliveryId: string,
      reason: string,
      at: Date,
      outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ delivery: DeliveryRecord; outbox: OutboxRecord[] } | null> {
      const done = await unitOfWork(ctx, async (em) => {
        const row = await em.findOne(
          Delivery,
          { id: deliveryId },
          { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        if (row === null || FINAL_STATUSES.has(row.status)) return null;
        const updated = await em.nativeUpdate(
          Delivery,
          { id: deliveryId, status: { $in: NON_FINAL } },
          { status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at },
        );
        if (updated === 0) return null;
        const delivery = cancelledDelivery(deliveryRecord(row), reason, at);
        return { value: delivery, outbox: outbox(delivery) };
      });
      return done === null ? null : { delivery: done.value, outbox: done.outbox };
    },
  };
}

/**
 * Creates the delivery repository. With `overrides` on PostgreSQL the worker's two hottest calls
 * (loading an attempt's context, recording an attempt) go through pg-delivery-ledger.ts; every
 * other call is the MikroORM reference on both databases.
 */
export function createDeliveryRepository(ctx: StoreContext, overrides: boolean): DeliveryStore {
  const reference = createDeliveryLedger(ctx);
  const ledger = ctx.pg && overrides ? createPgDeliveryLedger(ctx, reference) : reference;
  return {
    loadAttemptContext: (id) => ledger.loadAttemptContext(id),
    recordAttempt: (outcome) => ledger.recordAttempt(outcome),
    cancelDelivery: (id, reason, at, outbox) => ledger.cancelDelivery(id, reason, at, outbox),
    disableEndpoint: (workspaceId, endpointId, at) => ledger.disableEndpoint(workspaceId, endpointId, at),
    recordEndpointHealth: (endpointId, event, at, policy, emitted) =>
      ledger.recordEndpointHealth(endpointId, event, at, policy, emitted),
    holdDelivery: (deliveryId, endpointId, at, outbox) => ledger.holdDelivery(deliveryId, endpointId, at, outbox),
    earlierOpenDelivery: (endpointId, deliveryId) => ledger.earlierOpenDelivery(endpointId, deliveryId),

    async getDelivery(workspaceId: string, id: string, applicationId?: string): Promise<DeliveryRecord | null> {
      const row = await ctx.run(async (em) => {
        const d = await em.findOne(Delivery, { id, workspaceId }, DETACHED);
        if (d === null || applicationId === undefined) return d;
        // Deleted endpoints count: their deliveries stay the application's history.
        const ep = await em.findOne(
          Endpoint,
          { id: d.endpointId, workspaceId, applicationId },
          {
            ...DETACHED,
            fields: ["id"],
          },
        );
        return ep === null ? null : d;
      });
      return row === null ? null : deliveryRecord(row);
    },

    async listDeliveries(workspaceId: string, filter: DeliveryFilter, page: PageQuery): Promise<DeliveryRecord[]> {
      const rows = await ctx.run(async (em) => {
        // The application's endpoints (deleted ones too) on (workspace_id, application_id); an
        // application has few, so the deliveries are then read on their endpoint index.
        let endpointIds: string[] | undefined;
        if (filter.applicationId !== undefined) {
          const eps = await em.find(
            Endpoint,
            { workspaceId, applicationId: filter.applicationId },
            { ...DETACHED, fields: ["id"] },
          );
          endpointIds = eps.map((e) => e.id).filter((e) => filter.endpointId === undefined || e === filter.endpointId);
          if (endpointIds.length === 0) return [];
        }
        return em.find(
          Delivery,
          {
            workspaceId,
            ...(endpointIds !== undefined
              ? { endpointId: { $in: endpointIds } }
              : filter.endpointId === undefined
                ? {}
                : { endpointId: filter.endpointId }),
            ...(filter.messageId === undefined ? {} : { messageId: filter.messageId }),
            ...(filter.statuses === undefined || filter.statuses.length === 0
              ? {}
              : { status: { $in: [...filter.statuses] } }),
            ...(filter.eventType === undefined ? {} : { eventType: filter.eventType }),
            ...(filter.createdAfter === undefined && filter.createdBefore === undefined
              ? {}
              : {
                  createdAt: {
                    ...(filter.createdAfter === undefined ? {} : { $gte: filter.createdAfter }),
                    ...(filter.createdBefore === undefined ? {} : { $lt: filter.createdBefore }),
                  },
                }),
            ...keyset("desc", page.afterId),
          },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        );
      });
      return rows.map(deliveryRecord);
    },

    async listAttempts(workspaceId: string, deliveryId: string, page: PageQuery): Promise<AttemptRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Attempt,
          { workspaceId, deliveryId, ...keyset("asc", page.afterId) },
          { ...DETACHED, orderBy: { id: "asc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(attemptRecord);
    },

    async releaseDue(
      now: Date,
      limit: number,
      outbox: (released: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ released: DeliveryRecord[]; outbox: OutboxRecord[] }> {
      const done = await unitOfWork(ctx, async (em) => {
        // SKIP LOCKED on PostgreSQL: concurrent dispatchers claim disjoint rows without waiting.
        // The statuses are literals so that both planners prove the partial delivery_due_index
        // applies (neither does for bound parameters on SQLite) and read it in ORDER BY order.
        const due = await em.find(
          Delivery,
          { [DUE_PREDICATE]: [], nextAttemptAt: { $lte: now } },
          {
            ...DETACHED,
            orderBy: { nextAttemptAt: "asc", id: "asc" },
            limit: Math.max(1, Math.trunc(limit)),
            lockMode: ctx.lock(LockMode.PESSIMISTIC_PARTIAL_WRITE),
          },
        );
        if (due.length === 0) return null;
        const released = due.map((row): DeliveryRecord => ({
          ...deliveryRecord(row),
          status: "queued",
          nextAttemptAt: null,
          updatedAt: now,
        }));
        await em.nativeUpdate(
          Delivery,
          { id: { $in: released.map((d) => d.id) }, status: { $in: DUE } },
          { status: "queued", nextAttemptAt: null, updatedAt: now },
        );
        return { value: released, outbox: released.flatMap(outbox) };
      });
      return done === null ? { released: [], outbox: [] } : { released: done.value, outbox: done.outbox };
    },

    async duePublishChecks(now: Date, limit: number): Promise<DeliveryRecord[]> {
      // No lock: two dispatchers checking the same delivery publish the same msgIds (deduplicated).
      const rows = await ctx.run((em) =>
        em.find(
          Delivery,
          { [QUEUED_PREDICATE]: [], [UNTOUCHED_PREDICATE]: [], publishCheckAt: { $lte: now } },
          { ...DETACHED, orderBy: { publishCheckAt: "asc" }, limit: Math.max(1, Math.trunc(limit)) },
        ),
      );
      return rows.map(deliveryRecord);
    },

    async confirmPublished(ids: readonly string[]): Promise<void> {
      if (ids.length === 0) return;
      await ctx.run((em) => em.nativeUpdate(Delivery, { id: { $in: [...ids] } }, { publishCheckAt: null }));
    },
  };
}
