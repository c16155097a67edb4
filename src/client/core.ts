/**
 * What every SDK client shares: configuration (options, then environment variables), the
 * transport (connect-web's fetch transport by default, in Node and browsers alike, or the
 * caller's), the Authorization header, per-call timeouts, opt-in retries, listAll paging,
 * reconnecting watch streams, and close() / `await using`.
 */
import type { DescMessage, DescMethod, DescService, Message, MessageShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type CallOptions, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { parseDuration } from "./duration.ts";
import { HookstreamError, NetworkError, TimeoutError, toHookstreamError } from "./errors.ts";
import { toMessage, toPlain, type Input, type Plain } from "./plain.ts";

/** Client-side retries (off unless `retry` is set). */
export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  readonly maxAttempts?: number;
  /** The first backoff ceiling in milliseconds (default 250); doubles per attempt. */
  readonly baseDelay?: number;
  /** The largest backoff ceiling in milliseconds (default 10 s). */
  readonly maxDelay?: number;
}

/** Options every client takes; unset ones come from the environment, then the defaults. */
export interface CommonOptions {
  /** The API's base URL (`HOOKSTREAM_URL`, default http://127.0.0.1:8080). */
  readonly baseUrl?: string;
  /** A custom fetch for the default transport (proxies, test doubles of the network, …). */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * A transport of your own, e.g. connect-node's `createConnectTransport({ httpVersion: "2" })`
   * or `createGrpcTransport`; the SDK still adds the Authorization header on every call.
   */
  readonly transport?: Transport;
  /** Per-call timeout: milliseconds or `"30s"` (`HOOKSTREAM_TIMEOUT`, default 30 s; 0 = none). Not for watch streams. */
  readonly timeout?: number | string;
  /** Retries of failed calls: `true` for the defaults (`HOOKSTREAM_MAX_RETRIES=n` sets maxAttempts n+1). */
  readonly retry?: boolean | RetryOptions;
  /** Extra headers on every call. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Protobuf binary instead of Connect JSON on the default transport (payloads stay exact either way). */
  readonly useBinaryFormat?: boolean;
}

/** Per-call options. */
export interface CallOpts {
  readonly signal?: AbortSignal;
  /** Overrides the client's timeout for this call. */
  readonly timeout?: number | string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A page of a list. */
export interface Page<T> {
  readonly items: T[];
  /** Pass as `pageToken` for the next page; "" on the last page. */
  readonly nextPageToken: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** `process.env` where there is one (Node, Deno, Bun), else nothing (browsers). */
export function environment(): Env {
  const p = (globalThis as { process?: { env?: Env } }).process;
  return p?.env ?? {};
}

const DEFAULT_URL = "http://127.0.0.1:8080";
const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/** A generated method descriptor (`EndpointService.method.createEndpoint`). */
export type AnyMethod = DescMethod & { readonly input: DescMessage; readonly output: DescMessage };
type ItemOf<T> = T extends readonly (infer U)[] ? U : never;

type RawCall = (req: unknown, options?: CallOptions) => Promise<Message> | AsyncIterable<Message>;

/** The base of the producer, management and operator clients. */
export abstract class BaseClient {
  /** The base URL the client calls. */
  readonly baseUrl: string;
  readonly #token: string;
  readonly #transport: Transport;
  readonly #timeoutMs: number;
  readonly #retry: Required<RetryOptions> | undefined;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #closing = new AbortController();
  readonly #clients = new Map<DescService, Record<string, RawCall>>();

  protected constructor(options: CommonOptions, token: string | undefined, tokenName: string) {
    const env = environment();
    this.baseUrl = (options.baseUrl ?? env["HOOKSTREAM_URL"] ?? DEFAULT_URL).replace(/\/+$/, "");
    if (token === undefined || token === "") {
      throw new HookstreamError({
        code: 16,
        reason: "MISSING_CREDENTIALS",
        message: `no credential: pass it in the options or set ${tokenName}`,
      });
    }
    this.#token = token;
    const timeout = options.timeout ?? env["HOOKSTREAM_TIMEOUT"] ?? 30_000;
    this.#timeoutMs =
      typeof timeout === "string"
        ? /^\d+$/.test(timeout)
          ? Number(timeout)
          : parseDuration(timeout, "timeout")
        : timeout;
    const envRetries = env["HOOKSTREAM_MAX_RETRIES"];
    const retry =
      options.retry ??
      (envRetries !== undefined && /^\d+$/.test(envRetries) && envRetries !== "0"
        ? { maxAttempts: Number(envRetries) + 1 }
        : false);
    this.#retry =
      retry === false
        ? undefined
        : {
            maxAttempts: (retry === true ? undefined : retry.maxAttempts) ?? 4,
            baseDelay: (retry === true ? undefined : retry.baseDelay) ?? 250,
            maxDelay: (retry === true ? undefined : retry.maxDelay) ?? 10_000,
          };
    this.#headers = options.headers ?? {};
    this.#transport =
      options.transport ??
      createConnectTransport({
        baseUrl: this.baseUrl,
        useBinaryFormat: options.useBinaryFormat ?? false,
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      });
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** Cancels every call and watch stream in flight; later calls fail with `CLIENT_CLOSED`. */
  async close(): Promise<void> {
    this.#closing.abort();
  }

  /** `await using client = new Hookstream()` closes it at the end of the block. */
  async [asyncDispose](): Promise<void> {
    await this.close();
  }

  #raw(method: DescMethod): RawCall {
    let c = this.#clients.get(method.parent);
    if (c === undefined) {
      c = createClient(method.parent, this.#transport);
      this.#clients.set(method.parent, c);
    }
    const fn = c[method.localName];
    if (fn === undefined) throw new Error(`no method ${method.name} on ${method.parent.typeName}`);
    return fn;
  }

  #callOptions(opts: CallOpts | undefined, signal: AbortSignal, unary: boolean): CallOptions {
    const timeout = opts?.timeout ?? this.#timeoutMs;
    const timeoutMs = typeof timeout === "string" ? parseDuration(timeout, "timeout") : timeout;
    return {
      signal,
      ...(unary && timeoutMs > 0 ? { timeoutMs } : {}),
      headers: { ...this.#headers, ...opts?.headers, authorization: `Bearer ${this.#token}` },
    };
  }

  #checkOpen(procedure: string): void {
    if (this.closed) {
      throw new HookstreamError({ code: 1, reason: "CLIENT_CLOSED", message: "the client is closed", procedure });
    }
  }

  /** Calls a unary RPC with a plain input; returns the plain response. */
  protected async unary<M extends AnyMethod>(
    method: M,
    input: Input<MessageShape<M["input"]>>,
    opts?: CallOpts,
  ): Promise<Plain<MessageShape<M["output"]>>> {
    const procedure = `${method.parent.typeName}/${method.name}`;
    this.#checkOpen(procedure);
    const request = toMessage(method.input, input) as Message & Record<string, unknown>;
    const keyField = method.input.fields.find((f) => f.localName === "idempotencyKey");
    if (this.#retry !== undefined && keyField !== undefined && request["idempotencyKey"] === "") {
      request["idempotencyKey"] = `sdk_${crypto.randomUUID()}`;
    }
    // A batch (SendBatch): every item carries its own key, generated when absent.
    const items = method.input.fields.find((f) => f.localName === "items" && f.fieldKind === "list");
    const keyedItems =
      items?.fieldKind === "list" &&
      items.listKind === "message" &&
      items.message.fields.some((f) => f.localName === "idempotencyKey");
    if (this.#retry !== undefined && keyedItems) {
      for (const item of request["items"] as Array<Record<string, unknown>>) {
        if (item["idempotencyKey"] === "") item["idempotencyKey"] = `sdk_${crypto.randomUUID()}`;
      }
    }
    // A retry must never act twice: only reads and calls carrying an idempotency key (on the
    // request or on every item of a batch) are retried after an ambiguous failure (no answer);
    // a rate limit is retried always (nothing was done).
    const safe =
      method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      keyField !== undefined ||
      (this.#retry !== undefined && keyedItems);
    const signal = anySignal(this.#closing.signal, opts?.signal);
    const call = this.#raw(method);
    for (let attempt = 1; ; attempt++) {
      let err: HookstreamError;
      try {
        const res = (await call(request, this.#callOptions(opts, signal, true))) as Message;
        return toPlain(method.output, res) as never;
      } catch (e) {
        err = toHookstreamError(e, procedure);
      }
      if (this.#retry === undefined || attempt >= this.#retry.maxAttempts || signal.aborted) throw err;
      if (!retryable(err, safe)) throw err;
      await sleep(backoff(this.#retry, attempt, err.retryAfter), signal).catch(() => {
        throw err;
      });
    }
  }

  /** Every item of a paged list, fetching pages as the loop goes. */
  protected async *pages<M extends AnyMethod, K extends keyof Plain<MessageShape<M["output"]>>>(
    method: M,
    input: Input<MessageShape<M["input"]>>,
    itemsField: K,
    opts?: CallOpts,
  ): AsyncGenerator<ItemOf<Plain<MessageShape<M["output"]>>[K]>, void, undefined> {
    let pageToken = "";
    for (;;) {
      const res = (await this.unary(method, { ...(input as object), pageToken } as never, opts)) as Record<
        PropertyKey,
        unknown
      >;
      for (const item of res[itemsField] as Array<ItemOf<Plain<MessageShape<M["output"]>>[K]>>) yield item;
      pageToken = res["nextPageToken"] as string;
      if (pageToken === "" || pageToken === undefined) return;
    }
  }

  /**
   * A server stream that reconnects by itself: after the server ends it or a retryable failure
   * (restart, network), it calls again with the last `resumeToken` it saw (when the request has
   * one), so nothing is missed. `isDone(item)` ends the iteration (e.g. a finished bulk operation).
   * Items without payload beyond the resume token (heartbeats) update the token and are skipped.
   * With `endsWithServer`, a stream the server ends normally ends the iteration (WatchMessage
   * ends once its message is final); failures still reconnect.
   */
  protected async *stream<M extends AnyMethod, T = Plain<MessageShape<M["output"]>>>(
    method: M,
    input: Input<MessageShape<M["input"]>> & { resumeToken?: string | undefined },
    opts: CallOpts & {
      isDone?: (item: T) => boolean;
      isHeartbeat?: (item: T) => boolean;
      endsWithServer?: boolean;
    } = {},
  ): AsyncGenerator<T, void, undefined> {
    const procedure = `${method.parent.typeName}/${method.name}`;
    this.#checkOpen(procedure);
    const hasToken = method.input.fields.some((f) => f.localName === "resumeToken");
    let resumeToken = input.resumeToken ?? "";
    const signal = anySignal(this.#closing.signal, opts.signal);
    const policy = this.#retry ?? { maxAttempts: Infinity, baseDelay: 250, maxDelay: 5_000 };
    let failures = 0;
    for (;;) {
      const request = toMessage(method.input, hasToken ? { ...(input as object), resumeToken } : input);
      try {
        const items = this.#raw(method)(request, this.#callOptions(opts, signal, false)) as AsyncIterable<Message>;
        for await (const raw of items) {
          failures = 0;
          const item = toPlain(method.output, raw) as T & { resumeToken?: string };
          if (typeof item.resumeToken === "string" && item.resumeToken !== "") resumeToken = item.resumeToken;
          if (opts.isHeartbeat?.(item) === true) continue;
          yield item as Awaited<T>;
          if (opts.isDone?.(item) === true) return;
        }
        if (opts.endsWithServer === true) return;
      } catch (e) {
        if (signal.aborted) return;
        const err = toHookstreamError(e, procedure);
        if (!(
          err.isRetryable() ||
          err instanceof NetworkError ||
          err.code === Code.Unknown ||
          err.code === Code.Internal
        ))
          throw err;
      }
      if (signal.aborted) return;
      failures++;
      try {
        await sleep(backoff(policy, failures, undefined), signal);
      } catch {
        return;
      }
    }
  }
}

function retryable(err: HookstreamError, safe: boolean): boolean {
  if (err.isRateLimited()) return true;
  if (err instanceof NetworkError || err instanceof TimeoutError) return safe;
  return safe && err.isRetryable();
}

/** Full jitter: uniform in [0, min(maxDelay, baseDelay·2^(attempt-1))], never below Retry-After. */
export function backoff(policy: Required<RetryOptions>, attempt: number, retryAfter: number | undefined): number {
  const ceiling = Math.min(policy.maxDelay, policy.baseDelay * 2 ** (attempt - 1));
  return Math.max(Math.random() * ceiling, retryAfter ?? 0);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b === undefined ? a : AbortSignal.any([a, b]);
}

/** The plain input type of an RPC's request message. */
export type RequestOf<T> = Input<T>;
