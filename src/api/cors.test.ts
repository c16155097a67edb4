import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { createCorsHandler } from "./cors.ts";

/** A request/response pair with just what the CORS handler touches. */
function exchange(method: string, headers: Record<string, string>) {
  const out: Record<string, string> = {};
  let ended = false;
  const res = {
    statusCode: 200,
    setHeader(name: string, value: string) {
      out[name.toLowerCase()] = value;
    },
    end() {
      ended = true;
    },
  };
  const req = { method, headers };
  return {
    req: req as unknown as IncomingMessage,
    res: res as unknown as ServerResponse,
    out,
    status: () => res.statusCode,
    ended: () => ended,
  };
}

const preflight = { origin: "https://app.example.com", "access-control-request-method": "POST" };

void describe("createCorsHandler", () => {
  void it("answers a preflight from an allowed origin with 204 and the Connect/gRPC-Web headers", () => {
    const cors = createCorsHandler(["https://app.example.com/"], {
      extraAllowedHeaders: ["X-Trace"],
      maxAgeSeconds: 600,
    });
    const x = exchange("OPTIONS", preflight);
    assert.equal(cors(x.req, x.res), true);
    assert.equal(x.status(), 204);
    assert.equal(x.ended(), true);
    assert.equal(x.out["access-control-allow-origin"], "https://app.example.com");
    assert.equal(x.out["access-control-allow-methods"], "POST, GET");
    const allowed = (x.out["access-control-allow-headers"] ?? "").toLowerCase().split(", ");
    for (const h of [
      "content-type",
      "connect-protocol-version",
      "connect-timeout-ms",
      "x-grpc-web",
      "x-user-agent",
      "grpc-timeout",
      "authorization",
      "x-trace",
    ]) {
      assert.ok(allowed.includes(h), h);
    }
    assert.equal(x.out["access-control-max-age"], "600");
    assert.equal(x.out["vary"], "Origin");
  });

  void it("answers a preflight from a disallowed origin without CORS headers", () => {
    const cors = createCorsHandler(["https://app.example.com"]);
    const x = exchange("OPTIONS", { ...preflight, origin: "https://evil.example" });
    assert.equal(cors(x.req, x.res), true);
    assert.equal(x.out["access-control-allow-origin"], undefined);
    assert.equal(x.out["access-control-allow-methods"], undefined);
  });

  void it('allows any origin with "*", echoing it', () => {
    const cors = createCorsHandler(["*"]);
    const x = exchange("OPTIONS", { ...preflight, origin: "http://localhost:5173" });
    cors(x.req, x.res);
    assert.equal(x.out["access-control-allow-origin"], "http://localhost:5173");
  });

  void it("marks an actual response and lets it through", () => {
    const cors = createCorsHandler(["https://APP.example.com"]);
    const x = exchange("POST", { origin: "https://app.example.com" });
    assert.equal(cors(x.req, x.res), false);
    assert.equal(x.ended(), false);
    assert.equal(x.out["access-control-allow-origin"], "https://app.example.com");
    const exposed = (x.out["access-control-expose-headers"] ?? "").toLowerCase();
    for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after"])
      assert.ok(exposed.includes(h), h);
  });

  void it("does nothing without an Origin, and nothing but Vary for a disallowed one", () => {
    const cors = createCorsHandler(["https://app.example.com"]);
    const none = exchange("POST", {});
    assert.equal(cors(none.req, none.res), false);
    assert.deepEqual(none.out, {});
    const evil = exchange("POST", { origin: "https://evil.example" });
    assert.equal(cors(evil.req, evil.res), false);
    assert.deepEqual(evil.out, { vary: "Origin" });
  });

  void it("routes a plain OPTIONS (no Access-Control-Request-Method) onwards", () => {
    const cors = createCorsHandler(["*"]);
    const x = exchange("OPTIONS", { origin: "https://app.example.com" });
    assert.equal(cors(x.req, x.res), false);
  });
});
