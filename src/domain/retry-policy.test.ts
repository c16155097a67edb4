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
  resolveRetryPolicy,
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

test("precedence: the message's override, else the endpoint's policy, else the installation's default", () => {
  const base: RetryPolicy = { schedule: [1_800_000], rateLimitSchedule: [30_000], maxAttempts: 9, jitter: 0 };
  const endpoint: RetryOverride = {
    minRetries: 2,
    firstDelayMs: 1_000,
    strategy: "fixed",
    factor: 2,
    maxDelayMs: 1_000,
  };
  const message: RetryOverride = {
    minRetries: 1,
    firstDelayMs: 5_000,
    strategy: "fixed",
    factor: 2,
    maxDelayMs: 5_000,
    jitter: 0,
  };
  const fail = (status: number) => ({ errorKind: "http_status" as const, status, retryAfterMs: undefined });
  const half = () => 0.5;
  const delays = (sources: Parameters<typeof resolveRetryPolicy>[1], status = 500) =>
    [1, 2, 3, 4].map((n) => nextRetryDelayMs(resolveRetryPolicy(base, sources), n, fail(status), half));

  assert.equal(resolveRetryPolicy(base, {}), base, "nothing set: the installation's policy itself");
  assert.equal(resolveRetryPolicy(base, { message: null, endpoint: null }), base);
  assert.deepEqual(delays({}), [1_800_000, 1_800_000, 1_800_000, 1_800_000]);
  assert.deepEqual(delays({}, 429), [30_000, 30_000, 30_000, 30_000], "the default keeps its 429 lane");

  // The endpoint's policy: 2 retries 1 s apart on both lanes, then the dead letter.
  assert.deepEqual(delays({ endpoint }), [1_000, 1_000, null, null]);
  assert.deepEqual(delays({ endpoint }, 429), [1_000, 1_000, null, null]);
  assert.deepEqual(delays({ message: null, endpoint }), [1_000, 1_000, null, null]);

  // The message's override wins over the endpoint's policy.
  assert.deepEqual(delays({ message, endpoint }), [5_000, null, null, null]);
  assert.deepEqual(delays({ message }), [5_000, null, null, null]);

  // Only the lanes change: permanent failures, extra retryable statuses and the Retry-After floor stay the base's.
  const withExtras: RetryPolicy = { ...base, retryableStatuses: [404], maxRetryAfterMs: 60_000 };
  const p = resolveRetryPolicy(withExtras, { endpoint });
  assert.equal(nextRetryDelayMs(p, 1, fail(400), half), null);
  assert.equal(nextRetryDelayMs(p, 1, fail(404), half), 1_000);
  assert.equal(nextRetryDelayMs(p, 1, { ...fail(503), retryAfterMs: 30_000 }, half), 30_000);
  assert.equal(nextRetryDelayMs(p, 1, { ...fail(503), retryAfterMs: 3_600_000 }, half), 60_000);
  // The endpoint's jitter is its own when set, else the installation's.
  const jittery: RetryPolicy = { ...base, jitter: 0.5 };
  assert.equal(
    nextRetryDelayMs(resolveRetryPolicy(jittery, { endpoint }), 1, fail(500), () => 0),
    500,
  );
  assert.equal(
    nextRetryDelayMs(resolveRetryPolicy(jittery, { endpoint: { ...endpoint, jitter: 0 } }), 1, fail(500), () => 0),
    1_000,
  );
});
