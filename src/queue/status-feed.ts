/** Reads one workspace's status events from the status stream, from a resume point, for Watch RPCs. */
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type MsgRequest,
  type NextMsgRequest,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { setTimeout as sleep } from "node:timers/promises";
import { DomainError } from "../domain/errors.ts";
import type { StatusFeed, StatusFeedItem } from "../domain/ports.ts";
import type { StreamNames } from "./streams.ts";

/** Events asked for per pull: the next pull waits until the reader has taken these. */
const BATCH = 256;
/** Expiry of one pull request; an idle reader re-pulls this often. */
const FETCH_EXPIRES_MS = 30_000;
/** Backoff between failed pulls (NATS restarting): 250ms doubling to 5s. */
const RETRY_MS = { first: 250, max: 5_000 };
/**
 * Events a live watcher may have waiting before it falls back to reading on its own: a slow
 * client then costs a consumer of its own for a while instead of unbounded memory.
 */
const MAX_QUEUED = 4_096;

/** A StatusFeed that can be stopped (its shared reader with it). */
export interface ClosableStatusFeed extends StatusFeed {
  /** Stops the shared reader; watches still open end. */
  close(): Promise<void>;
}

/**
 * The StatusFeed port on JetStream, built for thousands of watchers per process: one shared
 * reader per process (an ordered consumer over every workspace's status subject, started with
 * the first watch) fans each event out to the live watchers of its workspace, handing all of
 * them the same item object. A watch that resumes from a token older than where the shared
 * reader stands first catches up on an ordered consumer of its own, filtered on its workspace,
 * then joins the shared reader without a gap or a repeat (it skips what it already yielded). A
 * watcher whose client reads slower than events arrive falls back to catching up the same way
 * once MAX_QUEUED events wait for it. Any API server can serve any watcher, and a reconnect
 * resumes exactly after the last event it saw.
 */
export function createStatusFeed(nc: NatsConnection, names: StreamNames): ClosableStatusFeed {
  const js = jetstream(nc);
  let manager: Promise<JetStreamManager> | undefined;
  const jsm = (): Promise<JetStreamManager> => {
    manager ??= jetstreamManager(nc).catch((err: unknown) => {
      manager = undefined;
      throw err;
    });
    return manager;
  };
  const subjectPrefix = `${names.prefix}.status.`;
  const closed = new AbortController();
  /** Fetches in flight, and how many reconnects the connection has made (see `read`). */
  const fetches = new Set<ConsumerMessages>();
  let reconnects = 0;
  let watchingConnection = false;

  interface Watcher {
    readonly queue: StatusFeedItem[];
    wake: (() => void) | undefined;
    overflowed: boolean;
  }
  const live = new Map<string, Set<Watcher>>();
  /** The shared reader: started with the first watch; `position` is the last seq it handed out. */
  let reader: Promise<{ position: number }> | undefined;

  const startReader = (): Promise<{ position: number }> => {
    reader ??= (async () => {
      let lastSeq: number;
      try {
        lastSeq = (await (await jsm()).streams.info(names.status)).state.last_seq;
      } catch (cause) {
        reader = undefined;
        throw unavailable(cause);
      }
      const state = { position: lastSeq };
      void (async () => {
        let failures = 0;
        while (!closed.signal.aborted) {
          try {
            for await (const m of read(`${subjectPrefix}>`, state.position + 1, closed.signal)) {
              failures = 0;
              state.position = m.seq;
              const watchers = live.get(m.subject.slice(subjectPrefix.length));
              if (watchers === undefined) continue;
              const item: StatusFeedItem = { seq: m.seq, payload: m.data };
              for (const w of watchers) {
                if (w.queue.length >= MAX_QUEUED) w.overflowed = true;
                else w.queue.push(item);
                w.wake?.();
              }
            }
          } catch {
            failures++;
            await sleep(Math.min(RETRY_MS.first * 2 ** (failures - 1), RETRY_MS.max), undefined, {
              signal: closed.signal,
            }).catch(() => undefined);
          }
        }
      })();
      return state;
    })();
    return reader;
  };

  return {
    watch(workspaceId, afterSeq, signal) {
      return watchWorkspace(workspaceId, afterSeq, AbortSignal.any([signal, closed.signal]));
    },
    async close() {
      closed.abort();
      await Promise.resolve();
    },
  };

  async function* watchWorkspace(
    workspaceId: string,
    afterSeq: number | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<StatusFeedItem> {
    if (signal.aborted) return;
    const shared = await startReader();
    if (afterSeq !== undefined) {
      let info;
      try {
        info = (await (await jsm()).streams.info(names.status)).state;
      } catch (cause) {
        throw unavailable(cause);
      }
      checkResumePoint(afterSeq, info.first_seq, info.last_seq);
    }
    const subject = names.statusSubject(workspaceId);
    const watcher: Watcher = { queue: [], wake: undefined, overflowed: false };
    let joinedAt = 0;
    // Joins the shared reader: from here on every event past `joinedAt` is queued.
    const join = (): void => {
      watcher.queue.length = 0;
      watcher.overflowed = false;
      joinedAt = shared.position;
      let set = live.get(workspaceId);
      if (set === undefined) live.set(workspaceId, (set = new Set()));
      set.add(watcher);
    };
    const leave = (): void => {
      const set = live.get(workspaceId);
      set?.delete(watcher);
      if (set?.size === 0) live.delete(workspaceId);
    };
    const onAbort = (): void => watcher.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    join();
    let yielded = afterSeq ?? joinedAt;
    try {
      yield { seq: yielded, payload: undefined };
      while (!signal.aborted) {
        // Catch up on a consumer of our own up to where the shared reader stood when we joined.
        if (yielded < joinedAt && (await hasEventBetween(subject, yielded, joinedAt))) {
          for await (const m of read(subject, yielded + 1, signal)) {
            if (m.seq > yielded) {
              yielded = m.seq;
              yield { seq: m.seq, payload: m.data };
            }
            if (m.seq >= joinedAt || m.pending === 0) break;
          }
        }
        // Live: what the shared reader queued, minus what the catch-up already yielded.
        while (!signal.aborted && !watcher.overflowed) {
          const item = watcher.queue.shift();
          if (item === undefined) {
            await new Promise<void>((resolve) => (watcher.wake = resolve));
            watcher.wake = undefined;
            continue;
          }
          if (item.seq <= yielded) continue;
          yielded = item.seq;
          yield item;
        }
        // Too slow for the shared reader: rejoin, and catch up from what we yielded.
        leave();
        join();
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      leave();
    }
  }

  /** Whether the stream holds an event of `subject` after `afterSeq` and at most `upTo`. */
  async function hasEventBetween(subject: string, afterSeq: number, upTo: number): Promise<boolean> {
    try {
      // STREAM.MSG.GET takes next_by_subj (nats-server 2.9 too); the client types it for direct gets only.
      const query: NextMsgRequest = { seq: afterSeq + 1, next_by_subj: subject };
      const next = await (await jsm()).streams.getMessage(names.status, query as unknown as MsgRequest);
      return next !== null && next.seq <= upTo;
    } catch (cause) {
      throw unavailable(cause);
    }
  }

  /**
   * The stream's events on `filter` from `startSeq` on, until `signal` aborts: an ordered
   * consumer read in fetch batches taken one after another, so a slow reader holds at most one
   * batch in memory. `pending` is how many more events matched when this one was delivered.
   */
  async function* read(
    filter: string,
    startSeq: number,
    signal: AbortSignal,
  ): AsyncGenerator<{ seq: number; subject: string; data: Uint8Array; pending: number }> {
    if (signal.aborted) return;
    watchConnection();
    // Our own cursor, not the client's: after a NATS restart the ordered consumer is gone with
    // the server's memory, and the client's own recovery may back off for a whole pull expiry
    // (30 s) when its first look after the reconnect fails, so every read recreates its
    // consumer here, right after the last event it yielded.
    let next = startSeq;
    let consumer: Consumer | undefined;
    let current: ConsumerMessages | undefined;
    const onAbort = (): void => {
      current?.close().catch(() => undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const drop = (): void => {
      // Ordered consumers also expire on the server after 5 minutes without a pull; deleting
      // now frees the slot at once.
      void consumer?.delete().catch(() => false);
      consumer = undefined;
    };
    try {
      let failures = 0;
      while (!signal.aborted) {
        const epoch = reconnects;
        try {
          // A start sequence rather than DeliverPolicy.New even for "from now": an ordered
          // consumer that is recreated before its first event restarts from its start
          // sequence, and with New that would be 1, replaying the whole history.
          consumer ??= await js.consumers
            .get(names.status, {
              filter_subjects: filter,
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: next,
            })
            .catch((cause: unknown) => {
              // Only the first one fails the read: later ones are a NATS outage to wait out.
              if (next === startSeq && failures === 0) throw unavailable(cause);
              throw cause;
            });
          current = await consumer.fetch({ max_messages: BATCH, expires: FETCH_EXPIRES_MS });
          fetches.add(current);
          if (signal.aborted) break;
          for await (const m of current) {
            next = m.seq + 1;
            yield { seq: m.seq, subject: m.subject, data: m.data, pending: m.info.pending };
            if (signal.aborted) break;
          }
          fetches.delete(current);
          if (reconnects !== epoch) drop();
          failures = 0;
        } catch (err) {
          if (current !== undefined) fetches.delete(current);
          if (signal.aborted) break;
          if (err instanceof DomainError) throw err;
          drop();
          failures++;
          await sleep(Math.min(RETRY_MS.first * 2 ** (failures - 1), RETRY_MS.max), undefined, { signal }).catch(
            () => undefined,
          );
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (current !== undefined) fetches.delete(current);
      await current?.close();
      drop();
    }
  }

  /** Once per feed: on a reconnect, ends every fetch in flight so its read starts over at its cursor. */
  function watchConnection(): void {
    if (watchingConnection) return;
    watchingConnection = true;
    const statuses = nc.status();
    closed.signal.addEventListener("abort", () => (statuses as { stop?: () => void }).stop?.(), { once: true });
    void (async () => {
      for await (const s of statuses) {
        if (closed.signal.aborted) break;
        if (s.type !== "reconnect") continue;
        reconnects++;
        for (const f of fetches) f.close().catch(() => undefined);
      }
    })().catch(() => undefined);
  }
}

/** Validates a resume point against the stream's range. */
function checkResumePoint(afterSeq: number, firstSeq: number, lastSeq: number): void {
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0 || afterSeq > lastSeq) {
    throw new DomainError(
      "invalid_argument",
      "RESUME_TOKEN_INVALID",
      "resume token points past the end of the status stream",
      {
        violations: [{ field: "resume_token", description: "does not name a position of this server's status stream" }],
      },
    );
  }
  if (afterSeq + 1 < firstSeq) {
    throw new DomainError(
      "failed_precondition",
      "RESUME_TOKEN_EXPIRED",
      "resume token is older than the retained status events; list deliveries to resynchronise, then watch from now",
    );
  }
}

function unavailable(cause: unknown): DomainError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new DomainError("unavailable", "QUEUE_UNAVAILABLE", `status stream unavailable: ${detail}`, { cause });
}
