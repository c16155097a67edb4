import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type { LookupAddress } from "node:dns";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createGuardedLookup, createHttpSender, parseRetryAfter } from "./http-sender.ts";
import type { HttpSender, OutboundRequest, Resolver } from "./http-sender.ts";
import { createOutboundPolicy } from "./outbound-policy.ts";

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

interface TestServer {
  port: number;
  origin: string;
  connections: number;
  requests: Received[];
  close(): Promise<void>;
}

async function startServer(handler: RequestListener, host = "127.0.0.1"): Promise<TestServer> {
  const server = createServer(handler);
  return track(server, host, "http");
}

async function track(
  server: Server & { closeAllConnections(): void },
  host: string,
  scheme: string,
): Promise<TestServer> {
  const state: TestServer = {
    port: 0,
    origin: "",
    connections: 0,
    requests: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on("connection", () => (state.connections += 1));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.origin = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${state.port}`;
  return state;
}

/** A handler that records each request, then answers with `respond`. */
function recording(
  requests: () => Received[],
  respond: (req: IncomingMessage, res: ServerResponse) => void,
): RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests().push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      respond(req, res);
    });
  };
}

async function serve(respond: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const requests: Received[] = [];
  const s = await startServer(recording(() => requests, respond));
  s.requests = requests;
  return s;
}

const loopbackPolicy = createOutboundPolicy(["127.0.0.0/8", "::1/128"]);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const post = (url: string, extra: Partial<OutboundRequest> = {}): OutboundRequest => ({
  url,
  headers: { "content-type": "application/json" },
  body: utf8('{"hello":"world"}'),
  timeoutMs: 5000,
  ...extra,
});

void describe("createHttpSender against local servers", () => {
  let sender: HttpSender;
  const servers: TestServer[] = [];
  const keep = (s: TestServer): TestServer => (servers.push(s), s);
  before(() => {
    sender = createHttpSender({ policy: loopbackPolicy });
  });
  after(async () => {
    await sender.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  void it("POSTs the exact body with content-length and user-agent, and records a 2xx", async () => {
    const s = keep(
      await serve((_req, res) => {
        res.setHeader("X-Answer", "42");
        res.setHeader("Set-Cookie", ["a=1", "b=2"]);
        res.writeHead(200, { "content-type": "text/plain" }).end("thanks ✓");
      }),
    );
    const body = utf8('{"name":"Zoë 🚀"}');
    const r = await sender.send({
      url: `${s.origin}/hooks/in?x=1#frag`,
      headers: { "Content-Type": "application/json", "webhook-id": "msg_1", Host: "evil.example", Connection: "close" },
      body,
      timeoutMs: 5000,
    });
    assert.equal(r.status, 200);
    assert.equal(r.ok, true);
    assert.equal(r.errorKind, null);
    assert.equal(r.errorMessage, "");
    assert.equal(r.body, "thanks ✓");
    assert.equal(r.headers["x-answer"], "42");
    assert.equal(r.headers["set-cookie"], "a=1, b=2");
    assert.equal(r.headers["content-type"], "text/plain");
    assert.equal(r.retryAfterMs, undefined);
    assert.ok(r.latencyMs >= 0);

    const got = s.requests[0];
    assert.ok(got !== undefined);
    assert.equal(got.method, "POST");
    assert.equal(got.url, "/hooks/in?x=1");
    assert.deepEqual(new Uint8Array(got.body), body);
    assert.equal(got.headers["content-length"], String(body.byteLength));
    assert.equal(got.headers["user-agent"], "Hookstream/0.1");
    assert.equal(got.headers["content-type"], "application/json");
    assert.equal(got.headers["webhook-id"], "msg_1");
    // Transport headers come from the URL and the pool, never from the caller.
    assert.equal(got.headers.host, `127.0.0.1:${s.port}`);
    assert.notEqual(got.headers.connection, "close");
  });

  void it("reuses keep-alive connections per origin across sends", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(204).end()));
    for (let i = 0; i < 10; i++) {
      const r = await sender.send(post(`${s.origin}/`));
      assert.equal(r.status, 204);
      assert.equal(r.ok, true);
    }
    assert.equal(s.requests.length, 10);
    // The pool may open a second socket while the first is still being released; never one per send.
    assert.ok(s.connections <= 2, `${s.connections} connections for 10 sequential sends`);

    const single = createHttpSender({ policy: loopbackPolicy, connectionsPerOrigin: 1 });
    const t = keep(await serve((_req, res) => res.writeHead(200).end("ok")));
    try {
      await Promise.all(Array.from({ length: 10 }, () => single.send(post(`${t.origin}/`))));
    } finally {
      await single.close();
    }
    assert.equal(t.requests.length, 10);
    assert.equal(t.connections, 1);
  });

  void it("uses the configured user-agent unless the request names one", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(200).end()));
    const custom = createHttpSender({ policy: loopbackPolicy, userAgent: "Custom/1.0" });
    try {
      await custom.send(post(`${s.origin}/`));
      await custom.send(post(`${s.origin}/`, { headers: { "User-Agent": "Receiver-Specific" } }));
    } finally {
      await custom.close();
    }
    assert.equal(s.requests[0]?.headers["user-agent"], "Custom/1.0");
    assert.equal(s.requests[1]?.headers["user-agent"], "Receiver-Specific");
  });

  void it("classifies a 500 as http_status and keeps its body", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(500).end("boom")));
    const r = await sender.send(post(`${s.origin}/`));
    assert.equal(r.status, 500);
    assert.equal(r.ok, false);
    assert.equal(r.errorKind, "http_status");
    assert.match(r.errorMessage, /500/);
    assert.equal(r.body, "boom");
  });

  void it("reads Retry-After as delta-seconds on a 429", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(429, { "retry-after": "3" }).end()));
    const r = await sender.send(post(`${s.origin}/`));
    assert.equal(r.status, 429);
    assert.equal(r.errorKind, "http_status");
    assert.equal(r.retryAfterMs, 3000);
  });

  void it("reads Retry-After as an HTTP-date on a 429", async () => {
    const now = Date.UTC(2026, 0, 2, 3, 4, 5);
    const s = keep(
      await serve((_req, res) => res.writeHead(429, { "retry-after": new Date(now + 90_000).toUTCString() }).end()),
    );
    const clocked = createHttpSender({ policy: loopbackPolicy, now: () => now });
    try {
      const r = await clocked.send(post(`${s.origin}/`));
      assert.equal(r.status, 429);
      assert.equal(r.retryAfterMs, 90_000);
    } finally {
      await clocked.close();
    }
  });

  void it("does not follow a 302: the redirect target receives nothing", async () => {
    const target = keep(await serve((_req, res) => res.writeHead(200).end()));
    const s = keep(await serve((_req, res) => res.writeHead(302, { location: `${target.origin}/landing` }).end()));
    const r = await sender.send(post(`${s.origin}/`));
    assert.equal(r.status, 302);
    assert.equal(r.ok, false);
    assert.equal(r.errorKind, "http_status");
    assert.equal(r.headers.location, `${target.origin}/landing`);
    assert.equal(target.requests.length, 0);
    assert.equal(target.connections, 0);
  });

  void it("times out when headers never come", async () => {
    const s = keep(await serve(() => undefined));
    const r = await sender.send(post(`${s.origin}/`, { timeoutMs: 200 }));
    assert.equal(r.status, 0);
    assert.equal(r.ok, false);
    assert.equal(r.errorKind, "timeout");
    assert.match(r.errorMessage, /200 ms/);
  });

  void it("times out when the body trickles after prompt headers", async () => {
    const timers: NodeJS.Timeout[] = [];
    const s = keep(
      await serve((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("a");
        timers.push(setInterval(() => res.write("a"), 20));
        res.on("close", () => timers.forEach(clearInterval));
      }),
    );
    const r = await sender.send(post(`${s.origin}/`, { timeoutMs: 300 }));
    timers.forEach(clearInterval);
    assert.equal(r.errorKind, "timeout");
    assert.equal(r.ok, false);
    assert.equal(r.status, 200);
    assert.match(r.body, /^a+$/);
  });

  void it("cuts a 10 MB body at the limit and drops the connection instead of buffering it", async () => {
    const total = 10 * 1024 * 1024;
    let handedToSocket = 0;
    let finished = false;
    let notifyClosed: () => void = () => undefined;
    const serverSawClose = new Promise<void>((resolve) => (notifyClosed = resolve));
    const s = keep(
      await serve((_req, res) => {
        const chunk = Buffer.alloc(64 * 1024, "x");
        res.writeHead(200, { "content-type": "text/plain", "content-length": String(total) });
        res.on("close", () => {
          finished = res.writableFinished;
          notifyClosed();
        });
        const pump = (): void => {
          while (handedToSocket < total && !res.destroyed) {
            handedToSocket += chunk.length;
            if (!res.write(chunk)) {
              res.once("drain", pump);
              return;
            }
          }
          if (!res.destroyed) res.end();
        };
        pump();
      }),
    );
    const r = await sender.send(post(`${s.origin}/`));
    await serverSawClose;
    assert.equal(r.status, 200);
    assert.equal(r.ok, true);
    assert.equal(r.body.length, 4096);
    assert.match(r.body, /^x+$/);
    assert.equal(finished, false, "the server must see the connection close before it finished writing");
    assert.ok(handedToSocket < total, `server wrote ${handedToSocket} of ${total} bytes before the client hung up`);
  });

  void it("honours a custom maxResponseBytes and decodes a cut multi-byte character leniently", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(200).end("ab€cd")));
    const small = createHttpSender({ policy: loopbackPolicy, maxResponseBytes: 3 });
    try {
      const r = await small.send(post(`${s.origin}/`));
      assert.equal(r.body, "ab\uFFFD");
    } finally {
      await small.close();
    }
  });

  void it("classifies a response head beyond the header limit as response_too_large", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(200, { "x-filler": "a".repeat(64 * 1024) }).end("ok")));
    const r = await sender.send(post(`${s.origin}/`));
    assert.equal(r.ok, false);
    assert.equal(r.errorKind, "response_too_large");
    assert.notEqual(r.errorMessage, "");
  });

  void it("classifies a connection reset mid-exchange as connect", async () => {
    const s = keep(await serve((req) => req.socket.destroy()));
    const r = await sender.send(post(`${s.origin}/`));
    assert.equal(r.status, 0);
    assert.equal(r.errorKind, "connect");
    assert.notEqual(r.errorMessage, "");
  });

  void it("classifies a closed port as connect", async () => {
    const s = await startServer((_req, res) => res.end());
    const closedOrigin = s.origin;
    await s.close();
    const r = await sender.send(post(`${closedOrigin}/`));
    assert.equal(r.status, 0);
    assert.equal(r.errorKind, "connect");
    assert.match(r.errorMessage, /ECONNREFUSED/);
  });

  void it("classifies an unresolvable host as dns", async () => {
    const r = await sender.send(post("http://nonexistent.invalid/"));
    assert.equal(r.status, 0);
    assert.equal(r.errorKind, "dns");
    assert.match(r.errorMessage, /nonexistent\.invalid/);
  });

  void it("connects through the guarded lookup to the address it checked", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(200).end("via lookup")));
    const asked: string[] = [];
    const resolve: Resolver = (hostname, _opts, cb) => {
      asked.push(hostname);
      cb(null, [{ address: "127.0.0.1", family: 4 }]);
    };
    const viaName = createHttpSender({ policy: loopbackPolicy, resolve });
    try {
      const r = await viaName.send(post(`http://hooks.test:${s.port}/`));
      assert.equal(r.body, "via lookup");
      assert.equal(s.requests[0]?.headers.host, `hooks.test:${s.port}`);
    } finally {
      await viaName.close();
    }
    assert.deepEqual(asked, ["hooks.test"]);
  });

  void it("delivers to localhost by name when loopback is allow-listed", async () => {
    const s = keep(await serve((_req, res) => res.writeHead(200).end()));
    const r = await sender.send(post(`http://localhost:${s.port}/`));
    assert.equal(r.errorKind, null);
    assert.equal(r.status, 200);
  });
});

void describe("createHttpSender TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "hookstream-tls-"));
  let cert: { key: Buffer; cert: Buffer } | undefined;
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    cert = { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } catch {
    cert = undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  void it(
    "refuses a self-signed certificate as tls",
    { skip: cert === undefined ? "openssl not available" : false },
    async () => {
      assert.ok(cert !== undefined);
      const requests: Received[] = [];
      const s = await track(
        createHttpsServer(
          cert,
          recording(
            () => requests,
            (_req, res) => res.end("secret"),
          ),
        ),
        "127.0.0.1",
        "https",
      );
      const sender = createHttpSender({ policy: loopbackPolicy });
      try {
        const r = await sender.send(post(`${s.origin}/`));
        assert.equal(r.status, 0);
        assert.equal(r.errorKind, "tls");
        assert.match(r.errorMessage, /self[- ]signed/i);
        assert.equal(s.connections, 1);
        assert.equal(requests.length, 0);
      } finally {
        await sender.close();
        await s.close();
      }
    },
  );
});

void describe("createHttpSender SSRF refusals (default policy)", () => {
  let listener: TestServer;
  let sender: HttpSender;
  before(async () => {
    // A dual-stack listener when IPv6 exists, so [::1] would have somewhere real to land.
    listener = await startServer((_req, res) => res.end("reached")).then(async (v4) => {
      try {
        const dual = await startServer((_req, res) => res.end("reached"), "::");
        await v4.close();
        return dual;
      } catch {
        return v4;
      }
    });
    sender = createHttpSender({ policy: createOutboundPolicy([]) });
  });
  after(async () => {
    await sender.close();
    await listener.close();
  });

  const cases = (port: () => number): ReadonlyArray<readonly [string, () => string]> => [
    ["127.0.0.1", () => `http://127.0.0.1:${port()}/`],
    ["localhost", () => `http://localhost:${port()}/`],
    ["[::1]", () => `http://[::1]:${port()}/`],
    ["decimal 2130706433", () => `http://2130706433:${port()}/`],
    ["hex 0x7f.1", () => `http://0x7f.1:${port()}/`],
    ["trailing dot 127.0.0.1.", () => `http://127.0.0.1.:${port()}/`],
    ["IPv4-mapped [::ffff:127.0.0.1]", () => `http://[::ffff:127.0.0.1]:${port()}/`],
    ["metadata 169.254.169.254", () => "http://169.254.169.254/latest/meta-data/"],
    ["private 10.0.0.1", () => "https://10.0.0.1/hook"],
  ];
  for (const [name, url] of cases(() => listener.port)) {
    void it(`refuses ${name} without connecting`, async () => {
      const r = await sender.send(post(url()));
      assert.equal(r.errorKind, "refused_by_policy", r.errorMessage);
      assert.equal(r.status, 0);
      assert.equal(r.ok, false);
      assert.match(r.errorMessage, /refused/);
      assert.equal(listener.connections, 0);
    });
  }

  void it("refuses a name whose answers include one private address", async () => {
    const resolve: Resolver = (_h, _o, cb) =>
      cb(null, [
        { address: "93.184.216.34", family: 4 },
        { address: "127.0.0.1", family: 4 },
      ]);
    const guarded = createHttpSender({ policy: createOutboundPolicy([]), resolve });
    try {
      const r = await guarded.send(post(`http://rebind.test:${listener.port}/`));
      assert.equal(r.errorKind, "refused_by_policy");
      assert.match(r.errorMessage, /rebind\.test resolves to 127\.0\.0\.1 is refused: loopback/);
    } finally {
      await guarded.close();
    }
    assert.equal(listener.connections, 0);
  });

  void it("refuses schemes other than http and https, and malformed URLs", async () => {
    for (const url of ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "not a url"]) {
      const r = await sender.send(post(url));
      assert.equal(r.errorKind, "refused_by_policy", url);
      assert.equal(r.status, 0);
    }
  });
});

void describe("createGuardedLookup", () => {
  const answers: LookupAddress[] = [
    { address: "93.184.216.34", family: 4 },
    { address: "2606:2800:220:1:248:1893:25c8:1946", family: 6 },
  ];
  const fake: Resolver = (_h, _o, cb) => cb(null, answers);
  const lookup = createGuardedLookup(createOutboundPolicy([]), fake);

  void it("returns every checked address when asked for all, the first otherwise", async () => {
    const all = await new Promise<unknown>((resolve, reject) =>
      lookup("example.test", { all: true }, (err, addrs) => (err === null ? resolve(addrs) : reject(err))),
    );
    assert.deepEqual(all, answers);
    const one = await new Promise<unknown[]>((resolve, reject) =>
      lookup("example.test", {}, (err, addr, family) => (err === null ? resolve([addr, family]) : reject(err))),
    );
    assert.deepEqual(one, ["93.184.216.34", 4]);
  });

  void it("passes resolver errors through and treats an empty answer as ENOTFOUND", async () => {
    const failing = createGuardedLookup(createOutboundPolicy([]), (h, _o, cb) =>
      cb(Object.assign(new Error(`getaddrinfo EAI_AGAIN ${h}`), { code: "EAI_AGAIN" }), []),
    );
    const empty = createGuardedLookup(createOutboundPolicy([]), (_h, _o, cb) => cb(null, []));
    const codeOf = (fn: typeof lookup): Promise<unknown> =>
      new Promise((resolve) => fn("x.test", { all: true }, (err) => resolve(err?.code)));
    assert.equal(await codeOf(failing), "EAI_AGAIN");
    assert.equal(await codeOf(empty), "ENOTFOUND");
  });
});

void describe("parseRetryAfter", () => {
  const now = Date.UTC(2026, 5, 1, 12, 0, 0);
  void it("accepts delta-seconds and the three HTTP-date forms", () => {
    assert.equal(parseRetryAfter("0", now), 0);
    assert.equal(parseRetryAfter(" 120 ", now), 120_000);
    assert.equal(parseRetryAfter("Mon, 01 Jun 2026 12:00:30 GMT", now), 30_000);
    assert.equal(parseRetryAfter("Monday, 01-Jun-26 12:01:00 GMT", now), 60_000);
    assert.equal(parseRetryAfter("Mon Jun  1 12:00:10 2026", now), 10_000);
  });
  void it("floors past dates at zero and ignores absent, malformed or absurd values", () => {
    assert.equal(parseRetryAfter("Mon, 01 Jun 2026 11:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter(undefined, now), undefined);
    for (const bad of ["", "-5", "1.5", "soon", "2026-06-01T12:00:30Z", "1e3", String(8 * 24 * 3600)]) {
      assert.equal(parseRetryAfter(bad, now), undefined, bad);
    }
  });
});
