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
