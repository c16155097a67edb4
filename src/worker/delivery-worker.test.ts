import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Webhook } from "standardwebhooks";
import { DeliveryJobSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import type { OutboxRelay } from "../domain/outbox-relay.ts";
import type { AttemptContext, AttemptOutcome, DeliveryLedger } from "../domain/delivery-ledger.ts";
import type {
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  MessageRecord,
  OutboxRecord,
} from "../domain/records.ts";
import { HEALTHY, nextHealth, type HealthEvent } from "../domain/endpoint-health.ts";
import type { SharedRateLimiter } from "../domain/rate-limit.ts";
import { createEndpointGuard, type EndpointGuard } from "./endpoint-guard.ts";
import { DomainError } from "../domain/errors.ts";
import { generateSigningSecret } from "../domain/signing.ts";
import { createDeliveryWorker } from "./delivery-worker.ts";
import type { HttpSender, OutboundRequest, OutboundResult } from "./http-sender.ts";

const secret = generateSigningSecret();
const now = new Date();

function context(
  over: {
    delivery?: Partial<DeliveryRecord>;
    endpoint?: Partial<EndpointRecord> | null;
    message?: Partial<MessageRecord>;
  } = {},
): AttemptContext {
  const message: MessageRecord = {
    id: "msg_1",
    workspaceId: "ws_1",
    eventType: "order.paid",
    payload: new TextEncoder().encode('{"order":42}'),
    contentType: "application/json",
    idempotencyKey: "k",
    payloadHash: "h",
    createdAt: now,
    ...over.message,
  };
  const delivery: DeliveryRecord = {
    id: "dlv_1",
    workspaceId: "ws_1",
    messageId: "msg_1",
    endpointId: "ep_1",
    eventType: "order.paid",
    status: "queued",
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: now,
    updatedAt: now,
    ...over.delivery,
  };
  const endpoint: EndpointRecord | null =
    over.endpoint === null
      ? null
      : {
          id: "ep_1",
          workspaceId: "ws_1",
          url: "https://example.com/hook",
          description: "",
          metadata: {},
          enabled: true,
          headers: { "x-tenant": "acme" },
          timeoutMs: 5000,
          secret,
          previousSecret: null,
          previousSecretExpiresAt: null,
          createdAt: now,
          updatedAt: now,
          ...over.endpoint,
        };
  return { delivery, message, endpoint };
}

const ok: OutboundResult = {
  status: 200,
  ok: true,
  headers: {},
  body: "ok",
  latencyMs: 3.7,
  errorKind: null,
  errorMessage: "",
  retryAfterMs: undefined,
};
const failed = (status: number, retryAfterMs?: number): OutboundResult => ({
  ...ok,
  status,
  ok: false,
  errorKind: "http_status",
  errorMessage: `HTTP ${status}`,
  retryAfterMs,
});

/** In-memory fakes of the ports one attempt touches, recording what the worker did. */
function harness(
  ctx: AttemptContext | null,
  result: OutboundResult,
  opts: {
    applied?: boolean;
    maxAttempts?: number;
    rateLimiter?: SharedRateLimiter;
    guard?: EndpointGuard;
    head?: { id: string; status: DeliveryStatusName; nextAttemptAt: Date | null };
  } = {},
) {
  const sent: OutboundRequest[] = [];
  const recorded: AttemptOutcome[] = [];
  const published: OutboxRecord[][] = [];
  const cancelled: string[] = [];
  const disabled: string[] = [];
  const health: HealthEvent[] = [];
  const held: string[] = [];
  const loads: string[] = [];
  const store: DeliveryLedger = {
    loadAttemptContext: async (id) => (loads.push(id), ctx),
    recordAttempt: async (o: AttemptOutcome) => {
      recorded.push(o);
      const delivery = { ...ctx!.delivery, ...o.delivery, attemptCount: o.attempt.number };
      const outbox = o.outbox(delivery).map((r, i) => ({ ...r, seq: i + 1 }));
      return opts.applied === false
        ? { applied: false, delivery: ctx!.delivery, outbox: [] }
        : { applied: true, delivery, outbox };
    },
    cancelDelivery: async (id: string, reason: string) => {
      cancelled.push(`${id}: ${reason}`);
      return { delivery: { ...ctx!.delivery, status: "cancelled" as const }, outbox: [] };
    },
    disableEndpoint: async (_workspaceId: string, endpointId: string) => (disabled.push(endpointId), true),
    holdDelivery: async (id: string) => (held.push(id), { result: "held" as const, outbox: [] }),
    earlierOpenDelivery: async () => opts.head ?? null,
    recordEndpointHealth: async (endpointId, event, at, policy) => {
      health.push(event);
      const reason = nextHealth(ctx!.endpoint!.health, event, at.getTime(), policy).disable;
      if (reason !== null) disabled.push(endpointId);
      return reason;
    },
  };
  const relay: OutboxRelay = {
    publishNow: async (rows) => (published.push([...rows]), true),
    sweep: async () => 0,
    drain: async () => undefined,
  };
  const sender: HttpSender = {
    send: async (req) => (sent.push(req), result),
    close: async () => undefined,
  };
  const worker = createDeliveryWorker({
    store,
    relay,
    sender,
    retry: { schedule: [10_000], rateLimitSchedule: [1_000], maxAttempts: opts.maxAttempts ?? 3 },
    rateLimiter: opts.rateLimiter,
    guard: opts.guard,
    logger: { info: () => undefined, warn: () => undefined },
  });
  const job = (attemptNumber: number) =>
    create(DeliveryJobSchema, { workspaceId: "ws_1", deliveryId: "dlv_1", attemptNumber });
  return { worker, job, sent, sender, recorded, published, cancelled, disabled, health, loads, held };
}

test("a rate-limited endpoint's delivery waits as a delayed nak, without an attempt; an unlimited one takes no token", async () => {
  const takes: string[] = [];
  const refuse: SharedRateLimiter = { take: async (id) => (takes.push(id), { ok: false, retryInMs: 1_234 }) };
  const limited = harness(context({ endpoint: { rateLimit: 5 } }), ok, { rateLimiter: refuse });
  assert.deepEqual(await limited.worker.handle(limited.job(1)), { kind: "nak", delayMs: 1_234 });
  assert.deepEqual([limited.sent.length, limited.recorded.length, takes], [0, 0, ["ep_1"]]);
  const allow: SharedRateLimiter = { take: async (id) => (takes.push(id), { ok: true }) };
  const admitted = harness(context({ endpoint: { rateLimit: 5 } }), ok, { rateLimiter: allow });
  assert.deepEqual(await admitted.worker.handle(admitted.job(1)), { kind: "ack" });
  assert.equal(admitted.sent.length, 1);
  const unlimited = harness(context(), ok, { rateLimiter: refuse });
  assert.deepEqual(await unlimited.worker.handle(unlimited.job(1)), { kind: "ack" });
  assert.deepEqual(takes, ["ep_1", "ep_1"]);
});

test("the endpoint guard holds a job back before loading it, and its breaker learns from the attempt", async () => {
  const guard = createEndpointGuard({ maxInFlight: 1, breakerFailures: 1, breakerCooldownMs: 60_000 });
  const named = create(DeliveryJobSchema, {
    workspaceId: "ws_1",
    deliveryId: "dlv_1",
    attemptNumber: 1,
    endpointId: "ep_1",
  });
  const dead = harness(context(), failed(503), { guard });
  assert.deepEqual(await dead.worker.handle(named), { kind: "ack" });
  assert.deepEqual(guard.openCircuits(), ["ep_1"]);
  const held = harness(context(), ok, { guard });
  const verdict = await held.worker.handle(named);
  assert.equal(verdict.kind, "nak");
  assert.ok(verdict.kind === "nak" && verdict.delayMs >= 60_000 - 1_000, JSON.stringify(verdict));
  assert.deepEqual([held.loads.length, held.sent.length], [0, 0]);
  // A job without an endpoint id (written before the field existed) is admitted after loading.
  const old = harness(context(), ok, { guard });
  assert.equal((await old.worker.handle(old.job(1))).kind, "nak");
  assert.deepEqual([old.loads.length, old.sent.length], [1, 0]);
});

test("the endpoint's slot covers the gate and send stages only: it is free again while the attempt is recorded", async () => {
  const guard = createEndpointGuard({ maxInFlight: 1, breakerFailures: 0, breakerCooldownMs: 1_000 });
  const h = harness(context(), ok, { guard });
  const inner = h.worker;
  let freeDuringRecord: boolean | undefined;
  const record = (h as { recorded: unknown[] }).recorded;
  const original = record.push.bind(record);
  record.push = (...items: unknown[]) => {
    // recordAttempt runs here: another job for the endpoint gets a slot at once.
    const a = guard.precheck("ep_1");
    freeDuringRecord = a === null;
    return original(...items);
  };
  assert.deepEqual(await inner.handle(h.job(1)), { kind: "ack" });
  assert.equal(freeDuringRecord, true);
});

test("an ordered endpoint's delivery waits (a deferral, no attempt) while an earlier one has no final outcome", async () => {
  const retryAt = new Date(Date.now() + 2_000);
  const blocked = harness(context({ endpoint: { ordered: true } }), ok, {
    head: { id: "dlv_0", status: "pending_retry", nextAttemptAt: retryAt },
  });
  const verdict = await blocked.worker.handle(blocked.job(1));
  assert.equal(verdict.kind, "nak");
  // It comes back about when the head's retry is due.
  assert.ok(verdict.kind === "nak" && verdict.delayMs >= 1_000 && verdict.delayMs <= 4_000, JSON.stringify(verdict));
  assert.deepEqual([blocked.sent.length, blocked.recorded.length], [0, 0]);
  const head = harness(context({ endpoint: { ordered: true } }), ok);
  assert.deepEqual(await head.worker.handle(head.job(1)), { kind: "ack" });
  assert.equal(head.sent.length, 1);
  // An endpoint that is not ordered never asks.
  const unordered = harness(context(), ok, { head: { id: "dlv_0", status: "queued", nextAttemptAt: null } });
  assert.deepEqual(await unordered.worker.handle(unordered.job(1)), { kind: "ack" });
});

test("a successful attempt is signed, recorded as succeeded and announced, then acked", async () => {
  const h = harness(context(), ok);
  assert.deepEqual(await h.worker.handle(h.job(1)), { kind: "ack" });
  const req = h.sent[0]!;
  assert.equal(req.url, "https://example.com/hook");
  assert.equal(req.headers["x-tenant"], "acme");
  assert.equal(req.headers["content-type"], "application/json");
  assert.equal(req.headers["webhook-id"], "dlv_1");
  new Webhook(secret).verify(Buffer.from(req.body).toString("utf8"), req.headers);
  const o = h.recorded[0]!;
  assert.equal(o.attempt.number, 1);
  assert.equal(o.attempt.latencyMs, 4, "latency is stored in whole milliseconds");
  assert.equal(o.delivery.status, "succeeded");
  assert.equal(h.published[0]?.length, 1, "the status event is published after the record");
});

test("a retryable failure schedules a retry; a permanent one and the last attempt dead-letter", async () => {
  let h = harness(context(), failed(503, 60_000));
  await h.worker.handle(h.job(1));
  assert.equal(h.recorded[0]!.delivery.status, "pending_retry");
  assert.ok(h.recorded[0]!.delivery.nextAttemptAt! >= new Date(Date.now() + 59_000), "Retry-After is a floor");

  h = harness(context(), failed(404));
  await h.worker.handle(h.job(1));
  assert.equal(h.recorded[0]!.delivery.status, "failed");

  h = harness(context({ delivery: { attemptCount: 2 } }), failed(500), { maxAttempts: 3 });
  await h.worker.handle(h.job(3));
  assert.equal(h.recorded[0]!.delivery.status, "failed");
  assert.equal(h.recorded[0]!.delivery.lastError, "HTTP 500");
});

test("decide: the message's retry override wins over the endpoint's retry policy, which wins over the default", async () => {
  const endpointPolicy = {
    minRetries: 2,
    firstDelayMs: 1_000,
    strategy: "fixed" as const,
    factor: 2,
    maxDelayMs: 1_000,
    jitter: 0,
  };
  const messageOverride = { ...endpointPolicy, minRetries: 1, firstDelayMs: 4_000, maxDelayMs: 4_000 };
  const run = async (over: Parameters<typeof context>[0], attempt: number) => {
    const h = harness(context({ ...over, delivery: { attemptCount: attempt - 1 } }), failed(500), { maxAttempts: 9 });
    await h.worker.handle(h.job(attempt));
    const d = h.recorded[0]!.delivery;
    return {
      status: d.status,
      delay: d.nextAttemptAt === null ? null : d.nextAttemptAt.getTime() - d.updatedAt.getTime(),
    };
  };

  // No policy anywhere: the installation's slow lane (10 s, ±20 % jitter by default).
  const byDefault = await run({}, 1);
  assert.equal(byDefault.status, "pending_retry");
  assert.ok(byDefault.delay! >= 8_000 && byDefault.delay! <= 12_000, String(byDefault.delay));
  // The endpoint's: two retries 1 s apart, then the dead letter on attempt 3 (the default would allow 9).
  assert.deepEqual(await run({ endpoint: { retryPolicy: endpointPolicy } }, 1), {
    status: "pending_retry",
    delay: 1_000,
  });
  assert.deepEqual(await run({ endpoint: { retryPolicy: endpointPolicy } }, 2), {
    status: "pending_retry",
    delay: 1_000,
  });
  assert.deepEqual(await run({ endpoint: { retryPolicy: endpointPolicy } }, 3), { status: "failed", delay: null });
  // The message's override wins: one retry 4 s later, then the dead letter on attempt 2.
  const both = { endpoint: { retryPolicy: endpointPolicy }, message: { retry: messageOverride } };
  assert.deepEqual(await run(both, 1), { status: "pending_retry", delay: 4_000 });
  assert.deepEqual(await run(both, 2), { status: "failed", delay: null });
});

test("a 410 Gone dead-letters the delivery and disables its endpoint; a 404 only dead-letters", async () => {
  const gone = harness(context(), failed(410));
  await gone.worker.handle(gone.job(1));
  assert.equal(gone.recorded[0]!.delivery.status, "failed");
  assert.equal(gone.disabled.length, 1);
  const missing = harness(context(), failed(404));
  await missing.worker.handle(missing.job(1));
  assert.equal(missing.recorded[0]!.delivery.status, "failed");
  assert.deepEqual(missing.disabled, []);
  assert.deepEqual(missing.health, [{ ok: false, kind: "http_status", status: 404, message: "HTTP 404" }]);
});

test("endpoint health is written on failures and on the success after them, not on other successes", async () => {
  const healthy = harness(context(), ok);
  await healthy.worker.handle(healthy.job(1));
  assert.deepEqual(healthy.health, []);
  const recovering = harness(context({ endpoint: { health: { ...HEALTHY, consecutiveFailures: 2 } } }), ok);
  await recovering.worker.handle(recovering.job(1));
  assert.deepEqual(recovering.health, [{ ok: true }]);
});

test("a 429 retries on the fast lane, a 503 on the slow lane", async () => {
  const fast = harness(context(), failed(429));
  const slow = harness(context(), failed(503));
  await fast.worker.handle(fast.job(1));
  await slow.worker.handle(slow.job(1));
  const delay = (h: typeof fast): number => h.recorded[0]!.delivery.nextAttemptAt!.getTime() - Date.now();
  assert.ok(delay(fast) <= 1_500, `fast lane ${delay(fast)}`);
  assert.ok(delay(slow) >= 7_000, `slow lane ${delay(slow)}`);
});

test("stale, duplicate and out-of-sequence jobs are acked without sending", async () => {
  for (const [over, attempt] of [
    [{ status: "succeeded" as const, attemptCount: 1 }, 1],
    [{ attemptCount: 1 }, 1],
    [{ status: "pending_retry" as const, attemptCount: 1 }, 2],
    [{ attemptCount: 0 }, 3],
  ] as const) {
    const h = harness(context({ delivery: over }), ok);
    assert.deepEqual(await h.worker.handle(h.job(attempt)), { kind: "ack" });
    assert.equal(h.sent.length, 0, JSON.stringify(over));
  }
  const gone = harness(null, ok);
  assert.deepEqual(await gone.worker.handle(gone.job(1)), { kind: "ack" });
  assert.equal(gone.sent.length, 0);
});

test("deliveries to deleted endpoints are cancelled, to disabled ones held; neither is sent", async () => {
  const deleted = harness(context({ endpoint: null }), ok);
  await deleted.worker.handle(deleted.job(1));
  assert.deepEqual(deleted.cancelled, ["dlv_1: endpoint deleted"]);
  const disabled = harness(context({ endpoint: { enabled: false } }), ok);
  await disabled.worker.handle(disabled.job(1));
  assert.deepEqual(disabled.cancelled, []);
  assert.deepEqual(disabled.held, ["dlv_1"]);
  assert.equal(deleted.sent.length + disabled.sent.length, 0);
});

test("an attempt someone else recorded first publishes nothing", async () => {
  const h = harness(context(), ok, { applied: false });
  assert.deepEqual(await h.worker.handle(h.job(1)), { kind: "ack" });
  assert.equal(h.published.length, 0);
});

test("during a rotation grace period both secrets sign", async () => {
  const old = generateSigningSecret();
  const h = harness(
    context({ endpoint: { previousSecret: old, previousSecretExpiresAt: new Date(Date.now() + 60_000) } }),
    ok,
  );
  await h.worker.handle(h.job(1));
  const req = h.sent[0]!;
  for (const s of [secret, old]) new Webhook(s).verify(Buffer.from(req.body).toString("utf8"), req.headers);
});

test("stage failures are typed: an unreachable store naks with backoff, a job no destination serves is terminated", async () => {
  const down = harness(context(), ok);
  const unavailable = new DomainError("unavailable", "DATABASE_UNAVAILABLE", "database down");
  const failing: DeliveryLedger = {
    loadAttemptContext: () => Promise.reject(unavailable),
    recordAttempt: () => Promise.reject(unavailable),
    cancelDelivery: () => Promise.reject(unavailable),
    disableEndpoint: () => Promise.reject(unavailable),
    recordEndpointHealth: () => Promise.reject(unavailable),
    holdDelivery: () => Promise.reject(unavailable),
    earlierOpenDelivery: () => Promise.reject(unavailable),
  };
  const relay: OutboxRelay = { publishNow: async () => true, sweep: async () => 0, drain: async () => undefined };
  const logger = { info: () => undefined, warn: () => undefined };
  const worker = createDeliveryWorker({
    store: failing,
    relay,
    sender: down.sender,
    retry: { schedule: [1], maxAttempts: 2 },
    logger,
  });
  assert.deepEqual(await worker.handle(down.job(1), { deliveryCount: 1 }), { kind: "nak", delayMs: 1000 });
  assert.deepEqual(await worker.handle(down.job(1), { deliveryCount: 3 }), { kind: "nak", delayMs: 4000 });
  assert.equal(down.sent.length, 0);

  // The record stage fails after a send: the job comes back (at-least-once), nothing is lost.
  const recordDown: DeliveryLedger = { ...failing, loadAttemptContext: async () => context() };
  const w2 = createDeliveryWorker({
    store: recordDown,
    relay,
    sender: down.sender,
    retry: { schedule: [1], maxAttempts: 2 },
    logger,
  });
  assert.equal((await w2.handle(down.job(1), { deliveryCount: 1 })).kind, "nak");
  assert.equal(down.sent.length, 1);

  const exotic = context();
  Object.assign(exotic.endpoint!, { type: "carrier-pigeon" });
  const poison = harness(exotic, ok);
  const verdict = await poison.worker.handle(poison.job(1));
  assert.equal(verdict.kind, "term");
  assert.match(verdict.kind === "term" ? verdict.reason : "", /no destination serves endpoint type carrier-pigeon/);
  assert.equal(poison.sent.length, 0);
});

test("destinations are chosen by endpoint type", async () => {
  const calls: string[] = [];
  const h = harness(context(), ok);
  const relay: OutboxRelay = { publishNow: async () => true, sweep: async () => 0, drain: async () => undefined };
  const store: DeliveryLedger = {
    loadAttemptContext: async () => ctxOf("queue"),
    recordAttempt: async (o) => ({
      applied: true,
      delivery: { ...ctxOf("queue")!.delivery, ...o.delivery },
      outbox: [],
    }),
    cancelDelivery: async () => null,
    disableEndpoint: async () => false,
    earlierOpenDelivery: async () => null,
    recordEndpointHealth: async () => null,
    holdDelivery: async () => ({ result: "not_queued" as const }),
  };
  function ctxOf(type: string): AttemptContext | null {
    const c = context();
    Object.assign(c.endpoint!, { type });
    return c;
  }
  const worker = createDeliveryWorker({
    store,
    relay,
    destinations: {
      webhook: { deliver: async () => (calls.push("webhook"), { requestHeaders: {}, outcome: ok }) },
      queue: { deliver: async () => (calls.push("queue"), { requestHeaders: { "x-queue": "1" }, outcome: ok }) },
    },
    retry: { schedule: [1], maxAttempts: 2 },
    logger: { info: () => undefined, warn: () => undefined },
  });
  assert.deepEqual(await worker.handle(h.job(1)), { kind: "ack" });
  assert.deepEqual(calls, ["queue"]);
  assert.equal(h.sent.length, 0);
});
