import { createServer, type Server } from "node:http";

/** Readiness of a role: ok plus one line per dependency. */
export interface Readiness {
  ok: boolean;
  checks: Record<string, string>;
}

/**
 * The small HTTP listener of roles without the API server (worker, dispatcher), so an
 * orchestrator can probe them: /healthz (alive), /readyz (dependencies answer), /metrics.
 */
export async function startHealthServer(
  host: string,
  port: number,
  ready: () => Promise<Readiness>,
  metrics: () => Promise<{ contentType: string; body: string }>,
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" }).end(body);
    };
    if (path === "/healthz") return reply(200, "application/json", '{"status":"ok"}');
    if (path === "/readyz") {
      ready().then(
        (r) => reply(r.ok ? 200 : 503, "application/json", JSON.stringify(r)),
        (err: unknown) => reply(503, "application/json", JSON.stringify({ ok: false, checks: { error: String(err) } })),
      );
      return;
    }
    if (path === "/metrics") {
      metrics().then(
        (m) => reply(200, m.contentType, m.body),
        () => reply(500, "text/plain", "metrics unavailable\n"),
      );
      return;
    }
    reply(404, "text/plain", "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr !== null ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
