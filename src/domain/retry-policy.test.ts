import assert from "node:assert/strict";
import { test } from "node:test";
import { isRetryable, nextRetryDelayMs } from "./retry-policy.ts";

const policy = { schedule: [1000, 10_000, 60_000], maxAttempts: 4 };
const http = (status: number, retryAfterMs?: number) => ({ errorKind: "http_status" as const, status, retryAfterMs });

test("network errors, timeouts, 408, 425, 429 and 5xx are retryable; other 4xx and policy refusals are not", () => {
  for (const s of [408, 425, 429, 500, 502, 503, 599]) assert.ok(isRetryable(http(s)), String(s));
  for (const s of [300, 302, 400, 401, 403, 404, 410, 422]) assert.ok(!isRetryable(http(s)), String(s));
  for (const k of ["timeout", "dns", "connect", "tls"] as const)
    assert.ok(isRetryable({ errorKind: k, status: 0, retryAfterMs: undefined }));
  assert.ok(!isRetryable({ errorKind: "refused_by_policy", status: 0, retryAfterMs: undefined }));
});

test("full jitter stays within [0, base] of the schedule step, last step repeats", () => {
  assert.equal(
    nextRetryDelayMs(policy, 1, http(500), () => 0),
    0,
  );
  assert.equal(
    nextRetryDelayMs(policy, 1, http(500), () => 1),
    1000,
  );
  assert.equal(
    nextRetryDelayMs(policy, 2, http(500), () => 0.5),
    5000,
  );
  assert.equal(
    nextRetryDelayMs(policy, 3, http(500), () => 1),
    60_000,
  );
});

test("the attempt cap dead-letters, and Retry-After is a floor", () => {
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
    nextRetryDelayMs(policy, 3, http(429, 5_000), () => 1),
    60_000,
  );
});
