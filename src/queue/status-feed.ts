/** Reads one workspace's status events from the status stream, from a resume point, for Watch RPCs. */
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { setTimeout as sleep } from "node:timers/promises";
import { DomainError } from "../domain/errors.ts";
import type { StatusFeed, StatusFeedItem } from "../domain/ports.ts";
import type { StreamNames } from "./streams.ts";

/** Events asked for per pull: the next pull waits until the watcher has taken these. */
const BATCH = 256;
/** Expiry of one pull request; an idle watcher re-pulls this often. */
const FETCH_EXPIRES_MS = 30_000;
/** Backoff between failed pulls (NATS restarting): 250ms doubling to 5s. */
const RETRY_MS = { first: 250, max: 5_000 };

/**
 * The StatusFeed port on JetStream: each watcher gets its own ordered consumer filtered on
 * its workspace's subject, so any API server can serve any watcher and a reconnect resumes
 * exactly after the last event it saw. Pulls are fetch batches taken one after another, so a
 * slow watcher holds at most one batch in memory instead of letting the client buffer grow.
 *
 * Cost: one ephemeral, memory-stored consumer on the server per open watch (plus one stream
 * info per watch start). That is fine for hundreds to a few thousand watchers per NATS server;
 * beyond that a per-process fan-out (one tail of the whole stream shared by live watchers,
 * per-watcher consumers only for catch-up) would be the next step.
 */
export function createStatusFeed(nc: NatsConnection, names: StreamNames): StatusFeed {
  const js = jetstream(nc);
  let manager: Promise<JetStreamManager> | undefined;
  const jsm = (): Promise<JetStreamManager> => {
    manager ??= jetstreamManager(nc).catch((err: unknown) => {
      manager = undefined;
      throw err;
    });
    return manager;
  };

  return {
    watch(workspaceId, afterSeq, signal) {
      return watchWorkspace(workspaceId, afterSeq, signal);
    },
  };

  async function* watchWorkspace(
    workspaceId: string,
    afterSeq: number | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<StatusFeedItem> {
    if (signal.aborted) return;
    let info: StreamInfo;
    try {
      info = await (await jsm()).streams.info(names.status);
    } catch (cause) {
      throw unavailable(cause);
    }
    const startSeq = resumePoint(afterSeq, info.state.first_seq, info.state.last_seq);

    let consumer: Consumer;
    try {
      // A start sequence rather than DeliverPolicy.New even for "from now": an ordered consumer
      // that is recreated (NATS restart) before its first event restarts from its start
      // sequence, and with New that would be 1, replaying the workspace's whole history.
      consumer = await js.consumers.get(names.status, {
        filter_subjects: names.statusFilter(workspaceId),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
      });
    } catch (cause) {
      throw unavailable(cause);
    }

    // Everything before startSeq is behind this watch: the position mark the port promises.
    yield { seq: startSeq - 1, payload: undefined };

    let current: ConsumerMessages | undefined;
    const onAbort = (): void => {
      current?.close().catch(() => undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      let failures = 0;
      while (!signal.aborted) {
        try {
          current = await consumer.fetch({ max_messages: BATCH, expires: FETCH_EXPIRES_MS });
          if (signal.aborted) break;
          for await (const m of current) {
            yield { seq: m.seq, payload: m.data };
            if (signal.aborted) break;
          }
          failures = 0;
        } catch {
          if (signal.aborted) break;
          // The ordered consumer re-creates itself at its cursor on the next fetch.
          failures++;
          await sleep(Math.min(RETRY_MS.first * 2 ** (failures - 1), RETRY_MS.max), undefined, { signal }).catch(
            () => undefined,
          );
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      await current?.close();
      // Ordered consumers also expire on the server after 5 minutes without a pull; deleting
      // now frees the slot at once.
      await consumer.delete().catch(() => false);
    }
  }
}

/** Validates a resume point against the stream's range and returns the first seq to read. */
function resumePoint(afterSeq: number | undefined, firstSeq: number, lastSeq: number): number {
  if (afterSeq === undefined) return lastSeq + 1;
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
  return afterSeq + 1;
}

function unavailable(cause: unknown): DomainError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new DomainError("unavailable", "QUEUE_UNAVAILABLE", `status stream unavailable: ${detail}`, { cause });
}
