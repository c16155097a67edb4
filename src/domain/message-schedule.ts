/**
 * Cancelling and rescheduling a scheduled message before it is sent (MessageService
 * CancelMessage / RescheduleMessage). A scheduled message's deliveries wait in the database as
 * "scheduled" with next_attempt_at = the due time; the dispatcher queues them when it comes.
 * Both changes apply only to deliveries still "scheduled", atomically against the dispatcher's
 * release (row locks on PostgreSQL, one writer on SQLite), so a message is either changed before
 * it is released or reported as already sent, never both.
 */
import { DomainError, Violations, notFound } from "./errors.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import type { DeliveryRecord, MessageRecord, NewOutboxRecord, OutboxRecord } from "./records.ts";
import { resolveSchedule, type ScheduleInput } from "./schedule.ts";
import type { Scope } from "./scope.ts";
import { checkId } from "./validation.ts";

/** What to do with a message's scheduled deliveries. */
export type ScheduleChange = { kind: "cancel"; reason: string } | { kind: "reschedule"; deliverAt: Date };

/** The result of a schedule change. */
export type ScheduleChangeResult =
  | { outcome: "not_found" }
  /** No delivery of the message is still scheduled: nothing was written. */
  | { outcome: "not_scheduled"; message: MessageRecord; deliveries: DeliveryRecord[] }
  | { outcome: "changed"; message: MessageRecord; deliveries: DeliveryRecord[]; outbox: OutboxRecord[] };

/** The port: changes the still-scheduled deliveries of one message of a workspace. */
export interface ScheduledMessages {
  /**
   * In one transaction: locks the message's deliveries, applies `change` to those still
   * "scheduled" (cancel: status cancelled with the reason; reschedule: next_attempt_at and the
   * message's deliver_at), writes the outbox rows `outbox` builds for each changed delivery, and
   * returns the message with all its deliveries (oldest first) as they are after the change.
   */
  changeSchedule(
    workspaceId: string,
    messageId: string,
    change: ScheduleChange,
    at: Date,
    outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
    /** Only a message of this environment (another is not_found); null or absent: any. */
    environmentId?: string | null,
  ): Promise<ScheduleChangeResult>;
}

/** What the two use cases need. */
export interface MessageScheduleDeps {
  store: ScheduledMessages;
  relay: OutboxRelay;
}

/** The reason a producer's cancellation leaves on its deliveries. */
export const CANCELLED_BY_PRODUCER = "cancelled by the producer (CancelMessage)";

function notScheduled(id: string, deliveries: readonly DeliveryRecord[]): DomainError {
  const statuses = [...new Set(deliveries.map((d) => d.status))].join(", ") || "none";
  return new DomainError(
    "failed_precondition",
    "MESSAGE_NOT_SCHEDULED",
    `message ${JSON.stringify(id)} is not waiting for its scheduled time (deliveries: ${statuses}); only a scheduled message that has not been sent can be cancelled or rescheduled`,
  );
}

async function apply(
  deps: MessageScheduleDeps,
  scope: Scope,
  id: string,
  change: ScheduleChange,
  at: Date,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const result = await deps.store.changeSchedule(
    scope.workspaceId,
    id,
    change,
    at,
    (d) => {
      const row = statusRow(d, null, at);
      // A rescheduled delivery announces "scheduled" again: its own msgId, so JetStream keeps it.
      return [change.kind === "reschedule" ? { ...row, msgId: `${row.msgId}:${at.getTime()}` } : row];
    },
    scope.environmentId,
  );
  if (result.outcome === "not_found") throw notFound("message", id);
  if (result.outcome === "not_scheduled") throw notScheduled(id, result.deliveries);
  void deps.relay.publishNow(result.outbox);
  return { message: result.message, deliveries: result.deliveries };
}

/** Cancels a scheduled message that has not been sent. */
export async function cancelMessage(
  deps: MessageScheduleDeps,
  scope: Scope,
  id: string,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const v = new Violations();
  checkId(v, "id", "message", id);
  v.throwIfAny();
  return apply(deps, scope, id, { kind: "cancel", reason: CANCELLED_BY_PRODUCER }, new Date());
}

/**
 * Moves a scheduled message that has not been sent to a new time: exactly one of deliver_in,
 * deliver_at, deliver_at_local (with time_zone), by Send's rules. A time within a minute in the
 * past means now: the dispatcher then releases it in its next round.
 */
export async function rescheduleMessage(
  deps: MessageScheduleDeps,
  scope: Scope,
  id: string,
  schedule: ScheduleInput,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const v = new Violations();
  checkId(v, "id", "message", id);
  const now = new Date();
  const given =
    schedule.deliverIn !== undefined || schedule.deliverAt !== undefined || schedule.deliverAtLocal !== undefined;
  if (!given) v.add("deliver_in", "one of deliver_in, deliver_at or deliver_at_local is required");
  const due = given ? resolveSchedule(v, "", schedule, now.getTime()) : null;
  v.throwIfAny();
  return apply(deps, scope, id, { kind: "reschedule", deliverAt: due ?? now }, now);
}
