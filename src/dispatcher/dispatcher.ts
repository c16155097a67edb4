import type { OutboxRelay } from "../domain/outbox-relay.ts";
import { jobRow, statusRow } from "../domain/outbox-rows.ts";
import type { DueReleaser } from "../domain/due-deliveries.ts";
import type { OutboxPublisher } from "../domain/ports.ts";
import { sweepPublishChecks, type PublishChecks } from "../domain/publish-check.ts";
import { outboxFor, transitionFor, type BulkOperationRunner } from "../domain/recovery.ts";
import { sweepRetention, type RetentionStore } from "../domain/retention.ts";
import { sweepStaleLeases, type StatusLeaseStore } from "../domain/status-announcer.ts";
import { ackOutbox, ackTransition, type AckLedger } from "../domain/async-ack.ts";
import type { RetryPolicy } from "../domain/retry-policy.ts";

/** Minimal logger (pino fits). */
export interface DispatcherLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Options of the dispatcher loop. */
export interface DispatcherOptions {
  store: DueReleaser;
  /** Bulk operations to work through; none when undefined. */
  bulk?: BulkOperationRunner | undefined;
  relay: OutboxRelay;
  /** Deliveries whose publish is checked (publish-check.ts), and the publisher that re-publishes them. */
  publishChecks?: { store: PublishChecks; publisher: OutboxPublisher } | undefined;
  /** Workers' status leases (status-announcer.ts): a lease not renewed for `staleAfterMs` has its attempts re-announced. */
  statusLeases?: { store: StatusLeaseStore; publisher: OutboxPublisher; staleAfterMs: number } | undefined;
  logger: DispatcherLogger;
  /** Pause between rounds when there was nothing to do. */
  intervalMs: number;
  /**
   * How often due deliveries (scheduled messages, retries) are released between full rounds
   * (default `intervalMs`): a short interval makes a scheduled message go out close to its time
   * without sweeping the outbox that often.
   */
  releaseIntervalMs?: number | undefined;
  /** Outbox rows younger than this are left to the process that wrote them (its fast path). */
  outboxMinAgeMs?: number;
  batchSize?: number;
  /** Deliveries visited per round of a bulk operation; default batchSize. */
  bulkBatchSize?: number;
  /** Expired acknowledgement waits: the ledger and the retry policy they retry by. */
  acks?: { ledger: Pick<AckLedger, "expireAcks">; retry: RetryPolicy } | undefined;
  /** Payload retention: the sweeper's store, the default period and how often to sweep. */
  retention?: { store: RetentionStore; defaultMs: number; intervalMs: number } | undefined;
}

/** The running dispatcher. */
export interface Dispatcher {
  /** One round: publish leftover outbox rows, release due retries; returns rows handled. */
  runOnce(): Promise<number>;
  start(): void;
  /** Stops after the current round; resolves when it has finished. */
  stop(): Promise<void>;
}

/**
 * The dispatcher: the outbox sweep (anything committed but never published, e.g. because an
 * API process died between commit and publish, or NATS was down) and the release of due
 * retries and scheduled deliveries, which live as rows in the database — never as long-delayed
 * messages in a consumer's pending set.
 */
export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const { store, relay, logger } = opts;
  const minAge = opts.outboxMinAgeMs ?? 2_000;
  const batch = opts.batchSize ?? 500;
  let running = false;
  let lastRetentionSweep = 0;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const releaseIntervalMs = Math.min(opts.releaseIntervalMs ?? opts.intervalMs, opts.intervalMs);
  let lastFullRound = 0;

  /** Queues the deliveries whose time has come; returns how many. */
  const releaseDue = async (): Promise<number> => {
    const now = new Date();
    const { released, outbox } = await store.releaseDue(now, batch, (d) => [statusRow(d, null, now), jobRow(d, now)]);
    if (released.length > 0) await relay.publishNow(outbox);
    return released.length;
  };

  const runOnce = async (): Promise<number> => {
    lastFullRound = Date.now();
    let handled = 0;
    const swept = await relay.sweep(minAge, batch);
    if (swept > 0) logger.info({ rows: swept }, "published outbox rows left behind");
    handled += swept;
    if (opts.publishChecks !== undefined) {
      const checked = await sweepPublishChecks(
        opts.publishChecks.store,
        opts.publishChecks.publisher,
        new Date(),
        batch,
      );
      if (checked > 0)
        logger.info({ deliveries: checked }, "re-published queued deliveries whose publish was due a check");
      handled += checked;
    }
    if (opts.statusLeases !== undefined) {
      const { store: leases, publisher, staleAfterMs } = opts.statusLeases;
      const announced = await sweepStaleLeases(leases, publisher, new Date(), staleAfterMs, batch);
      if (announced > 0)
        logger.info({ events: announced }, "re-published the status events of attempts a stopped worker left");
      handled += announced;
    }
    handled += await releaseDue();
    // An expired acknowledgement wait counts as a failed attempt: retry by the policy, or dead-letter.
    if (opts.acks !== undefined) {
      const at = new Date();
      const expired = await opts.acks.ledger.expireAcks(
        at,
        batch,
        ackTransition("expire", opts.acks.retry, at),
        ackOutbox(at),
      );
      if (expired.changed.length > 0) {
        await relay.publishNow(expired.outbox);
        handled += expired.changed.length;
      }
    }
    // One batch of one bulk operation per round, so a large bulk replay never starves retries.
    if (opts.bulk !== undefined) {
      const at = new Date();
      const ran = await opts.bulk.runBulkBatch(
        opts.bulkBatchSize ?? batch,
        at,
        (op) => transitionFor(op.action, at),
        outboxFor(at),
      );
      if (ran !== null) {
        await relay.publishNow(ran.outbox);
        if (ran.operation.state !== "running") {
          const { id, workspaceId, action, matched, affected } = ran.operation;
          logger.info({ bulkOperationId: id, workspaceId, action, matched, affected }, "bulk operation finished");
        }
        // A running operation with more to do keeps the loop going without waiting.
        handled += ran.operation.state === "running" ? batch : 1;
      }
    }
    if (opts.retention !== undefined && Date.now() - lastRetentionSweep >= opts.retention.intervalMs) {
      lastRetentionSweep = Date.now();
      const swept = await sweepRetention(opts.retention.store, new Date(), opts.retention.defaultMs);
      if (swept.payloads + swept.attempts > 0)
        logger.info(swept, "retention sweep deleted expired payloads and attempts");
    }
    return handled;
  };

  return {
    runOnce,
    start() {
      if (running) return;
      running = true;
      loop = (async () => {
        let failures = 0;
        while (running) {
          let handled = 0;
          try {
            // Between full rounds only due deliveries are released, every releaseIntervalMs.
            handled = Date.now() - lastFullRound >= opts.intervalMs ? await runOnce() : await releaseDue();
            failures = 0;
          } catch (err) {
            failures++;
            // Log the first failure of an outage and then every 30th, not once a second.
            if (failures === 1 || failures % 30 === 0) logger.error({ err, failures }, "dispatcher round failed");
          }
          if (!running) break;
          if (handled >= batch) continue; // more is waiting
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, releaseIntervalMs);
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
          wake = undefined;
        }
      })();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
      await relay.drain();
    },
  };
}
