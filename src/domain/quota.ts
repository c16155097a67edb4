/**
 * The message quota of a workspace: at most `limit` accepted messages per fixed window
 * (HOOKSTREAM_QUOTA_WINDOW, aligned to the epoch, so a 1d window resets at 00:00 UTC).
 *
 * Cheap on the hot path: each API process counts in memory and adds its count to the shared row
 * of (workspace, window) every `flushIntervalMs` (one upsert per workspace and interval, never one
 * per send), learning the other processes' counts from the row it gets back (or reads, when it
 * had nothing to add). A send is checked
 * against what this process knows, so with N API servers a window can overshoot its limit by at
 * most what the other N − 1 accepted since their last flush; one server is exact.
 */
import { DomainError } from "./errors.ts";

/** The shared counters. */
export interface QuotaStore {
  /** Adds `count` to the usage of (workspace, window) and returns the new total. */
  addQuotaUsage(workspaceId: string, windowStart: Date, count: number): Promise<number>;
  /** The usage of (workspace, window); 0 when none. */
  getQuotaUsage(workspaceId: string, windowStart: Date): Promise<number>;
}

/** Where a workspace stands after a send. */
export interface QuotaState {
  /** 0: unlimited. */
  limit: number;
  used: number;
  remaining: number;
  resetAt: Date;
}

/** The quota settings. */
export interface QuotaOptions {
  /** Messages per window and workspace; 0 means unlimited (usage is still counted). */
  limit: number;
  /** Limits of particular workspaces, over `limit`. */
  limits?: ReadonlyMap<string, number> | undefined;
  windowMs: number;
  /** How often local counts are added to the shared rows. */
  flushIntervalMs: number;
}

interface Counter {
  windowStart: number;
  /** The shared total as last read or returned by an upsert. */
  shared: number;
  /** Accepted here and not yet added to the shared row. */
  pending: number;
  /** Taken out of `pending` by a flush whose upsert has not returned yet: still counted. */
  flushing: number;
  /** Set while the shared total is being read for the first time. */
  loading?: Promise<void> | undefined;
}

/** The per-process meter. */
export interface QuotaMeter {
  /** Throws resource_exhausted (QUOTA_EXCEEDED, with the delay until the reset) when `count` more would exceed the limit. */
  check(workspaceId: string, count: number, now: Date): Promise<void>;
  /** Counts `count` accepted messages and returns the state to report. */
  record(workspaceId: string, count: number, now: Date): QuotaState;
  /** Adds every pending count to the shared rows now. */
  flush(): Promise<void>;
  /** Starts the periodic flush. */
  start(): void;
  /** Stops it after a last flush. */
  stop(): Promise<void>;
}

/** Creates the meter of one API process. */
export function createQuotaMeter(store: QuotaStore, opts: QuotaOptions): QuotaMeter {
  const counters = new Map<string, Counter>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  const windowOf = (now: Date) => Math.floor(now.getTime() / opts.windowMs) * opts.windowMs;
  const limitOf = (workspaceId: string) => opts.limits?.get(workspaceId) ?? opts.limit;

  const counter = (workspaceId: string, now: Date): Counter => {
    const windowStart = windowOf(now);
    let c = counters.get(workspaceId);
    if (c === undefined || c.windowStart < windowStart) {
      // A new window starts from zero; the previous window's pending count is flushed apart.
      if (c !== undefined && c.pending > 0) void addLater(workspaceId, c.windowStart, c.pending);
      c = { windowStart, shared: 0, pending: 0, flushing: 0 };
      counters.set(workspaceId, c);
      c.loading = store.getQuotaUsage(workspaceId, new Date(windowStart)).then(
        (used) => {
          c!.shared = Math.max(c!.shared, used);
          c!.loading = undefined;
        },
        (err: unknown) => {
          // Retried on the next send; until then this process counts from what it knows.
          counters.delete(workspaceId);
          throw err;
        },
      );
      // record() does not wait for the first read; check() does and sees its failure.
      c.loading.catch(() => undefined);
    }
    return c;
  };

  const addLater = async (workspaceId: string, windowStart: number, count: number): Promise<void> => {
    try {
      await store.addQuotaUsage(workspaceId, new Date(windowStart), count);
    } catch {
      // The count of a finished window is lost when the database is down at its very end: the
      // quota then under-counts, never over-counts, and the window is over anyway.
    }
  };

  const flush = async (): Promise<void> => {
    for (const [workspaceId, c] of counters) {
      if (c.pending === 0) {
        // Nothing to add: learn what the other API servers added (a limited workspace only).
        if (limitOf(workspaceId) === 0 || c.loading !== undefined) continue;
        try {
          const total = await store.getQuotaUsage(workspaceId, new Date(c.windowStart));
          if (counters.get(workspaceId) === c) c.shared = Math.max(c.shared, total - c.pending - c.flushing);
        } catch {
          // Known again at the next flush.
        }
        continue;
      }
      const n = c.pending;
      c.pending -= n;
      c.flushing += n;
      try {
        const total = await store.addQuotaUsage(workspaceId, new Date(c.windowStart), n);
        if (counters.get(workspaceId) === c) c.shared = Math.max(c.shared + n, total);
      } catch {
        c.pending += n; // kept for the next flush
      } finally {
        c.flushing -= n;
      }
    }
  };

  /** One flush at a time, whether the timer or a caller asks. */
  const flushOnce = (): Promise<void> => (flushing ??= flush().finally(() => (flushing = undefined)));

  const state = (workspaceId: string, c: Counter): QuotaState => {
    const used = c.shared + c.flushing + c.pending;
    const limit = limitOf(workspaceId);
    return {
      limit,
      used,
      remaining: limit === 0 ? 0 : Math.max(0, limit - used),
      resetAt: new Date(c.windowStart + opts.windowMs),
    };
  };

  return {
    async check(workspaceId, count, now) {
      const c = counter(workspaceId, now);
      if (c.loading !== undefined) await c.loading;
      const limit = limitOf(workspaceId);
      if (limit === 0) return;
      if (c.shared + c.flushing + c.pending + count > limit) {
        const resetAt = c.windowStart + opts.windowMs;
        throw new DomainError(
          "resource_exhausted",
          "QUOTA_EXCEEDED",
          `the workspace's quota of ${limit} messages per window is used up (${c.shared + c.flushing + c.pending} sent); it resets at ${new Date(resetAt).toISOString()}`,
          { retryDelayMs: Math.max(0, resetAt - now.getTime()) },
        );
      }
    },
    record(workspaceId, count, now) {
      const c = counter(workspaceId, now);
      c.pending += count;
      return state(workspaceId, c);
    },
    flush: flushOnce,
    start() {
      if (timer !== undefined) return;
      timer = setInterval(() => void flushOnce(), opts.flushIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await flushOnce();
    },
  };
}
