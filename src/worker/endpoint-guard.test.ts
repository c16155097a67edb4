import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { breaksCircuit, createEndpointGuard, type Admission } from "./endpoint-guard.ts";
import type { OutboundResult } from "./http-sender.ts";

const result = (over: Partial<OutboundResult>): OutboundResult => ({
  status: 0,
  ok: false,
  headers: {},
  body: "",
  latencyMs: 1,
  errorKind: "timeout",
  errorMessage: "no answer",
  retryAfterMs: undefined,
  ...over,
});
const ok = result({ ok: true, status: 200, errorKind: null, errorMessage: "" });
const timeout = result({});

function go(a: Admission): (outcome: OutboundResult | null) => void {
  assert.equal(a.ok, true, JSON.stringify(a));
  return a.release;
}

void describe("endpoint guard", () => {
  void it("caps one endpoint's attempts in flight without touching other endpoints", () => {
    const guard = createEndpointGuard({
      maxInFlight: 2,
      breakerFailures: 0,
      breakerCooldownMs: 1_000,
      random: () => 0,
    });
    const a1 = go(guard.admit("a"));
    go(guard.admit("a"));
    const third = guard.admit("a");
    assert.equal(third.ok, false);
    assert.equal(!third.ok && third.why, "concurrency");
    go(guard.admit("b"));
    a1(ok);
    go(guard.admit("a"));
  });

  void it("opens after consecutive failures, lets one probe through after the cooldown, and closes on its success", () => {
    let t = 0;
    const guard = createEndpointGuard({
      maxInFlight: 10,
      breakerFailures: 3,
      breakerCooldownMs: 1_000,
      now: () => t,
      random: () => 0,
    });
    for (let i = 0; i < 2; i++) go(guard.admit("dead"))(timeout);
    go(guard.admit("dead"))(ok); // a success resets the count
    for (let i = 0; i < 3; i++) go(guard.admit("dead"))(timeout);
    assert.deepEqual(guard.openCircuits(), ["dead"]);
    const held = guard.admit("dead");
    assert.deepEqual(held, { ok: false, delayMs: 1_000, why: "circuit_open" });
    go(guard.admit("healthy"))(ok);
    t = 1_000;
    const probe = go(guard.admit("dead"));
    const second = guard.admit("dead");
    assert.equal(!second.ok && second.why, "circuit_open", "one probe at a time");
    probe(timeout);
    // A failed probe opens it for twice as long.
    const reopened = guard.admit("dead");
    assert.equal(!reopened.ok && reopened.delayMs, 2_000);
    t = 3_000;
    go(guard.admit("dead"))(ok);
    assert.deepEqual(guard.openCircuits(), []);
    for (let i = 0; i < 5; i++) go(guard.admit("dead"));
  });

  void it("a probe that makes no attempt lets the next job probe", () => {
    let t = 0;
    const guard = createEndpointGuard({ maxInFlight: 10, breakerFailures: 1, breakerCooldownMs: 100, now: () => t });
    go(guard.admit("e"))(timeout);
    t = 100;
    go(guard.admit("e"))(null);
    go(guard.admit("e"))(ok);
    assert.deepEqual(guard.openCircuits(), []);
  });

  void it("counts unreachable and broken receivers, not their 4xx answers", () => {
    assert.equal(breaksCircuit(ok), false);
    for (const kind of ["timeout", "connect", "dns", "tls", "response_too_large"] as const) {
      assert.equal(breaksCircuit(result({ errorKind: kind })), true, kind);
    }
    assert.equal(breaksCircuit(result({ errorKind: "http_status", status: 503 })), true);
    assert.equal(breaksCircuit(result({ errorKind: "http_status", status: 429 })), true);
    assert.equal(breaksCircuit(result({ errorKind: "http_status", status: 404 })), false);
    assert.equal(breaksCircuit(result({ errorKind: "refused_by_policy" })), false);
  });
});
