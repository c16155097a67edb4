import type { AttemptErrorKindName } from "./records.ts";

/** What the retry policy needs to know about a failed attempt. */
export interface FailureInfo {
  errorKind: AttemptErrorKindName;
  status: number;
  retryAfterMs: number | undefined;
}

/** The retry policy of a delivery: delays before each retry and the attempt cap. */
export interface RetryPolicy {
  readonly schedule: readonly number[];
  readonly maxAttempts: number;
}

/** Whether a failure can succeed on another try: network errors, timeouts, 408, 425, 429 and 5xx. */
export function isRetryable(f: FailureInfo): boolean {
  switch (f.errorKind) {
    case "timeout":
    case "dns":
    case "connect":
    case "tls":
      return true;
    case "refused_by_policy":
      return false;
    case "http_status":
      return f.status === 408 || f.status === 425 || f.status === 429 || f.status >= 500;
  }
}

/**
 * When to try again after attempt `attemptNumber` failed, or null to dead-letter.
 * Full jitter (a uniform delay in [0, base]) spreads retries of many deliveries that failed
 * together; Retry-After is honoured as a floor.
 */
export function nextRetryDelayMs(
  policy: RetryPolicy,
  attemptNumber: number,
  failure: FailureInfo,
  random: () => number = Math.random,
): number | null {
  if (!isRetryable(failure) || attemptNumber >= policy.maxAttempts) return null;
  const schedule = policy.schedule;
  const base = schedule[Math.min(attemptNumber - 1, schedule.length - 1)] ?? 0;
  const jittered = Math.round(random() * base);
  return Math.max(jittered, failure.retryAfterMs ?? 0);
}
