/**
 * `@hookstream/client` as another project gets it: built (src/client/build.ts), packed with
 * `npm pack`, installed from the tarball into a fresh temporary project (dependencies from the
 * local npm cache, else the registry), then
 * - its `.d.ts` type-check a TypeScript consumer under `strict`;
 * - a plain Node script (no TypeScript, configured by environment variables) drives a real stack;
 * - a page bundled by esbuild from the installed package (the browser build: connect-web, fetch,
 *   WebCrypto) runs in headless Chromium on another origin against the same stack.
 *
 * test-pass: first only: scripts/test.sh runs it in the SQLite pass alone, because
 * the package is a client: the server it talks to is proven on both databases by the other files
 * (HOOKSTREAM_TEST_DB=postgresql runs it on PostgreSQL).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { pinnedNode, startStack, type Stack } from "./support/stack.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CHROMIUM = "/usr/bin/chromium";
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

/** The consumer's Node script: plain JavaScript, everything from the environment. */
const NODE_SCRIPT = `
import { Hookstream, HookstreamManagement, HookstreamOperator, HookstreamError, rawJson } from "@hookstream/client";

await using operator = new HookstreamOperator(); // HOOKSTREAM_URL, HOOKSTREAM_ADMIN_TOKEN
const ws = await operator.workspaces.create("packaged");
await using management = new HookstreamManagement({ managementToken: ws.managementToken });
const key = await management.apiKeys.create("packaged producer");
const { endpoint, signingSecret } = await management.endpoints.create({ url: process.env.RECEIVER_URL });
await using producer = new Hookstream({ apiKey: key.secret, retry: true });
const sent = await producer.send(endpoint.id, { orderId: 12345678901234567890n }, { eventType: "order.paid" });
const raw = await producer.send(endpoint.id, rawJson('{"x": 1.0}'), { eventType: "order.raw" });
const read = await producer.messages.get(sent.messageId);
let notFound;
try {
  await producer.messages.get("msg_00000000000000000000000000");
} catch (err) {
  notFound = { sdkError: err instanceof HookstreamError, notFound: err.isNotFound(), reason: err.reason };
}
// Send responses also carry the quota as int64 (bigint), which JSON.stringify refuses: print the ids.
console.log(JSON.stringify({ endpointId: endpoint.id, signingSecret, sent: { messageId: sent.messageId, deliveryId: sent.deliveryId }, raw: { deliveryId: raw.deliveryId }, payloadJson: read.message.payloadJson, created: read.message.createTime instanceof Date, notFound }));
`;

/** A TypeScript consumer: must type-check against the shipped .d.ts. */
const TYPED_CONSUMER = `
import { Hookstream, HookstreamManagement, HookstreamError, DeliveryStatus, verifyWebhook, type Endpoint, type DeliveryEvent } from "@hookstream/client";
const producer = new Hookstream({ apiKey: "hsk_x", baseUrl: "http://127.0.0.1:1", timeout: "5s" });
const sent: { messageId: string; deliveryId: string; replayed: boolean } = await producer.send("ep_1", { a: 1n }, { eventType: "t", deliverIn: "5m" });
const m = new HookstreamManagement({ managementToken: "t" });
const e: Endpoint = (await m.endpoints.create({ url: "https://example.com", timeout: 5000 })).endpoint!;
const when: Date | undefined = e.createTime;
for await (const ev of m.watchDeliveries({ endpointId: e.id, statuses: ["failed"] })) {
  const s: DeliveryEvent = ev;
  if (s.delivery?.status === DeliveryStatus.FAILED) break;
}
try { await m.endpoints.get("ep_x"); } catch (err) { if (err instanceof HookstreamError && err.isNotFound()) console.log(err.fieldViolations.length); }
await verifyWebhook("{}", { "webhook-id": "x" }, ["whsec_a"], { tolerance: 60 });
void sent; void when;
`;

/** The page's entry, bundled by esbuild from the installed package. */
const PAGE_ENTRY = `
import { Hookstream, HookstreamError, DeliveryStatus } from "@hookstream/client";
globalThis.sdkPage = {
  async run(baseUrl, apiKey, endpointId) {
    const client = new Hookstream({ baseUrl, apiKey });
    const events = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const e of client.watchDeliveries({ endpointId }, { signal: controller.signal })) events.push(e);
    })();
    const sent = [];
    const succeeded = () => events.find((e) => e.delivery?.status === DeliveryStatus.SUCCEEDED && sent.includes(e.delivery.id));
    for (let i = 0; i < 60 && succeeded() === undefined; i++) {
      const s = await client.send(endpointId, { big: 12345678901234567890n, i }, { eventType: "browser.sdk" });
      sent.push(s.deliveryId);
      await new Promise((r) => setTimeout(r, 500));
    }
    controller.abort();
    await watching;
    const first = await client.messages.get((await client.send(endpointId, { big: 1n }, { eventType: "browser.read" })).messageId);
    let error;
    try {
      await client.messages.get("msg_00000000000000000000000000");
    } catch (err) {
      error = { sdkError: err instanceof HookstreamError, code: err.code, reason: err.reason, notFound: err.isNotFound() };
    }
    await client.close();
    return { sent, succeeded: succeeded()?.delivery.id ?? "", payloadJson: first.message.payloadJson, error };
  },
};
`;

void describe("the packed @hookstream/client installed into a fresh project", () => {
  let dir = "";
  let project = "";
  let nats: TestNats | undefined;
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let stack: Stack | undefined;
  let receiver: Receiver | undefined;
  let pageServer: Server | undefined;
  let pageOrigin = "";
  let browser: Browser | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "hookstream-sdk-package-"));
    project = join(dir, "consumer");
    execFileSync(pinnedNode(), [join(root, "src", "client", "build.ts")], { stdio: "inherit" });
    execFileSync("npm", ["pack", "--pack-destination", dir, "--silent"], { cwd: join(root, "src", "client") });
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball !== undefined, "npm pack wrote a tarball");
    execFileSync("mkdir", ["-p", project]);
    await writeFile(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--silent", join(dir, tarball)], {
      cwd: project,
      stdio: "inherit",
    });
    receiver = await startReceiver();
    // The page is served from its own origin, which the api allows.
    pageServer = createServer((req, res) => {
      const file = req.url === "/page.js" ? "page.js" : "index.html";
      readFile(join(project, file)).then(
        (body) =>
          res.writeHead(200, { "content-type": file.endsWith(".js") ? "text/javascript" : "text/html" }).end(body),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((resolve) => pageServer!.listen(0, "127.0.0.1", resolve));
    pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
    nats = await startNatsServer();
    database = await createTestDatabase(testDbKinds()[0] ?? "sqlite");
    stack = await startStack({
      databaseUrl: database.url,
      natsUrl: nats.url,
      env: { HOOKSTREAM_CORS_ORIGINS: pageOrigin },
    });
  });

  after(async () => {
    await browser?.close();
    stack?.destroy();
    await receiver?.close();
    await nats?.stop();
    await database?.drop();
    await new Promise<void>((resolve) => (pageServer === undefined ? resolve() : pageServer.close(() => resolve())));
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  void it("ships ESM JavaScript and .d.ts that type-check a strict TypeScript consumer", async () => {
    const installed = join(project, "node_modules", "@hookstream", "client");
    const pkg = JSON.parse(await readFile(join(installed, "package.json"), "utf8")) as { exports: unknown };
    assert.ok(existsSync(join(installed, "dist", "src", "client", "index.js")));
    assert.ok(existsSync(join(installed, "dist", "src", "client", "index.d.ts")));
    assert.ok(!existsSync(join(installed, "dist", "src", "client", "index.ts")), "no TypeScript sources shipped");
    assert.ok(pkg.exports !== undefined);
    await writeFile(join(project, "check.ts"), TYPED_CONSUMER);
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          lib: ["es2024", "esnext.disposable", "dom"],
          types: [],
        },
        files: ["check.ts"],
      }),
    );
    const tsc = spawnSync(pinnedNode(), [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], {
      encoding: "utf8",
    });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  void it("runs a plain Node script against a real server, configured by environment variables", async () => {
    assert.ok(stack !== undefined && receiver !== undefined);
    await writeFile(join(project, "script.mjs"), NODE_SCRIPT);
    const run = spawnSync(pinnedNode(), ["script.mjs"], {
      cwd: project,
      encoding: "utf8",
      env: {
        PATH: process.env["PATH"] ?? "",
        HOOKSTREAM_URL: stack.apiUrl,
        HOOKSTREAM_ADMIN_TOKEN: stack.adminToken,
        RECEIVER_URL: `${receiver.url}/hooks/packaged`,
      },
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as {
      sent: { deliveryId: string; messageId: string };
      raw: { deliveryId: string };
      payloadJson: string;
      created: boolean;
      notFound: { sdkError: boolean; notFound: boolean; reason: string };
    };
    assert.equal(out.payloadJson, '{"orderId":12345678901234567890}');
    assert.equal(out.created, true);
    assert.deepEqual(out.notFound, { sdkError: true, notFound: true, reason: "MESSAGE_NOT_FOUND" });
    const r = receiver;
    await r.waitFor(() => r.byId(out.raw.deliveryId).length > 0, 60_000, "the raw delivery");
    assert.equal(r.byId(out.raw.deliveryId)[0]?.body.toString("utf8"), '{"x": 1.0}');
  });

  void it(
    "bundles for the browser with esbuild and runs in headless Chromium on another origin",
    { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)` },
    async () => {
      assert.ok(stack !== undefined && receiver !== undefined);
      await writeFile(join(project, "page-entry.js"), PAGE_ENTRY);
      await build({
        entryPoints: [join(project, "page-entry.js")],
        absWorkingDir: project,
        outfile: join(project, "page.js"),
        bundle: true,
        format: "esm",
        platform: "browser",
        target: "es2022",
        logLevel: "silent",
      });
      const bundle = await readFile(join(project, "page.js"), "utf8");
      assert.ok(!bundle.includes("node:"), "the browser bundle pulls in no Node module");
      await writeFile(
        join(project, "index.html"),
        '<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>',
      );

      await using management = await managementFor(stack);
      const key = await management.apiKeys.create("browser page");
      const ep = await management.endpoints.create({ url: `${receiver.url}/hooks/browser-sdk` });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        chromiumSandbox: false,
        args: CHROMIUM_ARGS,
      });
      const page = await browser.newPage();
      const consoleLines: string[] = [];
      page.on("console", (m) => consoleLines.push(m.text()));
      page.on("pageerror", (e) => consoleLines.push(e.message));
      await page.goto(`${pageOrigin}/`);
      await page.waitForFunction(() => "sdkPage" in globalThis, undefined, { timeout: 30_000 });
      const out = await page.evaluate(
        ([u, k, e]) =>
          (
            globalThis as unknown as {
              sdkPage: { run(u: string, k: string, e: string): Promise<Record<string, unknown>> };
            }
          ).sdkPage.run(u, k, e),
        [stack.apiUrl, key.secret, ep.endpoint!.id] as const,
      );
      assert.notEqual(
        out["succeeded"],
        "",
        `no SUCCEEDED seen by the page's watch: ${JSON.stringify(out)} ${consoleLines.join("\n")}`,
      );
      assert.equal(out["payloadJson"], '{"big":1}');
      assert.deepEqual(out["error"], { sdkError: true, code: 5, reason: "MESSAGE_NOT_FOUND", notFound: true });
      const r = receiver;
      const firstSent = (out["sent"] as string[])[0]!;
      await r.waitFor(() => r.byId(firstSent).length > 0, 60_000, "the page's delivery");
      assert.equal(r.byId(firstSent)[0]?.body.toString("utf8"), '{"big":12345678901234567890,"i":0}');
    },
  );
});

/** A management client from the repository's SDK, for set-up. */
async function managementFor(stack: Stack) {
  const { HookstreamManagement, HookstreamOperator } = await import("../src/client/index.ts");
  await using operator = new HookstreamOperator({ baseUrl: stack.apiUrl, operatorToken: stack.adminToken });
  const ws = await operator.workspaces.create("browser");
  return new HookstreamManagement({ baseUrl: stack.apiUrl, managementToken: ws.managementToken });
}
