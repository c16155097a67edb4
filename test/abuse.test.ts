/**
 * Abuse against a real `api` process: random bytes under every content type on every RPC path,
 * broken gRPC and gRPC-Web framing, raw TCP garbage, HTTP/2 prefaces cut short, half-sent
 * requests. Proven afterwards: the process is alive and ready, a valid call still works, no
 * answer was a 5xx or an `internal` error, and nothing was written (the workspace list of an
 * operator-created workspace is unchanged).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as netConnect } from "node:net";
import { connect as http2Connect } from "node:http2";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { createClients, startStack, type Stack } from "./support/stack.ts";

const PATHS = [
  "/hookstream.v1.AdminService/CreateWorkspace",
  "/hookstream.v1.ApiKeyService/CreateApiKey",
  "/hookstream.v1.ApiKeyService/ListApiKeys",
  "/hookstream.v1.EndpointService/CreateEndpoint",
  "/hookstream.v1.EndpointService/UpdateEndpoint",
  "/hookstream.v1.MessageService/Send",
  "/hookstream.v1.MessageService/GetMessage",
  "/hookstream.v1.DeliveryService/ListDeliveries",
  "/hookstream.v1.WatchService/WatchDeliveries",
  "/hookstream.v1.Nope/Nothing",
];
const CONTENT_TYPES = [
  "application/json",
  "application/proto",
  "application/connect+json",
  "application/connect+proto",
  "application/grpc-web+proto",
  "application/grpc-web-text",
  "text/plain",
];

/** Bytes that look almost valid: random, or a valid prefix with garbage after it. */
function junk(i: number): Uint8Array {
  const n = i % 5;
  if (n === 0) return randomBytes(1 + (i % 300));
  if (n === 1) return Buffer.from('{"name": "' + "\u0000".repeat(i % 7) + randomBytes(8).toString("hex"));
  if (n === 2) return Buffer.concat([Buffer.from([0, 0, 0, 0, 200]), randomBytes(i % 50)]); // frame promising 200 bytes
  if (n === 3) return Buffer.concat([Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff])]); // trailer flag, absurd length
  return Buffer.from(
    JSON.stringify({ endpointId: 12, payload: { a: [1, { b: null }] }, statuses: ["NOPE"], pageSize: -5 }),
  );
}

void describe("abuse against a real api process", { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let nats: TestNats;
  let stack: Stack;

  before(async () => {
    db = await createTestDatabase("sqlite");
    nats = await startNatsServer();
    stack = await startStack({ databaseUrl: db.url, natsUrl: nats.url, roles: ["api"] });
  });

  after(async () => {
    stack?.destroy();
    await nats?.stop();
    await db?.drop();
  });

  void it("survives garbage on every path and protocol and answers each with a client error", async () => {
    const admin = createClients(stack.apiUrl, stack.adminToken);
    const { managementToken } = await admin.admin.createWorkspace({ name: "before" });
    const mgmt = createClients(stack.apiUrl, managementToken);
    const endpointsBefore = (await mgmt.endpoints.listEndpoints({})).endpoints.length;

    const statuses = new Map<number, number>();
    let i = 0;
    for (const path of PATHS) {
      for (const contentType of CONTENT_TYPES) {
        for (let k = 0; k < 5; k++, i++) {
          const res = await fetch(stack.apiUrl + path, {
            method: "POST",
            headers: {
              "content-type": contentType,
              authorization: `Bearer ${managementToken}`,
              "connect-protocol-version": "1",
            },
            body: junk(i),
          });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          assert.ok(res.status < 500, `${path} ${contentType} #${k}: HTTP ${res.status} ${text.slice(0, 200)}`);
          assert.ok(
            !/"code":\s*"internal"/.test(text),
            `${path} ${contentType}: internal error: ${text.slice(0, 200)}`,
          );
          const grpcStatus = res.headers.get("grpc-status");
          assert.ok(grpcStatus === null || grpcStatus !== "13", `${path} ${contentType}: grpc-status 13`);
        }
      }
    }
    const port = Number(new URL(stack.apiUrl).port);
    // Raw TCP garbage, a cut HTTP/2 preface, and a request that stops half-way.
    for (const bytes of [
      randomBytes(4096),
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM"),
      Buffer.from('POST /hookstream.v1.MessageService/Send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"'),
    ]) {
      await new Promise<void>((resolve) => {
        const s = netConnect(port, "127.0.0.1", () => {
          s.write(bytes);
          setTimeout(() => s.destroy(), 200);
        });
        s.on("error", () => undefined);
        s.on("close", () => resolve());
      });
    }
    // gRPC over h2c with garbage frames, through a real HTTP/2 client.
    const session = http2Connect(stack.apiUrl);
    for (let k = 0; k < 20; k++) {
      const grpcStatus = await new Promise<string | undefined>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": PATHS[k % PATHS.length]!,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${managementToken}`,
        });
        let status: string | undefined;
        const grpcStatusOf = (h: Record<string, unknown>): string | undefined => {
          const v = h["grpc-status"];
          return typeof v === "string" ? v : undefined;
        };
        req.on("response", (h) => {
          status = grpcStatusOf(h) ?? status;
          // No gRPC route at all (an unknown service): plain HTTP 404, which gRPC clients
          // read as UNIMPLEMENTED (12) per the gRPC-over-HTTP/2 spec.
          if (h[":status"] === 404) status ??= "12";
        });
        req.on("trailers", (t: Record<string, unknown>) => (status = grpcStatusOf(t) ?? status));
        req.on("data", () => undefined);
        // "close" comes after both the headers and the trailers.
        req.on("close", () => resolve(status));
        req.on("error", reject);
        req.end(junk(k));
      });
      assert.notEqual(grpcStatus, "13", `gRPC ${PATHS[k % PATHS.length]}: internal`);
      assert.ok(
        grpcStatus !== undefined && grpcStatus !== "0",
        `gRPC garbage on ${PATHS[k % PATHS.length]} must fail, got ${grpcStatus}`,
      );
    }
    session.close();

    assert.ok(stack.isRunning("api"), "the api process is alive");
    const ready = await fetch(stack.apiUrl + "/readyz");
    assert.equal(ready.status, 200);
    assert.equal((await mgmt.endpoints.listEndpoints({})).endpoints.length, endpointsBefore, "nothing was written");
    const { workspace } = await admin.admin.createWorkspace({ name: "after" });
    assert.ok(workspace?.id.startsWith("ws_"), "valid calls still work");
    const internal = stack.logRecords("api").filter((r) => r["level"] === "error");
    assert.deepEqual(internal, [], "no error was logged: every bad input was the client's fault");
    assert.ok(i > 300);
  });
});
