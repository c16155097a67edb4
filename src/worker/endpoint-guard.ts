/**
 * Isolation of endpoints inside one worker process: a cap on the attempts one endpoint may have
 * in flight, and a circuit breaker per endpoint. Together they keep a slow or dead endpoint from
 * occupying the worker's slots, without making a healthy endpoint's deliveries bounce through
 * the queue.
 *
 * A slot covers only the gate and send stages of an attempt (not loading the delivery, not
 * recording the outcome). When an endpoint is at its cap, what happens to the next job depends
 * on what the guard knows about the endpoint:
 * - a fast endpoint that keeps answering (its slots turn over quickly enough that the job, behind
 *   those already waiting, can expect one within a second): the job waits in this process for a
 *   slot, handed over in arrival order as soon as one frees.
 *   It gives up (a deferral) only when the endpoint makes no progress (no attempt finishes) for
 *   ~10 × its recent attempt time, clamped to 200 ms – 1 s. At most `maxWaiters` jobs wait at
 *   once in the process (the worker's concurrency), past that a job is deferred;
 * - a slow endpoint, one whose attempts in flight have gone unanswered past that budget, or one
 *   whose circuit is open: the job goes straight back to the queue (a delayed nak, a deferral),
 *   before the delivery is even loaded when the job names its endpoint, and the worker's slot
 *   serves other endpoints.
 *
 * The cap adapts: an endpoint the process has not seen starts at min(4, maxInFlight), every
 * failed attempt that says the endpoint is unreachable or broken halves it (down to 1), every
 * other outcome grows it by one, up to `maxInFlight`. So a dead endpoint holds at most one or two
 * connections per process after its first timeouts, and a healthy one reaches the configured cap
 * after a few dozen attempts.
 *
 * The breaker opens after `breakerFailures` failed attempts in a row that say the endpoint is
 * unreachable or broken (timeout, connect, DNS, TLS, an oversized response, 5xx, 429), stays open
 * for `breakerCooldownMs`, then lets one probe through (half-open): its success closes the
 * circuit, its failure opens it again for twice as long (up to 16 × the cooldown).
 *
 * What the guard knows about an endpoint (latency, cap, failures) is kept while it is used and
 * forgotten after `idleForgetMs` (10 minutes) without a job. The state is per process: each
 * worker learns on its own, which costs one probe per worker per cooldown.
 */
import type { OutboundResult } from "./http-sender.ts";

/** Options of createEndpointGuard. */
export interface EndpointGuardOptions {
  /** Most attempts one endpoint may have in flight in this process (≥ 1). */
  maxInFlight: number;
  /** Most jobs waiting for a slot in this process at once (the worker's concurrency); 0 = no waiting. */
  maxWaiters?: number;
  /** Failed attempts in a row that open an endpoint's circuit; 0 turns the breaker off. */
  breakerFailures: number;
  /** How long a circuit stays open before a probe. */
  breakerCooldownMs: number;
  /** How long an endpoint's state is kept without a job (default 10 minutes). */
  idleForgetMs?: number;
  now?: () => number;
  random?: () => number;
}

/** What became of an admitted job: an attempt's result, or no attempt at all. */
export type GuardOutcome = OutboundResult | null;

/** Why a job is handed back to the queue. */
export interface Deferral {
  ok: false;
  delayMs: number;
  why: "concurrency" | "circuit_open";
}

/** An admission: go (and call `release` exactly once when done), or come back later. */
export type Admission = { ok: true; release: (outcome: GuardOutcome) => void } | Deferral;

/** The guard of one worker process. */
export interface EndpointGuard {
  /**
   * Without taking a slot: the deferral that admitting a job for the endpoint now would surely
   * end in (circuit open, or at its cap and not worth waiting for), or null.
   */
  precheck(endpointId: string): Deferral | null;
  /** A slot for one attempt: at once, after waiting for one, or a deferral. */
  acquire(endpointId: string, signal?: AbortSignal): Promise<Admission>;
  /** Circuits open right now (for logs and tests). */
  openCircuits(): string[];
  /** The endpoint's current cap (for tests); undefined when the guard knows nothing of it. */
  capOf(endpointId: string): number | undefined;
  /** Jobs waiting for a slot in this process. */
  waiting(): number;
}

interface Waiter {
  grant: (a: Admission) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface EndpointState {
  inFlight: number;
  /** Start times of the attempts in flight (ms), oldest first. */
  starts: number[];
  /** Current cap (1 … maxInFlight). */
  limit: number;
  failures: number;
  /** Circuit open until then (ms); 0 when closed. */
  openUntil: number;
  /** How many cooldowns the next opening lasts (1, 2, 4, … 16). */
  backoff: number;
  /** A half-open probe is in flight. */
  probing: boolean;
  /** Smoothed duration of a slot's use (ms); NaN until the first one. */
  latencyMs: number;
  /** When an attempt last finished (ms). */
  lastProgress: number;
  /** When a job last asked for the endpoint (ms). */
  lastUsed: number;
  waiters: Waiter[];
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
const INITIAL_CAP = 4;
/** A new endpoint is assumed this fast until its first attempt says otherwise. */
const ASSUMED_LATENCY_MS = 20;
const WAIT_FACTOR = 10;
// 100 ms proved too short on a busy machine: one stall of the process deferred a fast endpoint's waiters.
const WAIT_MIN_MS = 200;
const WAIT_MAX_MS = 1_000;
const DEFAULT_IDLE_FORGET_MS = 10 * 60_000;

/** Creates the guard of one process. */
export function createEndpointGuard(opts: EndpointGuardOptions): EndpointGuard {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const maxInFlight = Math.max(1, Math.floor(opts.maxInFlight));
  const maxWaiters = Math.max(0, Math.floor(opts.maxWaiters ?? 0));
  const idleForgetMs = opts.idleForgetMs ?? DEFAULT_IDLE_FORGET_MS;
  const states = new Map<string, EndpointState>();
  let waiting = 0;
  let lastSweep = now();
  const spread = (ms: number): number => Math.max(MIN_WAIT_MS, Math.round(ms * (1 + random() / 2)));

  /** Forgets endpoints idle past idleForgetMs (at most once a minute, on the hot path). */
  const sweep = (t: number): void => {
    if (t - lastSweep < Math.min(60_000, idleForgetMs)) return;
    lastSweep = t;
    for (const [id, s] of states) {
      if (s.inFlight === 0 && s.waiters.length === 0 && t - s.lastUsed >= idleForgetMs && s.openUntil <= t) {
        states.delete(id);
      }
    }
  };

  const stateOf = (id: string, t: number): EndpointState => {
    sweep(t);
    let s = states.get(id);
    if (s === undefined) {
      s = {
        inFlight: 0,
        starts: [],
        limit: Math.min(INITIAL_CAP, maxInFlight),
        failures: 0,
        openUntil: 0,
        backoff: 1,
        probing: false,
        latencyMs: Number.NaN,
        lastProgress: t,
        lastUsed: t,
        waiters: [],
      };
      states.set(id, s);
    }
    s.lastUsed = t;
    return s;
  };

  const latencyOf = (s: EndpointState): number => (Number.isNaN(s.latencyMs) ? ASSUMED_LATENCY_MS : s.latencyMs);
  /** How long a waiter waits for the endpoint to make progress: ~10 × its attempt time. */
  const budgetOf = (s: EndpointState): number =>
    // Until its first attempt finishes, an endpoint gets the longest wait: a cold first attempt
    // (a new connection, a busy process) says nothing about it yet.
    Number.isNaN(s.latencyMs) ? WAIT_MAX_MS : Math.min(WAIT_MAX_MS, Math.max(WAIT_MIN_MS, WAIT_FACTOR * s.latencyMs));
  const slotDelay = (s: EndpointState): number => spread(Math.min(latencyOf(s), MAX_SLOT_WAIT_MS));

  /** The deferral a job gets without a slot, or null when it may take or wait for one. */
  const verdict = (s: EndpointState, t: number): Deferral | "probe" | "slot" | "wait" => {
    if (s.openUntil > 0) {
      if (t < s.openUntil) return { ok: false, delayMs: spread(s.openUntil - t), why: "circuit_open" };
      // Half-open: one probe at a time; the rest wait about as long as it takes.
      if (s.probing || s.inFlight >= s.limit) return { ok: false, delayMs: slotDelay(s), why: "circuit_open" };
      return "probe";
    }
    if (s.inFlight < s.limit && s.waiters.length === 0) return "slot";
    const budget = budgetOf(s);
    // Worth waiting for: the slots of the endpoint turn over quickly enough that this job, behind
    // the ones already waiting, can expect its slot within the longest wait.
    const latency = latencyOf(s);
    const fast = latency <= WAIT_MAX_MS && ((s.waiters.length + 1) * latency) / s.limit <= WAIT_MAX_MS;
    // Unanswered: attempts in flight, none finished within the budget.
    const oldest = s.starts[0] ?? t;
    const unanswered = s.inFlight > 0 && t - Math.max(s.lastProgress, oldest) >= budget;
    if (fast && !unanswered && s.failures === 0 && waiting < maxWaiters) return "wait";
    return { ok: false, delayMs: slotDelay(s), why: "concurrency" };
  };

  const take = (id: string, s: EndpointState, probe: boolean): Admission => {
    const started = now();
    s.inFlight++;
    s.starts.push(started);
    if (probe) s.probing = true;
    let released = false;
    return {
      ok: true,
      release: (outcome) => {
        if (released) return;
        released = true;
        release(id, s, probe, started, outcome);
      },
    };
  };

  /** Hands freed slots to the endpoint's waiters, in arrival order. */
  const pump = (id: string, s: EndpointState): void => {
    while (s.waiters.length > 0) {
      const t = now();
      if (s.openUntil > 0) {
        // The circuit opened: nobody waits for it.
        const delayMs = spread(Math.max(s.openUntil - t, 0));
        for (const w of s.waiters.splice(0)) finish(w, { ok: false, delayMs, why: "circuit_open" });
        return;
      }
      if (s.inFlight >= s.limit) return;
      const w = s.waiters.shift()!;
      finish(w, take(id, s, false));
    }
  };

  const finish = (w: Waiter, a: Admission): void => {
    if (w.timer !== undefined) clearTimeout(w.timer);
    waiting--;
    w.grant(a);
  };

  const release = (id: string, s: EndpointState, probe: boolean, started: number, outcome: GuardOutcome): void => {
    const t = now();
    s.inFlight--;
    const i = s.starts.indexOf(started);
    if (i >= 0) s.starts.splice(i, 1);
    if (probe) s.probing = false;
    if (outcome !== null) {
      s.lastProgress = t;
      const took = Math.max(1, t - started);
      s.latencyMs = Number.isNaN(s.latencyMs) ? took : 0.8 * s.latencyMs + 0.2 * took;
      if (breaksCircuit(outcome)) {
        s.limit = Math.max(1, Math.floor(s.limit / 2));
        if (opts.breakerFailures > 0) {
          s.failures++;
          if (probe || (s.openUntil === 0 && s.failures >= opts.breakerFailures)) {
            if (probe) s.backoff = Math.min(MAX_BACKOFF, s.backoff * 2);
            s.openUntil = t + opts.breakerCooldownMs * s.backoff;
          }
        }
      } else {
        // Any sign of life closes the circuit and lets the cap grow back.
        s.limit = Math.min(maxInFlight, s.limit + 1);
        s.failures = 0;
        s.openUntil = 0;
        s.backoff = 1;
      }
    }
    pump(id, s);
  };

  /** Arms (or re-arms) a waiter's give-up timer: no progress of the endpoint within the budget. */
  const arm = (s: EndpointState, w: Waiter): void => {
    const check = (): void => {
      // A timer fires before the poll phase of the event loop: after a long synchronous stretch
      // (an SQLite write) the answers that free slots may be waiting there. Look again once
      // they have been handled.
      w.timer = undefined;
      setImmediate(decide);
    };
    const decide = (): void => {
      if (!s.waiters.includes(w)) return; // handed a slot meanwhile
      const t = now();
      const idle = t - Math.max(s.lastProgress, s.starts[0] ?? t);
      const budget = budgetOf(s);
      if (idle < budget) {
        w.timer = setTimeout(check, Math.max(1, budget - idle));
        return;
      }
      const i = s.waiters.indexOf(w);
      if (i >= 0) s.waiters.splice(i, 1);
      finish(w, { ok: false, delayMs: slotDelay(s), why: "concurrency" });
    };
    w.timer = setTimeout(check, budgetOf(s));
  };

  return {
    precheck(endpointId) {
      const t = now();
      const s = stateOf(endpointId, t);
      const v = verdict(s, t);
      return typeof v === "string" ? null : v;
    },
    acquire(endpointId, signal) {
      const t = now();
      const s = stateOf(endpointId, t);
      const v = verdict(s, t);
      if (typeof v !== "string") return Promise.resolve(v);
      if (v === "probe" || v === "slot") return Promise.resolve(take(endpointId, s, v === "probe"));
      return new Promise<Admission>((resolve) => {
        const w: Waiter = { grant: resolve, timer: undefined };
        waiting++;
        s.waiters.push(w);
        arm(s, w);
        signal?.addEventListener(
          "abort",
          () => {
            const i = s.waiters.indexOf(w);
            if (i < 0) return;
            s.waiters.splice(i, 1);
            finish(w, { ok: false, delayMs: 0, why: "concurrency" });
          },
          { once: true },
        );
        // A slot may have freed between the verdict and now (same tick): hand it over.
        pump(endpointId, s);
      });
    },
    openCircuits() {
      const t = now();
      return [...states.entries()].filter(([, s]) => s.openUntil > t).map(([id]) => id);
    },
    capOf(endpointId) {
      return states.get(endpointId)?.limit;
    },
    waiting() {
      return waiting;
    },
  };
}
