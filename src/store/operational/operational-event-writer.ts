/**
 * Writes an operational event (src/domain/operational-events.ts) inside the transaction of the
 * state change it announces: the subject endpoint's application, Trigger's targets of the event
 * type, then the message and its queued deliveries. Committed together with the change, or not
 * at all; each delivery is its own outbox (publish-check.ts), so nothing more is needed for it to
 * go out, and the caller publishes it after the commit to save the dispatcher's check.
 */
import { planOperationalMessage, type OperationalEvent } from "../../domain/operational-events.ts";
import { defaultEnvironmentId } from "../../domain/environments.ts";
import type { DeliveryRecord } from "../../domain/records.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { insertAccepted } from "../messages/message-repository.ts";
import { DETACHED, type Em } from "../store-context.ts";
import { triggerTargetsIn } from "../subscriptions/subscription-repository.ts";

/** Writes `event` on `em` (the caller's transaction); returns its deliveries (none: nothing written). */
export async function writeOperationalEvent(em: Em, event: OperationalEvent): Promise<DeliveryRecord[]> {
  // Deleted endpoints count: a delivery to one can still exhaust its retries.
  const subject = await em.findOne(
    Endpoint,
    { id: event.endpointId },
    { ...DETACHED, fields: ["id", "applicationId", "environmentId"] },
  );
  const applicationId = subject?.applicationId ?? null;
  // The event stays in the subject's environment: only its endpoints hear of it.
  const environmentId = subject?.environmentId ?? defaultEnvironmentId(event.workspaceId);
  const targets = await triggerTargetsIn(em, { workspaceId: event.workspaceId, eventType: event.type, environmentId });
  const plan = planOperationalMessage(event, applicationId, targets, undefined, environmentId);
  if (plan === null) return [];
  await insertAccepted(em, plan.message, plan.deliveries, null);
  return plan.deliveries;
}
