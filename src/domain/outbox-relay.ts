import type { OutboxPublisher } from "./ports.ts";
import type { DirectPublisher } from "./publish-check.ts";
import type { NewOutboxRecord, OutboxRecord } from "./records.ts";

/** The outbox rows the relay reads and deletes: its own narrow port. */
export interface OutboxBacklog {
  /** Unpublished outbox rows created at or before `createdBefore`, in seq order. */
  pendingOutbox(createdBefore: Date, limit: number): Promise<OutboxRecord[]>;
  /** Deletes published rows. */
  deleteOutbox(seqs: readonly number[]): Promise<void>;
}

/** Minimal logger the relay needs (pino fits). */
export interface RelayLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Moves committed outbox rows into JetStream. The fast path publishes right after the commit
 * that wrote them; the sweep publishes whatever a crash or an outage left behind. Both may
 * publish the same row: the msgId dedupe makes that harmless. Published rows are deleted in
 * batches to keep the hot path to one extra statement per many messages.
 */
export interface OutboxRelay {
  /** Publishes rows just committed; on failure leaves them to the sweep. Resolves true when published. */
  publishNow(rows: readonly OutboxRecord[]): Promise<boolean>;
  /** Publishes rows older than `minAgeMs`; returns how many were published. */
  sweep(minAgeMs: number, limit?: number): Promise<number>;
  /** Waits for in-flight publishes and deletes. */
  drain(): Promise<void>;
}

/** Creates the relay over the outbox backlog and the JetStream publisher. */
export function createOutboxRelay(
  store: OutboxBacklog,
  publisher: OutboxPublisher,
  logger: RelayLogger,
): OutboxRelay & DirectPublisher {
  const inFlight = new Set<Promise<unknown>>();
  let toDelete: number[] = [];
  let flushTimer: NodeJS.Timeout | undefined;

  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  };

  const flushDeletes = async (): Promise<void> => {
    flushTimer = undefined;
    const seqs = toDelete;
    toDelete = [];
    if (seqs.length === 0) return;
    try {
      await store.deleteOutbox(seqs);
    } catch (err) {
      // Rows stay; the sweep re-publishes them and JetStream dedupes within its window.
      logger.warn({ err, rows: seqs.length }, "could not delete published outbox rows");
    }
  };

  const scheduleDelete = (seqs: readonly number[]): void => {
    toDelete.push(...seqs);
    if (toDelete.length >= 500) {
      if (flushTimer) clearTimeout(flushTimer);
      void track(flushDeletes());
    } else {
      flushTimer ??= setTimeout(() => void track(flushDeletes()), 10);
    }
  };

  const publishNow = async (rows: readonly OutboxRecord[]): Promise<boolean> => {
    if (rows.length === 0) return true;
    return track(
      (async () => {
        try {
          await publisher.publish(rows);
        } catch (err) {
          logger.warn({ err, rows: rows.length }, "outbox publish failed; the dispatcher sweep will retry");
          return false;
        }
        scheduleDelete(rows.map((r) => r.seq));
        return true;
      })(),
    );
  };

  const publishDirect = async (rows: readonly NewOutboxRecord[]): Promise<boolean> => {
    if (rows.length === 0) return true;
    return track(
      publisher.publish(rows).then(
        () => true,
        (err: unknown) => {
          logger.warn({ err, rows: rows.length }, "publish failed; the dispatcher's publish check will retry");
          return false;
        },
      ),
    );
  };

  return {
    publishNow,
    publishDirect,
    async sweep(minAgeMs, limit = 500) {
      const rows = await store.pendingOutbox(new Date(Date.now() - minAgeMs), limit);
      if (rows.length === 0) return 0;
      await publisher.publish(rows);
      await store.deleteOutbox(rows.map((r) => r.seq));
      return rows.length;
    },
    async drain() {
      while (inFlight.size > 0 || toDelete.length > 0) {
        if (flushTimer) {
          clearTimeout(flushTimer);
          flushTimer = undefined;
          void track(flushDeletes());
        }
        await Promise.allSettled([...inFlight]);
      }
    },
  };
}
