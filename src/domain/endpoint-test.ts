import type { Scope } from "./scope.ts";
import { randomBytes } from "node:crypto";
import { getEndpoint, type EndpointLookup } from "./endpoints.ts";
import type { AttemptErrorKindName, EndpointRecord, MessageRecord } from "./records.ts";

/** The event type of the message TestEndpoint sends. */
export const PING_EVENT_TYPE = "hookstream.ping";

/** How one ping went. */
export interface ProbeOutcome {
  /** A 2xx arrived within the endpoint's timeout. */
  ok: boolean;
  /** HTTP status, 0 when no answer arrived. */
  status: number;
  latencyMs: number;
  /** The failure class; null on success. */
  errorKind: AttemptErrorKindName | null;
  errorMessage: string;
  /** The start of the answer's body. */
  body: string;
}

/**
 * Sends one message to one endpoint now, the way a delivery attempt would (its destination,
 * the outbound policy, its timeout), without storing anything: TestEndpoint's port.
 */
export interface EndpointProbe {
  /** Never throws for a failed delivery: the outcome says what went wrong. */
  ping(endpoint: EndpointRecord, message: MessageRecord, webhookId: string): Promise<ProbeOutcome>;
}

/** Sends a signed ping to an endpoint of the workspace (disabled ones too) and reports how it went. */
export async function testEndpoint(
  deps: { endpoints: EndpointLookup; probe: EndpointProbe },
  scope: Scope,
  id: string,
): Promise<ProbeOutcome & { webhookId: string }> {
  const endpoint = await getEndpoint(deps.endpoints, scope, id);
  const workspaceId = scope.workspaceId;
  const now = new Date();
  const webhookId = `ping_${randomBytes(16).toString("hex")}`;
  const payload = new TextEncoder().encode(
    JSON.stringify({ type: PING_EVENT_TYPE, endpointId: endpoint.id, timestamp: now.toISOString() }),
  );
  const message: MessageRecord = {
    id: webhookId,
    workspaceId,
    eventType: PING_EVENT_TYPE,
    payload,
    contentType: "application/json",
    idempotencyKey: webhookId,
    payloadHash: "",
    createdAt: now,
  };
  return { ...(await deps.probe.ping(endpoint, message, webhookId)), webhookId };
}
