// The delivery hot path's HTTP client (PRODUCT.md §9): one POST per attempt through pooled
// keep-alive connections, with SSRF protection at the connection itself (resolve once, check
// every address, connect only to checked addresses), no redirects, a capped response body
// and one deadline over the whole exchange. Failures are classified, never thrown.
import { lookup as dnsLookup } from "node:dns";
import type { LookupAddress, LookupOptions } from "node:dns";
import { isIP, isIPv4 } from "node:net";
import type { LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { performance } from "node:perf_hooks";
import { Agent, buildConnector } from "undici";
import type { OutboundPolicy } from "./outbound-policy.ts";
import { createNoProxyMatcher, openTunnel, type ProxySettings } from "./outbound-proxy.ts";

/** Why an attempt failed; the retry policy decides on this (and the status) alone. */
export type SendErrorKind =
  "timeout" | "dns" | "connect" | "tls" | "refused_by_policy" | "http_status" | "response_too_large";

/** One signed delivery attempt, ready to POST. */
export interface OutboundRequest {
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  timeoutMs: number;
  /** mTLS: the client certificate to present (its connections are pooled apart from others'). */
  clientCertificate?: OutboundClientCertificate | undefined;
}

/** A client certificate and its decrypted key, for one endpoint. */
export interface OutboundClientCertificate {
  /** Identifies the certificate (endpoint id and fingerprint): one connection pool per id. */
  id: string;
  certificatePem: string;
  privateKeyPem: string;
}

/** What happened to one attempt, as recorded on the attempt row. */
export interface OutboundResult {
  /** HTTP status, or 0 when no response arrived. Kept on a body timeout, though `ok` is then false. */
  status: number;
  /** True only for a 2xx whose body was read within the deadline. */
  ok: boolean;
  /** Response headers, lower-case names, repeated values joined by ", ". */
  headers: Record<string, string>;
  /** The response body cut at maxResponseBytes, decoded as UTF-8 leniently. */
  body: string;
  latencyMs: number;
  /** Null on success. */
  errorKind: SendErrorKind | null;
  /** "" on success. */
  errorMessage: string;
  /** From Retry-After (delta-seconds or HTTP-date) when present and sane. */
  retryAfterMs: number | undefined;
}

/** Sends delivery attempts; send() never throws for network or HTTP problems. */
export interface HttpSender {
  /** POSTs `req` and reports the outcome. */
  send(req: OutboundRequest): Promise<OutboundResult>;
  /** Closes pooled connections once in-flight requests finish. */
  close(): Promise<void>;
}

/** Options for {@link createHttpSender}. */
export interface HttpSenderOptions {
  policy: OutboundPolicy;
  /** Default "Hookstream/0.1"; a `user-agent` in the request headers wins. */
  userAgent?: string;
  /** Default 4096. */
  maxResponseBytes?: number;
  /** Keep-alive connections kept per origin; default 64. */
  connectionsPerOrigin?: number;
  /** Milliseconds since the epoch, for Retry-After HTTP-dates; default Date.now. */
  now?: () => number;
  /** Name resolution; default dns.lookup. Injected by tests to fake DNS answers. */
  resolve?: Resolver;
  /** Route deliveries through this HTTP(S) CONNECT proxy (except the no-proxy list). */
  proxy?: ProxySettings | undefined;
  /** Extra trust anchors (PEM certificates) added to Node's bundled roots, for endpoints and an https proxy. */
  ca?: readonly string[] | undefined;
  /** Connection pools kept for distinct client certificates; default 256 (least recently used closed). */
  maxClientCertificatePools?: number;
}

/** Resolves a host name to every address it has, like dns.lookup with `all: true`. */
export type Resolver = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** The error a refused address raises inside the connector; classified as refused_by_policy. */
export class OutboundRefusedError extends Error {
  override readonly name = "OutboundRefusedError";
  readonly code = "ERR_HOOKSTREAM_OUTBOUND_REFUSED";
}

const DEFAULT_USER_AGENT = "Hookstream/0.1";
const DEFAULT_MAX_RESPONSE_BYTES = 4096;
const DEFAULT_CONNECTIONS_PER_ORIGIN = 64;
// A Retry-After beyond a week is treated as nonsense rather than obeyed.
const MAX_RETRY_AFTER_MS = 7 * 24 * 3600 * 1000;
// Headers the transport owns: a caller (endpoint custom headers) must not be able to set them.
const TRANSPORT_HEADERS = new Set([
  "host",
  "content-length",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "expect",
  "te",
  "trailer",
  "proxy-connection",
]);

const defaultResolver: Resolver = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, callback);
};

/**
 * A lookup for net/tls.connect that resolves once and refuses the connection unless every
 * address is allowed, so the socket can only reach addresses the policy saw.
 */
export function createGuardedLookup(policy: OutboundPolicy, resolve: Resolver = defaultResolver): LookupFunction {
  return (hostname, options, callback) => {
    const family = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : (options.family ?? 0);
    const query: LookupOptions = { family, all: true };
    if (options.hints !== undefined) query.hints = options.hints;
    resolve(hostname, query, (err, addresses) => {
      if (err !== null) {
        callback(err, "");
        return;
      }
      const first = addresses[0];
      if (first === undefined) {
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", hostname }), "");
        return;
      }
      // One refused address refuses the host: a name mixing public and private answers is
      // a rebinding trick, and the kernel could pick any of them.
      const refused = addresses.find((a) => !policy.isAllowed(a.address));
      if (refused !== undefined) {
        callback(new OutboundRefusedError(`${hostname} resolves to ${policy.describe(refused.address)}`), "");
        return;
      }
      if (options.all === true) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/** Creates the pooled, SSRF-guarded sender one worker process shares across deliveries. */
export function createHttpSender(opts: HttpSenderOptions): HttpSender {
  const { policy } = opts;
  const userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const now = opts.now ?? Date.now;
  if (!Number.isSafeInteger(maxResponseBytes) || maxResponseBytes < 0) {
    throw new RangeError(`maxResponseBytes must be a non-negative integer, got ${maxResponseBytes}`);
  }

  const guardedLookup = createGuardedLookup(policy, opts.resolve);
  const ca = opts.ca !== undefined && opts.ca.length > 0 ? [...rootCertificates, ...opts.ca] : undefined;
  const proxy = opts.proxy;
  const noProxy = createNoProxyMatcher(proxy?.noProxy ?? []);
  // The destination's checked addresses, before any proxy is asked (literal IPs were checked by checkTarget).
  const checkedAddresses = (hostname: string): Promise<string[]> => {
    const host = hostname.replace(/^\[|\]$/g, "");
    if (isIP(host) !== 0) {
      return policy.isAllowed(host)
        ? Promise.resolve([host])
        : Promise.reject(new OutboundRefusedError(policy.describe(host)));
    }
    return new Promise((resolve, reject) => {
      guardedLookup(host, { all: true }, (err, addresses) => {
        if (err !== null) reject(err);
        else resolve((addresses as unknown as LookupAddress[]).map((a) => a.address));
      });
    });
  };

  const createConnector = (tls: { cert?: string; key?: string }): buildConnector.connector => {
    const tlsOptions = { ...(ca === undefined ? {} : { ca }), ...tls };
    const baseConnect = buildConnector({ lookup: guardedLookup, ...tlsOptions });
    const overTunnel = buildConnector({ ...tlsOptions });
    // Belt and braces: whatever path produced a direct socket, its peer must pass the policy.
    const direct: buildConnector.connector = (options, callback) => {
      baseConnect(options, (err, socket) => {
        if (err !== null) {
          callback(err, null);
          return;
        }
        const peer = socket.remoteAddress;
        if (peer === undefined || !policy.isAllowed(peer)) {
          socket.destroy();
          callback(new OutboundRefusedError(`connected peer ${policy.describe(peer ?? "unknown")}`), null);
          return;
        }
        callback(null, socket);
      });
    };
    if (proxy === undefined) return direct;
    // Through the proxy: resolve and check first, then CONNECT to the checked address itself.
    return (options, callback) => {
      checkedAddresses(options.hostname).then(
        (addresses) => {
          if (noProxy.bypasses(options.hostname, addresses)) {
            direct(options, callback);
            return;
          }
          const port = Number(options.port) || (options.protocol === "https:" ? 443 : 80);
          openTunnel(proxy.url, addresses[0]!, port, { ca, timeoutMs: 10_000 }).then(
            (tunnel) => {
              if (options.protocol === "https:") overTunnel({ ...options, httpSocket: tunnel }, callback);
              else callback(null, tunnel);
            },
            (err: Error) => callback(err, null),
          );
        },
        (err: Error) => callback(err, null),
      );
    };
  };

  const agentOf = (tls: { cert?: string; key?: string }): Agent =>
    new Agent({
      connections: opts.connectionsPerOrigin ?? DEFAULT_CONNECTIONS_PER_ORIGIN,
      connect: createConnector(tls),
    });
  const agent = agentOf({});
  // mTLS: one pool per client certificate, so a connection (or TLS session) made with one
  // endpoint's certificate is never reused for another's.
  const certAgents = new Map<string, Agent>();
  const maxCertPools = opts.maxClientCertificatePools ?? 256;
  const agentFor = (cc: OutboundClientCertificate | undefined): Agent => {
    if (cc === undefined) return agent;
    const hit = certAgents.get(cc.id);
    if (hit !== undefined) {
      certAgents.delete(cc.id);
      certAgents.set(cc.id, hit);
      return hit;
    }
    const made = agentOf({ cert: cc.certificatePem, key: cc.privateKeyPem });
    certAgents.set(cc.id, made);
    if (certAgents.size > maxCertPools) {
      const [oldestId, oldest] = certAgents.entries().next().value!;
      certAgents.delete(oldestId);
      void oldest.close();
    }
    return made;
  };

  async function send(req: OutboundRequest): Promise<OutboundResult> {
    const started = performance.now();
    const result = (
      fields: Partial<OutboundResult> & Pick<OutboundResult, "errorKind" | "errorMessage">,
    ): OutboundResult => ({
      status: 0,
      ok: false,
      headers: {},
      body: "",
      retryAfterMs: undefined,
      ...fields,
      latencyMs: performance.now() - started,
    });

    const target = checkTarget(req.url, policy);
    if (typeof target === "string") return result({ errorKind: "refused_by_policy", errorMessage: target });

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no complete response within ${req.timeoutMs} ms`));
    }, req.timeoutMs);

    let status = 0;
    let headers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let received = 0;
    try {
      const res = await agentFor(req.clientCertificate).request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: "POST",
        headers: requestHeaders(req, userAgent),
        body: req.body,
        signal: controller.signal,
      });
      // undici follows no redirects unless a redirect interceptor is added: a 3xx is a failed attempt.
      status = res.statusCode;
      headers = flattenHeaders(res.headers);
      // Read through the limit; past it, destroying the body drops the connection so the
      // rest is never transferred, let alone buffered.
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = maxResponseBytes - received;
        if (chunk.length > room) {
          if (room > 0) chunks.push(chunk.subarray(0, room));
          received = maxResponseBytes;
          res.body.destroy();
          break;
        }
        chunks.push(chunk);
        received += chunk.length;
      }
    } catch (err) {
      const body = decode(chunks);
      if (timedOut) {
        return result({
          status,
          headers,
          body,
          errorKind: "timeout",
          errorMessage: `no complete response within ${req.timeoutMs} ms`,
        });
      }
      return result({ status, headers, body, ...classify(err) });
    } finally {
      clearTimeout(timer);
    }

    const ok = status >= 200 && status < 300;
    return result({
      status,
      ok,
      headers,
      body: decode(chunks),
      errorKind: ok ? null : "http_status",
      errorMessage: ok ? "" : `endpoint answered HTTP ${status}`,
      retryAfterMs: parseRetryAfter(headers["retry-after"], now()),
    });
  }

  return {
    send,
    close: async () => {
      await Promise.all([agent.close(), ...[...certAgents.values()].map((a) => a.close())]);
    },
  };
}

/**
 * Milliseconds to wait from a Retry-After value (delta-seconds or HTTP-date) at `nowMs`;
 * undefined when absent, malformed or beyond a week; 0 for a date already past.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) {
    ms = Number(v) * 1000;
  } else {
    // HTTP-dates name a weekday and a month; this rejects numbers and ISO strings Date.parse would take.
    if (!/^[A-Za-z]{3,9}, /.test(v) && !/^[A-Za-z]{3} [A-Za-z]{3} /.test(v)) return undefined;
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - nowMs);
  }
  return ms <= MAX_RETRY_AFTER_MS ? ms : undefined;
}

// Validates scheme and host before any socket exists; a literal IP never reaches the lookup,
// so it is checked here. The WHATWG parser has already turned forms like 2130706433 or
// 0x7f.1 into dotted quads, and IPv6 into bracketed canonical text.
function checkTarget(raw: string, policy: OutboundPolicy): URL | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `invalid URL ${JSON.stringify(raw)}`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return `only http and https URLs are delivered to, not ${url.protocol}`;
  const host = url.hostname;
  const literal = host.startsWith("[") ? host.slice(1, -1) : isIPv4(host) ? host : undefined;
  if (literal !== undefined && !policy.isAllowed(literal)) return policy.describe(literal);
  return url;
}

function requestHeaders(req: OutboundRequest, userAgent: string): Record<string, string> {
  const out: Record<string, string> = { "user-agent": userAgent };
  for (const [name, value] of Object.entries(req.headers)) {
    const lower = name.toLowerCase();
    if (!TRANSPORT_HEADERS.has(lower)) out[lower] = value;
  }
  out["content-length"] = String(req.body.byteLength);
  return out;
}

function flattenHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

function decode(chunks: readonly Buffer[]): string {
  return chunks.length === 0 ? "" : utf8.decode(Buffer.concat(chunks));
}

const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA", "ENODATA", "ESERVFAIL"]);
const TIMEOUT_CODES = new Set([
  "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);
// The response head was beyond what undici accepts (maxHeaderSize): a misbehaving receiver.
const TOO_LARGE_CODES = new Set(["UND_ERR_HEADERS_OVERFLOW", "UND_ERR_RES_EXCEEDED_MAX_SIZE", "HPE_HEADER_OVERFLOW"]);
const TLS_CODES = new Set([
  "EPROTO",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "HOSTNAME_MISMATCH",
]);

// Platform and undici errors are translated here, once. Every error in the cause chain (and
// inside an AggregateError from happy-eyeballs) is considered; the most specific kind wins.
function classify(err: unknown): { errorKind: SendErrorKind; errorMessage: string } {
  const all = flattenErrors(err);
  const codeOf = (e: Error): string => {
    const code = (e as { code?: unknown }).code;
    return typeof code === "string" ? code : "";
  };
  const find = (test: (code: string, e: Error) => boolean): Error | undefined => all.find((e) => test(codeOf(e), e));

  const refused = find((_, e) => e instanceof OutboundRefusedError);
  if (refused !== undefined) return { errorKind: "refused_by_policy", errorMessage: refused.message };
  const tooLarge = find((code) => TOO_LARGE_CODES.has(code));
  if (tooLarge !== undefined) return { errorKind: "response_too_large", errorMessage: tooLarge.message };
  const dns = find((code) => DNS_CODES.has(code));
  if (dns !== undefined) return { errorKind: "dns", errorMessage: dns.message };
  const tls = find(
    (code) =>
      TLS_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_") || code.includes("CERT"),
  );
  if (tls !== undefined) return { errorKind: "tls", errorMessage: tls.message };
  const timeout = find((code) => TIMEOUT_CODES.has(code));
  if (timeout !== undefined) return { errorKind: "timeout", errorMessage: timeout.message };
  // Refused, reset, unreachable, closed mid-exchange, or an unparseable response: the
  // endpoint could not be talked to, which retries treat alike.
  const withCode = find((code) => code !== "");
  const first = all[0];
  const message =
    withCode !== undefined ? `${withCode.message} (${codeOf(withCode)})` : (first?.message ?? String(err));
  return { errorKind: "connect", errorMessage: message };
}

function flattenErrors(err: unknown): Error[] {
  const out: Error[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (!(e instanceof Error) || depth > 8 || out.includes(e)) return;
    out.push(e);
    if (e instanceof AggregateError) for (const inner of e.errors) visit(inner, depth + 1);
    visit(e.cause, depth + 1);
  };
  visit(err, 0);
  return out;
}
