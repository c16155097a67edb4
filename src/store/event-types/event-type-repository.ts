import { LockMode } from "@mikro-orm/core";
import type { EventTypePageQuery, EventTypePatch, EventTypeRepository } from "../../domain/event-types.ts";
import type { DeliveryRecord, EventTypeRecord, NewOutboxRecord, OutboxRecord } from "../../domain/records.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { NON_FINAL, cancelledDelivery } from "../deliveries/delivery-states.ts";
import { deliveryRecord } from "../record-mappers.ts";
import { DETACHED, limitOf, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { EventType } from "./event-type.entity.ts";

/** EventType row → record. */
export function eventTypeRecord(row: EventType): EventTypeRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    name: row.name,
    description: row.description,
    schema: row.schema ?? null,
    archived: Boolean(row.archived),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/**
 * Event types on MikroORM (reference implementation, both databases; Send reads them through the
 * API server's event type cache, so no dialect override is needed).
 */
export function createEventTypeRepository(ctx: StoreContext): EventTypeRepository {
  return {
    async createEventType(et: EventTypeRecord): Promise<boolean> {
      try {
        await ctx.run((em) => em.insert(EventType, { ...et }));
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },

    async getEventType(workspaceId: string, name: string): Promise<EventTypeRecord | null> {
      const row = await ctx.run((em) => em.findOne(EventType, { workspaceId, name }, DETACHED));
      return row === null ? null : eventTypeRecord(row);
    },

    async listEventTypes(workspaceId: string, page: EventTypePageQuery): Promise<EventTypeRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          EventType,
          {
            workspaceId,
            ...(page.afterName === undefined ? {} : { name: { $gt: page.afterName } }),
            ...(page.includeArchived ? {} : { archived: false }),
          },
          { ...DETACHED, orderBy: { name: "asc" }, limit: limitOf({ afterId: undefined, limit: page.limit }) },
        ),
      );
      return rows.map(eventTypeRecord);
    },

    async updateEventType(
      workspaceId: string,
      name: string,
      patch: EventTypePatch,
      at: Date,
    ): Promise<EventTypeRecord | null> {
      return ctx.tx(async (em) => {
        const where = { workspaceId, name };
        const row = await em.findOne(EventType, where, { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) });
        if (row === null) return null;
        const changes: EventTypePatch & { updatedAt: Date } = { updatedAt: at };
        for (const [key, value] of Object.entries(patch) as [keyof EventTypePatch, unknown][]) {
          if (value !== undefined) Object.assign(changes, { [key]: value });
        }
        await em.nativeUpdate(EventType, where, changes);
        return { ...eventTypeRecord(row), ...changes };
      });
    },

    async deleteEventType(
      workspaceId: string,
      name: string,
      at: Date,
      reason: string,
      outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null> {
      const done = await unitOfWork(ctx, async (em) => {
        const deleted = await em.nativeDelete(EventType, { workspaceId, name });
        if (deleted === 0) return null;
        // Locked so a worker recording an attempt cannot finalise a row we are about to cancel.
        const open = await em.find(
          Delivery,
          { workspaceId, eventType: name, status: { $in: NON_FINAL } },
          { ...DETACHED, orderBy: { id: "asc" }, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        const cancelled = open.map((row) => cancelledDelivery(deliveryRecord(row), reason, at));
        if (cancelled.length > 0) {
          await em.nativeUpdate(
            Delivery,
            { id: { $in: cancelled.map((d) => d.id) } },
            { status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at },
          );
        }
        return { value: cancelled, outbox: cancelled.flatMap(outbox) };
      });
      return done === null ? null : { cancelled: done.value, outbox: done.outbox };
    },
  };
}
