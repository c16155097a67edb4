/**
 * A web page on another origin uses Hookstream through `@connectrpc/connect-web`, in headless
 * Chromium (Debian's `chromium`, driven by playwright-core): CORS preflights, unary calls with an
 * API key in the Authorization header over Connect JSON and gRPC-Web binary, errors whose Connect
 * code and ErrorDetail reason the page decodes itself, and a server-streaming WatchDeliveries until
 * the page's delivery SUCCEEDED. Then an api that allows only another origin: the browser blocks
 * the page's call. The browser entry is test/browser/page.ts, bundled with esbuild at test time.
 *
 * test-pass: first only: scripts/test.sh runs it in the SQLite pass alone, because
 * the page is a client: the server it talks to is proven on both databases by the other files
 * (HOOKSTREAM_TEST_DB=postgresql runs it on PostgreSQL).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { newId } from "../src/domain/ids.ts";
import type { CallFailure, PageGlobal, PageTarget, SendOutcome, WatchOutcome, WebProtocol } from "./browser/page.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Stack } from "./support/stack.ts";

/** Debian's chromium; never a browser downloaded by a test tool. */
const CHROMIUM = "/usr/bin/chromium";
/**
 * The flags Chromium needs on these machines (no GPU, closed network, no background traffic).
 * playwright-core also passes --headless and --no-sandbox itself, and a fresh --user-data-dir.
 */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PROTOCOLS: readonly WebProtocol[] = ["connect", "grpc-web"];

const here = dirname(fileURLToPath(import.meta.url));
const skip = existsSync(CHROMIUM)
  ? false
  : `Debian's chromium is not installed at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;

/** Bundles test/browser/page.ts for the browser into `dir` with an index.html that loads it. */
async function bundlePage(dir: string): Promise<void> {
  await build({
    entryPoints: [join(here, "browser", "page.ts")],
    outfile: join(dir, "page.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "silent",
  });
  await writeFile(
    join(dir, "index.html"),
    '<!doctype html>\n<meta charset="utf-8">\n<title>Hookstream from another origin</title>\n<script type="module" src="/page.js"></script>\n',
  );
}

/** A static server for the bundle on its own port: an origin other than the api's. */
async function servePage(dir: string): Promise<{ origin: string; server: Server }> {
  const files: Record<string, { file: string; type: string }> = {
    "/": { file: "index.html", type: "text/html; charset=utf-8" },
    "/page.js": { file: "page.js", type: "text/javascript; charset=utf-8" },
  };
  const server = createServer((req, res) => {
    const entry = files[new URL(req.url ?? "/", "http://page").pathname];
    if (entry === undefined) {
      res.writeHead(404).end();
      return;
    }
    readFile(join(dir, entry.file)).then(
      (body) => res.writeHead(200, { "content-type": entry.type, "cache-control": "no-store" }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

// page.evaluate serializes these callbacks into the page: they may use only their arguments.
const sendAndRead = (page: Page, target: PageTarget, protocol: WebProtocol, eventType: string): Promise<SendOutcome> =>
  page.evaluate(([t, p, e]) => (globalThis as unknown as PageGlobal).hookstreamPage.sendAndRead(t, p, e), [
    target,
    protocol,
    eventType,
  ] as const);
const getMessageFailure = (
  page: Page,
  target: PageTarget,
  protocol: WebProtocol,
  id: string,
): Promise<CallFailure | undefined> =>
  page.evaluate(([t, p, i]) => (globalThis as unknown as PageGlobal).hookstreamPage.getMessageFailure(t, p, i), [
    target,
    protocol,
    id,
  ] as const);
const watchUntilSucceeded = (page: Page, target: PageTarget, protocol: WebProtocol): Promise<WatchOutcome> =>
  page.evaluate(([t, p]) => (globalThis as unknown as PageGlobal).hookstreamPage.watchUntilSucceeded(t, p, 2_000), [
    target,
    protocol,
  ] as const);

for (const kind of testDbKinds()) {
  void describe(`a browser page on another origin, connect-web, on ${kind}`, { skip, timeout: 240_000 }, () => {
    let dir = "";
    let pageServer: Server | undefined;
    let pageOrigin = "";
    let receiver: Receiver | undefined;
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let stack: Stack | undefined;
    let blockedStack: Stack | undefined;
    let browser: Browser | undefined;
    let page: Page;
    let target: PageTarget;
    const consoleLines: string[] = [];
    /** A message the page sent, for the control call of the blocked case. */
    let sentMessageId = "";

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "hookstream-browser-"));
      await bundlePage(dir);
      ({ origin: pageOrigin, server: pageServer } = await servePage(dir));
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: { HOOKSTREAM_CORS_ORIGINS: pageOrigin },
      });

      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "browser" });
      const management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "browser page" });
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks/browser` } });
      target = { baseUrl: stack.apiUrl, apiKey: key.secret, endpointId: ep.endpoint?.id ?? "" };

      // launch() gives Chromium a fresh temporary --user-data-dir of its own (it refuses one in args).
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        chromiumSandbox: false,
        args: CHROMIUM_ARGS,
      });
      page = await browser.newPage();
      page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
      page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
      await page.goto(`${pageOrigin}/`);
      await page.waitForFunction(() => "hookstreamPage" in globalThis, undefined, { timeout: 30_000 });
    });

    after(async () => {
      await browser?.close();
      blockedStack?.destroy();
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
      await new Promise<void>((resolve) => (pageServer === undefined ? resolve() : pageServer.close(() => resolve())));
      if (dir !== "") await rm(dir, { recursive: true, force: true });
    });

    void it("sends with an API key and reads it back over Connect JSON and gRPC-Web, cross-origin", async () => {
      assert.notEqual(new URL(target.baseUrl).origin, pageOrigin, "the page and the api are different origins");
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as { location: { origin: string } }).location.origin),
        pageOrigin,
      );
      for (const protocol of PROTOCOLS) {
        const out = await sendAndRead(page, target, protocol, `browser.${protocol}`);
        assert.ok(out.ok, `${protocol}: ${JSON.stringify(out)}`);
        assert.match(out.messageId, /^msg_/);
        assert.match(out.deliveryId, /^dlv_/);
        assert.deepEqual(out.readBack, {
          id: out.messageId,
          eventType: `browser.${protocol}`,
          deliveryIds: [out.deliveryId],
        });
        assert.ok(receiver !== undefined);
        const r = receiver;
        await r.waitFor(() => r.byId(out.deliveryId).length > 0, 30_000, `the ${protocol} delivery`);
        const delivered = JSON.parse(r.byId(out.deliveryId)[0]?.body.toString("utf8") ?? "null") as unknown;
        assert.deepEqual(delivered, { from: "browser", protocol, eventType: `browser.${protocol}` });
        sentMessageId = out.messageId;
      }
    });

    void it("streams WatchDeliveries to the page until its delivery SUCCEEDED", async () => {
      for (const protocol of PROTOCOLS) {
        const out = await watchUntilSucceeded(page, target, protocol);
        assert.equal(out.streamError, undefined, `${protocol}: ${JSON.stringify(out.streamError)}`);
        assert.notEqual(out.succeeded, "", `${protocol}: no sent delivery seen SUCCEEDED: ${JSON.stringify(out)}`);
        assert.ok(out.sent.includes(out.succeeded));
        assert.ok(out.heartbeats >= 1, `${protocol}: the stream starts with a heartbeat`);
        const statuses = out.items.filter((i) => i.deliveryId === out.succeeded).map((i) => i.status);
        assert.equal(statuses.at(-1), "SUCCEEDED", `${protocol}: ${statuses.join(" → ")}`);
        const lifecycle = out.items.filter((i) => i.deliveryId === out.followUp).map((i) => i.status);
        assert.equal(lifecycle[0], "QUEUED", `${protocol}: follow-up ${lifecycle.join(" → ")}`);
        assert.equal(lifecycle.at(-1), "SUCCEEDED", `${protocol}: follow-up ${lifecycle.join(" → ")}`);
        for (const item of out.items) {
          assert.equal(item.endpointId, target.endpointId, "the stream is filtered to the endpoint");
          assert.notEqual(item.resumeToken, "", "every item carries a resume token");
        }
      }
    });

    void it("reads the Connect code and the ErrorDetail reason of errors in the page", async () => {
      for (const protocol of PROTOCOLS) {
        const unknown = await getMessageFailure(page, target, protocol, newId("message"));
        assert.ok(unknown !== undefined, `${protocol}: GetMessage of an unknown id succeeded`);
        assert.equal(unknown.code, Code.NotFound, `${protocol}: ${JSON.stringify(unknown)}`);
        assert.equal(unknown.codeName, "NotFound");
        assert.deepEqual(unknown.reasons, ["MESSAGE_NOT_FOUND"], protocol);

        const malformed = await getMessageFailure(page, target, protocol, "msg_not-an-id");
        assert.ok(malformed !== undefined, `${protocol}: GetMessage of a malformed id succeeded`);
        assert.equal(malformed.code, Code.InvalidArgument, `${protocol}: ${JSON.stringify(malformed)}`);
        assert.deepEqual(malformed.reasons, ["INVALID_ARGUMENT"], protocol);
        assert.deepEqual(malformed.fields, ["id"], protocol);

        const { apiKey: _key, ...anonymous } = target;
        const unauthenticated = await getMessageFailure(page, anonymous, protocol, newId("message"));
        assert.ok(unauthenticated !== undefined, `${protocol}: GetMessage without credentials succeeded`);
        assert.equal(unauthenticated.code, Code.Unauthenticated, `${protocol}: ${JSON.stringify(unauthenticated)}`);
        assert.deepEqual(unauthenticated.reasons, ["MISSING_CREDENTIALS"], protocol);
      }
    });

    void it("is blocked by the browser when the api allows only another origin", async () => {
      assert.ok(database !== undefined && nats !== undefined);
      // Only an api, on the same database and NATS, allowing another origin than the page's.
      blockedStack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        roles: ["api"],
        migrate: false,
        env: { HOOKSTREAM_CORS_ORIGINS: "https://console.example.com" },
      });
      assert.notEqual(sentMessageId, "", "the first test sent a message");
      const blocked = { ...target, baseUrl: blockedStack.apiUrl };
      const before = consoleLines.length;

      const out = await sendAndRead(page, blocked, "connect", "browser.blocked");
      assert.equal(out.ok, false, `the call from ${pageOrigin} succeeded: ${JSON.stringify(out)}`);
      assert.ok(!out.ok);
      // fetch() rejects without a response: no server code reaches the page.
      assert.equal(out.error.code, Code.Unknown, JSON.stringify(out.error));
      assert.match(out.error.rawMessage, /fetch/i);
      assert.ok(
        consoleLines.slice(before).some((line) => /CORS policy/.test(line)),
        `Chromium reports the CORS block: ${JSON.stringify(consoleLines.slice(before))}`,
      );

      // The api itself is up and the key is good: Node (no CORS) gets through, and the
      // preflight answer for the page's origin carries no Access-Control-Allow-Origin.
      const fromNode = createClients(blockedStack.apiUrl, target.apiKey);
      const read = await fromNode.messages.getMessage({ id: sentMessageId });
      assert.equal(read.message?.id, sentMessageId);
      const preflight = await fetch(`${blockedStack.apiUrl}/hookstream.v1.MessageService/Send`, {
        method: "OPTIONS",
        headers: {
          origin: pageOrigin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization,content-type,connect-protocol-version",
        },
      });
      await preflight.arrayBuffer();
      assert.equal(preflight.headers.get("access-control-allow-origin"), null);

      await blockedStack.stopAll();
    });
  });
}
