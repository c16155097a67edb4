import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { delimiter, join } from "node:path";
import type { Logger } from "pino";

/** A nats-server child process started by `hookstream dev`. */
export interface LocalNats {
  readonly url: string;
  stop(): Promise<void>;
}

/** Where nats-server is: on PATH, or Debian's /usr/sbin; undefined when not installed. */
export function findNatsServer(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const dirs = [...(env["PATH"] ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, "nats-server");
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function killStale(pidFile: string, logger: Logger): void {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, "SIGTERM");
      logger.warn({ pid }, "stopped a nats-server left behind by an earlier dev run");
    } catch {
      // already gone
    }
  }
  rmSync(pidFile, { force: true });
}

/**
 * Starts nats-server with JetStream on a free loopback port, its store under
 * `${dataDir}/nats`, and waits until it accepts connections.
 */
export async function startLocalNats(
  dataDir: string,
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger,
): Promise<LocalNats> {
  const bin = findNatsServer(env);
  if (!bin) {
    throw new Error(
      "nats-server is not installed. Install it with `sudo apt-get install -y nats-server` (Debian/Ubuntu), " +
        "or download it from the NATS project, or point NATS_URL at a running NATS server with JetStream.",
    );
  }
  const storeDir = join(dataDir, "nats");
  mkdirSync(storeDir, { recursive: true });
  const pidFile = join(dataDir, "nats-server.pid");
  killStale(pidFile, logger);
  const port = await freePort();
  const child: ChildProcess = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await accepts(port)) {
      logger.info({ port, storeDir, natsPid: child.pid }, "started local nats-server");
      return {
        url: `nats://127.0.0.1:${port}`,
        async stop() {
          if (child.exitCode === null) child.kill("SIGTERM");
          await exited;
          rmSync(pidFile, { force: true });
        },
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`nats-server did not start on port ${port}:\n${stderr}`);
}
