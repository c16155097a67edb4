/**
 * `npm run bench`: the whole stack as separate processes (api, dispatcher, worker; SQLite by
 * default, PostgreSQL when DATABASE_URL is postgres://…; a private nats-server) against a local
 * receiver, with a raw baseline measured in the same run, so the figures are comparable across
 * machines: plain undici POSTs to the same receiver and a no-op Connect RPC served in-process.
 * Only loopback traffic; every loop is bounded; the run stops by itself.
 *
 * Flags: --messages N (throughput phase, default 5000) --concurrency N (default 64)
 *        --rate N (latency phase msg/s, default 200) --seconds N (latency phase, default 10)
 *        --log-level LEVEL (roles' LOG_LEVEL, default info) --cpu-prof (profiles of api and worker)
 *        --http1 (Connect over HTTP/1.1 for our Send calls and the no-op baseline; default h2c)
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { createServer as createH2cServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { Agent, request } from "undici";
import { GetMessageResponseSchema, MessageService } from "../gen/hookstream/v1/message_service_pb.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { startReceiver } from "../test/support/receiver.ts";
import { createClients, startStack, type StackRole } from "../test/support/stack.ts";

const { values: flags } = parseArgs({
  options: {
    messages: { type: "string", default: "5000" },
    concurrency: { type: "string", default: "64" },
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "10" },
    "log-level": { type: "string", default: "info" },
    "cpu-prof": { type: "boolean", default: false },
    http1: { type: "boolean", default: false },
  },
});
const MESSAGES = Math.min(Math.max(Number(flags.messages), 1), 1_000_000);
const CONCURRENCY = Math.min(Math.max(Number(flags.concurrency), 1), 1024);
const RATE = Math.min(Math.max(Number(flags.rate), 1), 100_000);
const SECONDS = Math.min(Math.max(Number(flags.seconds), 1), 600);
const BASELINE_REQUESTS = Math.max(MESSAGES, 5_000);
const HTTP_VERSION = flags.http1 ? "1.1" : "2";

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn(i)` for i in [0, total) with at most `concurrency` at once; returns elapsed ms. */
async function pool(total: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const start = now();
  const lane = async (): Promise<void> => {
    while (next < total) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  return now() - start;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";

/** Self time per function of a V8 .cpuprofile, top `n`, each with the call path that costs it most. */
async function summarizeProfile(file: string, n: number): Promise<string[]> {
  interface ProfileNode {
    id: number;
    hitCount?: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  const profile = JSON.parse(await readFile(file, "utf8")) as { nodes: ProfileNode[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const label = (node: ProfileNode): string => {
    const { functionName, url, lineNumber } = node.callFrame;
    const short = url.replace(/^.*\/node_modules\//, "~/").replace(/^file:\/\/.*?\/(src|gen|test)\//, "$1/");
    return `${functionName || "(anonymous)"} ${short}${url === "" ? "" : `:${lineNumber + 1}`}`;
  };
  // The nearest caller outside node internals and dependencies says which of our code paths it is.
  const ownCaller = (node: ProfileNode): string => {
    const chain: string[] = [];
    for (let id = parent.get(node.id); id !== undefined; id = parent.get(id)) {
      const caller = byId.get(id);
      if (caller === undefined) break;
      const text = label(caller);
      if (chain.length < 2 && !text.startsWith("(")) chain.push(text);
      if (/ (src|gen)\//.test(text)) return `${chain.join(" ← ")}${chain.includes(text) ? "" : ` ← … ${text}`}`;
    }
    return chain.join(" ← ");
  };
  const busy = profile.nodes.filter((node) => node.callFrame.functionName !== "(idle)");
  const all = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const total = busy.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const byFrame = new Map<string, { hits: number; paths: Map<string, number> }>();
  for (const node of busy) {
    const key = label(node);
    const entry = byFrame.get(key) ?? { hits: 0, paths: new Map<string, number>() };
    entry.hits += node.hitCount ?? 0;
    if ((node.hitCount ?? 0) > 0) {
      const path = ownCaller(node);
      entry.paths.set(path, (entry.paths.get(path) ?? 0) + (node.hitCount ?? 0));
    }
    byFrame.set(key, entry);
  }
  const lines = [`busy ${fmt((100 * total) / Math.max(all, 1), 1)}% of samples; share of busy time:`];
  for (const [key, entry] of [...byFrame.entries()].sort((a, b) => b[1].hits - a[1].hits).slice(0, n)) {
    lines.push(`${fmt((100 * entry.hits) / Math.max(total, 1), 1).padStart(5)}%  ${key}`);
    const [path] = [...entry.paths.entries()].sort((a, b) => b[1] - a[1]);
    if (path !== undefined && path[0] !== "") lines.push(`          ← ${path[0]}`);
  }
  return lines;
}

async function main(): Promise<void> {
  const workDir = await mkdtemp(join(tmpdir(), "hookstream-bench-"));
  const profDir = join(workDir, "profiles");
  const envDb = process.env["DATABASE_URL"];
  const databaseUrl =
    envDb !== undefined && /^postgres(ql)?:\/\//.test(envDb) ? envDb : `sqlite:${join(workDir, "bench.db")}`;
  const dbLabel = databaseUrl.startsWith("sqlite:") ? "SQLite" : "PostgreSQL";

  console.log(
    `hookstream bench: ${dbLabel}, Connect over HTTP/${HTTP_VERSION}, ${MESSAGES} messages at concurrency ${CONCURRENCY}, ` +
      `latency at ${RATE} msg/s for ${SECONDS} s`,
  );
  const receiver = await startReceiver({ keepBodies: false });
  const nats = await startNatsServer();
  const nodeArgs: Partial<Record<StackRole, readonly string[]>> = flags["cpu-prof"]
    ? {
        api: ["--cpu-prof", `--cpu-prof-dir=${profDir}/api`],
        worker: ["--cpu-prof", `--cpu-prof-dir=${profDir}/worker`],
      }
    : {};
  const noop = await startNoopConnectServer();
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 });
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  try {
    stack = await startStack({
      databaseUrl,
      natsUrl: nats.url,
      nodeArgs,
      env: { LOG_LEVEL: flags["log-level"], HOOKSTREAM_RETRY_SCHEDULE: "1s,5s,30s", HOOKSTREAM_JOB_ACK_WAIT: "30s" },
    });

    // Baseline 1: plain undici POSTs of a similar body to the same receiver.
    const body = JSON.stringify({ type: "bench", n: 0, padding: "x".repeat(200) });
    const undiciMs = await pool(BASELINE_REQUESTS, CONCURRENCY, async () => {
      const res = await request(`${receiver.url}/baseline`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        dispatcher: agent,
      });
      await res.body.dump();
    });
    const undiciRps = (BASELINE_REQUESTS / undiciMs) * 1000;

    // Baseline 2: a no-op Connect RPC over the same kind of transport as our Send calls.
    const noopClient = createClient(
      MessageService,
      createConnectTransport({ baseUrl: noop.url, httpVersion: HTTP_VERSION, useBinaryFormat: true }),
    );
    const noopMs = await pool(BASELINE_REQUESTS, CONCURRENCY, async () => {
      await noopClient.getMessage({ id: "msg_noop" });
    });
    const noopRps = (BASELINE_REQUESTS / noopMs) * 1000;

    // Our stack: provision a workspace, key and endpoint.
    const admin = createClients(stack.apiUrl, stack.adminToken);
    const ws = await admin.admin.createWorkspace({ name: "bench" });
    const management = createClients(stack.apiUrl, ws.managementToken);
    const key = await management.apiKeys.createApiKey({ label: "bench" });
    const producer = createClients(stack.apiUrl, key.secret, { binary: true, httpVersion: HTTP_VERSION });
    const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks` } });
    const endpointId = ep.endpoint?.id ?? "";

    const delivered = new Map<string, number>();
    let webhookRequests = 0;
    receiver.onRequest((r) => {
      if (r.webhookId === "") return;
      webhookRequests++;
      if (!delivered.has(r.webhookId)) delivered.set(r.webhookId, r.receivedAt);
    });
    const send = async (n: number): Promise<{ deliveryId: string; repliedAt: number; tookMs: number }> => {
      const started = now();
      const res = await producer.messages.send({
        endpointId,
        eventType: "bench.event",
        body: { case: "payload", value: fromJson(ValueSchema, { type: "bench", n, padding: "x".repeat(200) }) },
      });
      const repliedAt = now();
      return { deliveryId: res.deliveryId, repliedAt, tookMs: repliedAt - started };
    };

    // Throughput: MESSAGES concurrent Sends, then until the receiver has every delivery.
    const throughputIds: string[] = [];
    const throughputStart = now();
    const sendMs = await pool(MESSAGES, CONCURRENCY, async (n) => {
      throughputIds.push((await send(n)).deliveryId);
    });
    const sendsPerSec = (MESSAGES / sendMs) * 1000;
    const throughputDeadline = now() + 300_000;
    while (throughputIds.some((id) => !delivered.has(id)) && now() < throughputDeadline) await sleep(20);
    const lastReceipt = Math.max(...throughputIds.map((id) => delivered.get(id) ?? Number.NaN));
    const missing = throughputIds.filter((id) => !delivered.has(id)).length;
    const deliveriesPerSec = (MESSAGES / (lastReceipt - throughputStart)) * 1000;

    // Latency at a fixed offered rate: Send reply → receipt at the receiver.
    const latencyCount = RATE * SECONDS;
    const replies: Array<{ deliveryId: string; repliedAt: number; tookMs: number }> = [];
    const inFlight: Array<Promise<void>> = [];
    const latencyStart = now();
    for (let i = 0; i < latencyCount; i++) {
      const due = latencyStart + (i * 1000) / RATE;
      const wait = due - now();
      if (wait > 1) await sleep(wait);
      inFlight.push(send(MESSAGES + i).then((r) => void replies.push(r)));
    }
    await Promise.all(inFlight);
    const latencyDeadline = now() + 120_000;
    while (replies.some((r) => !delivered.has(r.deliveryId)) && now() < latencyDeadline) await sleep(20);
    const endToEnd = replies
      .filter((r) => delivered.has(r.deliveryId))
      .map((r) => Math.max(0, (delivered.get(r.deliveryId) ?? 0) - r.repliedAt))
      .sort((a, b) => a - b);
    const sendLatency = replies.map((r) => r.tookMs).sort((a, b) => a - b);
    const latencyMissing = replies.length - endToEnd.length;

    const rows: Array<[string, string, string]> = [
      ["baseline: undici POST → receiver", `${fmt(undiciRps)} req/s`, ""],
      ["baseline: no-op Connect RPC", `${fmt(noopRps)} req/s`, ""],
      ["accepted sends/s", `${fmt(sendsPerSec)} /s`, `${fmt(sendsPerSec / noopRps, 3)} × no-op RPC`],
      [
        "end-to-end deliveries/s",
        `${fmt(deliveriesPerSec)} /s`,
        `${fmt(deliveriesPerSec / undiciRps, 3)} × undici POST`,
      ],
      [`Send reply → receipt p50 @ ${RATE} msg/s`, `${fmt(percentile(endToEnd, 50), 1)} ms`, ""],
      [`Send reply → receipt p99 @ ${RATE} msg/s`, `${fmt(percentile(endToEnd, 99), 1)} ms`, ""],
      [
        `Send call p50 / p99 @ ${RATE} msg/s`,
        `${fmt(percentile(sendLatency, 50), 1)} / ${fmt(percentile(sendLatency, 99), 1)} ms`,
        "",
      ],
      ["not delivered (throughput / latency phase)", `${missing} / ${latencyMissing}`, ""],
      ["duplicate deliveries (at-least-once)", `${webhookRequests - delivered.size}`, ""],
    ];
    // Warnings and errors the roles logged during the run: a bench number means little if they fail.
    for (const role of ["api", "dispatcher", "worker"] as const) {
      const counts = new Map<string, number>();
      for (const record of stack.logRecords(role)) {
        if (
          typeof record["level"] !== "number"
            ? !["warn", "error", "fatal"].includes(String(record["level"]))
            : record["level"] < 40
        ) {
          continue;
        }
        const error = record["err"] as { message?: unknown } | undefined;
        const detail = typeof error?.message === "string" ? `: ${error.message.slice(0, 160)}` : "";
        const text = `${String(record["level"])} ${String(record["msg"])}${detail}`;
        counts.set(text, (counts.get(text) ?? 0) + 1);
      }
      for (const [text, count] of [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5)) {
        console.log(`${role} logged ${count} × ${text}`);
      }
    }
    console.log("");
    for (const [name, value, ratio] of rows) console.log(`${name.padEnd(44)} ${value.padStart(16)}  ${ratio}`);
  } finally {
    if (stack !== undefined) {
      try {
        await stack.stopAll();
      } catch (error) {
        console.error(`stopping the stack: ${error instanceof Error ? error.message : String(error)}`);
        stack.destroy();
      }
    }
    await agent.close();
    await noop.close();
    await receiver.close();
    await nats.stop();
  }

  if (flags["cpu-prof"]) {
    for (const role of ["api", "worker"]) {
      const dir = join(profDir, role);
      const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(".cpuprofile"));
      for (const file of files) {
        console.log(`\nCPU profile of ${role}: ${join(dir, file)} (top self time)`);
        for (const line of await summarizeProfile(join(dir, file), 15)) console.log(`  ${line}`);
      }
    }
    console.log(`\nProfiles kept in ${profDir} (open them in Chrome DevTools › Performance).`);
    await rm(join(workDir, "bench.db"), { force: true });
  } else {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** An in-process connect-node server (h2c, or HTTP/1.1 with --http1) whose GetMessage returns an empty response. */
async function startNoopConnectServer(): Promise<{ url: string; close(): Promise<void> }> {
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.rpc(MessageService.method.getMessage, () => create(GetMessageResponseSchema));
    },
  });
  if (HTTP_VERSION === "2") {
    const server = createH2cServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  const server = createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

await main();
