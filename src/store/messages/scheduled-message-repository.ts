import { LockMode } from "@mikro-orm/core";
import type { ScheduleChange, ScheduleChangeResult, ScheduledMessages } from "../../domain/message-schedule.ts";
import type { DeliveryRecord, MessageRecord, NewOutboxRecord } from "../../domain/records.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { deliveryRecord, messageRecord } from "../record-mappers.ts";
import { DETACHED, inEnvironment, type StoreContext } from "../store-context.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { Message } from "./message.entity.ts";

/**
 * CancelMessage / RescheduleMessage on MikroORM (both databases). The message's deliveries are
 * locked FOR UPDATE on PostgreSQL: the dispatcher's release locks with SKIP LOCKED, so whichever
 * of the two locks a delivery first decides, and the other sees the committed result.
 */
export function createScheduledMessageRepository(ctx: StoreContext): ScheduledMessages {
  return {
    async changeSchedule(
      workspaceId: string,
      messageId: string,
      change: ScheduleChange,
      at: Date,
      outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
      environmentId?: string | null,
    ): Promise<ScheduleChangeResult> {
      let result: ScheduleChangeResult = { outcome: "not_found" };
      await unitOfWork(ctx, async (em) => {
        const row = await em.findOne(
          Message,
          { id: messageId, workspaceId, ...inEnvironment(workspaceId, environmentId) },
          DETACHED,
        );
        if (row === null) return null;
        const rows = await em.find(
          Delivery,
          { workspaceId, messageId },
          { ...DETACHED, orderBy: { id: "asc" }, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        let message: MessageRecord = messageRecord(row);
        const all = rows.map(deliveryRecord);
        const waiting = all.filter((d) => d.status === "scheduled");
        if (waiting.length === 0) {
          result = { outcome: "not_scheduled", message, deliveries: all };
          return null;
        }
        const ids = waiting.map((d) => d.id);
        const set =
          change.kind === "cancel"
            ? { status: "cancelled" as const, nextAttemptAt: null, lastError: change.reason, updatedAt: at }
            : { nextAttemptAt: change.deliverAt, updatedAt: at };
        await em.nativeUpdate(Delivery, { id: { $in: ids }, status: "scheduled" }, set);
        if (change.kind === "reschedule") {
          await em.nativeUpdate(Message, { id: messageId, workspaceId }, { deliverAt: change.deliverAt });
          message = { ...message, deliverAt: change.deliverAt };
        }
        const changed = new Set(ids);
        const after = all.map((d) => (changed.has(d.id) ? { ...d, ...set } : d));
        result = { outcome: "changed", message, deliveries: after, outbox: [] };
        return { value: after, outbox: after.filter((d) => changed.has(d.id)).flatMap(outbox) };
      }).then((done) => {
        if (done !== null && result.outcome === "changed") result = { ...result, outbox: done.outbox };
      });
      return result;
    },
  };
}
