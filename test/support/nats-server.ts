/**
 * A private nats-server per test file: its own free port and store directory, so a test can
 * stop and restart it on purpose and never sees another run's streams.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** A running test nats-server with JetStream on file storage. */
export interface TestNats {
  /** nats://127.0.0.1:PORT */
  url: string;
  port: number;
  storeDir: string;
  /** Stops the server and removes its store directory. */
  stop(): Promise<void>;
  /** Stops and starts the server again on the same port and store directory (data survives). */
  restart(): Promise<void>;
  /** Stops the server but keeps its store: an outage, ended by up(). */
  down(): Promise<void>;
  /** Starts the server again after down(), on the same port and store. */
  up(): Promise<void>;
}

/** Starts nats-server -js on a free port with a fresh temporary store directory. */
export async function startNatsServer(): Promise<TestNats> {
  const binary = findNatsServer();
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), "hookstream-nats-"));
  let child: ChildProcess | undefined = await launch(binary, port, storeDir);

  const halt = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running !== undefined) await kill(running);
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop() {
      await halt();
      await rm(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await halt();
      child = await launch(binary, port, storeDir);
    },
    async down() {
      await halt();
    },
    async up() {
      child = await launch(binary, port, storeDir);
    },
  };
}

function findNatsServer(): string {
  const dirs = [
    ...(process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== ""),
    "/usr/sbin",
    "/usr/local/sbin",
  ];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    "nats-server not found on PATH or in /usr/sbin: install it (Debian/Ubuntu: `apt-get install -y nats-server`, " +
      "or download a release from https://github.com/nats-io/nats-server/releases) to run the queue tests",
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

async function launch(binary: string, port: number, storeDir: string): Promise<ChildProcess> {
  const child = spawn(binary, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    // Keep only the tail: enough to explain a failed start.
    output = (output + chunk).slice(-4000);
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  // Generous: a restart replays the file store before accepting clients.
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`nats-server exited during start on port ${port}:\n${output}`);
    if (await accepts(port)) return child;
    await sleep(50);
  }
  await kill(child);
  throw new Error(`nats-server did not accept connections on port ${port} within 20s:\n${output}`);
}

/** True when the server answers a TCP connection with its INFO line. */
async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("data", (data) => done(data.toString("utf8").startsWith("INFO")));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
