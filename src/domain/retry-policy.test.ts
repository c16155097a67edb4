import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RATE_LIMIT_SCHEDULE_MS,
  DEFAULT_RETRY_SCHEDULE_MS,
  effectiveRetryPolicy,
  isGone,
  isRetryable,
  nextRetryDelayMs,
  overrideSchedule,
  type RetryOverride,
  type RetryPolicy,
} from "./retry-policy.ts";

const policy: RetryPolicy = {
  schedule: [1000, 10_000, 60_000],
  rateLimitSchedule: [100, 200],
  maxAttempts: 4,
  jitter: 0.2,
};
const http = (status: number, retryAfterMs?: number) => ({ errorKind: "http_status" as const, status, retryAfterMs });
const net = { errorKind: "connect" as const, status: 0, retryAfterMs: undefined };

test("network errors, timeouts, 408, 425, 429 and 5xx are retryable; other 4xx and policy refusals are not", () => {
  for (const s of [408, 425, 429, 500, 502, 503, 599]) assert.ok(isRetryable(http(s)), String(s));
  for (const s of [300, 302, 400, 401, 403, 404, 410, 422]) assert.ok(!isRetryable(http(s)), String(s));
  for (const k of ["timeout", "dns", "connect", "tls"] as const)
    assert.ok(isRetryable({ errorKind: k, status: 0, retryAfterMs: undefined }));
  assert.ok(!isRetryable({ errorKind: "refused_by_policy", status: 0, retryAfterMs: undefined }));
});

test("extra retryable statuses are configurable; 410 is gone", () => {
  assert.ok(isRetryable(http(404), { retryableStatuses: [404] }));
  assert.equal(
    nextRetryDelayMs({ ...policy, retryableStatuses: [404] }, 1, http(404), () => 0.5),
    1000,
  );
  assert.ok(isGone(http(410)));
  assert.ok(!isGone(http(404)));
  assert.equal(
    nextRetryDelayMs(policy, 1, http(410), () => 0.5),
    null,
  );
});

test("bounded jitter stays within ±20 % of the step and never collapses to zero; the last step repeats", () => {
  assert.equal(
    nextRetryDelayMs(policy, 1, http(500), () => 0),
    800,
  );
  assert.equal(
    nextRetryDelayMs(policy, 1, http(500), () => 1),
    1200,
  );
  assert.equal(
    nextRetryDelayMs(policy, 2, http(500), () => 0.5),
    10_000,
  );
  assert.equal(
    nextRetryDelayMs({ ...policy, maxAttempts: 10 }, 9, net, () => 0.5),
    60_000,
  );
  for (let i = 0; i < 1000; i++) {
    const d = nextRetryDelayMs(policy, 1, net)!;
    assert.ok(d >= 800 && d <= 1200, String(d));
  }
  assert.equal(
    nextRetryDelayMs({ ...policy, jitter: 0 }, 1, net, () => 0),
    1000,
  );
});

test("429 retries on the fast lane, other failures on the slow lane", () => {
  assert.equal(
    nextRetryDelayMs(policy, 1, http(429), () => 0.5),
    100,
  );
  assert.equal(
    nextRetryDelayMs(policy, 2, http(429), () => 0.5),
    200,
  );
  assert.equal(
    nextRetryDelayMs(policy, 3, http(429), () => 0.5),
    200,
  );
  assert.equal(
    nextRetryDelayMs(policy, 2, http(503), () => 0.5),
    10_000,
  );
  // No fast lane configured: the slow lane serves 429 too.
  assert.equal(
    nextRetryDelayMs({ schedule: [5000], maxAttempts: 3 }, 1, http(429), () => 0.5),
    5000,
  );
});

test("the attempt cap dead-letters, and Retry-After is a floor, capped", () => {
  assert.equal(
    nextRetryDelayMs(policy, 4, http(500), () => 1),
    null,
  );
  assert.equal(
    nextRetryDelayMs(policy, 1, http(404), () => 1),
    null,
  );
  assert.equal(
    nextRetryDelayMs(policy, 1, http(429, 30_000), () => 0.1),
    30_000,
  );
  assert.equal(
    nextRetryDelayMs(policy, 3, http(503, 5_000), () => 0.5),
    60_000,
  );
  assert.equal(
    nextRetryDelayMs({ ...policy, maxRetryAfterMs: 50_000 }, 1, http(429, 9_000_000), () => 0.5),
    50_000,
  );
  // Default cap: 24 h.
  assert.equal(
    nextRetryDelayMs(policy, 1, http(503, 10 * 86_400_000), () => 0.5),
    86_400_000,
  );
});

test("the defaults are the documented lanes", () => {
  assert.deepEqual(DEFAULT_RATE_LIMIT_SCHEDULE_MS, [30_000, 60_000, 120_000, 240_000, 300_000]);
  assert.deepEqual(
    DEFAULT_RETRY_SCHEDULE_MS.map((ms) => ms / 60_000),
    [30, 120, 360, 720, 1440, 2880, 4320, 5760],
  );
  assert.equal(DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_SCHEDULE_MS.length + 1);
});

test("a retry override replaces both lanes: fixed or exponential steps capped at max delay, min_retries + 1 attempts", () => {
  const base: RetryPolicy = { schedule: [1_800_000], rateLimitSchedule: [30_000], maxAttempts: 9, jitter: 0.2 };
  const exp: RetryOverride = {
    minRetries: 5,
    firstDelayMs: 2_000,
    strategy: "exponential",
    factor: 3,
    maxDelayMs: 30_000,
  };
  assert.deepEqual(overrideSchedule(exp), [2_000, 6_000, 18_000, 30_000, 30_000]);
  assert.deepEqual(overrideSchedule({ ...exp, strategy: "fixed" }), [2_000, 2_000, 2_000, 2_000, 2_000]);
  const policy = effectiveRetryPolicy(base, { ...exp, jitter: 0 });
  const fail = (status: number) => ({ errorKind: "http_status" as const, status, retryAfterMs: undefined });
  const half = () => 0.5;
  assert.equal(nextRetryDelayMs(policy, 1, fail(503), half), 2_000);
  assert.equal(nextRetryDelayMs(policy, 3, fail(429), half), 18_000, "the 429 lane follows the override too");
  assert.equal(nextRetryDelayMs(policy, 5, fail(500), half), 30_000);
  assert.equal(nextRetryDelayMs(policy, 6, fail(500), half), null, "dead-lettered after min_retries retries");
  assert.equal(nextRetryDelayMs(policy, 1, fail(400), half), null, "a permanent failure stays permanent");
  assert.equal(nextRetryDelayMs(effectiveRetryPolicy(base, { ...exp, minRetries: 0 }), 1, fail(500), half), null);
  // Jitter: the override's own, else the installation's.
  assert.equal(
    nextRetryDelayMs(effectiveRetryPolicy(base, exp), 1, fail(500), () => 1),
    2_400,
  );
  assert.equal(
    nextRetryDelayMs(effectiveRetryPolicy(base, { ...exp, jitter: 0.5 }), 1, fail(500), () => 0),
    1_000,
  );
  assert.equal(effectiveRetryPolicy(base, null), base);
});
