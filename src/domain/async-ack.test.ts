import assert from "node:assert/strict";
import { test } from "node:test";
import { ACK_EXPIRED, NACKED, ackTransition } from "./async-ack.ts";
import type { DeliveryRecord } from "./records.ts";
import type { RetryOverride, RetryPolicy } from "./retry-policy.ts";

const at = new Date("2026-12-04T12:00:00Z");
const waiting = (attemptCount: number): DeliveryRecord => ({
  id: "dlv_1",
  workspaceId: "ws_1",
  messageId: "msg_1",
  endpointId: "ep_1",
  eventType: "order.paid",
  status: "awaiting_ack",
  attemptCount,
  nextAttemptAt: at,
  lastResponseStatus: 202,
  lastError: "",
  createdAt: at,
  updatedAt: at,
});
const base: RetryPolicy = { schedule: [60_000], rateLimitSchedule: [5_000], maxAttempts: 9, jitter: 0 };
const endpoint: RetryOverride = { minRetries: 2, firstDelayMs: 1_000, strategy: "fixed", factor: 2, maxDelayMs: 1_000 };
const message: RetryOverride = { minRetries: 1, firstDelayMs: 3_000, strategy: "fixed", factor: 2, maxDelayMs: 3_000 };

/** The delay a transition scheduled, or null when it dead-lettered. */
function delayOf(d: DeliveryRecord | null): number | null {
  assert.ok(d !== null);
  if (d.status === "failed") return null;
  assert.equal(d.status, "pending_retry");
  return d.nextAttemptAt!.getTime() - at.getTime();
}

test("a nack and an expired wait retry by the message's override, else the endpoint's policy, else the default", () => {
  for (const verb of ["nack", "expire"] as const) {
    const t = ackTransition(verb, base, at);
    assert.equal(delayOf(t(waiting(1), {})), 60_000, `${verb}: the installation's slow lane`);
    assert.equal(delayOf(t(waiting(8), {})), 60_000);
    assert.equal(delayOf(t(waiting(9), {})), null, `${verb}: the default's last attempt dead-letters`);
    assert.equal(delayOf(t(waiting(1), { endpoint })), 1_000, `${verb}: the endpoint's policy`);
    assert.equal(delayOf(t(waiting(2), { endpoint, message: null })), 1_000);
    assert.equal(delayOf(t(waiting(3), { endpoint })), null, `${verb}: min_retries 2 → dead letter after attempt 3`);
    assert.equal(delayOf(t(waiting(1), { endpoint, message })), 3_000, `${verb}: the message's override wins`);
    assert.equal(delayOf(t(waiting(2), { endpoint, message })), null);
    assert.equal(t(waiting(1), { endpoint })!.lastError, verb === "nack" ? NACKED : ACK_EXPIRED);
  }
});

test("an ack succeeds whatever the policy; a delivery no longer awaiting its ack is left alone", () => {
  const ack = ackTransition("ack", base, at);
  const done = ack(waiting(3), { endpoint });
  assert.equal(done?.status, "succeeded");
  assert.equal(done?.nextAttemptAt, null);
  assert.equal(ack({ ...waiting(1), status: "succeeded" }, {}), null);
  assert.equal(ackTransition("nack", base, at)({ ...waiting(1), status: "pending_retry" }, { endpoint }), null);
});
