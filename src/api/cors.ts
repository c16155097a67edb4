/**
 * CORS for browser clients on other origins (@connectrpc/connect-web, Connect and gRPC-Web):
 * answers preflights and marks actual responses, for the configured origins only.
 */
import { cors } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** Tuning of the CORS answer beyond the allowed origins. */
export interface CorsOptions {
  /** Request headers a browser may send besides Connect's own and `Authorization`. */
  readonly extraAllowedHeaders?: readonly string[];
  /** Response headers a browser script may read besides Connect's own and `Retry-After`. */
  readonly extraExposedHeaders?: readonly string[];
  /** How long a browser may cache a preflight answer; browsers cap it (Chromium: 2 h). */
  readonly maxAgeSeconds?: number;
}

/**
 * Applies CORS to one request before it is routed. Returns true when it answered the request
 * itself (a preflight), false when routing should go on.
 */
export type CorsHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => boolean;

/**
 * Creates the CORS handler for `origins` (exact origins such as "https://app.example.com", or
 * "*" for any). An allowed origin is echoed back with `Vary: Origin`, which also works for a
 * browser that sends credentials; a disallowed one gets no CORS headers, so the browser blocks it.
 */
export function createCorsHandler(origins: readonly string[], options: CorsOptions = {}): CorsHandler {
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins.map(normalizeOrigin));
  const allowMethods = [...cors.allowedMethods].join(", ");
  const allowHeaders = unique([...cors.allowedHeaders, "Authorization", ...(options.extraAllowedHeaders ?? [])]).join(
    ", ",
  );
  const exposeHeaders = unique([...cors.exposedHeaders, "Retry-After", ...(options.extraExposedHeaders ?? [])]).join(
    ", ",
  );
  const maxAge = String(options.maxAgeSeconds ?? 7200);

  return (req, res) => {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    const isPreflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    // The answer depends on Origin either way, so caches must key on it.
    res.setHeader("Vary", "Origin");
    const ok = anyOrigin || allowed.has(normalizeOrigin(origin));
    if (isPreflight) {
      if (ok) {
        res.setHeader("Access-Control-Allow-Origin", origin);
        res.setHeader("Access-Control-Allow-Methods", allowMethods);
        res.setHeader("Access-Control-Allow-Headers", allowHeaders);
        res.setHeader("Access-Control-Max-Age", maxAge);
      }
      res.statusCode = 204;
      res.end();
      return true;
    }
    if (ok) {
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
    }
    return false;
  };
}

// Origins compare case-insensitively and a configured trailing slash is a common typo.
function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, "");
}

function unique(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.filter((n) => {
    const key = n.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
