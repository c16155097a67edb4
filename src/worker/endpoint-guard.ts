/**
 * Isolation of endpoints inside one worker process: a cap on the attempts one endpoint may have
 * in flight, and a circuit breaker per endpoint. Together they keep a slow or dead endpoint from
 * occupying the worker's slots: past the cap, or while its circuit is open, a job for it goes
 * straight back to the queue (a delayed nak, before the delivery is even loaded) and the slot
 * serves other endpoints.
 *
 * The breaker opens after `breakerFailures` failed attempts in a row that say the endpoint is
 * unreachable or broken (timeout, connect, DNS, TLS, an oversized response, 5xx, 429), stays open
 * for `breakerCooldownMs`, then lets one probe through (half-open): its success closes the
 * circuit, its failure opens it again for twice as long (up to 16 × the cooldown). The state is
 * per process: each worker learns on its own, which costs one probe per worker per cooldown.
 */
import type { OutboundResult } from "./http-sender.ts";

/** Options of createEndpointGuard. */
export interface EndpointGuardOptions {
  /** Most attempts one endpoint may have in flight in this process (≥ 1). */
  maxInFlight: number;
  /** Failed attempts in a row that open an endpoint's circuit; 0 turns the breaker off. */
  breakerFailures: number;
  /** How long a circuit stays open before a probe. */
  breakerCooldownMs: number;
  now?: () => number;
  random?: () => number;
}

/** What became of an admitted job: an attempt's result, or no attempt at all. */
export type GuardOutcome = OutboundResult | null;

/** An admission: go (and call `release` exactly once when done), or come back later. */
export type Admission =
  | { ok: true; release: (outcome: GuardOutcome) => void }
  | { ok: false; delayMs: number; why: "concurrency" | "circuit_open" };

/** The guard of one worker process. */
export interface EndpointGuard {
  admit(endpointId: string): Admission;
  /** Circuits open right now (for logs and tests). */
  openCircuits(): string[];
}

interface EndpointState {
  inFlight: number;
  failures: number;
  /** Circuit open until then (ms); 0 when closed. */
  openUntil: number;
  /** How many cooldowns the next opening lasts (1, 2, 4, … 16). */
  backoff: number;
  /** A half-open probe is in flight. */
  probing: boolean;
  /** Smoothed attempt duration (ms), to pace jobs that wait for a slot. */
  latencyMs: number;
}

/** Whether an attempt's failure says the endpoint itself is unreachable or broken. */
export function breaksCircuit(r: OutboundResult): boolean {
  if (r.ok) return false;
  switch (r.errorKind) {
    case "timeout":
    case "connect":
    case "dns":
    case "tls":
    case "response_too_large":
      return true;
    case "http_status":
      return r.status >= 500 || r.status === 429;
    default:
      return false;
  }
}

const MAX_BACKOFF = 16;
const MIN_WAIT_MS = 50;
const MAX_SLOT_WAIT_MS = 5_000;

/** Creates the guard; state for an endpoint is dropped once it is idle and its circuit closed. */
export function createEndpointGuard(opts: EndpointGuardOptions): EndpointGuard {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const maxInFlight = Math.max(1, Math.floor(opts.maxInFlight));
  const states = new Map<string, EndpointState>();
  const spread = (ms: number): number => Math.max(MIN_WAIT_MS, Math.round(ms * (1 + random() / 2)));

  const stateOf = (id: string): EndpointState => {
    let s = states.get(id);
    if (s === undefined) {
      s = { inFlight: 0, failures: 0, openUntil: 0, backoff: 1, probing: false, latencyMs: 100 };
      states.set(id, s);
    }
    return s;
  };

  const release = (id: string, s: EndpointState, probe: boolean, started: number, outcome: GuardOutcome): void => {
    s.inFlight--;
    if (probe) s.probing = false;
    if (outcome !== null) {
      s.latencyMs = 0.8 * s.latencyMs + 0.2 * Math.max(1, now() - started);
      if (opts.breakerFailures > 0 && breaksCircuit(outcome)) {
        s.failures++;
        if (probe || (s.openUntil === 0 && s.failures >= opts.breakerFailures)) {
          if (probe) s.backoff = Math.min(MAX_BACKOFF, s.backoff * 2);
          s.openUntil = now() + opts.breakerCooldownMs * s.backoff;
        }
      } else {
        // Any sign of life closes the circuit.
        s.failures = 0;
        s.openUntil = 0;
        s.backoff = 1;
      }
    }
    if (s.inFlight === 0 && s.openUntil === 0 && s.failures === 0) states.delete(id);
  };

  return {
    admit(endpointId) {
      const s = stateOf(endpointId);
      const t = now();
      let probe = false;
      if (s.openUntil > 0) {
        if (t < s.openUntil) return { ok: false, delayMs: spread(s.openUntil - t), why: "circuit_open" };
        // Half-open: one probe at a time; the rest wait about as long as it takes.
        if (s.probing)
          return { ok: false, delayMs: spread(Math.min(s.latencyMs, MAX_SLOT_WAIT_MS)), why: "circuit_open" };
        s.probing = true;
        probe = true;
      }
      if (!probe && s.inFlight >= maxInFlight) {
        return { ok: false, delayMs: spread(Math.min(s.latencyMs, MAX_SLOT_WAIT_MS)), why: "concurrency" };
      }
      s.inFlight++;
      let released = false;
      return {
        ok: true,
        release: (outcome) => {
          if (released) return;
          released = true;
          release(endpointId, s, probe, t, outcome);
        },
      };
    },
    openCircuits() {
      const t = now();
      return [...states.entries()].filter(([, s]) => s.openUntil > t).map(([id]) => id);
    },
  };
}
