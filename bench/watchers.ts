/**
 * The watchers case of `npm run bench -- --watchers N`: N concurrent WatchDeliveries streams on
 * one api process (the stack as separate processes, a private nats-server), against a raw
 * baseline measured in the same run: a bare connect-node server-streaming fan-out in its own
 * process (bench/fanout-baseline.ts). For each: watchers connected (first item received),
 * resident memory per watcher, and the latency of one event to the last watcher (Send reply →
 * the QUEUED item at the last watcher; for the baseline, broadcast reply → the last watcher).
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import http2 from "node:http2";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { WatchService } from "../gen/hookstream/v1/watch_service_pb.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { startReceiver } from "../test/support/receiver.ts";
import { createClients, startStack } from "../test/support/stack.ts";

/** Options of the watchers case. */
export interface WatchersBenchOptions {
  watchers: number;
  /** Events measured, one after another. */
  events: number;
  databaseUrl: string;
  logLevel: string;
}

const STREAMS_PER_CONNECTION = 250;
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/** N watchers over h2c connections of STREAMS_PER_CONNECTION streams each, recording receipts. */
function openWatchers(
  baseUrl: string,
  token: string | undefined,
  count: number,
  request: { endpointId: string },
): { connected: () => number; lastReceipt: (id: string) => { count: number; at: number }; close: () => void } {
  const controller = new AbortController();
  const receipts = new Map<string, { count: number; at: number }>();
  let connected = 0;
  let client: Client<typeof WatchService> | undefined;
  for (let i = 0; i < count; i++) {
    if (i % STREAMS_PER_CONNECTION === 0) {
      const transport = createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        interceptors:
          token === undefined
            ? []
            : [
                (next) => (req) => {
                  req.header.set("Authorization", `Bearer ${token}`);
                  return next(req);
                },
              ],
      });
      client = createClient(WatchService, transport);
    }
    const c = client!;
    void (async () => {
      let first = true;
      try {
        for await (const item of c.watchDeliveries(request, { signal: controller.signal })) {
          if (first) {
            first = false;
            connected++;
          }
          const id = item.delivery?.id;
          if (id === undefined || item.delivery?.status !== DeliveryStatus.QUEUED) continue;
          const r = receipts.get(id) ?? { count: 0, at: 0 };
          r.count++;
          r.at = now();
          receipts.set(id, r);
        }
      } catch {
        // aborted at the end, or refused: counted as not connected
      }
    })();
  }
  return {
    connected: () => connected,
    lastReceipt: (id) => receipts.get(id) ?? { count: 0, at: Number.NaN },
    close: () => controller.abort(),
  };
}

interface CaseResult {
  connected: number;
  connectMs: number;
  bytesPerWatcher: number;
  latenciesMs: number[];
  reached: number;
}

/** Connects `n` watchers, then measures `events` events one by one. */
async function measure(
  n: number,
  events: number,
  pid: number,
  open: () => ReturnType<typeof openWatchers>,
  fire: (i: number) => Promise<{ id: string; at: number }>,
): Promise<CaseResult> {
  const before = await rssBytes(pid);
  const started = now();
  const w = open();
  const deadline = now() + 300_000;
  while (w.connected() < n && now() < deadline) await sleep(50);
  const connectMs = now() - started;
  await sleep(1_000);
  const after = await rssBytes(pid);
  const latenciesMs: number[] = [];
  let reached = n;
  for (let i = 0; i < events; i++) {
    const { id, at } = await fire(i);
    const until = now() + 60_000;
    while (w.lastReceipt(id).count < w.connected() && now() < until) await sleep(5);
    const r = w.lastReceipt(id);
    reached = Math.min(reached, r.count);
    latenciesMs.push(r.at - at);
  }
  const connected = w.connected();
  w.close();
  return { connected, connectMs, bytesPerWatcher: (after - before) / Math.max(connected, 1), latenciesMs, reached };
}

/** Runs the case and prints its table. */
export async function runWatchersBench(opts: WatchersBenchOptions): Promise<void> {
  const n = opts.watchers;
  console.log(
    `hookstream bench: ${n.toLocaleString("en-US")} concurrent watchers on one api process, ${opts.events} events`,
  );
  const receiver = await startReceiver({ keepBodies: false });
  const nats = await startNatsServer();
  const baselineProc = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), "fanout-baseline.ts")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const baselinePort = await new Promise<number>((resolve, reject) => {
    baselineProc.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    baselineProc.once("exit", () => reject(new Error("the baseline server exited")));
  });
  const stack = await startStack({
    databaseUrl: opts.databaseUrl,
    natsUrl: nats.url,
    env: { LOG_LEVEL: opts.logLevel, HOOKSTREAM_WATCH_HEARTBEAT: "10m" },
  });
  try {
    // Baseline first: a bare connect-node fan-out of the same item type.
    const baseUrl = `http://127.0.0.1:${baselinePort}`;
    const trigger = http2.connect(baseUrl);
    const base = await measure(
      n,
      opts.events,
      baselineProc.pid!,
      () => openWatchers(baseUrl, undefined, n, { endpointId: "" }),
      async (i) => {
        const id = `dlv_base_${i}`;
        const at = now();
        await new Promise<void>((resolve, reject) => {
          const req = trigger.request({ ":method": "POST", ":path": `/broadcast?id=${id}` });
          req.on("error", reject);
          req.on("data", () => undefined);
          req.on("end", () => resolve());
          req.end();
        });
        return { id, at };
      },
    );

    trigger.close();
    const admin = createClients(stack.apiUrl, stack.adminToken);
    const ws = await admin.admin.createWorkspace({ name: "bench watchers" });
    const management = createClients(stack.apiUrl, ws.managementToken);
    const key = await management.apiKeys.createApiKey({ label: "bench" });
    const producer = createClients(stack.apiUrl, key.secret, { binary: true, httpVersion: "2" });
    const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hooks` } });
    const endpointId = ep.endpoint?.id ?? "";
    // Warm the api up (code paths, pools) before its memory is read.
    await producer.messages.send({ endpointId, eventType: "bench.warm", body: { case: "payloadJson", value: "{}" } });
    const ours = await measure(
      n,
      opts.events,
      stack.pid("api")!,
      () => openWatchers(stack.apiUrl, ws.managementToken, n, { endpointId }),
      async (i) => {
        const res = await producer.messages.send({
          endpointId,
          eventType: "bench.watch",
          body: { case: "payloadJson", value: `{"n":${i}}` },
        });
        return { id: res.deliveryId, at: now() };
      },
    );

    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    const worst = (xs: number[]): number => Math.max(...xs);
    const f = (x: number, d = 0): string =>
      Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }) : "n/a";
    const rows: Array<[string, string, string, string]> = [
      ["", "hookstream api", "raw connect-node", "ratio"],
      ["watchers connected", f(ours.connected), f(base.connected), ""],
      ["time to connect all", `${f(ours.connectMs / 1000, 1)} s`, `${f(base.connectMs / 1000, 1)} s`, ""],
      [
        "memory per watcher (RSS)",
        `${f(ours.bytesPerWatcher / 1024, 1)} KiB`,
        `${f(base.bytesPerWatcher / 1024, 1)} KiB`,
        `${f(ours.bytesPerWatcher / base.bytesPerWatcher, 2)} ×`,
      ],
      [
        "event → last watcher, median",
        `${f(median(ours.latenciesMs))} ms`,
        `${f(median(base.latenciesMs))} ms`,
        `${f(median(ours.latenciesMs) / median(base.latenciesMs), 2)} ×`,
      ],
      [
        "event → last watcher, worst",
        `${f(worst(ours.latenciesMs))} ms`,
        `${f(worst(base.latenciesMs))} ms`,
        `${f(worst(ours.latenciesMs) / worst(base.latenciesMs), 2)} ×`,
      ],
      ["watchers reached by every event", f(ours.reached), f(base.reached), ""],
    ];
    console.log("");
    for (const [a, b, c, d] of rows) console.log(`${a.padEnd(34)} ${b.padStart(16)} ${c.padStart(18)}  ${d}`);
  } finally {
    baselineProc.kill("SIGTERM");
    try {
      await stack.stopAll();
    } catch {
      stack.destroy();
    }
    await receiver.close();
    await nats.stop();
  }
}
