import type { Violations } from "./errors.ts";
import type { AttemptErrorKindName } from "./records.ts";

/** What the retry policy needs to know about a failed attempt. */
export interface FailureInfo {
  errorKind: AttemptErrorKindName;
  status: number;
  retryAfterMs: number | undefined;
}

/**
 * The retry policy of a delivery. Two lanes: a receiver that answers 429 is asking for a short
 * pause, so it retries on the fast lane (`rateLimitSchedule`); every other retryable failure
 * (network errors, timeouts, 408, 425, 5xx) means the receiver is down or broken, so it retries on
 * the slow lane (`schedule`). The step of either lane is chosen by the attempt number (the last
 * step repeats), so a delivery that alternates between 429 and 503 still backs off.
 */
export interface RetryPolicy {
  /** Slow lane: delays before each retry after a retryable failure other than 429. */
  readonly schedule: readonly number[];
  /** Fast lane: delays before each retry after a 429; the slow lane when undefined. */
  readonly rateLimitSchedule?: readonly number[] | undefined;
  /** Attempts (the first included) before a delivery is dead-lettered. */
  readonly maxAttempts: number;
  /**
   * Bounded jitter: each delay is uniform in [step × (1 − jitter), step × (1 + jitter)], so retries of
   * deliveries that failed together spread out without any retrying almost at once; 0 disables it.
   * Default 0.2 (±20 %).
   */
  readonly jitter?: number | undefined;
  /** Retry-After is honoured as a floor up to this long (default 24 h); a longer one is capped. */
  readonly maxRetryAfterMs?: number | undefined;
  /** Extra HTTP statuses (e.g. 404 while a receiver deploys) treated as retryable. */
  readonly retryableStatuses?: readonly number[] | undefined;
}

/** The default fast lane for 429: 30 s, 60 s, 120 s, 240 s, 300 s. */
export const DEFAULT_RATE_LIMIT_SCHEDULE_MS: readonly number[] = [30_000, 60_000, 120_000, 240_000, 300_000];
/** The default slow lane: 30 m, 2 h, 6 h, 12 h, 24 h, 48 h, 72 h, 96 h. */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  30 * 60_000,
  2 * 3_600_000,
  6 * 3_600_000,
  12 * 3_600_000,
  24 * 3_600_000,
  48 * 3_600_000,
  72 * 3_600_000,
  96 * 3_600_000,
];
/** Default attempts: the first one and a retry for each step of the default slow lane. */
export const DEFAULT_MAX_ATTEMPTS = 9;
const DEFAULT_JITTER = 0.2;
const DEFAULT_MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Whether a failure can succeed on another try: network errors, timeouts, 408, 425, 429 and 5xx,
 * plus the policy's extra statuses. Other 4xx, and destinations the outbound policy refuses, fail
 * permanently.
 */
export function isRetryable(f: FailureInfo, policy?: Pick<RetryPolicy, "retryableStatuses">): boolean {
  switch (f.errorKind) {
    case "timeout":
    case "dns":
    case "connect":
    case "tls":
    case "response_too_large":
      return true;
    case "refused_by_policy":
      return false;
    case "http_status":
      return (
        f.status === 408 ||
        f.status === 425 ||
        f.status === 429 ||
        f.status >= 500 ||
        (policy?.retryableStatuses?.includes(f.status) ?? false)
      );
  }
}

/** Whether the receiver said the endpoint is gone for good (410): the endpoint is then disabled. */
export function isGone(f: FailureInfo): boolean {
  return f.errorKind === "http_status" && f.status === 410;
}

/**
 * When to try again after attempt `attemptNumber` failed, or null to dead-letter. The step comes
 * from the failure's lane, jitter spreads it by ±`jitter`, and Retry-After (capped) is a floor.
 */
export function nextRetryDelayMs(
  policy: RetryPolicy,
  attemptNumber: number,
  failure: FailureInfo,
  random: () => number = Math.random,
): number | null {
  if (!isRetryable(failure, policy) || attemptNumber >= policy.maxAttempts) return null;
  const lane =
    failure.errorKind === "http_status" && failure.status === 429
      ? (policy.rateLimitSchedule ?? policy.schedule)
      : policy.schedule;
  const base = lane[Math.min(attemptNumber - 1, lane.length - 1)] ?? 0;
  const jitter = Math.min(Math.max(policy.jitter ?? DEFAULT_JITTER, 0), 1);
  const jittered = Math.round(base * (1 - jitter + 2 * jitter * random()));
  const cap = policy.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  const floor = Math.min(failure.retryAfterMs ?? 0, cap);
  return Math.max(jittered, floor);
}

/** A message's own retry schedule (Send's `retry`), replacing the installation's lanes for it. */
export interface RetryOverride {
  /** Retries after the first attempt: a retryable failure is retried this many times before the dead letter. */
  readonly minRetries: number;
  /** Delay before the first retry. */
  readonly firstDelayMs: number;
  /** Every retry waits firstDelayMs (fixed), or each waits `factor` times the one before (exponential). */
  readonly strategy: "fixed" | "exponential";
  /** Growth per retry of the exponential strategy (ignored when fixed). */
  readonly factor: number;
  /** The longest any retry waits (caps the exponential growth). */
  readonly maxDelayMs: number;
  /** ± fraction of jitter; the installation's when undefined. */
  readonly jitter?: number | undefined;
}

/** Bounds of a retry override (the API refuses values outside them). */
export const RETRY_OVERRIDE_LIMITS = {
  maxRetries: 50,
  minDelayMs: 1_000,
  maxDelayMs: 7 * 24 * 3_600_000,
  minFactor: 1,
  maxFactor: 10,
} as const;

/** The delays of an override's retries, one per retry (at least one step, so the lane is never empty). */
export function overrideSchedule(o: RetryOverride): number[] {
  const steps: number[] = [];
  let delay = Math.min(o.firstDelayMs, o.maxDelayMs);
  for (let i = 0; i < Math.max(1, o.minRetries); i++) {
    steps.push(Math.round(delay));
    if (o.strategy === "exponential") delay = Math.min(delay * o.factor, o.maxDelayMs);
  }
  return steps;
}

/**
 * The policy of a retry override over the installation's: the installation's when there is none,
 * else the override's schedule on both lanes (429 included) with min_retries + 1 attempts and its jitter;
 * which failures are retryable and the Retry-After floor stay the installation's.
 */
export function effectiveRetryPolicy(base: RetryPolicy, override: RetryOverride | null | undefined): RetryPolicy {
  if (override === null || override === undefined) return base;
  const schedule = overrideSchedule(override);
  return {
    ...base,
    schedule,
    rateLimitSchedule: schedule,
    maxAttempts: override.minRetries + 1,
    jitter: override.jitter ?? base.jitter,
  };
}

/** Where a delivery's retry schedule can come from, besides the installation's default. */
export interface RetrySources {
  /** The message's own override (Send's or Trigger's `retry`); null or absent when it has none. */
  readonly message?: RetryOverride | null | undefined;
  /** The endpoint's retry policy (Endpoint.retry_policy); null or absent when it has none. */
  readonly endpoint?: RetryOverride | null | undefined;
}

/**
 * The policy a delivery retries by, by precedence: the message's override, else its endpoint's
 * policy, else the installation's default (`base`). The first two replace the lanes as
 * `effectiveRetryPolicy` says; the retryable statuses and the Retry-After cap stay `base`'s.
 */
export function resolveRetryPolicy(base: RetryPolicy, sources: RetrySources): RetryPolicy {
  return effectiveRetryPolicy(base, sources.message ?? sources.endpoint);
}

/** A retry override as a request gives it: durations may be missing, numbers unchecked. */
export interface RetryOverrideInput {
  readonly minRetries: number;
  readonly firstDelayMs: number | undefined;
  readonly strategy: "fixed" | "exponential" | undefined;
  readonly factor: number;
  readonly maxDelayMs: number | undefined;
  readonly jitter: number | undefined;
}

const DEFAULT_OVERRIDE_MAX_DELAY_MS = 24 * 3_600_000;

/**
 * Checks a retry override (violations under `field`, e.g. "retry.first_delay") and fills its
 * defaults: exponential, factor 2, max delay 24 h (or first_delay when that is longer). Returns
 * undefined when anything is wrong (the caller then throws the violations).
 */
export function checkRetryOverride(v: Violations, field: string, input: RetryOverrideInput): RetryOverride | undefined {
  const before = v.list.length;
  const L = RETRY_OVERRIDE_LIMITS;
  const at = (sub: string) => `${field}.${sub}`;
  if (!Number.isInteger(input.minRetries) || input.minRetries < 0 || input.minRetries > L.maxRetries)
    v.add(at("min_retries"), `must be a whole number from 0 to ${L.maxRetries}`);
  const delay = (name: string, ms: number | undefined) => {
    if (ms !== undefined && (!Number.isFinite(ms) || ms < L.minDelayMs || ms > L.maxDelayMs))
      v.add(at(name), "must be from 1s to 7 days (604800s)");
  };
  if (input.firstDelayMs === undefined) v.add(at("first_delay"), "is required");
  delay("first_delay", input.firstDelayMs);
  delay("max_delay", input.maxDelayMs);
  if (input.maxDelayMs !== undefined && input.firstDelayMs !== undefined && input.maxDelayMs < input.firstDelayMs)
    v.add(at("max_delay"), "must not be shorter than first_delay");
  const strategy = input.strategy ?? "exponential";
  if (
    input.factor !== 0 &&
    (!Number.isFinite(input.factor) || input.factor < L.minFactor || input.factor > L.maxFactor)
  )
    v.add(at("factor"), `must be from ${L.minFactor} to ${L.maxFactor}`);
  else if (input.factor !== 0 && strategy === "fixed")
    v.add(at("factor"), "is only allowed with the exponential strategy");
  if (input.jitter !== undefined && (!Number.isFinite(input.jitter) || input.jitter < 0 || input.jitter > 1))
    v.add(at("jitter"), "must be from 0 to 1");
  if (v.list.length > before) return undefined;
  const firstDelayMs = input.firstDelayMs!;
  return {
    minRetries: input.minRetries,
    firstDelayMs,
    strategy,
    factor: input.factor === 0 ? 2 : input.factor,
    maxDelayMs: input.maxDelayMs ?? Math.max(DEFAULT_OVERRIDE_MAX_DELAY_MS, firstDelayMs),
    ...(input.jitter === undefined ? {} : { jitter: input.jitter }),
  };
}
