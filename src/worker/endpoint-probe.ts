/**
 * TestEndpoint's probe: one attempt through the endpoint type's destination (the same signing,
 * outbound policy and timeout as a delivery), with a delivery that exists only for this call.
 */
import type { EndpointProbe, ProbeOutcome } from "../domain/endpoint-test.ts";
import type { DeliveryRecord } from "../domain/records.ts";
import type { Destinations } from "./destination.ts";

/** Creates the probe over the destinations by endpoint type. */
export function createEndpointProbe(destinations: Destinations): EndpointProbe {
  return {
    async ping(endpoint, message, webhookId): Promise<ProbeOutcome> {
      const destination = destinations[endpoint.type ?? "webhook"];
      if (destination === undefined) {
        return {
          ok: false,
          status: 0,
          latencyMs: 0,
          errorKind: "refused_by_policy",
          errorMessage: `no destination serves endpoint type ${endpoint.type}`,
          body: "",
        };
      }
      const delivery: DeliveryRecord = {
        id: webhookId,
        workspaceId: endpoint.workspaceId,
        messageId: message.id,
        endpointId: endpoint.id,
        eventType: message.eventType,
        status: "queued",
        attemptCount: 0,
        nextAttemptAt: null,
        lastResponseStatus: 0,
        lastError: "",
        createdAt: message.createdAt,
        updatedAt: message.createdAt,
      };
      const { outcome } = await destination.deliver({ delivery, message, endpoint }, new Date());
      return {
        ok: outcome.ok,
        status: outcome.status,
        latencyMs: outcome.latencyMs,
        errorKind: outcome.ok ? null : (outcome.errorKind ?? "http_status"),
        errorMessage: outcome.errorMessage,
        body: outcome.body,
      };
    },
  };
}
