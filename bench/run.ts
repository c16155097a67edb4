/**
 * `npm run bench`: the whole stack as separate processes (api, dispatcher, worker; SQLite by
 * default, PostgreSQL when DATABASE_URL is postgres://…; a private nats-server) against a local
 * receiver, with a raw baseline measured in the same run, so the figures are comparable across
 * machines: plain undici POSTs to the same receiver and a no-op Connect RPC served in-process.
 * Only loopback traffic; every loop is bounded; the run stops by itself.
 *
 * Cases, each printed as a ratio against its baseline in the same run:
 * - single endpoint: accepted sends/s against a no-op Connect RPC, deliveries/s against raw POSTs;
 * - batched: the single-endpoint messages sent as SendBatch calls of N items (a fifth as many
 *   calls in flight), against the single-endpoint run, with its own CPU and row figures;
 * - fan-out: one message to N endpoints (the same payload sent to each), against single-endpoint
 *   deliveries/s measured again once every process is warm; then the same fan-out done by one
 *   Trigger per message (routed by event type to N endpoints of their own environment);
 * - a million pending retries in the database (inserted by one bulk SQL statement, due in a day):
 *   fresh deliveries/s with them against that warm single-endpoint run, then the release of a
 *   slice of them made due now, against fresh deliveries/s.
 *
 * Flags: `npm run bench -- --help` prints them (USAGE below); a bad flag or value exits 2.
 *
 * The isolation case sends messages spread over four healthy endpoints, first alone and then with
 * a fifth of the messages going to a dead endpoint (it accepts connections and never answers, so
 * every attempt times out after 5 s), and prints the healthy endpoints' deliveries/s in the second
 * run as a fraction of the first. The rate-limit case sends to one rate-limited endpoint and prints
 * the most requests the receiver saw in any one-second window against rate + burst.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { createServer as createH2cServer } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runWatchersBench } from "./watchers.ts";
import { findPid, snapshot, workRows } from "./work-meter.ts";
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { Agent, request } from "undici";
import { GetMessageResponseSchema, MessageService } from "../gen/hookstream/v1/message_service_pb.ts";
import { EnvironmentService } from "../gen/hookstream/v1/environment_service_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import { pino } from "pino";
import type { DatabaseConfig } from "../src/config/config.ts";
import { createOrmOptions } from "../src/store/orm-options.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { startReceiver } from "../test/support/receiver.ts";
import { createClients, startStack, type StackRole } from "../test/support/stack.ts";

const OPTIONS = {
  messages: { type: "string", default: "5000" },
  concurrency: { type: "string", default: "64" },
  rate: { type: "string", default: "200" },
  seconds: { type: "string", default: "10" },
  "log-level": { type: "string", default: "info" },
  "cpu-prof": { type: "boolean", default: false },
  http1: { type: "boolean", default: false },
  fanout: { type: "string", default: "10" },
  pending: { type: "string", default: "1000000" },
  due: { type: "string", default: "5000" },
  watchers: { type: "string", default: "0" },
  growth: { type: "string", default: "0" },
  "watch-events": { type: "string", default: "10" },
  "isolation-messages": { type: "string", default: "2000" },
  "no-guard": { type: "boolean", default: false },
  "rate-limit": { type: "string", default: "50" },
  "rate-burst": { type: "string", default: "10" },
  "rate-messages": { type: "string", default: "400" },
  workers: { type: "string", default: "1" },
  batch: { type: "string", default: "20" },
} as const;

const USAGE = `usage: npm run bench -- [flags]

  --messages N            throughput phase messages (default 5000)
  --concurrency N         Sends in flight (default 64)
  --rate N --seconds N    latency phase: msg/s and duration (default 200 for 10 s)
  --fanout N              endpoints per message in the fan-out cases (default 10; 0 skips them)
  --batch N               items per SendBatch in the batched case (default 20; 0 skips it)
  --pending N --due N     pending retries inserted (default 1000000; 0 skips) and made due (5000)
  --growth N              then fill up to N messages and measure the same phases again
  --isolation-messages N  dead-endpoint isolation case (default 2000; 0 skips it)
  --no-guard              per-endpoint concurrency cap and circuit breaker off (a before figure)
  --rate-limit N --rate-burst N --rate-messages N
                          rate-limit case (default 50 / 10 / 400; 0 messages skips it)
  --watchers N --watch-events N
                          only the watchers case: N WatchDeliveries streams (see bench/watchers.ts)
  --workers N             worker processes (default 1, at most 8)
  --http1                 Connect over HTTP/1.1 instead of h2c
  --log-level LEVEL       the roles' LOG_LEVEL (default info)
  --cpu-prof              CPU profiles of api and worker
  --help                  this text
`;

/** The parsed flags: strings for the valued ones, booleans for the switches. */
type Flags = { [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean };

function parseFlags(): Flags {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ options: { ...OPTIONS, help: { type: "boolean", default: false } } }).values;
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values["help"] === true) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (option.type !== "string" || name === "log-level") continue;
    const value = values[name];
    if (typeof value !== "string" || !/^\d+$/.test(value)) {
      process.stderr.write(`bench: --${name} must be a whole number, not ${JSON.stringify(value)}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  return values as Flags;
}
const flags = parseFlags();
const ISOLATION_MESSAGES = Math.min(Math.max(Number(flags["isolation-messages"]), 0), 1_000_000);
const RATE_LIMIT = Math.min(Math.max(Number(flags["rate-limit"]), 0), 100_000);
const RATE_BURST = Math.min(Math.max(Number(flags["rate-burst"]), 0), 100_000);
const RATE_MESSAGES = Math.min(Math.max(Number(flags["rate-messages"]), 0), 1_000_000);
const WORKERS = Math.min(Math.max(Math.floor(Number(flags.workers)), 1), 8);
const MESSAGES = Math.min(Math.max(Number(flags.messages), 1), 1_000_000);
const CONCURRENCY = Math.min(Math.max(Number(flags.concurrency), 1), 1024);
const RATE = Math.min(Math.max(Number(flags.rate), 1), 100_000);
const SECONDS = Math.min(Math.max(Number(flags.seconds), 1), 600);
const BASELINE_REQUESTS = Math.max(MESSAGES, 5_000);
const FANOUT = Math.min(Math.max(Math.trunc(Number(flags.fanout)), 0), 100);
const GROWTH = Math.min(Math.max(Math.trunc(Number(flags.growth)), 0), 1_000_000);
const PENDING = Math.min(Math.max(Math.trunc(Number(flags.pending)), 0), 10_000_000);
const DUE = Math.min(Math.max(Math.trunc(Number(flags.due)), 0), PENDING);
const HTTP_VERSION = flags.http1 ? "1.1" : "2";
const BATCH = Math.min(Math.max(Math.trunc(Number(flags.batch)), 0), 20);

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
      roles: [
        "api",
        "dispatcher",
        "worker",
        ...Array.from({ length: WORKERS - 1 }, (_, i) => `worker${i + 2}` as const),
      ],
      env: {
        LOG_LEVEL: flags["log-level"],
        HOOKSTREAM_RETRY_SCHEDULE: "1s,5s,30s",
        HOOKSTREAM_JOB_ACK_WAIT: "30s",
        ...(flags["no-guard"] ? { HOOKSTREAM_ENDPOINT_CONCURRENCY: "10000", HOOKSTREAM_BREAKER_FAILURES: "0" } : {}),
      },
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
    let sent = 0;
    const send = async (
      n: number,
      to = endpointId,
    ): Promise<{ deliveryId: string; messageId: string; repliedAt: number; tookMs: number }> => {
      const started = now();
      const res = await producer.messages.send({
        endpointId: to,
        eventType: "bench.event",
        body: { case: "payload", value: fromJson(ValueSchema, { type: "bench", n, padding: "x".repeat(200) }) },
      });
      const repliedAt = now();
      return { deliveryId: res.deliveryId, messageId: res.messageId, repliedAt, tookMs: repliedAt - started };
    };

    /**
     * Throughput: `messages` messages with `lanes` concurrent senders, each message sent to every
     * endpoint of `endpoints`, then until the receiver has every delivery; deliveries/s from the
     * first Send to the last receipt.
     */
    const throughput = async (
      messages: number,
      lanes: number,
      endpoints: readonly string[] = [endpointId],
      batch = 0,
    ): Promise<{ sendsPerSec: number; deliveriesPerSec: number; missing: number; ids: string[] }> => {
      const ids: string[] = [];
      const start = now();
      const sendMs =
        batch > 0
          ? await pool(Math.ceil(messages / batch), lanes, async (call) => {
              const first = call * batch;
              const items = Array.from({ length: Math.min(batch, messages - first) }, (_, i) => ({
                endpointId: endpoints[0] ?? endpointId,
                eventType: "bench.event",
                body: {
                  case: "payload" as const,
                  value: fromJson(ValueSchema, { type: "bench", n: sent + first + i, padding: "x".repeat(200) }),
                },
              }));
              const res = await producer.messages.sendBatch({ items });
              for (const r of res.results) if (r.response !== undefined) ids.push(r.response.deliveryId);
            })
          : await pool(messages, lanes, async (n) => {
              const results = await Promise.all(endpoints.map((ep) => send(sent + n, ep)));
              for (const r of results) ids.push(r.deliveryId);
            });
      sent += messages;
      const deadline = now() + 300_000;
      while (ids.some((id) => !delivered.has(id)) && now() < deadline) await sleep(20);
      const lastReceipt = Math.max(...ids.map((id) => delivered.get(id) ?? Number.NaN));
      return {
        sendsPerSec: (ids.length / sendMs) * 1000,
        deliveriesPerSec: (ids.length / (lastReceipt - start)) * 1000,
        missing: ids.filter((id) => !delivered.has(id)).length,
        ids,
      };
    };

    // Where the work of a throughput phase goes: CPU per process, PostgreSQL rows and commits.
    const statsDb = databaseUrl.startsWith("sqlite:") ? undefined : await openBenchDb(databaseUrl);
    const stats = statsDb === undefined ? undefined : (sql: string) => statsDb.execute(sql);
    const processes = {
      api: stack.pid("api"),
      dispatcher: stack.pid("dispatcher"),
      worker: stack.pid("worker"),
      "nats-server": await findPid(nats.storeDir),
    };
    const work: Array<[string, string, string]> = [];
    const measuredThroughput = async (label: string, messages: number, batch = 0): ReturnType<typeof throughput> => {
      const before = await snapshot(processes, stats);
      const result =
        batch > 0
          ? await throughput(messages, Math.max(1, Math.round(CONCURRENCY / 5)), [endpointId], batch)
          : await throughput(messages, CONCURRENCY);
      const cpu = await snapshot(processes, stats);
      // PostgreSQL backends publish their counters within 10 s of going idle (PGSTAT_IDLE_INTERVAL).
      const rowsAfter = stats === undefined ? cpu : (await sleep(11_000), await snapshot(processes, stats));
      work.push(...workRows(label, before, cpu, rowsAfter, result.ids.length));
      return result;
    };

    // Latency at a fixed offered rate: Send reply → receipt at the receiver.
    const latencyPhase = async () => {
      const latencyCount = RATE * SECONDS;
      const replies: Array<{ deliveryId: string; repliedAt: number; tookMs: number }> = [];
      const inFlight: Array<Promise<void>> = [];
      const latencyStart = now();
      for (let i = 0; i < latencyCount; i++) {
        const due = latencyStart + (i * 1000) / RATE;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        inFlight.push(send(sent + i).then((r) => void replies.push(r)));
      }
      await Promise.all(inFlight);
      const latencyDeadline = now() + 120_000;
      while (replies.some((r) => !delivered.has(r.deliveryId)) && now() < latencyDeadline) await sleep(20);
      const endToEnd = replies
        .filter((r) => delivered.has(r.deliveryId))
        .map((r) => Math.max(0, (delivered.get(r.deliveryId) ?? 0) - r.repliedAt))
        .sort((a, b) => a - b);
      const sendLatency = replies.map((r) => r.tookMs).sort((a, b) => a - b);
      sent += latencyCount;
      return { endToEnd, sendLatency, latencyMissing: replies.length - endToEnd.length };
    };

    // Single endpoint: MESSAGES concurrent Sends.
    const single = await measuredThroughput(`at ${fmt(MESSAGES)} messages`, MESSAGES);
    const { sendsPerSec, deliveriesPerSec, missing } = single;
    const { endToEnd, sendLatency, latencyMissing } = await latencyPhase();

    const cases: Array<[string, string, string]> = [];
    // Batched: as many messages again in SendBatch calls of BATCH items.
    if (BATCH > 0) {
      const batched = await measuredThroughput(`SendBatch of ${BATCH}`, MESSAGES, BATCH);
      cases.push(
        [
          `batched: SendBatch of ${BATCH}, deliveries/s`,
          `${fmt(batched.deliveriesPerSec)} /s`,
          `${fmt(batched.deliveriesPerSec / undiciRps, 3)} × undici POST (${fmt(batched.deliveriesPerSec / deliveriesPerSec, 2)} × single Sends)`,
        ],
        ["batched: accepted messages/s", `${fmt(batched.sendsPerSec)} /s`, ""],
        ["batched: not delivered", `${batched.missing}`, ""],
      );
    }
    // Growth: fill the tables up to GROWTH messages, then the same throughput and latency phases.
    if (GROWTH > sent) {
      const fill: string[] = [];
      const fillStart = now();
      await pool(GROWTH - sent - MESSAGES, CONCURRENCY, async (n) => void fill.push((await send(sent + n)).deliveryId));
      sent = Math.max(sent, GROWTH - MESSAGES);
      // The fill is delivered before the measured phases, so they see grown tables, not a backlog.
      let waitingFrom = 0;
      const fillDeadline = now() + 1_800_000;
      while (waitingFrom < fill.length && now() < fillDeadline) {
        while (waitingFrom < fill.length && delivered.has(fill[waitingFrom]!)) waitingFrom++;
        if (waitingFrom < fill.length) await sleep(100);
      }
      cases.push([
        `fill to ${fmt(GROWTH)} messages: deliveries/s`,
        `${fmt((fill.length / (now() - fillStart)) * 1000)} /s`,
        `${fill.length - fill.filter((id) => delivered.has(id)).length} not delivered`,
      ]);
      const grown = await measuredThroughput(`at ${fmt(GROWTH)} messages`, MESSAGES);
      const late = await latencyPhase();
      cases.push(
        [
          `at ${fmt(GROWTH)} messages: deliveries/s`,
          `${fmt(grown.deliveriesPerSec)} /s`,
          `${fmt(grown.deliveriesPerSec / undiciRps, 3)} × undici POST (${fmt(grown.deliveriesPerSec / deliveriesPerSec, 2)} × at ${fmt(MESSAGES)})`,
        ],
        [
          `at ${fmt(GROWTH)} messages: accepted sends/s`,
          `${fmt(grown.sendsPerSec)} /s`,
          `${fmt(grown.sendsPerSec / noopRps, 3)} × no-op RPC`,
        ],
        [
          `at ${fmt(GROWTH)}: Send reply → receipt p50 / p99`,
          `${fmt(percentile(late.endToEnd, 50), 1)} / ${fmt(percentile(late.endToEnd, 99), 1)} ms`,
          "",
        ],
        [
          `at ${fmt(GROWTH)}: Send call p50 / p99`,
          `${fmt(percentile(late.sendLatency, 50), 1)} / ${fmt(percentile(late.sendLatency, 99), 1)} ms`,
          "",
        ],
        [`at ${fmt(GROWTH)}: not delivered`, `${grown.missing} / ${late.latencyMissing}`, ""],
      );
    }
    await statsDb?.close();
    // The baseline of the fan-out and pending-retries cases: single-endpoint throughput again, now
    // that every process is warm (the first run above includes their warm-up).
    const warm = FANOUT > 0 || PENDING > 0 ? await throughput(MESSAGES, CONCURRENCY) : single;
    if (warm !== single) {
      cases.push(
        [`single endpoint again (warm), deliveries/s`, `${fmt(warm.deliveriesPerSec)} /s`, ""],
        ["single endpoint again: not delivered", `${warm.missing}`, ""],
      );
    }

    // Fan-out: one message to FANOUT endpoints, the same payload sent to each; as many deliveries
    // in all as the single-endpoint case, and as many Sends in flight.
    if (FANOUT > 0) {
      const fanEndpoints: string[] = [];
      for (let i = 0; i < FANOUT; i++) {
        const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/fanout/${i}` } });
        fanEndpoints.push(created.endpoint?.id ?? "");
      }
      const fan = await throughput(
        Math.ceil(MESSAGES / FANOUT),
        Math.max(1, Math.round(CONCURRENCY / FANOUT)),
        fanEndpoints,
      );
      cases.push(
        [
          `fan-out: 1 message → ${FANOUT} endpoints, deliveries/s`,
          `${fmt(fan.deliveriesPerSec)} /s`,
          `${fmt(fan.deliveriesPerSec / warm.deliveriesPerSec, 3)} × single endpoint (warm)`,
        ],
        ["fan-out: not delivered", `${fan.missing}`, ""],
      );

      // The same fan-out done by Hookstream: one Trigger per message, routed by its event type to
      // FANOUT endpoints of an environment of their own (so no other endpoint of the run matches),
      // through a producer key bound to it; as many deliveries in all, and as many calls in flight
      // as the Send fan-out has messages in flight.
      const t = management.transport;
      await createClient(EventTypeService, t).createEventType({ eventType: { name: "bench.fanout" } });
      const env = (
        await createClient(EnvironmentService, t).createEnvironment({
          environment: { name: "bench fan-out", slug: "bench-fanout" },
        })
      ).environment!;
      for (let i = 0; i < FANOUT; i++) {
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver.url}/trigger/${i}`, environmentId: env.id },
        });
      }
      const envKey = await management.apiKeys.createApiKey({ label: "bench fan-out", environmentId: env.id });
      const triggerer = createClients(stack.apiUrl, envKey.secret, { binary: true, httpVersion: HTTP_VERSION });
      const triggered: string[] = [];
      const triggerStart = now();
      const triggers = Math.ceil(MESSAGES / FANOUT);
      await pool(triggers, Math.max(1, Math.round(CONCURRENCY / FANOUT)), async (n) => {
        const res = await triggerer.messages.trigger({
          eventType: "bench.fanout",
          body: { case: "payload", value: fromJson(ValueSchema, { type: "bench", n, padding: "x".repeat(200) }) },
        });
        for (const d of res.deliveries) triggered.push(d.deliveryId);
      });
      const triggerDeadline = now() + 300_000;
      while (triggered.some((id) => !delivered.has(id)) && now() < triggerDeadline) await sleep(20);
      const lastTriggered = Math.max(...triggered.map((id) => delivered.get(id) ?? Number.NaN));
      const triggerRate = (triggered.length / (lastTriggered - triggerStart)) * 1000;
      cases.push(
        [
          `fan-out by Trigger: 1 message → ${FANOUT} endpoints, deliveries/s`,
          `${fmt(triggerRate)} /s`,
          `${fmt(triggerRate / warm.deliveriesPerSec, 3)} × single endpoint (warm)`,
        ],
        [
          "fan-out by Trigger: deliveries created / not delivered",
          `${triggered.length} / ${triggered.filter((id) => !delivered.has(id)).length}`,
          `${triggers} Triggers`,
        ],
      );
    }

    // A million pending retries: fresh throughput with them in the database against the warm run.
    if (PENDING > 0) {
      const before = warm;
      const probe = await send(sent++);
      const db = await openBenchDb(databaseUrl);
      const pending = await insertPendingRetries(db, {
        count: PENDING,
        workspaceId: ws.workspace?.id ?? "",
        messageId: probe.messageId,
        endpointId,
      });
      const withPending = await throughput(MESSAGES, CONCURRENCY);
      // Release: DUE of them made due now, then until the receiver has all of them.
      const releaseStart = now();
      const due = await makeDue(db, DUE);
      await db.close();
      const deadline = now() + 300_000;
      while (due.ids.some((id) => !delivered.has(id)) && now() < deadline) await sleep(20);
      const lastRelease = Math.max(...due.ids.map((id) => delivered.get(id) ?? Number.NaN));
      const releasePerSec = (due.ids.length / (lastRelease - releaseStart)) * 1000;
      cases.push(
        [
          `pending retries inserted (one statement, then vacuum)`,
          `${fmt(PENDING)}`,
          `in ${fmt(pending.insertMs / 1000, 1)} s`,
        ],
        [
          `fresh deliveries/s, ${fmt(PENDING)} pending`,
          `${fmt(withPending.deliveriesPerSec)} /s`,
          `${fmt(withPending.deliveriesPerSec / before.deliveriesPerSec, 3)} × 0 pending (warm run)`,
        ],
        [
          `due-retry release of ${fmt(DUE)} among ${fmt(PENDING)}`,
          `${fmt(releasePerSec)} /s`,
          `${fmt(releasePerSec / withPending.deliveriesPerSec, 3)} × fresh deliveries/s`,
        ],
        [`release query (${fmt(DUE)} due of ${fmt(PENDING)})`, `${fmt(due.queryMs, 2)} ms`, due.plan],
        [
          "pending case: not delivered (fresh / released)",
          `${withPending.missing} / ${due.ids.filter((id) => !delivered.has(id)).length}`,
          "",
        ],
      );
    }

    // Receipts by path, for the isolation and rate-limit cases.
    const byPath = new Map<string, number[]>();
    receiver.onRequest((r) => {
      const list = byPath.get(r.path) ?? [];
      list.push(r.receivedAt);
      byPath.set(r.path, list);
    });
    const sendTo = async (id: string, n: number): Promise<void> => {
      await producer.messages.send({
        endpointId: id,
        eventType: "bench.event",
        body: { case: "payload", value: fromJson(ValueSchema, { type: "bench", n, padding: "x".repeat(200) }) },
      });
    };
    const received = (paths: readonly string[]): number => paths.reduce((n, p) => n + (byPath.get(p)?.length ?? 0), 0);
    const waitFor = async (paths: readonly string[], count: number): Promise<void> => {
      const deadline = now() + 300_000;
      while (received(paths) < count && now() < deadline) await sleep(20);
    };

    // Isolation: healthy endpoints' throughput alone, then beside a dead endpoint.
    let isolation: { alone: number; beside: number; deadAttempts: number } | undefined;
    if (ISOLATION_MESSAGES > 0) {
      const dead = await startBlackhole();
      try {
        const healthy = await Promise.all(
          [0, 1, 2, 3].map(async (i) => {
            const path = `/healthy-${i}`;
            const e = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}${path}` } });
            return { id: e.endpoint?.id ?? "", path };
          }),
        );
        const deadEp = await management.endpoints.createEndpoint({
          endpoint: { url: dead.url, timeout: { seconds: 5n, nanos: 0 } },
        });
        const paths = healthy.map((h) => h.path);
        const run = async (withDead: boolean): Promise<number> => {
          const before = received(paths);
          const start = now();
          const total = withDead ? Math.ceil(ISOLATION_MESSAGES * 1.25) : ISOLATION_MESSAGES;
          let healthySent = 0;
          await pool(total, CONCURRENCY, async (n) => {
            if (withDead && n % 5 === 4) return sendTo(deadEp.endpoint?.id ?? "", n);
            const h = healthy[healthySent++ % healthy.length]!;
            return sendTo(h.id, n);
          });
          await waitFor(paths, before + ISOLATION_MESSAGES);
          const times = paths.flatMap((p) => byPath.get(p) ?? []).sort((a, b) => a - b);
          const last = times[before + ISOLATION_MESSAGES - 1] ?? Number.NaN;
          return (ISOLATION_MESSAGES / (last - start)) * 1000;
        };
        const alone = await run(false);
        const beside = await run(true);
        isolation = { alone, beside, deadAttempts: dead.connections() };
      } finally {
        await dead.close();
      }
    }

    // Rate limit: the most the receiver saw in any one-second window, against rate + burst.
    let rateCase: { most: number; achieved: number } | undefined;
    if (RATE_LIMIT > 0 && RATE_MESSAGES > 0) {
      const limited = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver.url}/limited`, rateLimit: RATE_LIMIT, rateLimitBurst: RATE_BURST },
      });
      await pool(RATE_MESSAGES, CONCURRENCY, (n) => sendTo(limited.endpoint?.id ?? "", n));
      await waitFor(["/limited"], RATE_MESSAGES);
      const times = [...(byPath.get("/limited") ?? [])].sort((a, b) => a - b);
      let most = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[i]! - times[j]! >= 1_000) j++;
        most = Math.max(most, i - j + 1);
      }
      const span = (times.at(-1) ?? 0) - (times[0] ?? 0);
      rateCase = { most, achieved: span > 0 ? ((times.length - 1) / span) * 1000 : Number.NaN };
    }

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
      ...cases,
      ["duplicate deliveries (at-least-once)", `${webhookRequests - delivered.size}`, ""],
      ...work,
    ];
    if (isolation !== undefined) {
      rows.push(
        ["isolation: 4 healthy endpoints alone", `${fmt(isolation.alone)} /s`, ""],
        [
          "isolation: the same beside a dead endpoint",
          `${fmt(isolation.beside)} /s`,
          `${fmt(isolation.beside / isolation.alone, 3)} × alone (goal ≥ 0.90)${flags["no-guard"] ? ", guard off" : ""}`,
        ],
        ["isolation: connections the dead endpoint got", `${isolation.deadAttempts}`, ""],
      );
    }
    if (rateCase !== undefined) {
      rows.push(
        [
          `rate limit ${RATE_LIMIT}/s + burst ${RATE_BURST}: most in 1 s`,
          `${rateCase.most}`,
          `limit + burst = ${RATE_LIMIT + RATE_BURST}${WORKERS > 1 ? `, ${WORKERS} workers` : ""}`,
        ],
        [
          "rate limit: achieved rate",
          `${fmt(rateCase.achieved, 1)} /s`,
          `${fmt(rateCase.achieved / RATE_LIMIT, 3)} × limit`,
        ],
      );
    }
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
    for (const [name, value, ratio] of rows) console.log(`${name.padEnd(56)} ${value.padStart(16)}  ${ratio}`);
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

/** The bench's own connection to the stack's database, for set-up that must not go through the API. */
interface BenchDb {
  readonly pg: boolean;
  execute(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  transaction<T>(fn: (execute: BenchDb["execute"]) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

async function openBenchDb(databaseUrl: string): Promise<BenchDb> {
  const pg = !databaseUrl.startsWith("sqlite:");
  const config: DatabaseConfig = pg
    ? { kind: "postgresql", url: databaseUrl }
    : { kind: "sqlite", path: databaseUrl.slice("sqlite:".length) };
  const orm = await MikroORM.init<AbstractSqlDriver, SqlEntityManager>(
    createOrmOptions(config, { logger: pino({ level: "silent" }), ensureDatabase: false }),
  );
  const run =
    (em: SqlEntityManager) =>
    async (sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> =>
      await em.execute(sql, [...params]);
  return {
    pg,
    execute: (sql, params) => run(orm.em.fork())(sql, params),
    transaction: (fn) => orm.em.fork().transactional((em) => fn(run(em))),
    close: () => orm.close(true),
  };
}

/** Bench rows: ids "dlv_zzb<23 digits>", after every real id, so they are easy to find again. */
const BENCH_ID_PREFIX = "dlv_zzb";

/**
 * Inserts `count` deliveries of one message to the bench endpoint, each pending a retry in a day,
 * with one INSERT … SELECT (generate_series on PostgreSQL, a recursive CTE on SQLite), then brings
 * the table to the steady state an installation holding them would be in (vacuumed, analysed,
 * checkpointed), so the measurement that follows is of having them, not of having just written them.
 */
async function insertPendingRetries(
  db: BenchDb,
  at: { count: number; workspaceId: string; messageId: string; endpointId: string },
): Promise<{ insertMs: number }> {
  const started = now();
  const columns =
    "id, workspace_id, message_id, endpoint_id, event_type, status, attempt_count, next_attempt_at, " +
    "last_response_status, last_error, created_at, updated_at";
  if (db.pg) {
    await db.execute(
      `insert into delivery (${columns})
       select '${BENCH_ID_PREFIX}' || lpad(g::text, 23, '0'), ?, ?, ?, 'bench.event', 'pending_retry', 1,
              now() + interval '1 day', 503, 'bench: pending retry', now(), now()
       from generate_series(1, ?::int) as g`,
      [at.workspaceId, at.messageId, at.endpointId, at.count],
    );
    await db.execute("vacuum analyze delivery");
    await db.execute("checkpoint");
  } else {
    const t = Date.now();
    await db.execute(
      `insert into delivery (${columns})
       select '${BENCH_ID_PREFIX}' || printf('%023d', n), ?, ?, ?, 'bench.event', 'pending_retry', 1,
              ?, 503, 'bench: pending retry', ?, ?
       from (with recursive g(n) as (select 1 union all select n + 1 from g where n < ?) select n from g)`,
      [at.workspaceId, at.messageId, at.endpointId, t + 86_400_000, t, t, at.count],
    );
    await db.execute("analyze delivery");
    await db.execute("pragma wal_checkpoint(truncate)");
  }
  return { insertMs: now() - started };
}

/**
 * Makes `count` of the bench's pending retries due now and, in the same transaction (so the
 * dispatcher sees them only afterwards), runs the dispatcher's release query under EXPLAIN
 * ANALYZE (PostgreSQL) or times it with its query plan (SQLite).
 */
async function makeDue(db: BenchDb, count: number): Promise<{ ids: string[]; queryMs: number; plan: string }> {
  const release =
    "select * from delivery where status in ('pending_retry', 'scheduled') and next_attempt_at <= ? " +
    "order by next_attempt_at asc, id asc limit 500";
  return db.transaction(async (execute) => {
    const nowParam = db.pg ? new Date().toISOString() : Date.now();
    const pick = `select id from delivery where id like '${BENCH_ID_PREFIX}%' and status = 'pending_retry' order by id limit ?`;
    const rows = await execute(`update delivery set next_attempt_at = ? where id in (${pick}) returning id`, [
      db.pg ? new Date(Date.now() - 1_000).toISOString() : Date.now() - 1_000,
      count,
    ]);
    const ids = rows.map((r) => String(r["id"]));
    if (db.pg) {
      const [out] = await execute(`explain (analyze, format json) ${release} for update skip locked`, [nowParam]);
      const [result] = out?.["QUERY PLAN"] as [{ Plan: PlanNode; "Execution Time": number }];
      return { ids, queryMs: result["Execution Time"], plan: planChain(result.Plan) };
    }
    const plan = await execute(`explain query plan ${release}`, [nowParam]);
    const started = now();
    await execute(release, [nowParam]);
    return { ids, queryMs: now() - started, plan: plan.map((r) => String(r["detail"])).join("; ") };
  });
}

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

/** "Limit ← LockRows ← Index Scan (delivery_…)": the first child at each level of a plan. */
function planChain(node: PlanNode): string {
  const parts: string[] = [];
  for (let n: PlanNode | undefined = node; n !== undefined; n = n.Plans?.[0]) {
    parts.push(n["Index Name"] === undefined ? n["Node Type"] : `${n["Node Type"]} (${n["Index Name"]})`);
  }
  return parts.join(" ← ");
}

/** A TCP server that accepts connections and never answers: every request to it times out. */
async function startBlackhole(): Promise<{ url: string; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createNetServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/dead`,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
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

if (Number(flags.watchers) > 0) {
  const envDb = process.env["DATABASE_URL"];
  const dir = await mkdtemp(join(tmpdir(), "hookstream-bench-"));
  try {
    await runWatchersBench({
      watchers: Math.min(Number(flags.watchers), 100_000),
      events: Math.min(Math.max(Number(flags["watch-events"]), 1), 1_000),
      databaseUrl: envDb !== undefined && /^postgres(ql)?:\/\//.test(envDb) ? envDb : `sqlite:${join(dir, "bench.db")}`,
      logLevel: flags["log-level"],
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
} else {
  await main();
}
