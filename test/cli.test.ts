/**
 * The `hookstream` user commands as a person runs them: the real binary (bin/hookstream.js)
 * against a real stack, reading its output and exit codes. `login` writes a 0600 profile the
 * other commands use; `tail` runs under a pseudo-terminal (util-linux `script`) for its coloured
 * lines and as `--json` across an api restart; `listen` forwards verified deliveries to a local
 * server; errors print the reason and field violations, never a stack trace.
 *
 * test-pass: first only: scripts/test.sh runs it in the SQLite pass alone, because
 * the CLI is a client: the server it talks to is proven on both databases by the other files
 * (HOOKSTREAM_TEST_DB=postgresql runs it on PostgreSQL).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { HookstreamOperator } from "../src/client/index.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { pinnedNode, startStack, type Stack } from "./support/stack.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "bin", "hookstream.js");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A long-running command whose output the test reads as it comes. */
interface Live {
  readonly child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

for (const kind of testDbKinds()) {
  void describe(`the hookstream CLI against a real stack on ${kind}`, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let stack: Stack | undefined;
    let receiver: Receiver | undefined;
    let home = "";
    let env: NodeJS.ProcessEnv = {};
    let managementToken = "";
    let apiKey = "";
    let endpointId = "";
    const lives: Live[] = [];

    const cli = (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<Run> =>
      new Promise((resolve, reject) => {
        const child = spawn(pinnedNode(), [bin, ...args], {
          env: { ...env, ...extra },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
        child.once("error", reject);
        child.once("close", (code) => resolve({ code, stdout, stderr }));
      });
    const json = async <T>(args: string[]): Promise<T> => {
      const r = await cli([...args, "--output", "json"]);
      assert.equal(r.code, 0, `hookstream ${args.join(" ")}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    };
    const live = (command: string, args: string[]): Live => {
      const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      const waiters: Array<() => void> = [];
      const onData = (c: Buffer): void => {
        out += c.toString("utf8");
        for (const w of waiters.splice(0)) w();
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
      const l: Live = {
        child,
        output: () => out,
        exited,
        waitFor: async (pattern) => {
          for (;;) {
            const m = pattern.exec(out);
            if (m !== null) return m[0];
            if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before ${pattern}: ${out}`);
            await new Promise<void>((resolve) => {
              waiters.push(resolve);
              setTimeout(resolve, 200).unref();
            });
          }
        },
      };
      lives.push(l);
      return l;
    };

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      // Retries an hour away: a pending retry stays put until `bulk retry` or `bulk cancel-retry` acts.
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: { HOOKSTREAM_RETRY_SCHEDULE: "1h" },
      });
      home = mkdtempSync(join(tmpdir(), "hookstream-cli-"));
      env = {
        PATH: process.env["PATH"] ?? "",
        HOME: home,
        HOOKSTREAM_CONFIG: join(home, "config", "hookstream.json"),
        TERM: "xterm-256color",
      };
      await using operator = new HookstreamOperator({ baseUrl: stack.apiUrl, operatorToken: stack.adminToken });
      const ws = await operator.workspaces.create("cli");
      managementToken = ws.managementToken;
    });

    after(async () => {
      for (const l of lives) l.child.kill("SIGKILL");
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
      if (home !== "") rmSync(home, { recursive: true, force: true });
    });

    void it("login checks the credentials and writes a 0600 profile that later commands use", async () => {
      assert.ok(stack !== undefined);
      const bad = await cli(["login", "--url", stack.apiUrl, "--token", "hsm_wrong"]);
      assert.equal(bad.code, 3, bad.stderr);
      assert.doesNotMatch(bad.stderr, STACK_LINE);
      const keyRun = await cli([
        "keys",
        "create",
        "cli producer",
        "--url",
        stack.apiUrl,
        "--token",
        managementToken,
        "--json",
      ]);
      assert.equal(keyRun.code, 0, keyRun.stderr);
      apiKey = (JSON.parse(keyRun.stdout) as { secret: string }).secret;
      const ok = await cli(["login", "--url", stack.apiUrl, "--token", managementToken, "--api-key", apiKey]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /saved profile "default"/);
      const file = env["HOOKSTREAM_CONFIG"]!;
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const saved = JSON.parse(readFileSync(file, "utf8")) as { profiles: { default: Record<string, string> } };
      assert.deepEqual(saved.profiles.default, { url: stack.apiUrl, apiKey, managementToken });
    });

    void it("manages endpoints and keys, with tables and JSON", async () => {
      assert.ok(receiver !== undefined);
      const created = await json<{ id: string; signingSecret: string; metadata: Record<string, string> }>([
        "endpoints",
        "create",
        `${receiver.url}/hooks/cli`,
        "--description",
        "from the cli",
        "--metadata",
        "team=billing",
        "--timeout",
        "5s",
      ]);
      endpointId = created.id;
      assert.match(created.signingSecret, /^whsec_/);
      assert.deepEqual(created.metadata, { team: "billing" });
      const table = await cli(["endpoints", "ls"]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout.split("\n")[0]!, /^ID\s+URL\s+ENABLED\s+DESCRIPTION\s+CREATE_TIME$/);
      assert.match(table.stdout, new RegExp(`${endpointId}\\s+${receiver.url}/hooks/cli\\s+true\\s+from the cli`));
      const updated = await json<{ description: string }>([
        "endpoints",
        "update",
        endpointId,
        "--description",
        "renamed",
      ]);
      assert.equal(updated.description, "renamed");
      assert.equal((await json<{ timeout: number }>(["endpoints", "get", endpointId])).timeout, 5000);
      const rotated = await json<{ signingSecret: string }>(["endpoints", "rotate-secret", endpointId]);
      assert.notEqual(rotated.signingSecret, created.signingSecret);
      const doomed = await json<{ id: string }>(["endpoints", "create", "http://127.0.0.1:9/x"]);
      assert.deepEqual(await json(["endpoints", "rm", doomed.id]), { deleted: doomed.id });
      const keys = await json<Array<{ label: string }>>(["keys", "ls"]);
      assert.ok(keys.some((k) => k.label === "cli producer"));
      const k = await json<{ id: string }>(["keys", "create", "to revoke"]);
      assert.ok((await json<{ revokeTime: string }>(["keys", "revoke", k.id])).revokeTime !== undefined);
      const et = await json<{ name: string }>([
        "event-types",
        "create",
        "cli.created",
        "--description",
        "made by the cli",
      ]);
      assert.equal(et.name, "cli.created");
      assert.ok((await json<Array<{ name: string }>>(["event-types", "ls"])).some((t) => t.name === "cli.created"));
      // Trigger fans out to the endpoints that receive the type.
      const routed = await json<{ id: string; eventTypes: string[] }>([
        "endpoints",
        "create",
        `${receiver.url}/hooks/routed`,
        "--event-type",
        "cli.created",
      ]);
      assert.deepEqual(routed.eventTypes, ["cli.created"]);
      const triggered = await json<{
        messageId: string;
        deliveries: Array<{ deliveryId: string; endpointId: string }>;
      }>(["trigger", "--event-type", "cli.created", "--data", '{"n":12345678901234567890}']);
      const mine = triggered.deliveries.find((d) => d.endpointId === routed.id);
      assert.ok(mine !== undefined, JSON.stringify(triggered));
      const rr = receiver;
      await rr.waitFor(() => rr.byId(mine.deliveryId).length > 0, 60_000, "the triggered delivery");
      assert.equal(rr.byId(mine.deliveryId)[0]!.body.toString("utf8"), '{"n":12345678901234567890}');
    });

    void it("sends byte-exact payloads and follows messages, deliveries and attempts", async () => {
      assert.ok(receiver !== undefined);
      const r = receiver;
      const payload = '{"orderId":12345678901234567890, "total": 1.0}';
      const sent = await json<{ messageId: string; deliveryId: string }>([
        "send",
        "--endpoint",
        endpointId,
        "--event-type",
        "order.paid",
        "--data",
        payload,
      ]);
      await r.waitFor(() => r.byId(sent.deliveryId).length > 0, 60_000, "the delivery");
      assert.equal(r.byId(sent.deliveryId)[0]!.body.toString("utf8"), payload);
      const fromFile = join(home, "payload.json");
      writeFileSync(fromFile, '{"from":"file"}');
      const second = await json<{ deliveryId: string }>([
        "send",
        "-e",
        endpointId,
        "-t",
        "order.file",
        "--data-file",
        fromFile,
      ]);
      await r.waitFor(() => r.byId(second.deliveryId).length > 0, 60_000, "the file delivery");
      assert.equal(r.byId(second.deliveryId)[0]!.body.toString("utf8"), '{"from":"file"}');

      const message = await json<{ message: { payloadJson: string }; deliveries: Array<{ id: string }> }>([
        "messages",
        "get",
        sent.messageId,
      ]);
      assert.equal(message.message.payloadJson, payload);
      let deliveries: Array<{ id: string; status: string }> = [];
      for (let i = 0; i < 100; i++) {
        deliveries = await json(["deliveries", "ls", "--endpoint", endpointId, "--status", "succeeded"]);
        if (deliveries.some((d) => d.id === sent.deliveryId)) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(
        deliveries.some((d) => d.id === sent.deliveryId && d.status === "succeeded"),
        JSON.stringify(deliveries),
      );
      const attempts = await json<Array<{ number: number; responseStatus: number }>>([
        "attempts",
        "ls",
        sent.deliveryId,
      ]);
      assert.equal(attempts[0]?.responseStatus, 200);
      const replayed = await json<{ id: string; status: string }>(["replay", sent.deliveryId]);
      assert.equal(replayed.id, sent.deliveryId);
      await r.waitFor(() => r.byId(sent.deliveryId).length > 1, 60_000, "the replay");
      const tested = await cli(["endpoints", "test", endpointId]);
      assert.equal(tested.code, 0, tested.stdout + tested.stderr);
      assert.match(tested.stdout, /success\s+true/);
      assert.match(tested.stdout, /statusCode\s+200/);
      const down = await json<{ id: string }>(["endpoints", "create", "http://127.0.0.1:9/down"]);
      const failed = await cli(["endpoints", "test", down.id, "--json"]);
      assert.equal(failed.code, 1, failed.stderr);
      assert.equal((JSON.parse(failed.stdout) as { success: boolean }).success, false);
    });

    void it("prints reasons and field violations with reliable exit codes, never a stack trace", async () => {
      const cases: Array<[string[], number, RegExp]> = [
        [["endpoints", "create", "ftp://example.com/x"], 5, /INVALID_ARGUMENT.*\n\s+endpoint\.url: /],
        [["endpoints", "get", "ep_00000000000000000000000000"], 4, /NOT_FOUND/],
        [["retry", "dlv_00000000000000000000000000"], 4, /NOT_FOUND/],
        [["endpoints", "ls", "--token", "hsm_wrong"], 3, /UNAUTHENTICATED|INVALID_CREDENTIALS|unauthenticated/i],
        [["send", "--endpoint", endpointId, "--event-type", "x"], 2, /the payload is missing/],
        [["endpoints", "frobnicate"], 2, /unknown subcommand "frobnicate"/],
        [["deliveries", "ls", "--bogus"], 2, /Unknown option '--bogus'/],
        [["send", "-e", endpointId, "-t", "bad", "--data", "{not json"], 5, /payload/],
        [["endpoints", "ls"], 7, /NETWORK_ERROR/],
      ];
      for (const [args, code, pattern] of cases) {
        const extra =
          args[0] === "endpoints" && args[1] === "ls" && args.length === 2
            ? { HOOKSTREAM_URL: "http://127.0.0.1:9" }
            : {};
        const r = await cli(args, extra);
        assert.equal(r.code, code, `hookstream ${args.join(" ")} → ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, pattern, args.join(" "));
        assert.doesNotMatch(r.stderr, STACK_LINE, args.join(" "));
      }
      // An endpoint in the wrong state: failed_precondition is a conflict (6).
      const sent = await json<{ deliveryId: string }>(["send", "-e", endpointId, "-t", "conflict", "--data", "{}"]);
      const r = receiver!;
      await r.waitFor(() => r.byId(sent.deliveryId).length > 0, 60_000, "the delivery");
      const retry = await cli(["retry", sent.deliveryId]);
      assert.equal(retry.code, 6, retry.stderr);
      assert.match(retry.stderr, /DELIVERY_STATUS_CONFLICT/);
    });

    void it("answers --help on every verb", async () => {
      const verbs = [
        ["send"],
        ["trigger"],
        ["messages", "get"],
        ["deliveries", "ls"],
        ["deliveries", "get"],
        ["attempts", "ls"],
        ["replay"],
        ["retry"],
        ["endpoints", "ls"],
        ["endpoints", "create"],
        ["endpoints", "update"],
        ["endpoints", "rm"],
        ["endpoints", "rotate-secret"],
        ["endpoints", "test"],
        ["event-types", "ls"],
        ["keys", "create"],
        ["subscriptions", "ls"],
        ["subscriptions", "get"],
        ["subscriptions", "create"],
        ["subscriptions", "update"],
        ["subscriptions", "rm"],
        ["dead-letters", "ls"],
        ["dead-letters", "get"],
        ["dead-letters", "redrive"],
        ["bulk", "replay"],
        ["bulk", "retry"],
        ["bulk", "cancel-retry"],
        ["bulk", "get"],
        ["bulk", "watch"],
        ["subscriptions"],
        ["dead-letters"],
        ["bulk"],
        ["tail"],
        ["listen"],
        ["login"],
        ["endpoints"],
        ["keys"],
        ["environments", "ls"],
        ["environments", "get"],
        ["environments", "create"],
        ["environments", "update"],
        ["environments", "rm"],
        ["applications", "ls"],
        ["applications", "get"],
        ["applications", "create"],
        ["applications", "update"],
        ["applications", "rm"],
        ["environments"],
        ["applications"],
      ];
      // A few binaries at a time: each is a process start, and they do not share anything.
      for (let i = 0; i < verbs.length; i += 4) {
        const batch = verbs.slice(i, i + 4);
        const results = await Promise.all(batch.map((v) => cli([...v, "--help"])));
        for (const [j, r] of results.entries()) {
          const v = batch[j]!;
          assert.equal(r.code, 0, `${v.join(" ")} --help: ${r.stderr}`);
          assert.match(r.stdout, new RegExp(`hookstream ${v.join(" ")}`), v.join(" "));
        }
      }
      const top = await cli(["--help"]);
      assert.equal(top.code, 0);
      assert.match(top.stdout, /User commands/);
      assert.match(top.stdout, /tail\s+the live delivery stream/);
      assert.match(top.stdout, /dead-letters\s+dead-letters ls\|get\|redrive/);
    });

    void it("tails live coloured lines under a pseudo-terminal", async () => {
      const command = `${pinnedNode()} ${bin} tail --endpoint ${endpointId} --count 2`;
      const tail = live("script", ["-q", "-e", "-c", command, "/dev/null"]);
      await tail.waitFor(/tailing deliveries/);
      // The watch starts at "now": send until the tail shows lines.
      let sends = 0;
      while (!/SUCCEEDED/.test(tail.output()) && sends < 40) {
        await json(["send", "-e", endpointId, "-t", "tail.tty", "--data", `{"n":${sends++}}`]);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      await tail.exited;
      const out = tail.output();
      assert.match(out, /\u001b\[(32|36)m(SUCCEEDED|QUEUED)/, `coloured status: ${JSON.stringify(out)}`);
      assert.match(out, /dlv_\w+\s+ep_\w+\s+tail\.tty/);
    });

    void it("tails --json, resuming across an api restart", async () => {
      assert.ok(stack !== undefined);
      const tail = live(pinnedNode(), [bin, "tail", "--endpoint", endpointId, "--json", "--event-type", "tail.json"]);
      const lines = (): Array<{ delivery: { id: string; status: string }; resumeToken: string }> =>
        tail
          .output()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { delivery: { id: string; status: string }; resumeToken: string });
      const succeeded = (id: string): boolean =>
        lines().some((l) => l.delivery.id === id && l.delivery.status === "succeeded");
      let warm = "";
      for (let i = 0; i < 40 && (warm === "" || !succeeded(warm)); i++) {
        warm = (await json<{ deliveryId: string }>(["send", "-e", endpointId, "-t", "tail.json", "--data", "{}"]))
          .deliveryId;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(succeeded(warm), tail.output());
      await stack.restart("api");
      const after = (await json<{ deliveryId: string }>(["send", "-e", endpointId, "-t", "tail.json", "--data", "{}"]))
        .deliveryId;
      await tail.waitFor(new RegExp(`"id":"${after}".*"status":"succeeded"|"status":"succeeded".*"id":"${after}"`));
      tail.child.kill("SIGINT");
      assert.equal(await tail.exited, 0);
      assert.ok(lines().every((l) => l.resumeToken !== ""));
    });

    void it("manages environments and applications, and puts keys and endpoints in them", async () => {
      assert.ok(receiver !== undefined);
      type Env = { id: string; slug: string; name: string; default: boolean; unpublishedEventTypes: string[] };
      const env = await json<Env>([
        "environments",
        "create",
        "Staging",
        "--slug",
        "staging",
        "--unpublished",
        "a.b,c.d",
      ]);
      assert.match(env.id, /^env_/);
      assert.deepEqual(
        [env.slug, env.name, env.default, env.unpublishedEventTypes],
        ["staging", "Staging", false, ["a.b", "c.d"]],
      );
      const table = await cli(["environments", "ls"]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(
        table.stdout.split("\n")[0]!,
        /^ID\s+SLUG\s+NAME\s+DEFAULT\s+UNPUBLISHED_EVENT_TYPES\s+CREATE_TIME$/,
      );
      const envs = await json<Env[]>(["environments", "ls"]);
      assert.deepEqual(envs.map((e) => e.default).sort(), [false, true], "the default environment and the new one");
      assert.equal((await json<Env>(["environments", "get", "--slug", "staging"])).id, env.id);
      assert.equal((await json<Env>(["environments", "get", env.id])).slug, "staging");
      const renamed = await json<Env>(["environments", "update", env.id, "--name", "Staging EU", "--unpublished", ""]);
      assert.deepEqual([renamed.name, renamed.unpublishedEventTypes], ["Staging EU", []]);

      const key = await json<{ id: string; environmentId: string; secret: string }>([
        "keys",
        "create",
        "staging-producer",
        "--environment",
        env.id,
      ]);
      assert.equal(key.environmentId, env.id);
      assert.deepEqual(
        (await json<Array<{ id: string }>>(["keys", "ls", "--environment", env.id])).map((k) => k.id),
        [key.id],
      );

      type App = { id: string; name: string; uid: string; metadata: Record<string, string>; environmentId: string };
      const app = await json<App>([
        "applications",
        "create",
        "Acme",
        "--uid",
        "acme-1",
        "--metadata",
        "tier=gold",
        "--environment",
        env.id,
      ]);
      assert.match(app.id, /^app_/);
      assert.deepEqual([app.uid, app.metadata, app.environmentId], ["acme-1", { tier: "gold" }, env.id]);
      assert.equal((await json<App>(["applications", "get", "--uid", "acme-1"])).id, app.id);
      assert.deepEqual(
        (await json<App[]>(["applications", "ls", "--environment", env.id])).map((a) => a.id),
        [app.id],
      );
      assert.equal((await json<App>(["applications", "update", app.id, "--name", "Acme Corp"])).name, "Acme Corp");

      const ep = await json<{ id: string; applicationId: string; environmentId: string }>([
        "endpoints",
        "create",
        `${receiver.url}/hooks/acme`,
        "--application",
        app.id,
        "--environment",
        env.id,
      ]);
      assert.deepEqual([ep.applicationId, ep.environmentId], [app.id, env.id]);
      assert.deepEqual(
        (await json<Array<{ id: string }>>(["endpoints", "ls", "--application", app.id])).map((e) => e.id),
        [ep.id],
      );
      assert.deepEqual(
        (await json<Array<{ id: string }>>(["endpoints", "ls", "--environment", env.id])).map((e) => e.id),
        [ep.id],
      );

      const cases: Array<[string[], number, RegExp]> = [
        [["environments", "create", "Bad", "--slug", "Not A Slug"], 5, /INVALID_ARGUMENT[\s\S]*environment\.slug/],
        [["environments", "create", "NoSlug"], 2, /missing --slug/],
        [["environments", "get"], 2, /pass either ENVIRONMENT_ID or --slug/],
        [["environments", "get", env.id, "--slug", "staging"], 2, /pass either ENVIRONMENT_ID or --slug/],
        [["environments", "update", env.id, "--slug", "other"], 2, /--slug is set on create/],
        [["environments", "update", env.id], 2, /nothing to update/],
        [["environments", "rm", env.id], 6, /ENVIRONMENT_NOT_EMPTY/],
        [["environments", "get", "--slug", "nope"], 4, /NOT_FOUND/],
        [["applications", "create", "Dup", "--uid", "acme-1"], 6, /APPLICATION_UID_EXISTS[\s\S]*application\.uid: /],
        [["applications", "update", app.id, "--environment", env.id], 2, /--environment is set on create/],
        [["applications", "get"], 2, /pass either APPLICATION_ID or --uid/],
        [["endpoints", "update", ep.id, "--application", app.id], 2, /--application is set on create/],
      ];
      for (const [args, code, pattern] of cases) {
        const r = await cli(args);
        assert.equal(r.code, code, `hookstream ${args.join(" ")} → ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, pattern, args.join(" "));
        assert.doesNotMatch(r.stderr, STACK_LINE, args.join(" "));
      }

      // Emptied, the environment can go: the application takes its endpoint along, the key is revoked.
      const removed = await json<{ deleted: string }>(["applications", "rm", app.id]);
      assert.equal(removed.deleted, app.id);
      assert.equal((await cli(["applications", "get", app.id])).code, 4);
      await json(["keys", "revoke", key.id]);
      assert.deepEqual(await json(["environments", "rm", env.id]), { deleted: env.id });
      assert.equal((await cli(["environments", "get", env.id])).code, 4);
    });

    void it("manages subscriptions: create, list, get, update, remove, with precise errors", async () => {
      assert.ok(receiver !== undefined);
      await json(["event-types", "create", "cli.sub"]);
      const ep = await json<{ id: string }>(["endpoints", "create", `${receiver.url}/hooks/sub`]);
      const sub = await json<{
        id: string;
        endpointId: string;
        eventTypes: string[];
        enabled: boolean;
        filter: string;
      }>(["subscriptions", "create", "--endpoint", ep.id, "--event-type", "cli.sub", "--filter", "payload.n > 1"]);
      assert.match(sub.id, /^sub_/);
      assert.deepEqual(
        [sub.endpointId, sub.eventTypes, sub.enabled, sub.filter],
        [ep.id, ["cli.sub"], true, "payload.n > 1"],
      );
      const table = await cli(["subscriptions", "ls", "--endpoint", ep.id]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout.split("\n")[0]!, /^ID\s+ENDPOINT_ID\s+EVENT_TYPES\s+ENABLED\s+FILTER\s+CREATE_TIME$/);
      assert.match(table.stdout, new RegExp(`${sub.id}\\s+${ep.id}\\s+\\["cli\\.sub"\\]\\s+true\\s+payload\\.n > 1`));
      assert.deepEqual(
        (await json<Array<{ id: string }>>(["subscriptions", "ls", "--endpoint", ep.id])).map((x) => x.id),
        [sub.id],
      );
      // A triggered message reaches the endpoint through the subscription only when its filter matches.
      const low = await json<{ deliveries: Array<{ endpointId: string }> }>([
        "trigger",
        "-t",
        "cli.sub",
        "--data",
        '{"n":1}',
      ]);
      assert.ok(!low.deliveries.some((d) => d.endpointId === ep.id), JSON.stringify(low));
      const high = await json<{ deliveries: Array<{ endpointId: string }> }>([
        "trigger",
        "-t",
        "cli.sub",
        "--data",
        '{"n":2}',
      ]);
      assert.ok(
        high.deliveries.some((d) => d.endpointId === ep.id),
        JSON.stringify(high),
      );

      const updated = await json<{ enabled: boolean; filter: string }>([
        "subscriptions",
        "update",
        sub.id,
        "--filter",
        "",
        "--enabled",
        "false",
      ]);
      assert.deepEqual([updated.enabled, updated.filter], [false, ""]);
      assert.equal((await json<{ enabled: boolean }>(["subscriptions", "get", sub.id])).enabled, false);

      const cases: Array<[string[], number, RegExp]> = [
        [
          ["subscriptions", "create", "--endpoint", ep.id, "-t", "cli.sub", "--filter", "payload.n >"],
          5,
          /INVALID_ARGUMENT.*\n\s+subscription\.filter: /,
        ],
        [["subscriptions", "create", "--endpoint", ep.id, "-t", "no.such.type"], 5, /\n\s+subscription\.event_types/],
        [["subscriptions", "create", "-t", "cli.sub"], 2, /missing --endpoint/],
        [["subscriptions", "update", sub.id], 2, /nothing to update/],
        [["subscriptions", "update", sub.id, "--enabled", "maybe"], 2, /--enabled takes true or false/],
        [["subscriptions", "get", "sub_00000000000000000000000000"], 4, /NOT_FOUND/],
      ];
      for (const [args, code, pattern] of cases) {
        const r = await cli(args);
        assert.equal(r.code, code, `hookstream ${args.join(" ")} → ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, pattern, args.join(" "));
        assert.doesNotMatch(r.stderr, STACK_LINE, args.join(" "));
      }
      assert.deepEqual(await json(["subscriptions", "rm", sub.id]), { deleted: sub.id });
      const gone = await cli(["subscriptions", "get", sub.id]);
      assert.equal(gone.code, 4, gone.stderr);
    });

    void it("lists dead letters and redrives them one by id and the rest by filter, following the bulk replay", async () => {
      assert.ok(receiver !== undefined);
      const rx = receiver;
      // Every first request of a delivery to /hooks/dlq is refused for good (400): a dead letter.
      rx.addRule((req, count) => (req.path === "/hooks/dlq" && count === 1 ? 400 : undefined));
      const ep = await json<{ id: string }>(["endpoints", "create", `${rx.url}/hooks/dlq`]);
      const ids: string[] = [];
      for (let n = 0; n < 3; n++) {
        ids.push(
          (await json<{ deliveryId: string }>(["send", "-e", ep.id, "-t", "cli.dlq", "--data", `{"n":${n}}`]))
            .deliveryId,
        );
      }
      let dead: Array<{ id: string; attemptCount: number; lastResponseStatus: number }> = [];
      for (let i = 0; i < 300 && dead.length < 3; i++) {
        dead = await json(["dead-letters", "ls", "--endpoint", ep.id]);
        if (dead.length < 3) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.deepEqual(dead.map((d) => d.id).sort(), [...ids].sort());
      assert.ok(
        dead.every((d) => d.attemptCount === 1 && d.lastResponseStatus === 400),
        JSON.stringify(dead),
      );
      const table = await cli([
        "dead-letters",
        "ls",
        "--endpoint",
        ep.id,
        "--event-type",
        "cli.dlq",
        "--since",
        "1h",
        "--limit",
        "2",
      ]);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split("\n");
      assert.match(lines[0]!, /^ID\s+EVENT_TYPE\s+ENDPOINT_ID\s+MESSAGE_ID\s+ATTEMPT_COUNT\s+LAST_RESPONSE_STATUS/);
      assert.equal(lines.length, 3, table.stdout);
      assert.deepEqual(await json(["dead-letters", "ls", "--endpoint", ep.id, "--until", "1h"]), []);

      const one = await json<{ delivery: { id: string; status: string }; attempts: Array<{ responseStatus: number }> }>(
        ["dead-letters", "get", ids[0]!],
      );
      assert.equal(one.delivery.status, "failed");
      assert.deepEqual(
        one.attempts.map((a) => a.responseStatus),
        [400],
      );
      const got = await cli(["dead-letters", "get", ids[0]!]);
      assert.match(got.stdout, /status\s+failed/);
      assert.match(got.stdout, /NUMBER\s+ID\s+START_TIME\s+RESPONSE_STATUS/);

      // One id: replayed at once (same webhook-id), printed as the queued delivery.
      const replayed = await json<{ id: string; status: string }>(["dead-letters", "redrive", ids[0]!]);
      assert.deepEqual([replayed.id, replayed.status], [ids[0], "queued"]);
      await rx.waitFor(() => rx.byId(ids[0]!).length === 2, 60_000, "the redriven delivery");

      // The rest by filter, followed to the end as JSON lines.
      const follow = await cli(["dead-letters", "redrive", "--endpoint", ep.id, "--follow", "--output", "json"]);
      assert.equal(follow.code, 0, follow.stderr);
      const updates = follow.stdout
        .trimEnd()
        .split("\n")
        .map(
          (l) =>
            JSON.parse(l) as {
              id: string;
              action: string;
              state: string;
              matched: string;
              affected: string;
              filter: { endpointId: string; statuses: string[] };
            },
        );
      const last = updates.at(-1)!;
      assert.match(last.id, /^bulk_/);
      assert.deepEqual(
        [last.action, last.state, last.matched, last.affected, last.filter.endpointId, last.filter.statuses],
        ["replay", "succeeded", "2", "2", ep.id, ["failed"]],
      );
      for (const id of ids.slice(1))
        await rx.waitFor(() => rx.byId(id).length === 2, 60_000, `the bulk-redriven ${id}`);
      const done = await json<{ state: string; affected: string }>(["bulk", "get", last.id]);
      assert.deepEqual([done.state, done.affected], ["succeeded", "2"]);

      const cases: Array<[string[], number, RegExp]> = [
        [["dead-letters", "redrive"], 2, /select deliveries: ids, filter flags, or --all/],
        [["dead-letters", "redrive", ids[0]!, "--endpoint", ep.id], 2, /not both/],
        [["dead-letters", "ls", "--since", "yesterday"], 2, /--since takes an ISO time/],
        [["dead-letters", "ls", "--endpoint", "nope"], 5, /INVALID_ARGUMENT.*\n\s+filter\.endpoint_id: /],
        [["dead-letters", "ls", "--since", "1h", "--until", "2h"], 5, /\n\s+filter\.create_time_before: must be after/],
        [["dead-letters", "get", "dlv_00000000000000000000000000"], 4, /DELIVERY_NOT_FOUND/],
        [["dead-letters", "redrive", "dlv_00000000000000000000000000"], 4, /DELIVERY_NOT_FOUND/],
        [["bulk", "get", "bulk_00000000000000000000000000"], 4, /NOT_FOUND/],
        [["bulk", "replay", "--status", "bogus", "--all"], 5, /statuses\[0\]/],
        [["bulk", "replay", ids[0]!, "--limit", "3"], 2, /--limit applies to a filter/],
      ];
      for (const [args, code, pattern] of cases) {
        const r = await cli(args);
        assert.equal(r.code, code, `hookstream ${args.join(" ")} → ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, pattern, args.join(" "));
        assert.doesNotMatch(r.stderr, STACK_LINE, args.join(" "));
      }
    });

    void it("bulk retry and cancel-retry act on pending retries by id and by filter, watched to the end", async () => {
      assert.ok(receiver !== undefined);
      const rx = receiver;
      // Every first request to /hooks/flaky answers 503: the delivery waits for its retry, an hour away.
      rx.addRule((req, count) => (req.path === "/hooks/flaky" && count === 1 ? 503 : undefined));
      const ep = await json<{ id: string }>(["endpoints", "create", `${rx.url}/hooks/flaky`]);
      const a = (await json<{ deliveryId: string }>(["send", "-e", ep.id, "-t", "cli.flaky", "--data", "{}"]))
        .deliveryId;
      const b = (await json<{ deliveryId: string }>(["send", "-e", ep.id, "-t", "cli.flaky", "--data", "{}"]))
        .deliveryId;
      let pending: Array<{ id: string }> = [];
      for (let i = 0; i < 300 && pending.length < 2; i++) {
        pending = await json(["deliveries", "ls", "--endpoint", ep.id, "--status", "pending_retry"]);
        if (pending.length < 2) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.deepEqual(pending.map((d) => d.id).sort(), [a, b].sort());

      // By id, followed as table lines to SUCCEEDED.
      const retried = await cli(["bulk", "retry", a, "--follow"]);
      assert.equal(retried.code, 0, retried.stderr);
      assert.match(retried.stdout, /bulk_\w+\s+SUCCEEDED\s+matched 1\s+affected 1\s+in \d+\.\ds\n$/);
      await rx.waitFor(() => rx.byId(a).length === 2, 60_000, "the retried delivery");

      // By filter: started, then watched by id.
      const op = await json<{ id: string; state: string; action: string }>([
        "bulk",
        "cancel-retry",
        "--endpoint",
        ep.id,
        "--status",
        "pending_retry",
      ]);
      assert.equal(op.action, "cancel_retry");
      const watched = await cli(["bulk", "watch", op.id, "--output", "json"]);
      assert.equal(watched.code, 0, watched.stderr);
      const final = JSON.parse(watched.stdout.trimEnd().split("\n").at(-1)!) as { state: string; affected: string };
      assert.deepEqual([final.state, final.affected], ["succeeded", "1"]);
      const cancelled = await json<{ delivery: { status: string; lastError: string } }>(["deliveries", "get", b]);
      assert.deepEqual(
        [cancelled.delivery.status, cancelled.delivery.lastError],
        ["failed", "retry cancelled by an operator"],
      );
      assert.equal(rx.byId(b).length, 1, "a cancelled retry is not tried again");
      const table = await cli(["bulk", "get", op.id]);
      assert.match(table.stdout, /state\s+succeeded/);
      assert.match(table.stdout, /affected\s+1/);
    });

    void it("listen forwards verified deliveries to a local server and shows its answer", async () => {
      const target = await startReceiver({ defaultStatus: 201 });
      try {
        const listen = live(pinnedNode(), [bin, "listen", "--forward-to", `${target.url}/webhooks`, "--count", "1"]);
        const ready = await listen.waitFor(/Ready: endpoint (ep_\w+)/);
        const ep = /ep_\w+/.exec(ready)![0];
        const sent = await json<{ deliveryId: string }>([
          "send",
          "-e",
          ep,
          "-t",
          "listen.test",
          "--data",
          '{"hello":"listen"}',
        ]);
        await target.waitFor(() => target.byId(sent.deliveryId).length > 0, 60_000, "the forwarded delivery");
        const got = target.byId(sent.deliveryId)[0]!;
        assert.equal(got.path, "/webhooks");
        assert.equal(got.body.toString("utf8"), '{"hello":"listen"}');
        assert.ok(got.headers["webhook-signature"]?.startsWith("v1,"));
        assert.equal(await listen.exited, 0);
        assert.match(listen.output(), new RegExp(`${sent.deliveryId}\\s+18 bytes\\s+→ ${target.url}/webhooks\\s+201`));
        // The delivery's attempt recorded the local server's answer.
        const attempts = await json<Array<{ responseStatus: number }>>(["attempts", "ls", sent.deliveryId]);
        assert.equal(attempts[0]?.responseStatus, 201);
      } finally {
        await target.close();
      }
    });
  });
}
