import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GONE_REASON, HEALTHY, healthChanges, nextHealth } from "./endpoint-health.ts";

const fail = (status = 503) => ({
  ok: false as const,
  kind: "http_status" as const,
  status,
  message: `HTTP ${status}`,
});
const policy = { failures: 3, windowMs: 60_000 };

void describe("endpoint health", () => {
  void it("counts a run of failures from its first and ends it on a success", () => {
    let h = nextHealth(null, fail(), 1_000, policy).health;
    h = nextHealth(h, { ok: false, kind: "timeout", status: 0, message: "no answer" }, 2_000, policy).health;
    assert.deepEqual(h, {
      ...HEALTHY,
      consecutiveFailures: 2,
      failingSinceMs: 1_000,
      lastFailureAtMs: 2_000,
      lastFailureKind: "timeout",
      lastFailure: "no answer",
    });
    const ok = nextHealth(h, { ok: true }, 3_000, policy);
    assert.equal(ok.disable, null);
    assert.deepEqual(ok.health, { ...h, consecutiveFailures: 0, failingSinceMs: null });
  });

  void it("disables only when both the threshold and the window are reached", () => {
    let h = null;
    let last = nextHealth(h, fail(), 0, policy);
    for (const at of [10_000, 20_000, 30_000, 59_999]) {
      last = nextHealth(last.health, fail(), at, policy);
      assert.equal(last.disable, null, `at ${at}`);
    }
    last = nextHealth(last.health, fail(), 60_000, policy);
    assert.match(last.disable ?? "", /^6 failed attempts in a row since 1970-01-01T00:00:00.000Z \(last: HTTP 503\)$/);
    assert.equal(last.health.disabledReason, last.disable);
    assert.equal(last.health.disabledAtMs, 60_000);
    // Many failures in a short time are not enough.
    h = null;
    let quick = nextHealth(h, fail(), 0, policy);
    for (let i = 1; i < 100; i++) quick = nextHealth(quick.health, fail(), i, policy);
    assert.equal(quick.disable, null);
  });

  void it("disables at once on 410 Gone and never when the policy is off", () => {
    assert.equal(nextHealth(null, fail(410), 5, policy).disable, GONE_REASON);
    let h = nextHealth(null, fail(), 0, { failures: 0, windowMs: 0 });
    for (let i = 1; i < 50; i++) h = nextHealth(h.health, fail(), i * 1e9, { failures: 0, windowMs: 0 });
    assert.equal(h.disable, null);
  });

  void it("writes only on failures and on the success after them", () => {
    assert.equal(healthChanges(null, { ok: true }), false);
    assert.equal(healthChanges(HEALTHY, { ok: true }), false);
    assert.equal(healthChanges(null, fail()), true);
    assert.equal(healthChanges({ ...HEALTHY, consecutiveFailures: 1 }, { ok: true }), true);
  });
});
