/**
 * Every TypeScript example of the README's "TypeScript SDK" section, run as written against a
 * real stack (only `"@hookstream/client"` is pointed at src/client and `"ep_…"` at a real
 * endpoint), so the documentation cannot rot: scripts run as their own processes with the
 * environment variables the text names; the receiver example's handler is called with a real
 * delivery (and with a tampered one).
 *
 * test-pass: first only: scripts/test.sh runs it in the SQLite pass alone, because
 * the examples exercise the SDK, a client: the server is proven on both databases elsewhere
 * (HOOKSTREAM_TEST_DB=postgresql runs it on PostgreSQL).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { Hookstream, HookstreamManagement, HookstreamOperator } from "../src/client/index.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { pinnedNode, startStack, type Stack } from "./support/stack.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The ```ts blocks of the README between "## TypeScript SDK" and the next top-level section. */
function sdkExamples(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf("\n## TypeScript SDK\n");
  assert.ok(start >= 0, 'the README has a "## TypeScript SDK" section');
  const end = readme.indexOf("\n## ", start + 5);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

for (const kind of testDbKinds()) {
  void describe(`the README's SDK examples on ${kind}`, () => {
    const examples = sdkExamples();
    let dir = "";
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let stack: Stack | undefined;
    let receiver: Receiver | undefined;
    let env: NodeJS.ProcessEnv = {};
    let endpointId = "";
    let signingSecret = "";
    let producer: Hookstream;

    const file = (code: string, name: string): string => {
      const path = join(dir, `${name}.ts`);
      const sdk = JSON.stringify(pathToFileURL(join(root, "src", "client", "index.ts")).href);
      writeFileSync(
        path,
        code.replaceAll('"@hookstream/client"', sdk).replaceAll('"ep_…"', JSON.stringify(endpointId)),
      );
      return path;
    };
    const run = (path: string, whileRunning?: () => Promise<void>): Promise<Run> =>
      new Promise((resolve, reject) => {
        const child = spawn(pinnedNode(), [path], { env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        let done = false;
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
        child.once("error", reject);
        child.once("close", (code) => {
          done = true;
          resolve({ code, stdout, stderr });
        });
        if (whileRunning !== undefined) {
          void (async () => {
            for (let i = 0; i < 100 && !done; i++) await whileRunning();
          })();
        }
      });
    const example = (marker: string): string => {
      const found = examples.find((e) => e.includes(marker));
      assert.ok(found !== undefined, `an example with ${marker}`);
      return found;
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "hookstream-readme-"));
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({ databaseUrl: database.url, natsUrl: nats.url });
      await using operator = new HookstreamOperator({ baseUrl: stack.apiUrl, operatorToken: stack.adminToken });
      const ws = await operator.workspaces.create("readme");
      await using management = new HookstreamManagement({ baseUrl: stack.apiUrl, managementToken: ws.managementToken });
      const key = await management.apiKeys.create("readme");
      const ep = await management.endpoints.create({ url: `${receiver.url}/hooks/readme` });
      endpointId = ep.endpoint!.id;
      signingSecret = ep.signingSecret;
      producer = new Hookstream({ baseUrl: stack.apiUrl, apiKey: key.secret });
      env = {
        PATH: process.env["PATH"] ?? "",
        HOOKSTREAM_URL: stack.apiUrl,
        HOOKSTREAM_API_KEY: key.secret,
        HOOKSTREAM_MANAGEMENT_TOKEN: ws.managementToken,
      };
    });

    after(async () => {
      await producer?.close();
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
      if (dir !== "") rmSync(dir, { recursive: true, force: true });
    });

    void it("has the eight examples", () => {
      assert.equal(examples.length, 8, examples.map((e) => e.split("\n")[0]).join(" | "));
    });

    void it("producer quick start: sends exact payloads and reads the message back", async () => {
      const r = await run(file(example("rawJson("), "producer"));
      assert.equal(r.code, 0, r.stderr);
      const [messageId, deliveryId, replayed] = r.stdout.split("\n")[0]!.split(" ");
      assert.match(messageId!, /^msg_/);
      assert.equal(replayed, "false");
      assert.match(r.stdout.split("\n")[1]!, /^\{"orderId":12345678901234567890,"total":99\.5\} \d{4}-\d\d-\d\dT.* 1$/);
      const rec = receiver!;
      await rec.waitFor(() => rec.byId(deliveryId!).length > 0, 60_000, "the quick start's delivery");
      const bodies = () => rec.requests.map((q) => q.body.toString("utf8"));
      await rec.waitFor(
        () => bodies().includes('{"amount": 1.0}') && bodies().includes("a,b\n1,2\n"),
        60_000,
        "all three",
      );
      assert.equal(rec.byId(deliveryId!)[0]!.body.toString("utf8"), '{"orderId":12345678901234567890,"total":99.5}');
    });

    void it("management: endpoints, event types, keys, listAll", async () => {
      const r = await run(file(example('apiKeys.create("billing service")'), "management"));
      assert.equal(r.code, 0, r.stderr);
      const [line1, line2] = r.stdout.split("\n");
      assert.match(line1!, /^ep_\w+ whsec_/);
      assert.equal(line2, "hsk_live_");
    });

    void it("receiver: the handler accepts a real delivery and refuses a tampered one", async () => {
      process.env["HOOKSTREAM_WEBHOOK_SECRET"] = signingSecret;
      const mod = (await import(pathToFileURL(file(example("export async function POST"), "receiver")).href)) as {
        POST(request: Request): Promise<Response>;
      };
      const sent = await producer.send(endpointId, { orderId: 7 }, { eventType: "order.paid" });
      const rec = receiver!;
      await rec.waitFor(() => rec.byId(sent.deliveryId).length > 0, 60_000, "the delivery");
      const got = rec.byId(sent.deliveryId)[0]!;
      const request = (body: Buffer) =>
        new Request("http://receiver/hook", { method: "POST", headers: got.headers, body });
      assert.equal((await mod.POST(request(got.body))).status, 204);
      const tampered = await mod.POST(request(Buffer.from('{"orderId":8}')));
      assert.equal(tampered.status, 401);
      assert.equal(await tampered.text(), "BAD_SIGNATURE");
    });

    void it("errors: prints the field violations of a refused send, and a network error after its retries", async () => {
      const r = await run(file(example("NetworkError"), "errors"));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.trim(), "event_type: is required\nNETWORK_ERROR true true");
    });

    void it("batches, triggers and subscriptions: items answered one by one, a filtered subscription", async () => {
      const r = await run(file(example("sendBatch("), "batch"));
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 4, r.stdout);
      assert.match(lines[0]!, /^0 dlv_\w+$/);
      assert.match(lines[1]!, /^1 dlv_\w+$/);
      assert.equal(lines[2], "2 invalid_argument items[2].event_type");
      assert.equal(lines[3], `${endpointId} true`);
      const rec = receiver!;
      const first = lines[0]!.split(" ")[1]!;
      await rec.waitFor(() => rec.byId(first).length > 0, 60_000, "the first batch item");
      assert.equal(rec.byId(first)[0]!.body.toString("utf8"), '{"orderId":1}');
      await using hs = new HookstreamManagement({
        baseUrl: stack!.apiUrl,
        managementToken: env["HOOKSTREAM_MANAGEMENT_TOKEN"]!,
      });
      const subs: unknown[] = [];
      for await (const sub of hs.subscriptions.listAll({ endpointId })) subs.push(sub);
      assert.deepEqual(subs, [], "the example deletes its subscription");
    });

    void it("dead letters and a bulk replay followed to the end", async () => {
      const rec = receiver!;
      // Deliveries of {"failMe":…} are refused for good on their first attempt: dead letters.
      rec.addRule((req, count) => (req.body.toString("utf8").startsWith('{"failMe"') && count === 1 ? 400 : undefined));
      const ids: string[] = [];
      for (let n = 0; n < 3; n++) {
        ids.push((await producer.send(endpointId, { failMe: n }, { eventType: "order.failed" })).deliveryId);
      }
      await using hs = new HookstreamManagement({
        baseUrl: stack!.apiUrl,
        managementToken: env["HOOKSTREAM_MANAGEMENT_TOKEN"]!,
      });
      for (let i = 0; ; i++) {
        const dead: string[] = [];
        for await (const d of hs.deadLetters.listAll({ endpointId })) dead.push(d.id);
        if (ids.every((id) => dead.includes(id))) break;
        assert.ok(i < 300, `dead letters ${JSON.stringify(dead)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const r = await run(file(example("bulk.watch"), "bulk"));
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      for (const id of ids)
        assert.ok(lines.includes(`${id} 1 `) || lines.some((l) => l.startsWith(`${id} 1 `)), r.stdout);
      assert.equal(lines.at(-1), "done 3 3");
      for (const id of ids) await rec.waitFor(() => rec.byId(id).length === 2, 60_000, `the replayed ${id}`);
    });

    void it("watching with a resume token: a delivery made while nothing watched is caught up", async () => {
      const r = await run(file(example("resumeToken"), "resume"), async () => {
        await producer.send(endpointId, { resume: true }, { eventType: "order.watched" });
        await new Promise((resolve) => setTimeout(resolve, 300));
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^dlv_\w+ caught up\n$/);
    });

    void it("watching: the loop gets a delivery's final status", async () => {
      const r = await run(file(example("watchDeliveries"), "watching"), async () => {
        await producer.send(endpointId, { watched: true }, { eventType: "order.watched" });
        await new Promise((resolve) => setTimeout(resolve, 300));
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^dlv_\w+ ok 200\n$/);
    });
  });
}
