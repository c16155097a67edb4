/**
 * Endpoint health: what one attempt's outcome does to an endpoint's recorded health, and when
 * sustained failure disables it. Pure rules; the worker's ledger applies them under a row lock.
 */
import type { AttemptErrorKindName, EndpointHealthState } from "./records.ts";

/**
 * Automatic disable: an endpoint whose attempts have all failed for at least `windowMs` and at
 * least `failures` times in a row is disabled. `failures` 0 turns it off.
 */
export interface AutoDisablePolicy {
  readonly failures: number;
  readonly windowMs: number;
}

/** One attempt's outcome as health sees it. */
export type HealthEvent = { ok: true } | { ok: false; kind: AttemptErrorKindName; status: number; message: string };

/** The health of an endpoint nothing has failed on. */
export const HEALTHY: EndpointHealthState = {
  consecutiveFailures: 0,
  failingSinceMs: null,
  lastFailureAtMs: null,
  lastFailureKind: null,
  lastFailure: "",
  disabledReason: "",
  disabledAtMs: null,
};

/** The reason given when a receiver answers 410 Gone. */
export const GONE_REASON = "the receiver answered 410 Gone";

/** Whether an outcome needs a health write: every failure, and a success that ends a run of them. */
export function healthChanges(current: EndpointHealthState | null | undefined, event: HealthEvent): boolean {
  return !event.ok || (current?.consecutiveFailures ?? 0) > 0;
}

/**
 * The endpoint's health after `event` at `atMs`, and the reason to disable it now (null to leave
 * it as it is). A success ends the run of failures; the last failure stays on view.
 */
export function nextHealth(
  current: EndpointHealthState | null | undefined,
  event: HealthEvent,
  atMs: number,
  policy: AutoDisablePolicy,
): { health: EndpointHealthState; disable: string | null } {
  const prev = current ?? HEALTHY;
  if (event.ok) return { health: { ...prev, consecutiveFailures: 0, failingSinceMs: null }, disable: null };
  const health: EndpointHealthState = {
    ...prev,
    consecutiveFailures: prev.consecutiveFailures + 1,
    failingSinceMs: prev.failingSinceMs ?? atMs,
    lastFailureAtMs: atMs,
    lastFailureKind: event.kind,
    lastFailure: event.message.slice(0, 500),
  };
  let disable: string | null = null;
  if (event.kind === "http_status" && event.status === 410) disable = GONE_REASON;
  else if (
    policy.failures > 0 &&
    health.consecutiveFailures >= policy.failures &&
    atMs - (health.failingSinceMs ?? atMs) >= policy.windowMs
  ) {
    disable = `${health.consecutiveFailures} failed attempts in a row since ${new Date(health.failingSinceMs!).toISOString()} (last: ${health.lastFailure})`;
  }
  return disable === null
    ? { health, disable }
    : { health: { ...health, disabledReason: disable, disabledAtMs: atMs }, disable };
}
