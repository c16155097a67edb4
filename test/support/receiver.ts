/**
 * A local webhook receiver for tests and the benchmark: an HTTP server on 127.0.0.1 (port 0)
 * that records every request (headers, raw body bytes, arrival time) and answers with a status
 * the test chooses, so a test can see exactly what Hookstream sent and make endpoints fail.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the receiver saw it. */
export interface ReceivedRequest {
  /** Arrival order, from 0. */
  readonly seq: number;
  readonly method: string;
  readonly path: string;
  /** Header names in lower case; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** The raw body bytes, exactly as received. */
  readonly body: Buffer;
  /** Wall-clock arrival time in milliseconds since the epoch, sub-millisecond precision. */
  readonly receivedAt: number;
  /** The `webhook-id` header, or "" when absent. */
  readonly webhookId: string;
  /** The status the receiver answered with. */
  readonly status: number;
}

/** Decides the status of one request; undefined falls through to the next rule. */
export type StatusRule = (request: Omit<ReceivedRequest, "status">, countForId: number) => number | undefined;

/** Options of {@link startReceiver}. */
export interface ReceiverOptions {
  /** Status for requests no rule answers; 200 unless set. */
  readonly defaultStatus?: number;
  /** Wait this long before answering each request (keeps deliveries in flight). */
  readonly delayMs?: number;
  /** Keep request bodies and headers (true) or only ids and times (false, for benchmarks). */
  readonly keepBodies?: boolean;
}

/** A running receiver. */
export interface Receiver {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** Every request so far, in arrival order. */
  readonly requests: readonly ReceivedRequest[];
  /** Distinct `webhook-id` values seen so far. */
  distinctIds(): Set<string>;
  /** Requests carrying this `webhook-id`, in arrival order. */
  byId(webhookId: string): ReceivedRequest[];
  /** Answers `status` to the first `count` requests of every webhook-id that `match` accepts. */
  failFirst(count: number, status?: number, match?: (request: Omit<ReceivedRequest, "status">) => boolean): void;
  /** Adds a rule deciding statuses; rules are tried in the order they were added. */
  addRule(rule: StatusRule): void;
  /** Removes every rule. */
  clearRules(): void;
  /** Sets the per-request answer delay. */
  setDelay(ms: number): void;
  /** Called on every request after it is recorded (the benchmark measures latency here). */
  onRequest(listener: (request: ReceivedRequest) => void): void;
  /** Resolves once `predicate(requests)` is true; rejects after `timeoutMs` with `what` in the message. */
  waitFor(
    predicate: (requests: readonly ReceivedRequest[]) => boolean,
    timeoutMs: number,
    what?: string,
  ): Promise<void>;
  /** Closes the server and every open connection. */
  close(): Promise<void>;
}

interface Waiter {
  readonly predicate: (requests: readonly ReceivedRequest[]) => boolean;
  readonly resolve: () => void;
}

/** Starts a receiver on 127.0.0.1 with an ephemeral port. */
export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const perId = new Map<string, number>();
  const rules: StatusRule[] = [];
  const listeners: Array<(request: ReceivedRequest) => void> = [];
  const waiters = new Set<Waiter>();
  const keepBodies = options.keepBodies ?? true;
  const defaultStatus = options.defaultStatus ?? 200;
  let delayMs = options.delayMs ?? 0;

  const settleWaiters = (): void => {
    for (const waiter of waiters) {
      if (waiter.predicate(requests)) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const receivedAt = performance.timeOrigin + performance.now();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    const webhookId = headers["webhook-id"] ?? "";
    const countForId = (perId.get(webhookId) ?? 0) + 1;
    perId.set(webhookId, countForId);
    const seen = {
      seq: requests.length,
      method: req.method ?? "",
      path: req.url ?? "",
      headers: keepBodies ? headers : { "webhook-id": webhookId },
      body: keepBodies ? body : Buffer.alloc(0),
      receivedAt,
      webhookId,
    };
    let status = defaultStatus;
    for (const rule of rules) {
      const decided = rule(seen, countForId);
      if (decided !== undefined) {
        status = decided;
        break;
      }
    }
    const recorded: ReceivedRequest = { ...seen, status };
    requests.push(recorded);
    for (const listener of listeners) listener(recorded);
    settleWaiters();
    const answer = (): void => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status < 300 ? "ok" : "failing on purpose");
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
    req.on("error", () => res.destroy());
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    distinctIds: () => new Set(requests.map((r) => r.webhookId)),
    byId: (webhookId) => requests.filter((r) => r.webhookId === webhookId),
    failFirst(count, status = 500, match = () => true) {
      rules.push((request, countForId) => (match(request) && countForId <= count ? status : undefined));
    },
    addRule(rule) {
      rules.push(rule);
    },
    clearRules() {
      rules.length = 0;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    onRequest(listener) {
      listeners.push(listener);
    },
    waitFor(predicate, timeoutMs, what = "the expected requests") {
      if (predicate(requests)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          predicate,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `receiver: timed out after ${timeoutMs} ms waiting for ${what} ` +
                `(${requests.length} requests, ${perId.size} distinct webhook-ids so far)`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
