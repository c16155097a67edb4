/**
 * The API's network edge: one TCP port serving Connect (JSON and binary), gRPC-Web and gRPC,
 * over HTTP/1.1 and cleartext HTTP/2 (h2c), plus CORS, health, readiness and metrics.
 *
 * Node's `allowHTTP1` does nothing without TLS, so a `net` server looks at the first bytes of
 * each connection: the HTTP/2 connection preface goes to an `http2` server, anything else to an
 * `http` server. Both share one request handler, a slim version of connect-node's adapter that
 * also knows the operational routes and logs through pino.
 */
import { DomainError } from "../domain/errors.ts";
import { findPlainRoute, type PlainRoute } from "./plain-routes.ts";
import {
  Code,
  ConnectError,
  createConnectRouter,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import type { Logger } from "pino";
import { createCorsHandler, type CorsOptions } from "./cors.ts";
import { createErrorInterceptor } from "./error-mapping.ts";
import { conformGrpcMessage } from "./grpc-message.ts";
import { captureRawJson } from "./raw-json-body.ts";
import { watchUndecodableRequest } from "./undecodable-request.ts";
import {
  closeIfBodyTooLargeToDrain,
  DEFAULT_DRAIN_LIMIT_BYTES,
  requestBodyOf,
  settleUnreadRequestBody,
} from "./unread-request-body.ts";

/** What `/readyz` reports: ready only when every named check is fine. */
export interface ReadinessReport {
  ok: boolean;
  /** Check name → short state, e.g. { database: "ok", nats: "connection refused" }. */
  checks: Record<string, string>;
}

/** Everything `startHttpServer` needs; build it from `Config` in the `api` role. */
export interface HttpServerOptions {
  /** Address to listen on, e.g. "0.0.0.0" or "127.0.0.1". */
  host: string;
  /** TCP port; 0 picks a free one (read it back from `HttpServer.port`). */
  port: number;
  /**
   * Registers the Connect services: `router.service(AdminService, impl)`. The second argument
   * is the server's shutdown signal, for long-lived server streams (see `HttpServer`).
   */
  routes: (router: ConnectRouter, shutdownSignal: AbortSignal) => void;
  /**
   * Interceptors of every RPC, outermost first. The server always puts the error interceptor
   * (`createErrorInterceptor`) outside them, so no handler needs its own error mapping.
   */
  interceptors?: Interceptor[];
  /**
   * Runs once per RPC after the headers arrive and before the body is read: the cheap place
   * to reject a missing or bad credential (throw a ConnectError / DomainError).
   */
  requestGate?: (context: HandlerContext) => void | Promise<void>;
  /** Browser origins allowed to call the API (exact origins); ["*"] means any origin. */
  corsOrigins: readonly string[];
  /** Extra CORS tuning (headers, preflight max age). */
  cors?: CorsOptions;
  /** Largest accepted request message in bytes (after decompression); more is resource_exhausted. */
  readMaxBytes: number;
  /**
   * Unknown fields in a JSON request are `invalid_argument` by default, so a misspelt field
   * is never silently ignored; set true to ignore them (connect's own default).
   */
  ignoreUnknownJsonFields?: boolean;
  /**
   * Request members whose exact JSON text a procedure's handler reads from Connect JSON bodies
   * (`rawJsonMembers` in raw-json-body.ts) instead of what JSON.parse made of them: procedure
   * path → member paths, e.g. { "/hookstream.v1.MessageService/Send": ["payload"] }.
   */
  rawJsonMembers?: Readonly<Record<string, readonly string[]>>;
  /**
   * Most bytes of a request body left unread by its handler (refused for its size, its
   * credential, …) that the server reads and drops after answering, so the connection stays
   * usable; a longer body is cut off (default 8 MiB, see unread-request-body.ts).
   */
  drainLimitBytes?: number;
  /** Readiness probe behind `/readyz`: 200 when ok, else 503, with the report as JSON. */
  ready: () => Promise<ReadinessReport>;
  /** Serves `/metrics` when given (Prometheus text format). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Plain HTTP routes beside Connect (ack URLs, …). */
  plainRoutes?: readonly PlainRoute[];
  logger: Logger;
}

/** A running API server. */
export interface HttpServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /**
   * Aborted when `close()` starts. Handlers of long-lived server streams (Watch…) end their
   * stream cleanly when it fires, so graceful shutdown does not wait for the grace period.
   */
  readonly shutdownSignal: AbortSignal;
  /**
   * Graceful shutdown: stops accepting connections, aborts `shutdownSignal`, lets in-flight
   * requests finish for up to `graceMs`, then destroys what is left. Resolves when every
   * connection is closed; calling it again returns the same promise.
   */
  close(graceMs: number): Promise<void>;
}

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

// The first bytes a cleartext HTTP/2 client sends (RFC 9113 §3.4).
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
// A connection that sends nothing for this long is dropped before it is routed.
const peekTimeoutMs = 30_000;
// Request and response compressions the RPCs accept.
const compressions = [compressionGzip, compressionBrotli];

/** Starts the API server and resolves once it listens. */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const logger = opts.logger;
  const shutdown = new AbortController();
  const rpcs = createRpcTable(opts, shutdown.signal);
  const rawJsonMembers = new Map(Object.entries(opts.rawJsonMembers ?? {}));
  const cors = createCorsHandler(opts.corsOrigins, opts.cors);
  const drainLimitBytes = opts.drainLimitBytes ?? DEFAULT_DRAIN_LIMIT_BYTES;

  let closing = false;
  // HTTP/1.1 responses in flight: on shutdown their connection must close once they are done.
  const h1InFlight = new Set<ServerResponse>();
  const h2Sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  const peeking = new Set<Socket>();

  const handle = (req: NodeRequest, res: NodeResponse): void => {
    if (res instanceof http.ServerResponse) {
      if (closing) res.setHeader("Connection", "close");
      h1InFlight.add(res);
      res.once("close", () => h1InFlight.delete(res));
    }
    // Whatever part of the body the handler leaves unread must not block the connection.
    settleUnreadRequestBody(req, res, drainLimitBytes);
    if (cors(req, res)) return;
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const rpc = rpcs.get(path);
    if (rpc !== undefined) {
      serveRpc(rpc, req, res, logger, rawJsonMembers.get(path), opts.readMaxBytes, drainLimitBytes);
    } else {
      closeIfBodyTooLargeToDrain(req, res, drainLimitBytes);
      serveOperational(path, req, res, opts, logger);
    }
  };

  const h1 = http.createServer(handle);
  // http starts its connection tracking (headersTimeout/requestTimeout checks against slow
  // clients, closeIdleConnections) on "listening"; h1 never listens itself, so start it here.
  h1.emit("listening");
  const h2 = http2.createServer(handle);
  h2.on("session", (session: Http2Session) => {
    h2Sessions.add(session);
    session.once("close", () => h2Sessions.delete(session));
    if (closing) session.close();
  });
  h2.on("sessionError", (err: Error) => logger.debug({ err }, "http2 session error"));

  // allowHalfOpen as http's own listener has it: a client that half-closes after its request
  // still gets the response (http ends the connection itself afterwards).
  const tcp = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      peeking.delete(socket);
    });
    if (closing) {
      socket.destroy();
      return;
    }
    peeking.add(socket);
    routeConnection(socket, (isH2) => {
      peeking.delete(socket);
      if (isH2) {
        // As http2's own listener has it; the session reads what is already buffered itself.
        socket.allowHalfOpen = false;
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        // http consumes the socket natively from now on; resuming flushes the peeked bytes to
        // its parser before any new read can happen (both on this tick).
        socket.resume();
      }
    });
  });
  tcp.on("error", (err) => logger.error({ err }, "api server socket error"));

  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => {
      h1.close(); // stops the timers started above
      reject(err);
    };
    tcp.once("error", fail);
    tcp.listen(opts.port, opts.host, () => {
      tcp.off("error", fail);
      resolve();
    });
  });
  const port = (tcp.address() as AddressInfo).port;
  logger.info({ host: opts.host, port }, "api server listening (Connect, gRPC-Web, gRPC; HTTP/1.1 and h2c)");

  let closed: Promise<void> | undefined;
  const close = (graceMs: number): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const allClosed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      for (const socket of peeking) socket.destroy();
      h1.close(); // closes idle keep-alive connections and stops http's timers
      for (const res of h1InFlight) {
        if (!res.headersSent) {
          res.setHeader("Connection", "close"); // http closes the connection after this response
        } else {
          // Too late for the header: end the connection ourselves once the response is done
          // (the socket is detached from the response by then, so hold on to it now).
          const socket = res.socket;
          res.once("close", () => void socket?.end());
        }
      }
      for (const session of h2Sessions) session.close(); // GOAWAY, then close when streams end
      h2.close();
      const force = setTimeout(() => {
        logger.warn({ connections: sockets.size }, "shutdown grace period over: closing remaining connections");
        for (const session of h2Sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await allClosed;
      clearTimeout(force);
      logger.info("api server closed");
    })();
    return closed;
  };

  return { port, shutdownSignal: shutdown.signal, close };
}

function createRpcTable(opts: HttpServerOptions, shutdownSignal: AbortSignal): Map<string, UniversalHandler> {
  const gate = opts.requestGate;
  const router = createConnectRouter({
    interceptors: [createErrorInterceptor(opts.logger), ...(opts.interceptors ?? [])],
    readMaxBytes: opts.readMaxBytes,
    acceptCompression: compressions,
    jsonOptions: { ignoreUnknownFields: opts.ignoreUnknownJsonFields ?? false },
    requestGate:
      gate === undefined
        ? watchUndecodableRequest
        : (context) => {
            watchUndecodableRequest(context);
            return gate(context);
          },
  });
  opts.routes(router, shutdownSignal);
  return new Map(router.handlers.map((h) => [h.requestPath, h]));
}

// Reads until the first bytes decide between the HTTP/2 preface and HTTP/1.x, then puts them
// back so the chosen server parses the connection from its start.
function routeConnection(socket: Socket, route: (isH2: boolean) => void): void {
  let seen: Buffer | undefined;
  const drop = (): void => void socket.destroy();
  const onData = (chunk: Buffer): void => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, h2Preface.length);
    const prefixMatches = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (prefixMatches && n < h2Preface.length) return; // could still be HTTP/2: wait for more
    socket.off("data", onData);
    socket.off("error", drop);
    socket.off("end", drop);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(seen);
    route(prefixMatches);
  };
  socket.on("error", drop);
  socket.on("end", drop); // gone before saying anything
  socket.on("data", onData);
  socket.setTimeout(peekTimeoutMs, () => socket.destroy());
}

// `rawJsonPaths`: the members whose exact text a Connect JSON request keeps for the handler.
function serveRpc(
  rpc: UniversalHandler,
  req: NodeRequest,
  res: NodeResponse,
  logger: Logger,
  rawJsonPaths: readonly string[] | undefined,
  readMaxBytes: number,
  drainLimitBytes: number,
): void {
  let uReq;
  try {
    uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
  } catch {
    // Only a request without a Host / :authority gets here.
    sendText(res, 400, "missing host");
    return;
  }
  // connect's own body iterable destroys the request when it stops reading early, which stalls
  // the connection (see unread-request-body.ts).
  uReq = { ...uReq, body: requestBodyOf(req) };
  if (rawJsonPaths !== undefined) uReq = captureRawJson(uReq, rawJsonPaths, readMaxBytes, compressions);
  rpc(uReq)
    .then((uRes) => {
      const trailer = uRes.trailer;
      // Only gRPC (not gRPC-Web, not Connect) has HTTP trailers; the handler fills them in
      // while the body streams, and the adapter reads them once the body is done.
      if (trailer !== undefined) {
        Object.defineProperty(uRes, "trailer", { get: () => conformGrpcMessage(trailer) });
      }
      closeIfBodyTooLargeToDrain(req, res, drainLimitBytes);
      return universalResponseToNodeResponse(uRes, res);
    })
    .catch((reason: unknown) => {
      const code = ConnectError.from(reason).code;
      if (code === Code.Aborted || code === Code.Canceled) {
        logger.debug({ err: reason, procedure: rpc.requestPath }, "rpc aborted by the client");
      } else {
        logger.error({ err: reason, procedure: rpc.requestPath }, "rpc response failed");
      }
      if (!res.headersSent) sendText(res, 500, "");
      else if (!res.writableEnded) abortResponse(res);
    });
}

function serveOperational(
  path: string,
  req: NodeRequest,
  res: NodeResponse,
  opts: HttpServerOptions,
  logger: Logger,
): void {
  const plain = findPlainRoute(opts.plainRoutes ?? [], path);
  if (plain !== undefined) {
    servePlain(plain, req, res, logger);
    return;
  }
  const known = path === "/healthz" || path === "/readyz" || (path === "/metrics" && opts.metrics !== undefined);
  if (!known) {
    sendText(res, 404, "");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    sendText(res, 405, "");
    return;
  }
  res.setHeader("Cache-Control", "no-store");
  if (path === "/healthz") {
    sendBody(res, 200, "application/json", '{"status":"ok"}');
    return;
  }
  const work =
    path === "/readyz"
      ? opts.ready().then(
          (report) => sendBody(res, report.ok ? 200 : 503, "application/json", JSON.stringify(report)),
          (err: unknown) => {
            logger.warn({ err }, "readiness probe failed");
            const report: ReadinessReport = { ok: false, checks: { probe: "failed" } };
            sendBody(res, 503, "application/json", JSON.stringify(report));
          },
        )
      : (opts.metrics as NonNullable<HttpServerOptions["metrics"]>)().then((m) =>
          sendBody(res, 200, m.contentType, m.body),
        );
  work.catch((err: unknown) => {
    logger.error({ err, path }, "operational endpoint failed");
    if (!res.headersSent) sendText(res, 500, "");
  });
}

function servePlain(
  found: { route: PlainRoute; match: RegExpExecArray },
  req: NodeRequest,
  res: NodeResponse,
  logger: Logger,
): void {
  const method = req.method ?? "GET";
  if (!found.route.methods.includes(method)) {
    res.setHeader("Allow", found.route.methods.join(", "));
    sendText(res, 405, "");
    return;
  }
  res.setHeader("Cache-Control", "no-store");
  // The body is never read: close the connection after answering so no unread bytes linger.
  if (method !== "GET" && method !== "HEAD" && req.headers["content-length"] !== "0") {
    res.setHeader("Connection", "close");
  }
  const url = new URL(req.url ?? "/", "http://localhost");
  found.route
    .handle({ method, url, match: found.match })
    .then((answer) => sendBody(res, answer.status, "application/json", JSON.stringify(answer.body)))
    .catch((err: unknown) => {
      const unavailable = err instanceof DomainError && err.kind === "unavailable";
      if (!unavailable) logger.error({ err, path: url.pathname }, "plain route failed");
      if (!res.headersSent)
        sendBody(res, unavailable ? 503 : 500, "application/json", '{"applied":false,"error":"try again"}');
    });
}

function sendBody(res: NodeResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  (res as ServerResponse).end(body);
}

function sendText(res: NodeResponse, status: number, text: string): void {
  sendBody(res, status, "text/plain; charset=utf-8", text);
}

// A response that failed after its headers went out cannot carry an error any more: cut it.
function abortResponse(res: NodeResponse): void {
  if (res instanceof http.ServerResponse) res.destroy();
  else res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}
