/** Publishes committed outbox rows to JetStream, deduplicated by their Nats-Msg-Id. */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { DomainError } from "../domain/errors.ts";
import type { OutboxPublisher } from "../domain/ports.ts";
import type { StreamNames } from "./streams.ts";

/** Options of createOutboxPublisher. */
export interface OutboxPublisherOptions {
  /** How long one publish() call waits for all its PubAcks; default 5 s (the JetStream client's). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5_000;

/** One publish() call waiting for its PubAcks. */
interface Batch {
  readonly rows: number;
  /** The JetStream stream each row must be stored in, in row order. */
  readonly streams: readonly string[];
  /** Tokens [first, first + rows) are this batch's reply subjects. */
  readonly first: number;
  acked: number;
  timer: NodeJS.Timeout | undefined;
  resolve(): void;
  reject(err: DomainError): void;
}

/** What a PubAck says: `{stream, seq, duplicate?}` or `{error: {code, err_code?, description}}`. */
interface PubAckJson {
  stream?: string;
  seq?: number;
  error?: { code?: number; err_code?: number; description?: string };
}

/**
 * The OutboxPublisher port on JetStream: each row goes to the subject it names within the stream
 * it names ("<PREFIX>.<stream>.<subject>"), with its msgId as Nats-Msg-Id so a re-publish after a
 * crash is dropped by the stream. Rows are sent pipelined (in order on the one connection) and the
 * call resolves only when every PubAck is in; any failure is DomainError("unavailable",
 * "QUEUE_UNAVAILABLE") and the caller keeps the rows for the next sweep.
 *
 * Rather than one JetStream request per row (each allocating error objects for async stack
 * traces and a timer), rows are core publishes whose reply subject is a token under one
 * long-lived wildcard inbox subscription, the PubAcks are matched here, and each call has one
 * timer. A PubAck counts only if it names the row's stream; an error PubAck, a no-responders
 * status (no stream covers the subject), the timeout, a disconnect or a closed connection fail
 * the whole call. Replies that arrive after their call failed are dropped.
 */
export function createOutboxPublisher(
  nc: NatsConnection,
  names: StreamNames,
  opts: OutboxPublisherOptions = {},
): OutboxPublisher {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  /** Reply token → the batch waiting for it. */
  const waiting = new Map<number, Batch>();
  let nextToken = 0;
  let inbox = "";
  let sub: Subscription | undefined;
  /** False from a disconnect until the reconnect: a publish then would only time out. */
  let connected = true;
  let watching = false;

  const settle = (batch: Batch): void => {
    if (batch.timer !== undefined) clearTimeout(batch.timer);
    batch.timer = undefined;
    for (let t = batch.first; t < batch.first + batch.rows; t++) waiting.delete(t);
  };

  const fail = (batch: Batch, detail: string, cause?: unknown): void => {
    settle(batch);
    const message = `publishing ${batch.rows} outbox rows failed (${batch.acked} acknowledged): ${detail}`;
    batch.reject(new DomainError("unavailable", "QUEUE_UNAVAILABLE", message, { cause: cause ?? new Error(detail) }));
  };

  const failAll = (detail: string): void => {
    const batches = new Set(waiting.values());
    for (const batch of batches) fail(batch, detail);
  };

  const onReply = (err: Error | null, msg: Msg): void => {
    if (err !== null) {
      // The subscription itself failed (e.g. a permissions violation): nothing waiting can finish.
      failAll(`PubAck subscription failed: ${err.message}`);
      return;
    }
    const token = Number(msg.subject.slice(inbox.length));
    const batch = waiting.get(token);
    if (batch === undefined) return; // late, after its call failed: dropped
    waiting.delete(token);
    const problem = pubAckProblem(msg, batch.streams[token - batch.first]!);
    if (problem !== undefined) {
      fail(batch, `row ${token - batch.first + 1} of ${batch.rows}: ${problem}`);
      return;
    }
    batch.acked++;
    if (batch.acked === batch.rows) {
      settle(batch);
      batch.resolve();
    }
  };

  /** The wildcard inbox subscription, (re)created when missing; core subscriptions survive reconnects. */
  const ensureSubscription = (): void => {
    if (sub !== undefined && !sub.isClosed()) return;
    failAll("PubAck subscription closed");
    inbox = `${createInbox()}.`;
    const current = nc.subscribe(`${inbox}*`, { callback: onReply });
    sub = current;
    // Drained or closed with the connection: whatever still waits on it can never be acknowledged.
    void current.closed.then(() => {
      if (sub === current) failAll("PubAck subscription closed");
    });
    if (!watching) {
      watching = true;
      void watchConnection();
    }
  };

  /** Fails everything outstanding when the connection drops or closes (a PubAck would never come). */
  const watchConnection = async (): Promise<void> => {
    void nc.closed().then(() => {
      connected = false;
      failAll("NATS connection closed");
    });
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "staleConnection" || s.type === "forceReconnect") {
        connected = false;
        failAll(`NATS connection lost (${s.type})`);
      } else if (s.type === "close") {
        connected = false;
        failAll("NATS connection closed");
      } else if (s.type === "reconnect") {
        connected = true;
      }
    }
  };

  return {
    publish(rows) {
      if (rows.length === 0) return Promise.resolve();
      if (nc.isClosed()) return Promise.reject(unavailable(rows.length, "NATS connection closed"));
      if (!connected) return Promise.reject(unavailable(rows.length, "NATS connection lost; reconnecting"));
      try {
        ensureSubscription();
      } catch (cause) {
        return Promise.reject(unavailable(rows.length, `cannot subscribe for PubAcks: ${describe(cause)}`, cause));
      }
      return new Promise<void>((resolve, reject) => {
        const batch: Batch = {
          rows: rows.length,
          streams: rows.map((row) => names.stream(row.stream)),
          first: nextToken,
          acked: 0,
          timer: undefined,
          resolve,
          reject,
        };
        nextToken += rows.length;
        // Number.MAX_SAFE_INTEGER tokens is centuries of publishing at any rate; restart anyway.
        if (nextToken > Number.MAX_SAFE_INTEGER - 1e9) nextToken = 0;
        for (let i = 0; i < rows.length; i++) waiting.set(batch.first + i, batch);
        batch.timer = setTimeout(
          () => fail(batch, `no PubAck within ${timeoutMs} ms for ${batch.rows - batch.acked} rows`),
          timeoutMs,
        );
        // Every row goes out before any PubAck can be handled (replies arrive on later ticks), and
        // the client writes them to the socket in call order.
        let i = 0;
        try {
          for (; i < rows.length; i++) {
            const row = rows[i]!;
            const h = headers();
            h.set("Nats-Msg-Id", row.msgId);
            nc.publish(names.subject(row.stream, row.subject), row.payload, {
              headers: h,
              reply: `${inbox}${batch.first + i}`,
            });
          }
        } catch (cause) {
          fail(batch, `cannot publish row ${i + 1}: ${describe(cause)}`, cause);
        }
      });
    },
  };
}

/** Why a reply is not a PubAck from `stream`, or undefined when it is. */
function pubAckProblem(msg: Msg, stream: string): string | undefined {
  if (msg.data.length === 0) {
    // A status message: 503 means no stream (no responder) listens on the subject.
    const code = msg.headers?.code ?? 0;
    return code === 503
      ? "no responders: no stream covers the subject"
      : `empty reply with status ${code} ${msg.headers?.description ?? ""}`.trim();
  }
  let ack: PubAckJson;
  try {
    ack = JSON.parse(msg.string()) as PubAckJson;
  } catch {
    return "PubAck is not JSON";
  }
  if (ack.error !== undefined) {
    const { code, err_code: errCode, description } = ack.error;
    return `JetStream error ${code ?? "?"}${errCode === undefined ? "" : `/${errCode}`}: ${description ?? "no description"}`;
  }
  // Another stream answering would mean a misconfigured prefix or overlapping subjects.
  if (ack.stream !== stream) return `stored in unexpected stream ${ack.stream ?? "(none)"}, expected ${stream}`;
  if (typeof ack.seq !== "number") return "PubAck without a sequence";
  return undefined;
}

function unavailable(rows: number, detail: string, cause?: unknown): DomainError {
  return new DomainError("unavailable", "QUEUE_UNAVAILABLE", `publishing ${rows} outbox rows failed: ${detail}`, {
    cause: cause ?? new Error(detail),
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
