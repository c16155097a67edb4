import type { DeliveryJob } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { DomainError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import type { OutboxRelay } from "../domain/outbox-relay.ts";
import { statusRow } from "../domain/outbox-rows.ts";
import type { AttemptContext, DeliveryLedger } from "../domain/delivery-ledger.ts";
import type { AttemptRecord, DeliveryRecord, DeliveryStatusName } from "../domain/records.ts";
import { FINAL_STATUSES } from "../domain/records.ts";
import { healthChanges, type AutoDisablePolicy, type HealthEvent } from "../domain/endpoint-health.ts";
import { nextRetryDelayMs, resolveRetryPolicy, type RetryPolicy } from "../domain/retry-policy.ts";
import { rateLimitOf } from "../domain/endpoints.ts";
import { publishQueued, type DirectPublisher } from "../domain/publish-check.ts";
import type { AnnounceTicket, StatusAnnouncer } from "../domain/status-announcer.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { SharedRateLimiter } from "../domain/rate-limit.ts";
import type { Destination, DestinationResult, Destinations } from "./destination.ts";
import type { EndpointGuard } from "./endpoint-guard.ts";
import type { HttpSender, OutboundResult } from "./http-sender.ts";
import type { SigningKeys } from "./signing-keys.ts";
import { createWebhookDestination, type AsyncAckOptions } from "./webhook-destination.ts";

/** Minimal logger (pino fits). */
export interface WorkerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What the worker decides about a job; the queue layer turns it into ack / nak / term. */
export type JobOutcome = { kind: "ack" } | { kind: "nak"; delayMs: number } | { kind: "term"; reason: string };

/** The pipeline's stages, in order. */
export type StageName = "prepare" | "gate" | "send" | "decide" | "record";

/**
 * A stage's failure, typed: `transient` (the database or NATS is unreachable, or an unexpected
 * error) hands the job back to JetStream after a backoff, so another try comes once things
 * recover; `poison` (the job can never succeed, e.g. an endpoint type no destination serves)
 * terminates it. This type alone decides what happens to the job.
 */
export class StageError extends Error {
  override readonly name = "StageError";
  readonly stage: StageName;
  readonly kind: "transient" | "poison";
  constructor(stage: StageName, kind: "transient" | "poison", message: string, options?: { cause?: unknown }) {
    super(`${stage}: ${message}`, options);
    this.stage = stage;
    this.kind = kind;
  }
}

/** What the worker learns about a job from the queue. */
export interface JobContext {
  /** 1 on the first delivery of the job; grows with every redelivery. */
  deliveryCount: number;
  /** Aborted when the consumer stops: a job waiting for an endpoint slot then gives up. */
  signal?: AbortSignal | undefined;
}

/** Backoff before a transient failure's job comes back: 1 s doubling per redelivery, at most 30 s. */
function transientDelayMs(deliveryCount: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, deliveryCount - 1), 30_000);
}

/** The job's fate for a stage failure; unknown errors count as transient. */
function dispositionOf(err: StageError, job: JobContext): JobOutcome {
  return err.kind === "poison"
    ? { kind: "term", reason: err.message }
    : { kind: "nak", delayMs: transientDelayMs(job.deliveryCount) };
}

/** Runs one stage, turning whatever it throws into a typed StageError. */
async function stage<T>(name: StageName, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StageError) throw err;
    const poison = err instanceof DomainError && err.kind !== "unavailable";
    throw new StageError(name, poison ? "poison" : "transient", err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
}

/** The narrow set of things one delivery attempt needs. */
export interface DeliveryWorkerDeps {
  store: DeliveryLedger;
  /** Publishes recorded status events; operational events' deliveries too when it can publish directly. */
  relay: OutboxRelay & Partial<DirectPublisher>;
  /**
   * Publishes each recorded attempt's status event straight after the commit, under this worker's
   * status lease (status-announcer.ts), instead of writing it as an outbox row; outbox rows when undefined.
   */
  announcer?: StatusAnnouncer | undefined;
  /** The HTTP sender of the default webhook destination (used when `destinations` is not given). */
  sender?: HttpSender;
  /** Destinations by endpoint type; a webhook destination over `sender` when undefined. */
  destinations?: Destinations;
  /**
   * Async acknowledgement (signer and wait), when configured: a 202 from an async_ack endpoint
   * then waits in awaiting_ack. Without it, 202 is success like any 2xx.
   */
  asyncAck?: AsyncAckOptions | undefined;
  /** Opens the endpoints' sealed signing secrets for the default webhook destination (plaintext only when absent). */
  signingKeys?: SigningKeys | undefined;
  retry: RetryPolicy;
  /** Per-endpoint concurrency cap and circuit breaker of this process; none when undefined. */
  guard?: EndpointGuard | undefined;
  /** Per-endpoint rate limits shared by every worker; limits are not enforced when undefined. */
  rateLimiter?: SharedRateLimiter | undefined;
  /** When sustained failure disables an endpoint; off when undefined (a 410 Gone always does). */
  autoDisable?: AutoDisablePolicy | undefined;
  logger: WorkerLogger;
  metrics?: Pick<Metrics, "attempts" | "attemptLatency"> & Partial<Pick<Metrics, "deferrals">>;
}

/** A short description of a failed attempt for the delivery row. */
function shortError(r: OutboundResult): string {
  if (r.errorKind === "http_status") return `HTTP ${r.status}`;
  return r.errorMessage.slice(0, 500);
}

/**
 * How long a delivery of an ordered endpoint waits before it looks again at the head of its
 * endpoint's queue: until about when the head's retry is due when it waits for one (its retries
 * block the queue: that is FIFO), else a short poll while the head is being attempted, is
 * awaiting its ack or is held; at most 5 s, spread so waiting jobs do not come back together.
 */
function orderingDelayMs(head: Pick<DeliveryRecord, "status" | "nextAttemptAt">, now = Date.now()): number {
  const base =
    head.status === "pending_retry" && head.nextAttemptAt !== null ? head.nextAttemptAt.getTime() - now + 50 : 100;
  return Math.round(Math.min(5_000, Math.max(50, base)) * (1 + Math.random() / 4));
}

/** The gate's verdict on a delivery. */
type GateVerdict =
  | { kind: "go" }
  | { kind: "cancel"; reason: string }
  | { kind: "hold" }
  | { kind: "wait"; delayMs: number; why: "rate_limit" | "concurrency" | "circuit_open" | "ordering" };

/** What the decide stage settles: the delivery's next state after an attempt. */
interface Decision {
  status: DeliveryStatusName;
  nextAttemptAt: Date | null;
}

/**
 * The delivery pipeline for one job, as named stages:
 * - prepare: reload the delivery, message and endpoint; drop stale or duplicate jobs;
 * - gate: cancel deliveries whose endpoint is gone or disabled (rate limits and circuit breakers
 *   belong here too);
 * - send: one attempt through the endpoint type's destination (signing is the destination's);
 * - decide: succeeded, a retry on the policy's lane, or a dead letter;
 * - record: the attempt, the new status and the status event in one transaction (idempotent on
 *   the attempt number), then publish the event and ack.
 * The job is acked only after the record commits, so a crash anywhere before that makes JetStream
 * redeliver it. A stage failure is a typed StageError whose kind alone decides nak or term.
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps): {
  handle(job: DeliveryJob, info?: JobContext): Promise<JobOutcome>;
} {
  const { store, relay, retry, logger } = deps;
  const destinations: Destinations =
    deps.destinations ??
    (() => {
      if (deps.sender === undefined) throw new Error("createDeliveryWorker needs a sender or destinations");
      return { webhook: createWebhookDestination(deps.sender, deps.asyncAck, deps.signingKeys) };
    })();

  const cancel = async (d: DeliveryRecord, reason: string): Promise<JobOutcome> => {
    const now = new Date();
    const r = await store.cancelDelivery(d.id, reason, now, (c) => [statusRow(c, null, now)]);
    if (r) {
      await relay.publishNow(r.outbox);
      logger.info({ deliveryId: d.id, workspaceId: d.workspaceId, reason }, "delivery cancelled");
    }
    return { kind: "ack" };
  };

  /** A disabled endpoint's delivery is kept (held) until the endpoint is enabled again. */
  const hold = async (d: DeliveryRecord): Promise<JobOutcome> => {
    const now = new Date();
    const r = await store.holdDelivery(d.id, d.endpointId, now, (h) => [statusRow(h, null, now)]);
    switch (r.result) {
      case "held":
        await relay.publishNow(r.outbox);
        logger.info({ deliveryId: d.id, workspaceId: d.workspaceId, endpointId: d.endpointId }, "delivery held");
        return { kind: "ack" };
      case "gone":
        return cancel(d, "endpoint deleted");
      case "enabled":
        // Enabled since the delivery was loaded: load it again shortly.
        return { kind: "nak", delayMs: 100 };
      case "not_queued":
        return { kind: "ack" };
    }
  };

  /** prepare: the attempt's context, or null when the job is stale, duplicate or unknown. */
  const prepare = async (job: DeliveryJob): Promise<AttemptContext | null> => {
    const ctx = await store.loadAttemptContext(job.deliveryId);
    if (!ctx) {
      logger.warn({ deliveryId: job.deliveryId }, "job for an unknown delivery dropped");
      return null;
    }
    const { delivery } = ctx;
    const number = job.attemptNumber;
    if (FINAL_STATUSES.has(delivery.status) || delivery.attemptCount >= number || delivery.status !== "queued") {
      return null; // stale or duplicate job: that attempt was made, or is not due
    }
    if (delivery.attemptCount !== number - 1) {
      logger.warn(
        { deliveryId: delivery.id, attemptNumber: number, attemptCount: delivery.attemptCount },
        "job out of sequence dropped",
      );
      return null;
    }
    return ctx;
  };

  /**
   * gate: whether the delivery is attempted now. `cancel` when its endpoint is gone or disabled;
   * `wait` when the endpoint's shared rate limit has no token for it: the job goes back to the
   * queue for that long (a delayed nak), so the wait holds no worker slot and is not an attempt.
   */
  const gate = async (ctx: AttemptContext): Promise<GateVerdict> => {
    if (!ctx.endpoint) return { kind: "cancel", reason: "endpoint deleted" };
    if (!ctx.endpoint.enabled) return { kind: "hold" };
    if (ctx.endpoint.ordered === true) {
      const head = await store.earlierOpenDelivery(ctx.endpoint.id, ctx.delivery.id);
      if (head !== null) return { kind: "wait", delayMs: orderingDelayMs(head), why: "ordering" };
    }
    const limit = rateLimitOf(ctx.endpoint);
    if (limit !== null && deps.rateLimiter !== undefined) {
      const taken = await deps.rateLimiter.take(ctx.endpoint.id, limit);
      if (!taken.ok) return { kind: "wait", delayMs: taken.retryInMs, why: "rate_limit" };
    }
    return { kind: "go" };
  };

  /** send: one attempt through the endpoint's destination. */
  const send = async (ctx: AttemptContext, at: Date): Promise<DestinationResult> => {
    const type = ctx.endpoint?.type ?? "webhook";
    const destination: Destination | undefined = destinations[type];
    if (destination === undefined)
      throw new StageError("send", "poison", `no destination serves endpoint type ${type}`);
    return destination.deliver(ctx, at);
  };

  /** decide: the delivery's next state after the attempt. */
  const decide = (
    ctx: AttemptContext,
    number: number,
    outcome: OutboundResult,
    startedAt: Date,
    now: Date,
  ): Decision => {
    if (outcome.ok && outcome.status === 202 && ctx.endpoint?.asyncAck === true && deps.asyncAck !== undefined) {
      // The wait ends when the ack URL expires: both are counted from the attempt's start.
      return {
        status: "awaiting_ack",
        nextAttemptAt: new Date(startedAt.getTime() + deps.asyncAck.timeoutMs),
      };
    }
    if (outcome.ok) return { status: "succeeded", nextAttemptAt: null };
    const failure = {
      errorKind: outcome.errorKind ?? ("http_status" as const),
      status: outcome.status,
      retryAfterMs: outcome.retryAfterMs,
    };
    // The message's own override wins, then the endpoint's policy, then the installation's lanes.
    const policy = resolveRetryPolicy(retry, { message: ctx.message.retry, endpoint: ctx.endpoint?.retryPolicy });
    const delay = nextRetryDelayMs(policy, number, failure);
    return {
      status: delay === null ? "failed" : "pending_retry",
      nextAttemptAt: delay === null ? null : new Date(now.getTime() + delay),
    };
  };

  const autoDisable: AutoDisablePolicy = deps.autoDisable ?? { failures: 0, windowMs: 0 };

  /**
   * record, after the attempt: the endpoint's health (every failure, and the success that ends a
   * run of them, so a healthy endpoint costs no write). A 410 Gone, or failure sustained past the
   * auto-disable policy, disables the endpoint, so its other deliveries stop at once.
   */
  const recordHealth = async (ctx: AttemptContext, result: OutboundResult, now: Date): Promise<void> => {
    const endpoint = ctx.endpoint!;
    const event: HealthEvent = result.ok
      ? { ok: true }
      : { ok: false, kind: result.errorKind ?? "http_status", status: result.status, message: shortError(result) };
    if (!healthChanges(endpoint.health, event)) return;
    const emitted: DeliveryRecord[] = [];
    const disabled = await store.recordEndpointHealth(endpoint.id, event, now, autoDisable, emitted);
    await publishQueued(relay, emitted, now);
    if (disabled !== null) {
      logger.warn(
        { endpointId: endpoint.id, workspaceId: endpoint.workspaceId, reason: disabled },
        "endpoint disabled",
      );
    }
  };

  /** A deferral: the job goes back to the queue without an attempt, counted by why. */
  const defer = (delayMs: number, why: "rate_limit" | "concurrency" | "circuit_open" | "ordering"): JobOutcome => {
    deps.metrics?.deferrals?.inc({ reason: why });
    return { kind: "nak", delayMs };
  };

  const { announcer } = deps;

  const run = async (job: DeliveryJob, info: JobContext): Promise<JobOutcome> => {
    // Set from the attempt's start until its status event is handed to the announcer.
    let ticket: AnnounceTicket | undefined;
    try {
      // Before the delivery is loaded, when the job names its endpoint: a job that would surely
      // be deferred (circuit open, or a slow endpoint at its cap) costs nothing but the nak.
      if (deps.guard !== undefined && job.endpointId !== "") {
        const early = deps.guard.precheck(job.endpointId);
        if (early !== null) return defer(early.delayMs, early.why);
      }
      const ctx = await stage("prepare", () => prepare(job));
      if (ctx === null) return { kind: "ack" };
      const { delivery } = ctx;
      const number = job.attemptNumber;

      // The endpoint's slot covers the gate and send stages only: a fast endpoint's next job may
      // wait here for it (see endpoint-guard.ts), and it is free again before the record.
      let release: ((outcome: OutboundResult | null) => void) | undefined;
      if (deps.guard !== undefined && delivery.endpointId !== "") {
        const admission = await deps.guard.acquire(delivery.endpointId, info.signal);
        if (!admission.ok) return defer(admission.delayMs, admission.why);
        release = admission.release;
      }
      let sent: DestinationResult;
      let startedAt: Date;
      let result: OutboundResult | null = null;
      try {
        const verdict = await stage("gate", () => gate(ctx));
        if (verdict.kind === "cancel") return await stage("gate", () => cancel(delivery, verdict.reason));
        if (verdict.kind === "hold") return await stage("gate", () => hold(delivery));
        if (verdict.kind === "wait") return defer(verdict.delayMs, verdict.why);
        // Not recorded under a lease the dispatcher may be taking over: try again shortly.
        if (announcer !== undefined && !announcer.canRecord()) return { kind: "nak", delayMs: 1_000 };
        startedAt = new Date();
        ticket = announcer?.begin(startedAt);
        const at = startedAt;
        sent = await stage("send", () => send(ctx, at));
        result = sent.outcome;
      } finally {
        release?.(result);
      }
      const { requestHeaders } = sent;

      const now = new Date();
      const decision = decide(ctx, number, result, startedAt, now);
      const attempt: AttemptRecord = {
        id: newId("attempt", startedAt.getTime()),
        workspaceId: delivery.workspaceId,
        deliveryId: delivery.id,
        number,
        startedAt,
        latencyMs: Math.round(result.latencyMs),
        requestHeaders,
        responseStatus: result.status,
        responseHeaders: result.headers,
        responseBody: result.body,
        errorKind: result.ok ? null : (result.errorKind ?? "http_status"),
        errorMessage: result.ok ? "" : result.errorMessage,
        nextRetryAt: decision.status === "pending_retry" ? decision.nextAttemptAt : null,
        recordedBy: announcer?.leaseId ?? null,
      };

      // message.attempt.exhausted's deliveries, when this attempt dead-letters the delivery.
      const emitted: DeliveryRecord[] = [];
      if (announcer !== undefined && !announcer.canRecord()) {
        throw new StageError("record", "transient", "the status lease was not renewed recently");
      }
      const recorded = await stage("record", () =>
        store.recordAttempt({
          attempt,
          delivery: {
            status: decision.status,
            nextAttemptAt: decision.nextAttemptAt,
            lastResponseStatus: result.status,
            lastError: result.ok ? "" : shortError(result),
            updatedAt: now,
          },
          outbox: announcer === undefined ? (d) => [statusRow(d, attempt, now)] : () => [],
          expected: delivery,
          emitted,
        }),
      ).catch((err: unknown) => {
        // The statement may have committed before it failed: the announcer looks the attempt up later.
        if (ticket !== undefined && announcer !== undefined) announcer.doubt(ticket, attempt.id);
        ticket = undefined;
        throw err;
      });
      // Exactly one log line per attempt.
      logger.info(
        {
          deliveryId: delivery.id,
          messageId: delivery.messageId,
          endpointId: delivery.endpointId,
          workspaceId: delivery.workspaceId,
          attempt: number,
          status: decision.status,
          httpStatus: result.status,
          errorKind: result.errorKind,
          latencyMs: result.latencyMs,
          nextAttemptAt: decision.nextAttemptAt,
          recorded: recorded.applied,
        },
        "delivery attempt",
      );
      deps.metrics?.attempts.inc({ outcome: decision.status });
      deps.metrics?.attemptLatency.observe(result.latencyMs / 1000);
      if (recorded.applied && ticket !== undefined && announcer !== undefined) {
        const handed = ticket;
        ticket = undefined;
        await announcer.announce(handed, statusRow(recorded.delivery, attempt, now));
      }
      if (recorded.applied) await relay.publishNow(recorded.outbox);
      if (recorded.applied) await publishQueued(relay, emitted, now);
      if (recorded.applied) await stage("record", () => recordHealth(ctx, result, now));
      return { kind: "ack" };
    } catch (err) {
      if (!(err instanceof StageError)) throw err;
      const verdict = dispositionOf(err, info);
      logger.warn(
        { err, stage: err.stage, deliveryId: job.deliveryId, attemptNumber: job.attemptNumber, verdict },
        "delivery stage failed",
      );
      return verdict;
    } finally {
      // Never recorded under the lease (not applied, or stopped before the record): nothing to announce.
      if (ticket !== undefined) announcer?.settle(ticket);
    }
  };

  return {
    handle(job, info = { deliveryCount: 1 }) {
      return run(job, info);
    },
  };
}
