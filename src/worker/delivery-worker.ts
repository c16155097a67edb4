import type { DeliveryJob } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { signingSecretsOf } from "../domain/endpoints.ts";
import { newId } from "../domain/ids.ts";
import type { OutboxRelay } from "../domain/outbox-relay.ts";
import { statusRow } from "../domain/outbox-rows.ts";
import type { AttemptContext, DeliveryLedger } from "../domain/delivery-ledger.ts";
import type { AttemptRecord, DeliveryRecord, DeliveryStatusName } from "../domain/records.ts";
import { FINAL_STATUSES } from "../domain/records.ts";
import { isGone, nextRetryDelayMs, type RetryPolicy } from "../domain/retry-policy.ts";
import { webhookHeaders } from "../domain/signing.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { HttpSender, OutboundResult } from "./http-sender.ts";

/** Minimal logger (pino fits). */
export interface WorkerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What the worker decides about a job; the queue layer turns it into ack / nak / term. */
export type JobOutcome = { kind: "ack" } | { kind: "nak"; delayMs: number };

/** The narrow set of things one delivery attempt needs. */
export interface DeliveryWorkerDeps {
  store: DeliveryLedger;
  relay: OutboxRelay;
  sender: HttpSender;
  retry: RetryPolicy;
  logger: WorkerLogger;
  metrics?: Pick<Metrics, "attempts" | "attemptLatency">;
}

/** Headers of ours that win over an endpoint's custom headers. */
function requestHeaders(ctx: AttemptContext, now: Date): Record<string, string> {
  const { delivery, message, endpoint } = ctx;
  return {
    ...endpoint!.headers,
    "content-type": message.contentType,
    ...webhookHeaders({
      secrets: signingSecretsOf(endpoint!, now),
      msgId: delivery.id,
      timestampSeconds: Math.floor(now.getTime() / 1000),
      body: message.payload,
    }),
  };
}

/** A short description of a failed attempt for the delivery row. */
function shortError(r: OutboundResult): string {
  if (r.errorKind === "http_status") return `HTTP ${r.status}`;
  return r.errorMessage.slice(0, 500);
}

/**
 * The delivery pipeline for one job: prepare (reload state, drop stale jobs) → send (sign and
 * POST) → record (attempt + new status + status event, one transaction, idempotent on the
 * attempt number) → publish the status event. The job is acked only after the record commits,
 * so a crash anywhere before that makes JetStream redeliver it.
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps): { handle(job: DeliveryJob): Promise<JobOutcome> } {
  const { store, relay, sender, retry, logger } = deps;

  const cancel = async (d: DeliveryRecord, reason: string): Promise<JobOutcome> => {
    const now = new Date();
    const r = await store.cancelDelivery(d.id, reason, now, (c) => [statusRow(c, null, now)]);
    if (r) {
      await relay.publishNow(r.outbox);
      logger.info({ deliveryId: d.id, workspaceId: d.workspaceId, reason }, "delivery cancelled");
    }
    return { kind: "ack" };
  };

  return {
    async handle(job) {
      // prepare
      const ctx = await store.loadAttemptContext(job.deliveryId);
      if (!ctx) {
        logger.warn({ deliveryId: job.deliveryId }, "job for an unknown delivery dropped");
        return { kind: "ack" };
      }
      const { delivery, endpoint } = ctx;
      const number = job.attemptNumber;
      if (FINAL_STATUSES.has(delivery.status) || delivery.attemptCount >= number || delivery.status !== "queued") {
        return { kind: "ack" }; // stale or duplicate job: that attempt was made, or is not due
      }
      if (delivery.attemptCount !== number - 1) {
        logger.warn(
          { deliveryId: delivery.id, attemptNumber: number, attemptCount: delivery.attemptCount },
          "job out of sequence dropped",
        );
        return { kind: "ack" };
      }
      if (!endpoint) return cancel(delivery, "endpoint deleted");
      if (!endpoint.enabled) return cancel(delivery, "endpoint disabled");

      // send
      const startedAt = new Date();
      const headers = requestHeaders(ctx, startedAt);
      const result = await sender.send({
        url: endpoint.url,
        headers,
        body: ctx.message.payload,
        timeoutMs: endpoint.timeoutMs,
      });

      // decide
      const now = new Date();
      let status: DeliveryStatusName;
      let nextAttemptAt: Date | null = null;
      const failure = {
        errorKind: result.errorKind ?? ("http_status" as const),
        status: result.status,
        retryAfterMs: result.retryAfterMs,
      };
      if (result.ok) {
        status = "succeeded";
      } else {
        const delay = nextRetryDelayMs(retry, number, failure);
        if (delay === null) status = "failed";
        else {
          status = "pending_retry";
          nextAttemptAt = new Date(now.getTime() + delay);
        }
      }
      const attempt: AttemptRecord = {
        id: newId("attempt", startedAt.getTime()),
        workspaceId: delivery.workspaceId,
        deliveryId: delivery.id,
        number,
        startedAt,
        latencyMs: Math.round(result.latencyMs),
        requestHeaders: headers,
        responseStatus: result.status,
        responseHeaders: result.headers,
        responseBody: result.body,
        errorKind: result.ok ? null : (result.errorKind ?? "http_status"),
        errorMessage: result.ok ? "" : result.errorMessage,
        nextRetryAt: nextAttemptAt,
      };

      // record
      const recorded = await store.recordAttempt({
        attempt,
        delivery: {
          status,
          nextAttemptAt,
          lastResponseStatus: result.status,
          lastError: result.ok ? "" : shortError(result),
          updatedAt: now,
        },
        outbox: (d) => [statusRow(d, attempt, now)],
        expected: delivery,
      });
      // Exactly one log line per attempt.
      logger.info(
        {
          deliveryId: delivery.id,
          messageId: delivery.messageId,
          endpointId: delivery.endpointId,
          workspaceId: delivery.workspaceId,
          attempt: number,
          status,
          httpStatus: result.status,
          errorKind: result.errorKind,
          latencyMs: result.latencyMs,
          nextAttemptAt,
          recorded: recorded.applied,
        },
        "delivery attempt",
      );
      deps.metrics?.attempts.inc({ outcome: status });
      deps.metrics?.attemptLatency.observe(result.latencyMs / 1000);
      if (recorded.applied) await relay.publishNow(recorded.outbox);
      // 410 Gone: the receiver says the endpoint is no more; stop sending it anything else.
      if (!result.ok && isGone(failure) && (await store.disableEndpoint(delivery.workspaceId, endpoint.id, now))) {
        logger.warn(
          { endpointId: endpoint.id, workspaceId: delivery.workspaceId },
          "endpoint disabled: receiver answered 410 Gone",
        );
      }
      return { kind: "ack" };
    },
  };
}
