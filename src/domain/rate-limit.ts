/**
 * The per-endpoint rate limit as a token bucket shared by every worker: the bucket holds at most
 * `burst` tokens and refills at `rate` per second; each delivery takes one. So in any window of
 * one second the receiver gets at most `burst + rate` deliveries (the bucket's content at the
 * window's start, plus what refills during it). The bucket refills PACING_GUARD slower than the
 * rate, so jitter between a worker's admission and the request's arrival (a few ms of network and
 * scheduling) cannot push a window over that bound. A delivery the bucket refuses is told when to
 * come back; turns are handed out in order (`tailMs`), so a backlog returns spread out at the
 * rate instead of all at once.
 */

/** An endpoint's limit: deliveries per second, and the bucket size. */
export interface RateLimit {
  readonly rate: number;
  readonly burst: number;
}

/** The shared state of one endpoint's bucket. */
export interface BucketState {
  /** Tokens in the bucket at `atMs`. */
  tokens: number;
  atMs: number;
  /** When the next refused delivery is to come back (turns handed out so far). */
  tailMs: number;
}

/** The bucket refills this much slower than the rate: 1 s of refill takes 1.05 s. */
export const PACING_GUARD = 1.05;

/** A delivery's answer from the bucket. */
export type TakeResult = { ok: true } | { ok: false; retryInMs: number };

/** The worker's port: takes rate-limit tokens that every worker process shares. */
export interface SharedRateLimiter {
  /** Takes a token of the endpoint's bucket now, or says when to come back. */
  take(endpointId: string, limit: RateLimit): Promise<TakeResult>;
}

/** The effective bucket size of a limit (burst 0 means the rate itself, at least 1). */
export function bucketSize(limit: RateLimit): number {
  return Math.max(1, limit.burst > 0 ? limit.burst : Math.ceil(limit.rate));
}

/**
 * Takes a token at `nowMs` from `state` (undefined: a full bucket): the new state, and whether
 * the delivery may go now or when it should come back.
 */
export function takeToken(
  state: BucketState | undefined,
  limit: RateLimit,
  nowMs: number,
): { state: BucketState; result: TakeResult } {
  const size = bucketSize(limit);
  const perMs = limit.rate / (1000 * PACING_GUARD);
  const intervalMs = 1 / perMs;
  // A clock that went backwards refills nothing; it never adds tokens.
  const at = state === undefined ? nowMs : Math.max(state.atMs, nowMs);
  const elapsed = state === undefined ? 0 : Math.max(0, nowMs - state.atMs);
  const tokens = state === undefined ? size : Math.min(size, state.tokens + elapsed * perMs);
  const tail = state?.tailMs ?? 0;
  if (tokens >= 1) return { state: { tokens: tokens - 1, atMs: at, tailMs: tail }, result: { ok: true } };
  // The earliest the bucket could admit this one, or its turn behind those already refused.
  const ready = nowMs + (1 - tokens) / perMs;
  const turn = Math.max(ready, tail);
  return {
    state: { tokens, atMs: at, tailMs: turn + intervalMs },
    result: { ok: false, retryInMs: Math.ceil(turn - nowMs) },
  };
}
