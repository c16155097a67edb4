/**
 * The generic, typed queue consumer: a durable pull consumer of one job kind (a message type of
 * hookstream.internal.v1 that declares its stream) that decodes each job with the kind's schema,
 * runs at most `concurrency` handlers at once and turns each handler's verdict into ack / nak /
 * term. Every job kind runs on it; the delivery worker is one handler.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { DomainError } from "../domain/errors.ts";
import { queueOf } from "../domain/queue-kinds.ts";
import type { StreamNames } from "./streams.ts";

/** What to do with a job once its handler returns. */
export type JobVerdict = { kind: "ack" } | { kind: "nak"; delayMs: number } | { kind: "term"; reason: string };

/** What a handler learns about the job besides its payload. */
export interface JobInfo {
  /** 1 on the first delivery; grows with every redelivery (nak, ack-wait expiry). */
  deliveryCount: number;
  /** Aborted when the consumer stops and the grace period is over: the job was handed back. */
  signal: AbortSignal;
}

/** Handles one job and says what to do with it; a throw means "nak with backoff". */
export type JobHandler<S extends DescMessage> = (job: MessageShape<S>, info: JobInfo) => Promise<JobVerdict>;

/** Options of createJobConsumer. */
export interface JobConsumerOptions<S extends DescMessage> {
  nc: NatsConnection;
  names: StreamNames;
  /** The job kind: its schema decodes each job and its queue declaration names the stream. */
  schema: S;
  /** Durable consumer name, shared by every worker process of the installation. */
  durable: string;
  /**
   * Subjects within the kind's stream this consumer takes (">" for all, the default). Consumers
   * of one work-queue stream must have disjoint filters.
   */
  subjectFilter?: string;
  /** Why a decoded job cannot be handled (it is then terminated), or undefined when it can. */
  validate?: (job: MessageShape<S>) => string | undefined;
  /** Fields naming a job in log lines (e.g. its delivery id); none by default. */
  describe?: (job: MessageShape<S>) => Record<string, unknown>;
  /** Most handlers running at once in this process. */
  concurrency: number;
  /** How long a job may go without an ack or progress signal before it is redelivered. */
  ackWaitMs: number;
  logger: Logger;
  handle: JobHandler<S>;
}

/** A running job consumer. */
export interface JobConsumer {
  /** Creates or updates the durable consumer and starts pulling; throws DomainError("unavailable"). */
  start(): Promise<void>;
  /**
   * Stops pulling at once, lets running handlers finish for up to `graceMs`, then aborts the
   * rest and naks them without delay so another worker takes them immediately.
   */
  stop(graceMs: number): Promise<void>;
}

/** Expiry of one pull request; an idle worker re-pulls this often. */
const FETCH_EXPIRES_MS = 10_000;
/** Backoff of the pull loop after a failure (NATS down, consumer deleted): 250ms doubling to 5s. */
const LOOP_BACKOFF_MS = { first: 250, max: 5_000 };
/** Nak delay after a handler throws: 1s doubling per delivery up to 30s. */
const HANDLER_BACKOFF_MS = { first: 1_000, max: 30_000 };
/** How long stop() waits for aborted handlers to return before giving up on them. */
const ABORTED_HANDLER_WAIT_MS = 1_000;
/**
 * Server-side cap on unacked jobs across all workers sharing the durable. Each process already
 * bounds itself by `concurrency`, so this is only a ceiling against a runaway, kept high so it
 * never throttles a fleet.
 */
const MIN_MAX_ACK_PENDING = 20_000;

interface Running {
  readonly msg: JsMsg;
  readonly abort: AbortController;
  readonly heartbeat: NodeJS.Timeout;
  /** Set once the job was acked, naked or termed: nothing more is sent for it. */
  settled: boolean;
  done: Promise<void>;
}

/**
 * Consumes the jobs of one kind with bounded concurrency.
 *
 * Pulling is a loop of `fetch` requests, each asking for exactly the free slots: a job is only
 * ever pulled when a handler can start on it at once, so none sits in a local buffer ageing
 * towards ack_wait while another worker is idle (`consume()` refills by its own threshold and
 * would buffer past the limit). While a handler runs, a progress signal every ackWaitMs/3
 * keeps a slow endpoint from causing a redelivery; a killed process stops sending it, so its
 * jobs come back after ackWaitMs. A failed pull (NATS restart, missed heartbeats, consumer
 * deleted) re-creates the consumer and goes on; acks sent while disconnected are buffered by
 * the client and the consumer's state is on file storage, so nothing is lost.
 */
export function createJobConsumer<S extends DescMessage>(opts: JobConsumerOptions<S>): JobConsumer {
  const { nc, names, schema, durable, logger, handle } = opts;
  const stream = names.stream(queueOf(schema).stream);
  const filterSubject = names.filter(queueOf(schema).stream, opts.subjectFilter);
  const concurrency = Math.max(1, Math.floor(opts.concurrency));
  const ackWaitMs = opts.ackWaitMs;
  const js = jetstream(nc);
  const log = logger.child({ component: "job-consumer", durable, kind: schema.typeName });
  const running = new Set<Running>();
  const halt = new AbortController();
  let jsm: JetStreamManager | undefined;
  let loop: Promise<void> | undefined;
  let batch: ConsumerMessages | undefined;
  let stopped: Promise<void> | undefined;
  let wakeLoop: (() => void) | undefined;

  const wanted = (): Partial<ConsumerConfig> => ({
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: Math.max(concurrency, MIN_MAX_ACK_PENDING),
    max_deliver: -1,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filterSubject,
  });

  /** Creates the durable, or updates the settings this process depends on. */
  async function ensureConsumer(): Promise<Consumer> {
    jsm ??= await jetstreamManager(nc);
    let info: ConsumerInfo;
    try {
      info = await jsm.consumers.info(stream, durable);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
      // Two workers racing here both succeed: the server accepts an identical create.
      return js.consumers.getConsumerFromInfo(await jsm.consumers.add(stream, wanted()));
    }
    const c = info.config;
    const tooFewPending =
      c.max_ack_pending !== undefined && c.max_ack_pending !== -1 && c.max_ack_pending < concurrency;
    if (c.ack_wait !== nanos(ackWaitMs) || c.max_deliver !== -1 || tooFewPending) {
      const update = {
        ack_wait: nanos(ackWaitMs),
        max_deliver: -1,
        ...(tooFewPending ? { max_ack_pending: wanted().max_ack_pending } : {}),
      };
      info = await jsm.consumers.update(stream, durable, update);
      log.info({ update }, "job consumer updated");
    }
    return js.consumers.getConsumerFromInfo(info);
  }

  function wake(): void {
    const w = wakeLoop;
    wakeLoop = undefined;
    w?.();
  }

  async function pullLoop(first: Consumer): Promise<void> {
    let consumer: Consumer | undefined = first;
    let failures = 0;
    while (!halt.signal.aborted) {
      if (nc.isClosed()) {
        // Reconnects are unlimited, so this is a deliberate close: nothing left to pull from.
        log.warn("NATS connection closed; job consumer no longer pulls");
        return;
      }
      const room = concurrency - running.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => (wakeLoop = resolve));
        continue;
      }
      try {
        consumer ??= await ensureConsumer();
        const messages = await consumer.fetch({ max_messages: room, expires: FETCH_EXPIRES_MS });
        batch = messages;
        if (halt.signal.aborted) await messages.close();
        let received = 0;
        for await (const msg of messages) {
          received++;
          // After a reconnect the client re-issues the whole pull, so a batch can bring more
          // than it asked for; those, and anything arriving while stopping, go straight back.
          if (halt.signal.aborted || received > room) {
            hand(msg, () => msg.nak());
            continue;
          }
          dispatch(msg);
        }
        failures = 0;
      } catch (err) {
        if (halt.signal.aborted) break;
        failures++;
        // Re-check (and re-create) the consumer: it may have been deleted or lost.
        consumer = undefined;
        const delayMs = Math.min(LOOP_BACKOFF_MS.first * 2 ** (failures - 1), LOOP_BACKOFF_MS.max);
        log.warn({ err, failures, delayMs }, "pulling jobs failed; retrying");
        await sleep(delayMs, undefined, { signal: halt.signal }).catch(() => undefined);
      } finally {
        batch = undefined;
      }
    }
  }

  function dispatch(msg: JsMsg): void {
    let job: MessageShape<S>;
    try {
      job = fromBinary(schema, msg.data);
      const invalid = opts.validate?.(job);
      if (invalid !== undefined) throw new Error(invalid);
    } catch (err) {
      log.error({ err, streamSeq: msg.seq, subject: msg.subject }, "undecodable job; terminating it");
      hand(msg, () => msg.term());
      return;
    }
    const entry: Running = {
      msg,
      abort: new AbortController(),
      heartbeat: setInterval(
        () => {
          if (!entry.settled) hand(msg, () => msg.working());
        },
        Math.max(100, Math.floor(ackWaitMs / 3)),
      ),
      settled: false,
      done: Promise.resolve(),
    };
    running.add(entry);
    entry.done = runHandler(entry, job).finally(() => {
      clearInterval(entry.heartbeat);
      running.delete(entry);
      wake();
    });
  }

  async function runHandler(entry: Running, job: MessageShape<S>): Promise<void> {
    const deliveryCount = entry.msg.info.deliveryCount;
    let verdict: JobVerdict;
    try {
      verdict = await handle(job, { deliveryCount, signal: entry.abort.signal });
    } catch (err) {
      const delayMs = Math.min(HANDLER_BACKOFF_MS.first * 2 ** Math.max(0, deliveryCount - 1), HANDLER_BACKOFF_MS.max);
      if (!entry.settled) {
        log.error(
          { err, ...opts.describe?.(job), streamSeq: entry.msg.seq, deliveryCount, delayMs },
          "job handler threw; nak with backoff",
        );
      }
      verdict = { kind: "nak", delayMs };
    }
    settle(entry, verdict);
  }

  function settle(entry: Running, verdict: JobVerdict): void {
    // stop() may already have handed the job back: a late verdict must not ack it twice.
    if (entry.settled) return;
    entry.settled = true;
    const { msg } = entry;
    switch (verdict.kind) {
      case "ack":
        hand(msg, () => msg.ack());
        break;
      case "nak":
        hand(msg, () => msg.nak(Math.max(0, verdict.delayMs)));
        break;
      case "term":
        // The reason goes to our log, not the server: nats-server 2.9 ignores "+TERM <reason>".
        log.warn({ streamSeq: msg.seq, reason: verdict.reason }, "job terminated");
        hand(msg, () => msg.term());
        break;
    }
  }

  /** Sends an ack-family reply; a closed connection only means the job comes back later. */
  function hand(msg: JsMsg, send: () => void): void {
    try {
      send();
    } catch (err) {
      log.warn({ err, streamSeq: msg.seq }, "could not reply to a job; it will be redelivered after ack_wait");
    }
  }

  return {
    async start() {
      if (loop !== undefined || halt.signal.aborted) return;
      let consumer: Consumer;
      try {
        consumer = await ensureConsumer();
      } catch (cause) {
        const detail = cause instanceof Error ? cause.message : String(cause);
        throw new DomainError("unavailable", "QUEUE_UNAVAILABLE", `cannot create job consumer ${durable}: ${detail}`, {
          cause,
        });
      }
      log.info({ concurrency, ackWaitMs }, "job consumer started");
      loop = pullLoop(consumer).catch((err: unknown) => {
        log.error({ err }, "job pull loop crashed");
      });
    },

    stop(graceMs) {
      stopped ??= (async () => {
        halt.abort();
        wake();
        await batch?.close();
        await loop;
        const finished = Promise.allSettled([...running].map((r) => r.done));
        if (running.size > 0 && !(await within(finished, graceMs))) {
          const unfinished = [...running];
          for (const entry of unfinished) {
            entry.settled = true;
            clearInterval(entry.heartbeat);
            // Nak first so another worker starts on it while this handler winds down.
            hand(entry.msg, () => entry.msg.nak());
            entry.abort.abort(new Error("job consumer stopping"));
          }
          log.warn(
            { count: unfinished.length, graceMs },
            "handed unfinished jobs back after the shutdown grace period",
          );
          await within(Promise.allSettled(unfinished.map((r) => r.done)), ABORTED_HANDLER_WAIT_MS);
        }
        log.info("job consumer stopped");
      })();
      return stopped;
    },
  };
}

/** True when `p` settles within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new AbortController();
  const result = await Promise.race([
    p.then(() => true),
    sleep(Math.max(0, ms), false, { signal: timeout.signal }).catch(() => false),
  ]);
  timeout.abort();
  return result;
}
