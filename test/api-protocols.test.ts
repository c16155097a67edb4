/**
 * The API edge against a real server on a free port: every protocol (Connect JSON and binary,
 * gRPC-Web, gRPC) over HTTP/1.1 and h2c, third-party clients (grpc-js, buf curl), malformed
 * input, error details, CORS, the operational routes and graceful shutdown. The services are
 * small test implementations of the generated AdminService and WatchService.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ServiceImpl, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import pino from "pino";
import { AdminService, CreateWorkspaceRequestSchema } from "../gen/hookstream/v1/admin_service_pb.ts";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { MessageService } from "../gen/hookstream/v1/message_service_pb.ts";
import { WatchService } from "../gen/hookstream/v1/watch_service_pb.ts";
import { errorDetailOf } from "../src/api/error-mapping.ts";
import { startHttpServer, type HttpServer, type ReadinessReport } from "../src/api/http-server.ts";
import { DomainError, invalidArgument } from "../src/domain/errors.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoDir = join(root, "proto");
const origin = "https://app.example.com";
const readMaxBytes = 64 * 1024;
// A request body left unread is read and dropped up to this much after the answer.
const drainLimitBytes = 512 * 1024;

/** A deferred the test resolves to let a waiting handler go on. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets a test hold one unary call ("slow") inside its handler. */
interface SlowCall {
  entered: { promise: Promise<void>; resolve: () => void };
  release: { promise: Promise<void>; resolve: () => void };
}

/** Test services. */
function testRoutes(shutdownSignal: AbortSignal, slow: SlowCall) {
  const admin: ServiceImpl<typeof AdminService> = {
    async createWorkspace(req) {
      if (req.name === "") throw invalidArgument([{ field: "name", description: "must not be empty" }]);
      if (req.name === "boom") throw new Error("db password is hunter2");
      if (req.name === "slow") {
        slow.entered.resolve();
        await slow.release.promise;
      }
      if (req.name === "throttled") {
        throw new DomainError("resource_exhausted", "RATE_LIMITED", "too many requests", { retryDelayMs: 1500 });
      }
      return { workspace: { id: "ws_test", name: req.name }, managementToken: "hsm_test" };
    },
  };
  const watch: ServiceImpl<typeof WatchService> = {
    async *watchDeliveries(req, ctx) {
      const item = (n: number) => ({
        resumeToken: `rt_${n}`,
        delivery: { id: `dlv_${n}`, endpointId: req.endpointId, status: DeliveryStatus.SUCCEEDED },
      });
      if (req.endpointId === "ep_wait" || req.endpointId === "ep_stubborn") {
        yield item(1);
        // ep_wait ends cleanly on shutdown; ep_stubborn ignores it (only the client or the
        // forced close ends it).
        const signal = req.endpointId === "ep_wait" ? AbortSignal.any([shutdownSignal, ctx.signal]) : ctx.signal;
        await new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          else signal.addEventListener("abort", () => resolve(), { once: true });
        });
        return;
      }
      yield item(1);
      if (req.endpointId === "ep_fail") {
        throw new DomainError("failed_precondition", "ENDPOINT_DISABLED", "endpoint is disabled");
      }
      if (req.endpointId === "ep_crash") throw new Error("stream secret");
      yield item(2);
      yield item(3);
    },
    // Not served by these tests.
    async *watchMessage() {
      throw new ConnectError("not in this test", Code.Unimplemented);
    },
  };
  return { admin, watch };
}

interface Harness {
  server: HttpServer;
  baseUrl: string;
  logs: Array<Record<string, unknown>>;
  readiness: { report: ReadinessReport };
  slow: SlowCall;
}

async function startHarness(): Promise<Harness> {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const readiness = { report: { ok: true, checks: { database: "ok", nats: "ok" } } as ReadinessReport };
  const slow: SlowCall = { entered: deferred(), release: deferred() };
  const server = await startHttpServer({
    host: "127.0.0.1",
    port: 0,
    routes: (router, shutdownSignal) => {
      const { admin, watch } = testRoutes(shutdownSignal, slow);
      // MessageService without an implementation: its GET-able GetMessage still decodes
      // requests (and answers unimplemented), which is all the malformed-GET test needs.
      router.service(AdminService, admin).service(WatchService, watch).service(MessageService, {});
    },
    corsOrigins: [origin],
    readMaxBytes,
    drainLimitBytes,
    ready: async () => readiness.report,
    metrics: async () => ({ contentType: "text/plain; version=0.0.4", body: "hookstream_up 1\n" }),
    logger,
  });
  return { server, baseUrl: `http://127.0.0.1:${server.port}`, logs, readiness, slow };
}

const transports: Array<{ name: string; make: (baseUrl: string) => Transport }> = [
  { name: "Connect JSON over HTTP/1.1", make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }) },
  {
    name: "Connect binary over HTTP/1.1",
    make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  },
  { name: "Connect JSON over h2c", make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }) },
  {
    name: "Connect binary over h2c",
    make: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  },
  { name: "gRPC-Web over HTTP/1.1", make: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }) },
  { name: "gRPC-Web over h2c", make: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }) },
  { name: "gRPC over h2c", make: (baseUrl) => createGrpcTransport({ baseUrl }) },
];

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the call to fail");
}

void describe("api server protocols", () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.server.close(1000);
  });

  for (const { name, make } of transports) {
    void describe(name, () => {
      void it("serves a unary call", async () => {
        const admin = createClient(AdminService, make(h.baseUrl));
        const res = await admin.createWorkspace({ name: "acme" });
        assert.equal(res.workspace?.name, "acme");
        assert.equal(res.managementToken, "hsm_test");
      });

      void it("serves a server stream to its end", async () => {
        const watch = createClient(WatchService, make(h.baseUrl));
        const tokens: string[] = [];
        for await (const item of watch.watchDeliveries({ endpointId: "ep_1" })) tokens.push(item.resumeToken);
        assert.deepEqual(tokens, ["rt_1", "rt_2", "rt_3"]);
      });

      void it("delivers a domain error's code, message and ErrorDetail with field violations", async () => {
        const admin = createClient(AdminService, make(h.baseUrl));
        const err = await rejection(admin.createWorkspace({ name: "" }));
        assert.equal(err.code, Code.InvalidArgument);
        assert.equal(err.rawMessage, "name: must not be empty");
        const detail = errorDetailOf(err);
        assert.equal(detail?.reason, "INVALID_ARGUMENT");
        assert.deepEqual(
          detail?.fieldViolations.map((v) => [v.field, v.description]),
          [["name", "must not be empty"]],
        );
      });

      void it("carries the retry delay of a rate-limit error", async () => {
        const admin = createClient(AdminService, make(h.baseUrl));
        const err = await rejection(admin.createWorkspace({ name: "throttled" }));
        assert.equal(err.code, Code.ResourceExhausted);
        const detail = errorDetailOf(err);
        assert.equal(detail?.reason, "RATE_LIMITED");
        assert.equal(detail?.retryDelay?.seconds, 1n);
        assert.equal(detail?.retryDelay?.nanos, 500_000_000);
      });

      void it("hides an unexpected error behind internal and logs its cause with the procedure", async () => {
        const admin = createClient(AdminService, make(h.baseUrl));
        const err = await rejection(admin.createWorkspace({ name: "boom" }));
        assert.equal(err.code, Code.Internal);
        assert.equal(err.rawMessage, "internal error");
        assert.ok(!JSON.stringify(err).includes("hunter2"));
        assert.equal(errorDetailOf(err)?.reason, "INTERNAL");
        const line = h.logs.find(
          (l) => l["procedure"] === "/hookstream.v1.AdminService/CreateWorkspace" && l["level"] === 50,
        );
        assert.ok(line, "the cause is logged with the procedure");
        assert.match(JSON.stringify(line["err"]), /hunter2/);
      });

      void it("maps an error thrown mid-stream after the items already sent", async () => {
        const watch = createClient(WatchService, make(h.baseUrl));
        const tokens: string[] = [];
        const err = await rejection(
          (async () => {
            for await (const item of watch.watchDeliveries({ endpointId: "ep_fail" })) tokens.push(item.resumeToken);
          })(),
        );
        assert.deepEqual(tokens, ["rt_1"]);
        assert.equal(err.code, Code.FailedPrecondition);
        assert.equal(errorDetailOf(err)?.reason, "ENDPOINT_DISABLED");

        const crash = await rejection(
          (async () => {
            for await (const _ of watch.watchDeliveries({ endpointId: "ep_crash" })) {
              // drain
            }
          })(),
        );
        assert.equal(crash.code, Code.Internal);
        assert.equal(crash.rawMessage, "internal error");
      });

      void it("answers a request larger than readMaxBytes with resource_exhausted", async () => {
        const admin = createClient(AdminService, make(h.baseUrl));
        const err = await rejection(admin.createWorkspace({ name: "x".repeat(readMaxBytes + 1) }));
        assert.equal(err.code, Code.ResourceExhausted);
      });
    });
  }

  void describe("a third-party gRPC client (@grpc/grpc-js + @grpc/proto-loader)", () => {
    interface GrpcStatusError extends Error {
      code: number;
      details: string;
      metadata: grpc.Metadata;
    }
    interface AdminStub extends grpc.Client {
      CreateWorkspace(
        req: { name: string },
        cb: (err: GrpcStatusError | null, res?: { workspace: { name: string }; managementToken: string }) => void,
      ): void;
    }
    interface WatchStub extends grpc.Client {
      WatchDeliveries(req: { endpointId: string }): grpc.ClientReadableStream<{ resumeToken: string }>;
    }
    let admin: AdminStub;
    let watch: WatchStub;

    before(() => {
      const files = readdirSync(join(protoDir, "hookstream", "v1")).map((f) => join("hookstream", "v1", f));
      const definition = protoLoader.loadSync(files, {
        includeDirs: [protoDir],
        longs: String,
        enums: String,
        defaults: true,
      });
      const loaded = grpc.loadPackageDefinition(definition) as unknown as {
        hookstream: { v1: Record<string, new (address: string, creds: grpc.ChannelCredentials) => grpc.Client> };
      };
      const address = `127.0.0.1:${h.server.port}`;
      const AdminCtor = loaded.hookstream.v1["AdminService"];
      const WatchCtor = loaded.hookstream.v1["WatchService"];
      assert.ok(AdminCtor && WatchCtor);
      admin = new AdminCtor(address, grpc.credentials.createInsecure()) as AdminStub;
      watch = new WatchCtor(address, grpc.credentials.createInsecure()) as WatchStub;
    });
    after(() => {
      admin.close();
      watch.close();
    });

    void it("makes a unary call", async () => {
      const res = await new Promise<{ workspace: { name: string }; managementToken: string } | undefined>(
        (resolve, reject) => admin.CreateWorkspace({ name: "grpc-js" }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      assert.equal(res?.workspace.name, "grpc-js");
      assert.equal(res?.managementToken, "hsm_test");
    });

    void it("reads a server stream", async () => {
      const tokens: string[] = [];
      for await (const item of watch.WatchDeliveries({ endpointId: "ep_1" }) as AsyncIterable<{
        resumeToken: string;
      }>) {
        tokens.push(item.resumeToken);
      }
      assert.deepEqual(tokens, ["rt_1", "rt_2", "rt_3"]);
    });

    void it("sees the ErrorDetail in grpc-status-details-bin", async () => {
      const err = await new Promise<GrpcStatusError>((resolve, reject) =>
        admin.CreateWorkspace({ name: "" }, (e) => (e ? resolve(e) : reject(new Error("expected an error")))),
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(err.details, "name: must not be empty");
      const bin = err.metadata.get("grpc-status-details-bin")[0];
      assert.ok(bin instanceof Buffer, "grpc-status-details-bin is present");
      // Decode the google.rpc.Status the way any gRPC client would, through connect's parser.
      const trailer = new Headers({
        "grpc-status": String(err.code),
        "grpc-message": err.details,
        "grpc-status-details-bin": bin.toString("base64"),
      });
      const parsed = findTrailerError(trailer);
      assert.ok(parsed);
      assert.deepEqual(
        errorDetailOf(parsed)?.fieldViolations.map((v) => v.field),
        ["name"],
      );
    });
  });

  void describe("buf curl", () => {
    const buf = join(root, "node_modules", ".bin", "buf");
    const run = promisify(execFile);

    for (const protocol of ["grpc", "connect", "grpcweb"] as const) {
      void it(
        `calls the server with --protocol ${protocol}`,
        { skip: !existsSync(buf) && "buf is not installed" },
        async () => {
          const args = ["curl", "--schema", "proto", "--protocol", protocol];
          if (protocol === "grpc") args.push("--http2-prior-knowledge");
          args.push("-d", '{"name":"from-buf"}', `${h.baseUrl}/hookstream.v1.AdminService/CreateWorkspace`);
          const { stdout } = await run(buf, args, { cwd: root });
          const res = JSON.parse(stdout) as { workspace: { name: string }; managementToken: string };
          assert.equal(res.workspace.name, "from-buf");
          assert.equal(res.managementToken, "hsm_test");
        },
      );
    }

    void it("streams with --protocol grpc", { skip: !existsSync(buf) && "buf is not installed" }, async () => {
      const { stdout } = await run(
        buf,
        [
          "curl",
          "--schema",
          "proto",
          "--protocol",
          "grpc",
          "--http2-prior-knowledge",
          "-d",
          '{"endpointId":"ep_1"}',
          `${h.baseUrl}/hookstream.v1.WatchService/WatchDeliveries`,
        ],
        { cwd: root },
      );
      assert.deepEqual(
        [...stdout.matchAll(/"resumeToken": "(rt_\d)"/g)].map((m) => m[1]),
        ["rt_1", "rt_2", "rt_3"],
      );
    });
  });

  void describe("malformed input is invalid_argument on every protocol", () => {
    const createPath = "/hookstream.v1.AdminService/CreateWorkspace";
    const watchPath = "/hookstream.v1.WatchService/WatchDeliveries";
    // Field 1 (name, length-delimited) promising 100 bytes, then only 3: a truncated message.
    const garbage = new Uint8Array([0x0a, 0x64, 0x61, 0x62, 0x63]);

    async function connectUnary(contentType: string, body: Uint8Array | string) {
      const res = await fetch(h.baseUrl + createPath, {
        method: "POST",
        headers: { "content-type": contentType, "connect-protocol-version": "1" },
        body,
      });
      const json = (await res.json()) as { code?: string; message?: string; details?: unknown[] };
      return { status: res.status, json };
    }

    /** The reason inside the ErrorDetail of a Connect JSON error body. */
    function detailReason(json: { details?: unknown[] }): string | undefined {
      const d = json.details?.find((x) => (x as { type?: string }).type === "hookstream.v1.ErrorDetail") as
        { debug?: { reason?: string } } | undefined;
      return d?.debug?.reason;
    }

    void it("broken JSON", async () => {
      const { status, json } = await connectUnary("application/json", '{"name": ');
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
      assert.equal(detailReason(json), "INVALID_ARGUMENT", "connect's own errors carry our ErrorDetail too");
    });

    void it("JSON with an unknown field", async () => {
      const { status, json } = await connectUnary("application/json", '{"name": "a", "nmae": "b"}');
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
    });

    void it("JSON with a field of the wrong type", async () => {
      const { status, json } = await connectUnary("application/json", '{"name": 42}');
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
    });

    void it("JSON that is not an object", async () => {
      const { status, json } = await connectUnary("application/json", "[1,2]");
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
    });

    void it("truncated binary protobuf (Connect unary), with an ErrorDetail", async () => {
      const { status, json } = await connectUnary("application/proto", garbage);
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
      assert.equal(json.details?.length, 1);
    });

    void it("binary protobuf with invalid UTF-8 in a string field", async () => {
      const { status, json } = await connectUnary("application/proto", new Uint8Array([0x0a, 0x02, 0xc3, 0x28]));
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
    });

    void it("a gzip body that is cut short", async () => {
      const zipped = gzipSync(
        toBinary(CreateWorkspaceRequestSchema, create(CreateWorkspaceRequestSchema, { name: "zip" })),
      );
      const ok = await fetch(h.baseUrl + createPath, {
        method: "POST",
        headers: { "content-type": "application/proto", "connect-protocol-version": "1", "content-encoding": "gzip" },
        body: zipped,
      });
      assert.equal(ok.status, 200, "a whole gzip body works");
      const res = await fetch(h.baseUrl + createPath, {
        method: "POST",
        headers: { "content-type": "application/proto", "connect-protocol-version": "1", "content-encoding": "gzip" },
        body: zipped.subarray(0, zipped.length - 6),
      });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { code: string }).code, "invalid_argument");
    });

    void it("garbage binary in a Connect server-stream envelope", async () => {
      const res = await fetch(h.baseUrl + watchPath, {
        method: "POST",
        headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
        body: envelope(0, garbage),
      });
      assert.equal(res.status, 200); // streams report errors in the end-of-stream message
      const frames = parseEnvelopes(new Uint8Array(await res.arrayBuffer()));
      const end = frames.find((f) => (f.flags & 0x02) === 0x02);
      assert.ok(end);
      const json = JSON.parse(new TextDecoder().decode(end.data)) as { error?: { code: string } };
      assert.equal(json.error?.code, "invalid_argument");
    });

    void it("gRPC-Web: a broken frame and a garbage message", async () => {
      for (const body of [envelope(0, garbage).subarray(0, 7), envelope(0, garbage)]) {
        for (const path of [createPath, watchPath]) {
          const res = await fetch(h.baseUrl + path, {
            method: "POST",
            headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
            body,
          });
          assert.equal(res.status, 200);
          const trailer = grpcWebTrailer(new Uint8Array(await res.arrayBuffer()), res.headers);
          assert.equal(trailer.get("grpc-status"), "3", `${path}: ${trailer.get("grpc-message")}`);
        }
      }
    });

    void it("gRPC over h2c: a broken frame and a garbage message", async () => {
      for (const body of [envelope(0, garbage).subarray(0, 7), envelope(0, garbage)]) {
        for (const path of [createPath, watchPath]) {
          const status = await rawGrpc(h.baseUrl, path, body);
          assert.equal(status.get("grpc-status"), "3", `${path}: ${status.get("grpc-message")}`);
        }
      }
    });

    void it("Connect GET with a broken message parameter", async () => {
      const getPath = "/hookstream.v1.MessageService/GetMessage";
      const garbage64 = Buffer.from(garbage).toString("base64url");
      for (const query of ["encoding=json&message=%7B", `encoding=proto&base64=1&message=${garbage64}`]) {
        const res = await fetch(`${h.baseUrl}${getPath}?connect=v1&${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(((await res.json()) as { code: string }).code, "invalid_argument");
      }
      const fine = await fetch(`${h.baseUrl}${getPath}?connect=v1&encoding=json&message=%7B%7D`);
      assert.equal(
        ((await fine.json()) as { code: string }).code,
        "unimplemented",
        "a good request reaches the service",
      );
      // A method with side effects refuses GET.
      const post = await fetch(`${h.baseUrl}${createPath}?connect=v1&encoding=json&message=%7B%7D`);
      assert.equal(post.status, 405);
    });

    void it("an unsupported content type gets connect's standard 415", async () => {
      const res = await fetch(h.baseUrl + createPath, {
        method: "POST",
        headers: { "content-type": "text/xml" },
        body: "<name/>",
      });
      assert.equal(res.status, 415);
    });

    void it("an oversized body over plain HTTP is resource_exhausted", async () => {
      const { status, json } = await connectUnary(
        "application/json",
        JSON.stringify({ name: "x".repeat(readMaxBytes) }),
      );
      assert.equal(status, 429);
      assert.equal(json.code, "resource_exhausted");
      assert.equal(detailReason(json), "RESOURCE_EXHAUSTED");
    });
  });

  void describe("CORS", () => {
    void it("answers a preflight from an allowed origin", async () => {
      const res = await fetch(h.baseUrl + "/hookstream.v1.AdminService/CreateWorkspace", {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,connect-protocol-version,authorization",
        },
      });
      assert.equal(res.status, 204);
      assert.equal(res.headers.get("access-control-allow-origin"), origin);
      assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
      const allowHeaders = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
      for (const name of ["content-type", "connect-protocol-version", "authorization", "x-grpc-web", "x-user-agent"]) {
        assert.ok(allowHeaders.includes(name), `${name} is allowed`);
      }
      assert.ok(Number(res.headers.get("access-control-max-age")) > 0);
      assert.match(res.headers.get("vary") ?? "", /Origin/);
    });

    void it("gives a disallowed origin no CORS headers", async () => {
      const res = await fetch(h.baseUrl + "/hookstream.v1.AdminService/CreateWorkspace", {
        method: "OPTIONS",
        headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
      });
      assert.equal(res.headers.get("access-control-allow-origin"), null);
      assert.equal(res.headers.get("access-control-allow-methods"), null);
    });

    void it("marks actual responses for an allowed origin and exposes the gRPC-Web headers", async () => {
      const res = await fetch(h.baseUrl + "/hookstream.v1.AdminService/CreateWorkspace", {
        method: "POST",
        headers: { origin, "content-type": "application/json", "connect-protocol-version": "1" },
        body: '{"name":"cors"}',
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("access-control-allow-origin"), origin);
      const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase();
      for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) assert.ok(exposed.includes(name));

      const evil = await fetch(h.baseUrl + "/hookstream.v1.AdminService/CreateWorkspace", {
        method: "POST",
        headers: {
          origin: "https://evil.example",
          "content-type": "application/json",
          "connect-protocol-version": "1",
        },
        body: '{"name":"cors"}',
      });
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
    });
  });

  void describe("operational routes", () => {
    void it("/healthz is always ok", async () => {
      const res = await fetch(h.baseUrl + "/healthz");
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ok" });
    });

    void it("/readyz reports 200 when ready and 503 with the report when not", async () => {
      const ok = await fetch(h.baseUrl + "/readyz");
      assert.equal(ok.status, 200);
      assert.deepEqual(await ok.json(), { ok: true, checks: { database: "ok", nats: "ok" } });
      h.readiness.report = { ok: false, checks: { database: "ok", nats: "connection refused" } };
      try {
        const down = await fetch(h.baseUrl + "/readyz");
        assert.equal(down.status, 503);
        assert.deepEqual(await down.json(), { ok: false, checks: { database: "ok", nats: "connection refused" } });
      } finally {
        h.readiness.report = { ok: true, checks: { database: "ok", nats: "ok" } };
      }
    });

    void it("/metrics serves the exposition", async () => {
      const res = await fetch(h.baseUrl + "/metrics");
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "hookstream_up 1\n");
    });

    void it("unknown paths are 404", async () => {
      assert.equal((await fetch(h.baseUrl + "/nope")).status, 404);
      assert.equal((await fetch(h.baseUrl + "/hookstream.v1.AdminService/Nope", { method: "POST" })).status, 404);
    });
  });
  void describe("a request body left unread never stalls its connection", () => {
    const watchPath = "/hookstream.v1.WatchService/WatchDeliveries";
    const createPath = "/hookstream.v1.AdminService/CreateWorkspace";
    // Over the server's readMaxBytes (64 KiB) but under the 512 KiB it drains to keep the
    // connection, and far over both.
    const drainable = 100_000;
    const tooLarge = 1_000_000;
    const bigWatch = (n: number) => ({ endpointId: "x".repeat(n) });

    for (const { name, make } of transports) {
      for (const size of [drainable, 400_000]) {
        void it(`${name}: a ${size.toLocaleString("en-US")}-byte streaming request, then the next calls`, async () => {
          const watch = createClient(WatchService, make(h.baseUrl));
          const admin = createClient(AdminService, make(h.baseUrl));
          const first = await rejection(
            (async () => {
              for await (const _ of watch.watchDeliveries(bigWatch(size))) assert.fail("no item expected");
            })(),
          );
          assert.equal(first.code, Code.ResourceExhausted, first.message);
          const tokens: string[] = [];
          for await (const item of watch.watchDeliveries({ endpointId: "ep_1" })) tokens.push(item.resumeToken);
          assert.deepEqual(tokens, ["rt_1", "rt_2", "rt_3"]);
          const unary = await rejection(admin.createWorkspace({ name: "x".repeat(size) }));
          assert.equal(unary.code, Code.ResourceExhausted, unary.message);
          assert.equal((await admin.createWorkspace({ name: "after" })).workspace?.name, "after");
        });
      }
    }

    // One keep-alive connection, as curl or a browser would reuse it: the second request must
    // be answered on the same connection when the first body was small enough to drain.
    const cases = [
      { name: "Connect streaming", path: watchPath, contentType: "application/connect+json", stream: true },
      { name: "gRPC-Web", path: watchPath, contentType: "application/grpc-web+json", stream: true },
      { name: "Connect unary", path: createPath, contentType: "application/json", stream: false },
      { name: "an unsupported content type", path: createPath, contentType: "text/xml", stream: false },
    ];
    for (const c of cases) {
      void it(`HTTP/1.1, ${c.name}: the next request on the same connection is answered`, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          const body = (n: number) => {
            const json = JSON.stringify(c.stream ? bigWatch(n) : { name: "x".repeat(n) });
            return c.stream ? envelope(0, new TextEncoder().encode(json)) : new TextEncoder().encode(json);
          };
          const drained = await h1Post(agent, h.baseUrl + c.path, c.contentType, body(drainable));
          assert.equal(drained.headers.connection, "keep-alive");
          assertRefused(c, drained);
          const next = await h1Post(
            agent,
            h.baseUrl + createPath,
            "application/json",
            new TextEncoder().encode('{"name":"next"}'),
          );
          assert.equal(next.status, 200);
          assert.equal(next.localPort, drained.localPort, "the same connection answered");

          const closed = await h1Post(agent, h.baseUrl + c.path, c.contentType, body(tooLarge));
          assert.equal(closed.headers.connection, "close", "too large to drain: the client is told to reconnect");
          assertRefused(c, closed);
          const after = await h1Post(
            agent,
            h.baseUrl + createPath,
            "application/json",
            new TextEncoder().encode('{"name":"after"}'),
          );
          assert.equal(after.status, 200);
        } finally {
          agent.destroy();
        }
      });
    }

    function assertRefused(c: (typeof cases)[number], res: H1Answer): void {
      if (c.contentType === "text/xml") {
        assert.equal(res.status, 415);
      } else if (c.contentType === "application/grpc-web+json") {
        const trailer = grpcWebTrailer(res.body, new Headers(res.headers as Record<string, string>));
        assert.equal(trailer.get("grpc-status"), String(Code.ResourceExhausted));
      } else if (c.stream) {
        const end = parseEnvelopes(res.body).find((f) => (f.flags & 0x02) === 0x02);
        assert.ok(end);
        const json = JSON.parse(new TextDecoder().decode(end.data)) as { error?: { code: string } };
        assert.equal(json.error?.code, "resource_exhausted");
      } else {
        assert.equal(res.status, 429);
      }
    }

    for (const contentType of ["application/connect+json", "application/grpc-web+json", "application/grpc+json"]) {
      void it(`h2c, ${contentType}: the unread stream ends and the session goes on serving`, async () => {
        const session = http2.connect(h.baseUrl);
        try {
          const ask = (json: string) =>
            new Promise<{ rstCode: number | undefined; bytes: number; grpcStatus: unknown }>((resolve, reject) => {
              const req = session.request({
                ":method": "POST",
                ":path": watchPath,
                "content-type": contentType,
                "connect-protocol-version": "1",
                te: "trailers",
              });
              let bytes = 0;
              let grpcStatus: unknown;
              const take = (headers: http2.IncomingHttpHeaders) => (grpcStatus ??= headers["grpc-status"]);
              req.on("response", take);
              req.on("trailers", take);
              req.on("data", (chunk: Buffer) => (bytes += chunk.length));
              req.on("error", reject);
              req.on("close", () => resolve({ rstCode: req.rstCode, bytes, grpcStatus }));
              req.end(envelope(0, new TextEncoder().encode(json)));
            });
          for (const size of [drainable, tooLarge]) {
            const big = await ask(JSON.stringify(bigWatch(size)));
            assert.equal(big.rstCode, http2.constants.NGHTTP2_NO_ERROR, "ended without an error code");
            // gRPC answers in trailers only; the others in the body.
            assert.ok(
              big.bytes > 0 || big.grpcStatus === String(Code.ResourceExhausted),
              "the error answer came first",
            );
            const next = await ask('{"endpointId":"ep_1"}');
            assert.equal(next.rstCode, http2.constants.NGHTTP2_NO_ERROR);
            assert.ok(next.bytes > 0, "the next stream is answered");
          }
        } finally {
          session.close();
        }
      });
    }
  });
});

void describe("graceful shutdown", () => {
  void it("ends long-lived streams cleanly, lets in-flight calls finish, then resolves", async () => {
    const h = await startHarness();
    const clients = [
      createClient(WatchService, createGrpcTransport({ baseUrl: h.baseUrl })),
      createClient(WatchService, createConnectTransport({ baseUrl: h.baseUrl, httpVersion: "1.1" })),
      createClient(WatchService, createConnectTransport({ baseUrl: h.baseUrl, httpVersion: "2" })),
      createClient(WatchService, createGrpcWebTransport({ baseUrl: h.baseUrl, httpVersion: "1.1" })),
    ];
    const streams = await Promise.all(
      clients.map(async (client) => {
        const it = client.watchDeliveries({ endpointId: "ep_wait" })[Symbol.asyncIterator]();
        const first = await it.next();
        if (first.done === true) assert.fail("the stream ended before its first item");
        assert.equal(first.value.resumeToken, "rt_1");
        return it;
      }),
    );
    const admin = createClient(AdminService, createConnectTransport({ baseUrl: h.baseUrl, httpVersion: "1.1" }));
    const inFlight = admin.createWorkspace({ name: "slow" });
    await h.slow.entered.promise;

    const closed = h.server.close(60_000);
    assert.equal(h.server.shutdownSignal.aborted, true);
    for (const it of streams) {
      const next = await it.next(); // ends without an error
      assert.equal(next.done, true);
    }
    h.slow.release.resolve();
    assert.equal((await inFlight).workspace?.name, "slow");
    await closed;
    assert.equal(h.server.close(0), closed, "a second close returns the same promise");
    await assert.rejects(fetch(h.baseUrl + "/healthz"), "no new connections after close");
  });

  void it("cuts what is still running when the grace period is over", async () => {
    const h = await startHarness();
    const watch = createClient(WatchService, createGrpcTransport({ baseUrl: h.baseUrl }));
    const it = watch.watchDeliveries({ endpointId: "ep_stubborn" })[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done === true) assert.fail("the stream ended before its first item");
    assert.equal(first.value.resumeToken, "rt_1");
    const rest = it.next();
    await h.server.close(10);
    const err = await rejection(rest);
    assert.ok(err.code !== Code.Unimplemented, `the cut stream fails: ${err.message}`);
  });
});

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

function parseEnvelopes(bytes: Uint8Array): Array<{ flags: number; data: Uint8Array }> {
  const frames: Array<{ flags: number; data: Uint8Array }> = [];
  let offset = 0;
  while (offset + 5 <= bytes.length) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + offset + 1, 4).getUint32(0);
    frames.push({ flags: bytes[offset] ?? 0, data: bytes.subarray(offset + 5, offset + 5 + len) });
    offset += 5 + len;
  }
  return frames;
}

// gRPC-Web sends the status in a trailer frame, or in the headers for a trailers-only answer.
function grpcWebTrailer(body: Uint8Array, headers: Headers): Headers {
  const trailer = new Headers();
  const frame = parseEnvelopes(body).find((f) => (f.flags & 0x80) === 0x80);
  if (frame === undefined) {
    for (const name of ["grpc-status", "grpc-message"]) {
      const v = headers.get(name);
      if (v !== null) trailer.set(name, v);
    }
    return trailer;
  }
  for (const line of new TextDecoder().decode(frame.data).split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) trailer.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return trailer;
}

interface H1Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Uint8Array;
  /** The client port of the connection that answered. */
  localPort: number | undefined;
}

// One POST through a keep-alive agent; the answer may come before the server read the body.
function h1Post(agent: http.Agent, url: string, contentType: string, body: Uint8Array): Promise<H1Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      url,
      { method: "POST", agent, headers: { "content-type": contentType, "connect-protocol-version": "1" } },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        const localPort = res.socket.localPort;
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), localPort }),
        );
        res.on("error", reject);
      },
    );
    // A server that stops reading a body too large to drain closes the connection under it.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    req.end(body);
  });
}

// A hand-made gRPC call over h2c, to send bytes no real client would.
async function rawGrpc(baseUrl: string, path: string, body: Uint8Array): Promise<Map<string, string>> {
  const session = http2.connect(baseUrl);
  try {
    return await new Promise((resolve, reject) => {
      const status = new Map<string, string>();
      const req = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc+proto",
        te: "trailers",
      });
      const take = (h: http2.IncomingHttpHeaders) => {
        for (const name of ["grpc-status", "grpc-message"]) {
          const v = h[name];
          if (typeof v === "string") status.set(name, v);
        }
      };
      req.on("response", take);
      req.on("trailers", take);
      req.on("data", () => undefined);
      req.on("end", () => resolve(status));
      req.on("error", reject);
      req.end(body);
    });
  } finally {
    session.close();
  }
}
