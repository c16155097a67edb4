/**
 * Batching for the PostgreSQL overrides: concurrent calls share one statement (group commit for
 * writes, one `= ANY($1)` query for reads), so a busy process makes one round trip per batch of
 * calls, and an idle one adds no latency.
 */
import type { PgPool } from "./pg-table.ts";
import { isUnavailableError } from "../store-errors.ts";

/**
 * Coalesces concurrent reads: a call made while `maxInFlight` queries are already running waits
 * and goes out with every other such call in one `many` query. An idle store sends each call at
 * once (`one`); a busy caller sends one query per batch of calls instead of one per call.
 */
export function createCoalescingLoader<V>(
  pool: () => Promise<PgPool>,
  one: (pool: PgPool, key: string) => Promise<V | null>,
  many: (pool: PgPool, keys: readonly string[]) => Promise<Map<string, V>>,
  maxInFlight = 2,
  maxBatch = 256,
): (key: string) => Promise<V | null> {
  interface Waiter {
    key: string;
    resolve: (value: V | null) => void;
    reject: (error: unknown) => void;
  }
  let queue: Waiter[] = [];
  let inFlight = 0;
  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      void (async () => {
        try {
          const p = await pool();
          if (batch.length === 1) {
            const only = batch[0]!;
            only.resolve(await one(p, only.key));
          } else {
            const found = await many(p, [...new Set(batch.map((w) => w.key))]);
            for (const w of batch) w.resolve(found.get(w.key) ?? null);
          }
        } catch (error) {
          for (const w of batch) w.reject(error);
        } finally {
          inFlight--;
          pump();
        }
      })();
    }
  };
  return (key) =>
    new Promise<V | null>((resolve, reject) => {
      queue.push({ key, resolve, reject });
      pump();
    });
}

/**
 * Coalesces concurrent writes like createCoalescingLoader: a call made while `maxInFlight`
 * statements are running queues, and the queue goes out as one group statement (`many`) when one
 * finishes; a lone call goes at once as a group of one, so an idle store adds no latency. A group
 * whose statement fails (a statement is atomic: it wrote nothing) is re-run call by call, each as a
 * group of one, so a bad call fails alone; only an unreachable database fails the whole group at once.
 */
export function createGroupCommitter<I, O>(
  pool: () => Promise<PgPool>,
  many: (pool: PgPool, inputs: readonly I[]) => Promise<O[]>,
  maxInFlight = 2,
  maxBatch = 200,
): (input: I) => Promise<O> {
  interface Waiter {
    input: I;
    resolve: (out: O) => void;
    reject: (error: unknown) => void;
  }
  let queue: Waiter[] = [];
  let inFlight = 0;
  const alone = async (p: PgPool, w: Waiter): Promise<void> => {
    try {
      const [out] = await many(p, [w.input]);
      w.resolve(out!);
    } catch (error) {
      w.reject(error);
    }
  };
  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      void (async () => {
        try {
          const p = await pool();
          if (batch.length === 1) return await alone(p, batch[0]!);
          let outs: O[];
          try {
            outs = await many(
              p,
              batch.map((w) => w.input),
            );
          } catch (error) {
            if (isUnavailableError(error)) throw error;
            await Promise.all(batch.map((w) => alone(p, w)));
            return;
          }
          batch.forEach((w, i) => w.resolve(outs[i]!));
        } catch (error) {
          for (const w of batch) w.reject(error);
        } finally {
          inFlight--;
          pump();
        }
      })();
    }
  };
  return (input) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ input, resolve, reject });
      pump();
    });
}
