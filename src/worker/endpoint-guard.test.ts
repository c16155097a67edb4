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
  return a.ok ? a.release : () => undefined;
}

void describe("endpoint guard", () => {
  void it("starts a new endpoint at a cap of 4, grows it on success up to the configured cap, halves it per failure", async () => {
    const guard = createEndpointGuard({ maxInFlight: 6, breakerFailures: 0, breakerCooldownMs: 1_000 });
    const held = [];
    for (let i = 0; i < 4; i++) held.push(go(await guard.acquire("a")));
    assert.equal(guard.capOf("a"), 4);
    const fifth = await guard.acquire("a"); // no waiters allowed (maxWaiters 0)
    assert.equal(!fifth.ok && fifth.why, "concurrency");
    go(await guard.acquire("b"))(ok); // other endpoints are untouched
    for (const r of held) r(ok);
    assert.equal(guard.capOf("a"), 6, "grows by one per success, up to maxInFlight");
    for (let i = 0; i < 3; i++) go(await guard.acquire("a"))(timeout);
    assert.equal(guard.capOf("a"), 1, "6 → 3 → 1 → 1");
    go(await guard.acquire("a"))(ok);
    assert.equal(guard.capOf("a"), 2);
  });

  void it("a fast endpoint's job at its cap waits for a slot, handed over in arrival order", async () => {
    const guard = createEndpointGuard({ maxInFlight: 1, maxWaiters: 8, breakerFailures: 0, breakerCooldownMs: 1_000 });
    const first = go(await guard.acquire("a"));
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      guard.acquire("a").then((a) => {
        order.push(n);
        return a;
      }),
    );
    assert.equal(guard.waiting(), 3);
    first(ok);
    for (const w of waiters) go(await w)(ok);
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(guard.waiting(), 0);
  });

  void it("at most maxWaiters jobs wait; past that, and when the endpoint stops answering, jobs are deferred", async () => {
    const guard = createEndpointGuard({ maxInFlight: 1, maxWaiters: 1, breakerFailures: 0, breakerCooldownMs: 1_000 });
    const first = go(await guard.acquire("a"));
    const waiter = guard.acquire("a");
    const extra = await guard.acquire("a");
    assert.equal(!extra.ok && extra.why, "concurrency");
    // Nothing finishes: the waiter gives up after its budget (at least 100 ms) with a deferral.
    const gaveUp = await waiter;
    assert.equal(!gaveUp.ok && gaveUp.why, "concurrency");
    // The attempt in flight is now unanswered past the budget: the next job is deferred at once,
    // and precheck says so without taking anything.
    assert.equal(guard.precheck("a")?.why, "concurrency");
    first(ok);
    assert.equal(guard.precheck("a"), null);
  });

  void it("a slow endpoint's job at its cap is deferred instead of waiting", async () => {
    let t = 0;
    const guard = createEndpointGuard({
      maxInFlight: 1,
      maxWaiters: 8,
      breakerFailures: 0,
      breakerCooldownMs: 1_000,
      now: () => t,
    });
    const r = go(await guard.acquire("slow"));
    t = 1_500;
    r(ok); // 1.5 s per attempt
    go(await guard.acquire("slow"));
    const next = await guard.acquire("slow");
    assert.equal(!next.ok && next.why, "concurrency");
    assert.equal(guard.waiting(), 0);
  });

  void it("an aborted wait gives up at once", async () => {
    const guard = createEndpointGuard({ maxInFlight: 1, maxWaiters: 8, breakerFailures: 0, breakerCooldownMs: 1_000 });
    go(await guard.acquire("a"));
    const ac = new AbortController();
    const waiter = guard.acquire("a", ac.signal);
    ac.abort();
    const a = await waiter;
    assert.equal(a.ok, false);
    assert.equal(guard.waiting(), 0);
  });

  void it("forgets an endpoint idle past idleForgetMs, and not before", async () => {
    let t = 0;
    const guard = createEndpointGuard({
      maxInFlight: 8,
      breakerFailures: 0,
      breakerCooldownMs: 1_000,
      idleForgetMs: 600_000,
      now: () => t,
    });
    go(await guard.acquire("a"))(timeout);
    assert.equal(guard.capOf("a"), 2);
    t = 599_000;
    go(await guard.acquire("b"))(ok);
    assert.equal(guard.capOf("a"), 2, "kept while idle for less than 10 minutes");
    t = 1_200_000;
    go(await guard.acquire("b"))(ok);
    assert.equal(guard.capOf("a"), undefined, "forgotten after 10 idle minutes");
  });

  void it("opens after consecutive failures, lets one probe through after the cooldown, and closes on its success", async () => {
    let t = 0;
    const guard = createEndpointGuard({
      maxInFlight: 10,
      breakerFailures: 3,
      breakerCooldownMs: 1_000,
      now: () => t,
      random: () => 0,
    });
    for (let i = 0; i < 2; i++) go(await guard.acquire("dead"))(timeout);
    go(await guard.acquire("dead"))(ok); // a success resets the count
    for (let i = 0; i < 3; i++) go(await guard.acquire("dead"))(timeout);
    assert.deepEqual(guard.openCircuits(), ["dead"]);
    const held = await guard.acquire("dead");
    assert.deepEqual(held, { ok: false, delayMs: 1_000, why: "circuit_open" });
    assert.deepEqual(guard.precheck("dead"), { ok: false, delayMs: 1_000, why: "circuit_open" });
    go(await guard.acquire("healthy"))(ok);
    t = 1_000;
    const probe = go(await guard.acquire("dead"));
    const second = await guard.acquire("dead");
    assert.equal(!second.ok && second.why, "circuit_open", "one probe at a time");
    probe(timeout);
    // A failed probe opens it for twice as long.
    const reopened = await guard.acquire("dead");
    assert.equal(!reopened.ok && reopened.delayMs, 2_000);
    t = 3_000;
    go(await guard.acquire("dead"))(ok);
    assert.deepEqual(guard.openCircuits(), []);
    go(await guard.acquire("dead"));
  });

  void it("a probe that makes no attempt lets the next job probe", async () => {
    let t = 0;
    const guard = createEndpointGuard({ maxInFlight: 10, breakerFailures: 1, breakerCooldownMs: 100, now: () => t });
    go(await guard.acquire("e"))(timeout);
    t = 100;
    go(await guard.acquire("e"))(null);
    go(await guard.acquire("e"))(ok);
    assert.deepEqual(guard.openCircuits(), []);
  });

  void it("waiters of an endpoint whose circuit opens are deferred", async () => {
    const guard = createEndpointGuard({ maxInFlight: 1, maxWaiters: 8, breakerFailures: 1, breakerCooldownMs: 60_000 });
    const first = go(await guard.acquire("a"));
    const waiter = guard.acquire("a");
    first(timeout);
    const a = await waiter;
    assert.equal(!a.ok && a.why, "circuit_open");
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
