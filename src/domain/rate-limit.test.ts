import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bucketSize, PACING_GUARD, takeToken, type BucketState } from "./rate-limit.ts";

/** Admission times of requests arriving at `arrivals`, each retried when the bucket says. */
function simulate(arrivals: number[], limit: { rate: number; burst: number }): number[] {
  let state: BucketState | undefined;
  const queue = arrivals.map((t) => ({ t }));
  const admitted: number[] = [];
  while (queue.length > 0) {
    queue.sort((a, b) => a.t - b.t);
    const next = queue.shift()!;
    const r = takeToken(state, limit, next.t);
    state = r.state;
    if (r.result.ok) admitted.push(next.t);
    else queue.push({ t: next.t + r.result.retryInMs });
  }
  return admitted;
}

function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

void describe("rate limit token bucket", () => {
  void it("lets a full bucket through at once, then paces at the rate", () => {
    const limit = { rate: 10, burst: 5 };
    let state: BucketState | undefined;
    for (let i = 0; i < 5; i++) {
      const r = takeToken(state, limit, 0);
      state = r.state;
      assert.deepEqual(r.result, { ok: true });
    }
    const refused = takeToken(state, limit, 0);
    assert.equal(refused.result.ok, false);
    assert.equal(!refused.result.ok && refused.result.retryInMs, Math.ceil(100 * PACING_GUARD));
    // The next refused one is given the turn after it.
    const second = takeToken(refused.state, limit, 0);
    assert.equal(!second.result.ok && second.result.retryInMs, Math.ceil(200 * PACING_GUARD));
  });

  void it("never admits more than burst + rate in any one-second window, under any arrival pattern", () => {
    for (const limit of [
      { rate: 20, burst: 5 },
      { rate: 1, burst: 1 },
      { rate: 100, burst: 0 },
      { rate: 7, burst: 30 },
    ]) {
      const bound = limit.rate + bucketSize(limit);
      // 2,000 requests in bursts, with idle gaps that refill the bucket.
      const arrivals: number[] = [];
      for (let i = 0; i < 2_000; i++) arrivals.push(Math.floor(i / 50) * 3_000 + ((i * 7919) % 400));
      const admitted = simulate(arrivals, limit);
      assert.equal(admitted.length, arrivals.length);
      const most = maxInWindow(admitted, 1_000);
      assert.ok(most <= bound, `${JSON.stringify(limit)}: ${most} > ${bound}`);
      assert.ok(most >= Math.min(limit.rate, 50), `${JSON.stringify(limit)}: only ${most} in the busiest window`);
    }
  });

  void it("hands refused deliveries turns spread at the rate, not all at once", () => {
    const limit = { rate: 10, burst: 1 };
    let state: BucketState | undefined = takeToken(undefined, limit, 0).state;
    const turns: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = takeToken(state, limit, 0);
      state = r.state;
      assert.equal(r.result.ok, false);
      if (!r.result.ok) turns.push(r.result.retryInMs);
    }
    for (let i = 1; i < turns.length; i++) {
      assert.ok(Math.abs(turns[i]! - turns[i - 1]! - 100 * PACING_GUARD) <= 1, `${turns[i - 1]} → ${turns[i]}`);
    }
  });

  void it("a clock that goes backwards adds no tokens", () => {
    const limit = { rate: 1, burst: 1 };
    const first = takeToken(undefined, limit, 10_000);
    const back = takeToken(first.state, limit, 5_000);
    assert.equal(back.result.ok, false);
  });
});
