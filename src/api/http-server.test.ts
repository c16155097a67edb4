import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import pino from "pino";
import { startHttpServer, type HttpServer, type ReadinessReport } from "./http-server.ts";

const logger = pino({ level: "silent" });

/** Writes `chunks` one event-loop turn apart and collects the whole answer until the peer closes. */
async function rawExchange(port: number, chunks: Array<string | Buffer>): Promise<string> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  let answer = "";
  socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
  const done = new Promise<void>((resolve, reject) => {
    socket.once("close", () => resolve());
    socket.once("error", reject);
  });
  for (const chunk of chunks) {
    socket.write(chunk);
    await tick();
  }
  await done;
  return answer;
}

void describe("startHttpServer connection routing", () => {
  let server: HttpServer;
  let readiness: () => Promise<ReadinessReport>;
  before(async () => {
    server = await startHttpServer({
      host: "127.0.0.1",
      port: 0,
      routes: () => undefined,
      corsOrigins: [],
      readMaxBytes: 1024,
      ready: () => readiness(),
      logger,
    });
  });
  after(() => server.close(1000));

  void it("routes HTTP/1.1 that arrives a byte at a time", async () => {
    const request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const answer = await rawExchange(server.port, [...request]);
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /\{"status":"ok"\}$/);
  });

  void it("routes HTTP/1.1 starting with bytes of the HTTP/2 preface ('P' of POST/PUT)", async () => {
    const answer = await rawExchange(server.port, [
      "P",
      "RI-not-h2 /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    assert.match(answer, /^HTTP\/1\.1 (404|400)/);
  });

  void it("serves several requests on one keep-alive HTTP/1.1 connection", async () => {
    const one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const last = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    const answer = await rawExchange(server.port, [one, one + last]);
    assert.equal(answer.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
    assert.match(answer, /HTTP\/1\.1 404 Not Found/);
  });

  void it("answers a client that half-closes right after its request", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.end("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await closed;
    assert.match(answer, /^HTTP\/1\.1 200 OK[\s\S]*\{"status":"ok"\}$/);
  });

  void it("routes h2c whose preface arrives split", async () => {
    // A client whose socket we control: hand http2.connect a pre-made socket that dribbles.
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    const write = socket.write.bind(socket) as (chunk: Buffer, cb?: (err?: Error | null) => void) => boolean;
    let first = true;
    socket.write = ((chunk: Buffer, ...rest: Array<(err?: Error | null) => void>) => {
      if (first && Buffer.isBuffer(chunk) && chunk.length > 3) {
        first = false;
        write(chunk.subarray(0, 3));
        return write(chunk.subarray(3), ...rest);
      }
      return write(chunk, ...rest);
    }) as typeof socket.write;
    const session = http2.connect(`http://127.0.0.1:${server.port}`, { createConnection: () => socket });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        let text = "";
        req.setEncoding("utf8");
        req.on("data", (d: string) => (text += d));
        req.on("end", () => resolve(text));
        req.on("error", reject);
        req.end();
      });
      assert.equal(body, '{"status":"ok"}');
    } finally {
      session.close();
    }
  });

  void it("answers /readyz with 503 when the probe throws, 405 for a POST, and supports HEAD", async () => {
    readiness = () => Promise.reject(new Error("db down"));
    const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { ok: false, checks: { probe: "failed" } });
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`, { method: "HEAD" })).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status, 404, "no metrics function given");
  });
});

void describe("startHttpServer listen errors", () => {
  void it("rejects when the port is taken", async () => {
    const first = await startHttpServer({
      host: "127.0.0.1",
      port: 0,
      routes: () => undefined,
      corsOrigins: [],
      readMaxBytes: 1024,
      ready: async () => ({ ok: true, checks: {} }),
      logger,
    });
    try {
      await assert.rejects(
        startHttpServer({
          host: "127.0.0.1",
          port: first.port,
          routes: () => undefined,
          corsOrigins: [],
          readMaxBytes: 1024,
          ready: async () => ({ ok: true, checks: {} }),
          logger,
        }),
        /EADDRINUSE/,
      );
    } finally {
      await first.close(0);
    }
  });
});

void describe("HttpServer.close", () => {
  void it("closes idle keep-alive and not-yet-routed connections and resolves", async () => {
    const server = await startHttpServer({
      host: "127.0.0.1",
      port: 0,
      routes: () => undefined,
      corsOrigins: ["*"],
      readMaxBytes: 1024,
      ready: async () => ({ ok: true, checks: {} }),
      logger,
    });
    const silent = net.connect(server.port, "127.0.0.1"); // connects, never speaks
    const idle = net.connect(server.port, "127.0.0.1");
    await Promise.all([silent, idle].map((s) => new Promise((resolve) => s.once("connect", resolve))));
    const gotResponse = new Promise((resolve) => idle.once("data", resolve));
    idle.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await gotResponse;
    const closedByServer = [silent, idle].map((s) => new Promise((resolve) => s.once("close", resolve)));
    silent.on("error", () => undefined);
    idle.on("error", () => undefined);
    await server.close(60_000);
    await Promise.all(closedByServer);
  });
});
