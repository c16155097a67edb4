/**
 * Hookstream's one configuration object, read from the environment once at start and
 * validated; nothing else in the code base reads process.env. Every option is listed in
 * CONFIG_DOCS with its variable and default (the README table is generated from it).
 */

import { parseEncryptionKeys, type EncryptionKey } from "../domain/secret-box.ts";

/** Which processes run in this binary. */
export type Role = "api" | "dispatcher" | "worker" | "dev" | "migrate" | "reencrypt";

/** Where the data lives: PostgreSQL by URL, or an SQLite file. */
export type DatabaseConfig =
  { readonly kind: "postgresql"; readonly url: string } | { readonly kind: "sqlite"; readonly path: string };

/** The typed, validated configuration. */
export interface Config {
  readonly role: Role;
  readonly database: DatabaseConfig;
  /** NATS URL; undefined in `dev` means "start a local nats-server". */
  readonly natsUrl: string | undefined;
  /** Prefix of the JetStream stream names and subjects, so several installs can share a server. */
  readonly streamPrefix: string;
  readonly host: string;
  readonly port: number;
  /** Port of the /healthz, /readyz and /metrics listener of the worker and dispatcher roles. */
  readonly healthPort: number | undefined;
  /** Operator token for AdminService; undefined disables AdminService (dev generates one). */
  readonly adminToken: string | undefined;
  readonly dataDir: string;
  readonly maxPayloadBytes: number;
  /** How long an idempotency key is held after its message was accepted. */
  readonly idempotencyTtlMs: number;
  /** Messages a workspace may send per quota window (0: unlimited), and per-workspace limits. */
  readonly quotaLimit: number;
  readonly quotaLimits: ReadonlyMap<string, number>;
  readonly quotaWindowMs: number;
  /** How often an API server adds its quota counts to the shared rows. */
  readonly quotaFlushIntervalMs: number;
  readonly corsOrigins: readonly string[];
  /** CIDRs that outbound deliveries may reach even though they are private. */
  readonly outboundAllow: readonly string[];
  /** HTTP(S) CONNECT proxy for outbound requests; undefined: direct. */
  readonly outboundProxy: URL | undefined;
  /** Destinations that bypass the proxy (host names, IPs, CIDRs, or *). */
  readonly outboundNoProxy: readonly string[];
  /** PEM file of extra CA certificates trusted for outbound TLS; undefined: Node's bundled roots only. */
  readonly outboundCaFile: string | undefined;
  readonly workerConcurrency: number;
  readonly jobAckWaitMs: number;
  /** Slow retry lane: delays after retryable failures other than 429. */
  readonly retrySchedule: readonly number[];
  /** Fast retry lane: delays after a 429. */
  readonly rateLimitRetrySchedule: readonly number[];
  readonly maxAttempts: number;
  /** Retry jitter as a fraction of each step (±). */
  readonly retryJitter: number;
  /** Longest Retry-After honoured. */
  readonly maxRetryAfterMs: number;
  /** Extra HTTP statuses treated as retryable. */
  readonly retryableStatuses: readonly number[];
  readonly secretGracePeriodMs: number;
  /**
   * Keys that encrypt secrets at rest, the first one sealing; empty only where no secret is read
   * or written (dispatcher, and migrate without keys) or in dev before its local key file is made.
   */
  readonly encryptionKeys: readonly EncryptionKey[];
  /** How long an API server trusts a credential or endpoint it has read (0 = never cache). */
  readonly cacheTtlMs: number;
  /** How often an API server writes the API key uses it coalesced (last-used times). */
  readonly apiKeyUsageFlushIntervalMs: number;
  readonly outboxSweepIntervalMs: number;
  /** How long after accepting a delivery its publish is checked (publish-check.ts). */
  readonly publishCheckDelayMs: number;
  /** When the dispatcher re-announces the attempts of a worker whose status lease was not renewed (status-announcer.ts). */
  readonly statusLeaseTimeoutMs: number;
  /** How often the dispatcher queues due scheduled messages and retries (at most outboxSweepIntervalMs). */
  readonly releaseIntervalMs: number;
  /** The API's base URL as receivers reach it (for ack URLs). */
  readonly publicUrl: string;
  /** How long a 202 answer of an async-ack endpoint waits for the ack. */
  readonly ackTimeoutMs: number;
  /** Key that signs ack URLs; undefined: derived from the operator token, or async ack is off. */
  readonly ackSecret: string | undefined;
  /** Default payload retention of a workspace. */
  readonly payloadRetentionMs: number;
  /** How often the dispatcher deletes expired payloads and attempts. */
  readonly retentionSweepIntervalMs: number;
  /** Deliveries one dispatcher round visits of a bulk operation (one transaction). */
  readonly bulkBatchSize: number;
  readonly shutdownGraceMs: number;
  /** How often an idle watch stream sends a heartbeat item (with the latest resume token). */
  readonly watchHeartbeatMs: number;
  readonly logLevel: string;
  /** Failed attempts in a row that, sustained over autoDisableWindowMs, disable an endpoint (0 = never). */
  readonly autoDisableFailures: number;
  /** How long an endpoint must have failed without a success before it is disabled. */
  readonly autoDisableWindowMs: number;
  /** Most attempts one endpoint may have in flight in one worker process. */
  readonly endpointConcurrency: number;
  /** Failed attempts in a row that open an endpoint's circuit in a worker (0 = no breaker). */
  readonly breakerFailures: number;
  /** How long an open circuit waits before its probe. */
  readonly breakerCooldownMs: number;
}

/** Documentation of every environment variable: name, default, meaning. */
export const CONFIG_DOCS: ReadonlyArray<{ readonly env: string; readonly default: string; readonly doc: string }> = [
  {
    env: "DATABASE_URL",
    default: "sqlite:./.hookstream/hookstream.db",
    doc: "postgres://… for PostgreSQL, or sqlite:PATH (or a bare path) for an SQLite file.",
  },
  {
    env: "NATS_URL",
    default: "nats://127.0.0.1:4222 (dev: a local nats-server on a free port)",
    doc: "NATS server with JetStream.",
  },
  {
    env: "HOOKSTREAM_STREAM_PREFIX",
    default: "HOOKSTREAM",
    doc: "Prefix of JetStream stream names and subjects (letters, digits, _ and -).",
  },
  { env: "HOST", default: "127.0.0.1 (dev) / 0.0.0.0", doc: "Address the API server listens on." },
  {
    env: "PORT",
    default: "8080",
    doc: "Port of the API server: Connect, gRPC-Web and HTTP/1.1 and gRPC over h2c on one port.",
  },
  {
    env: "HOOKSTREAM_HEALTH_PORT",
    default: "unset (no listener)",
    doc: "worker and dispatcher roles: port serving /healthz, /readyz and /metrics on HOST.",
  },
  {
    env: "HOOKSTREAM_ADMIN_TOKEN",
    default: "unset (dev: generated, printed and kept in ./.hookstream/admin-token)",
    doc: "Operator token for AdminService; when unset AdminService answers unauthenticated.",
  },
  {
    env: "HOOKSTREAM_DATA_DIR",
    default: "./.hookstream",
    doc: "Where dev keeps its SQLite file, admin token and nats-server data.",
  },
  { env: "HOOKSTREAM_MAX_PAYLOAD_BYTES", default: "262144", doc: "Largest payload accepted by Send, in bytes." },
  {
    env: "HOOKSTREAM_IDEMPOTENCY_TTL",
    default: "24h",
    doc: "How long an idempotency key is held after its message was accepted (the same key and request replay the result; other content is already_exists); then the key may be used again.",
  },
  {
    env: "HOOKSTREAM_QUOTA_LIMIT",
    default: "0 (unlimited)",
    doc: "Messages each workspace may send per quota window; more are refused with resource_exhausted and the delay until the reset.",
  },
  {
    env: "HOOKSTREAM_QUOTA_LIMITS",
    default: "empty",
    doc: "Per-workspace limits over HOOKSTREAM_QUOTA_LIMIT: comma-separated ws_…=N (0: unlimited).",
  },
  {
    env: "HOOKSTREAM_QUOTA_WINDOW",
    default: "1d",
    doc: "Length of a quota window, aligned to the epoch (1d resets at 00:00 UTC).",
  },
  {
    env: "HOOKSTREAM_QUOTA_FLUSH_INTERVAL",
    default: "1s",
    doc: "How often an API server adds its quota counts to the shared counters (with N API servers a window may overshoot by what the others accepted in this time).",
  },
  {
    env: "HOOKSTREAM_CORS_ORIGINS",
    default: "*",
    doc: "Comma-separated origins allowed to call the API from a browser, or * for any.",
  },
  {
    env: "HOOKSTREAM_OUTBOUND_ALLOW",
    default: "empty (dev: 127.0.0.0/8,::1/128)",
    doc: "Comma-separated CIDRs deliveries may reach although they are private, loopback or link-local.",
  },
  {
    env: "HOOKSTREAM_OUTBOUND_PROXY",
    default: "unset (direct)",
    doc: "http(s)://[user:password@]host:port of a CONNECT proxy for every outbound request; the SSRF guard checks the destination first.",
  },
  {
    env: "HOOKSTREAM_OUTBOUND_NO_PROXY",
    default: "empty",
    doc: "Comma-separated destinations reached without the proxy: host names (and their subdomains), IPs, CIDRs, or *.",
  },
  {
    env: "HOOKSTREAM_OUTBOUND_CA_FILE",
    default: "unset (Node's bundled roots)",
    doc: "PEM file of extra CA certificates trusted for outbound TLS (endpoints and an https proxy), beside Node's roots.",
  },
  { env: "HOOKSTREAM_WORKER_CONCURRENCY", default: "64", doc: "Deliveries one worker process performs at once." },
  {
    env: "HOOKSTREAM_JOB_ACK_WAIT",
    default: "30s",
    doc: "How long a job may go without an ack or progress signal before JetStream hands it to another worker.",
  },
  {
    env: "HOOKSTREAM_RETRY_SCHEDULE",
    default: "30m,2h,6h,12h,24h,48h,72h,96h",
    doc: "Slow retry lane: delays before each retry after a network error, timeout, 408, 425 or 5xx (the last step repeats).",
  },
  {
    env: "HOOKSTREAM_RATE_LIMIT_RETRY_SCHEDULE",
    default: "30s,60s,120s,240s,300s",
    doc: "Fast retry lane: delays before each retry after a 429 Too Many Requests (the last step repeats).",
  },
  { env: "HOOKSTREAM_MAX_ATTEMPTS", default: "9", doc: "Attempts before a delivery is dead-lettered (status failed)." },
  {
    env: "HOOKSTREAM_RETRY_JITTER",
    default: "0.2",
    doc: "Retry jitter: each delay is spread uniformly within ± this fraction of its step (0 to 1).",
  },
  {
    env: "HOOKSTREAM_RETRY_AFTER_MAX",
    default: "24h",
    doc: "A receiver's Retry-After is honoured as the least delay up to this long; a longer one is capped.",
  },
  {
    env: "HOOKSTREAM_RETRYABLE_STATUSES",
    default: "empty",
    doc: "Comma-separated extra HTTP statuses to retry (408, 425, 429 and 5xx always are; other 4xx fail at once, 410 also disables the endpoint).",
  },
  {
    env: "HOOKSTREAM_SECRET_GRACE_PERIOD",
    default: "24h",
    doc: "How long a rotated-out signing secret keeps signing alongside the new one.",
  },
  {
    env: "HOOKSTREAM_ENCRYPTION_KEYS",
    default: "required (dev: generated in ./.hookstream/encryption-key)",
    doc: "Comma-separated id:base64 AES-256 keys encrypting secrets at rest; the first encrypts, all decrypt (see Signing secrets at rest).",
  },
  {
    env: "HOOKSTREAM_CACHE_TTL",
    default: "2s",
    doc: "How long an API server reuses a credential or endpoint it has read; a revoked key or deleted endpoint is refused by other API servers within this time (0 disables).",
  },
  {
    env: "HOOKSTREAM_API_KEY_USAGE_FLUSH_INTERVAL",
    default: "10s",
    doc: "How often an API server writes the last-used times of the API keys it saw (one write per key per interval, never one per request).",
  },
  {
    env: "HOOKSTREAM_OUTBOX_SWEEP_INTERVAL",
    default: "1s",
    doc: "How often the dispatcher looks for committed work not yet published, and due retries.",
  },
  {
    env: "HOOKSTREAM_PUBLISH_CHECK_DELAY",
    default: "10s",
    doc: "How long after accepting a message the dispatcher re-publishes its deliveries if they are still queued (recovers a publish lost to a crash or a NATS outage; keep it under the two-minute duplicate window).",
  },
  {
    env: "HOOKSTREAM_STATUS_LEASE_TIMEOUT",
    default: "60s",
    doc: "How long a worker's status lease may go unrenewed before the dispatcher re-publishes the status events of the attempts it recorded and did not confirm (recovers events lost to a worker crash); a worker stops recording attempts when its own lease is half this old.",
  },
  {
    env: "HOOKSTREAM_RELEASE_INTERVAL",
    default: "250ms",
    doc: "How often the dispatcher queues scheduled messages and retries whose time has come (a message goes out within about this long after its time; capped at HOOKSTREAM_OUTBOX_SWEEP_INTERVAL).",
  },
  {
    env: "HOOKSTREAM_PUBLIC_URL",
    default: "http://HOST:PORT (127.0.0.1 when HOST is 0.0.0.0)",
    doc: "The API's base URL as webhook receivers reach it; ack and nack URLs are built on it.",
  },
  {
    env: "HOOKSTREAM_AUTO_DISABLE_FAILURES",
    default: "10",
    doc: "worker: an endpoint is disabled after at least this many failed attempts in a row spanning HOOKSTREAM_AUTO_DISABLE_WINDOW without a success (0 = never; a 410 Gone always disables).",
  },
  {
    env: "HOOKSTREAM_ENDPOINT_CONCURRENCY",
    default: "0 (half of HOOKSTREAM_WORKER_CONCURRENCY)",
    doc: "worker: most attempts one endpoint may have in flight in one worker process (a new endpoint starts at 4, halved per failure, grown back per success); past it, a fast endpoint's jobs wait in the worker for a slot, a slow or dead one's go back to the queue and the slots serve other endpoints.",
  },
  {
    env: "HOOKSTREAM_BREAKER_FAILURES",
    default: "5",
    doc: "worker: failed attempts in a row (timeout, connect, DNS, TLS, 5xx, 429) that open an endpoint's circuit: its jobs then wait without an attempt until a probe succeeds (0 = no breaker).",
  },
  {
    env: "HOOKSTREAM_BREAKER_COOLDOWN",
    default: "30s",
    doc: "worker: how long an open circuit waits before one probe; a failed probe doubles it, up to 16 times.",
  },
  {
    env: "HOOKSTREAM_AUTO_DISABLE_WINDOW",
    default: "5d",
    doc: "worker: how long an endpoint must have been failing, without a success, before it is disabled.",
  },
  {
    env: "HOOKSTREAM_ACK_TIMEOUT",
    default: "1h",
    doc: "How long a delivery answered 202 by an async_ack endpoint waits for its ack before the wait counts as a failed attempt.",
  },
  {
    env: "HOOKSTREAM_ACK_SECRET",
    default: "derived from HOOKSTREAM_ADMIN_TOKEN",
    doc: "Key that signs ack and nack URLs; the same on every api and worker. Without it and without an operator token, 202 is plain success.",
  },
  {
    env: "HOOKSTREAM_PAYLOAD_RETENTION",
    default: "30d",
    doc: "How long message payloads (and attempts of finished deliveries) are kept, unless a workspace sets its own (WorkspaceService.UpdateWorkspace).",
  },
  {
    env: "HOOKSTREAM_RETENTION_SWEEP_INTERVAL",
    default: "1m",
    doc: "How often the dispatcher deletes expired payloads and attempts, in small batches.",
  },
  {
    env: "HOOKSTREAM_BULK_BATCH_SIZE",
    default: "500",
    doc: "Deliveries a dispatcher visits per round (one transaction) when it works through a bulk retry, replay or cancel.",
  },
  {
    env: "HOOKSTREAM_SHUTDOWN_GRACE",
    default: "20s",
    doc: "How long graceful shutdown waits for in-flight work on SIGTERM.",
  },
  {
    env: "HOOKSTREAM_WATCH_HEARTBEAT",
    default: "15s",
    doc: "How often a quiet watch stream sends a heartbeat item with its latest resume token (every stream also starts with one).",
  },
  { env: "LOG_LEVEL", default: "info", doc: "pino log level: fatal, error, warn, info, debug, trace, silent." },
];

/** A configuration problem, reported all at once at start. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "0", "250ms", "30s", "5m", "2h" or "1d" to milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (text.trim() === "0") return 0;
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Reads and validates the configuration for `role` from `env`. */
export function loadConfig(role: Role, env: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = [];
  const dev = role === "dev";
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected a whole number from ${min} to ${max}`);
      return def;
    }
    return n;
  };
  const duration = (name: string, def: string): number => {
    const raw = get(name) ?? def;
    const ms = parseDuration(raw);
    if (ms === undefined) {
      problems.push(`${name}=${raw}: expected a duration such as 500ms, 30s, 5m, 2h or 1d`);
      return parseDuration(def)!;
    }
    return ms;
  };
  const list = (name: string, def: string): string[] =>
    (get(name) ?? def)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");

  const dataDir = get("HOOKSTREAM_DATA_DIR") ?? "./.hookstream";
  const dbRaw = get("DATABASE_URL") ?? `sqlite:${dataDir}/hookstream.db`;
  let database: DatabaseConfig;
  if (/^postgres(ql)?:\/\//.test(dbRaw)) {
    database = { kind: "postgresql", url: dbRaw };
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dbRaw)) {
    problems.push(`DATABASE_URL=${dbRaw}: expected postgres://… or sqlite:PATH`);
    database = { kind: "sqlite", path: `${dataDir}/hookstream.db` };
  } else {
    database = { kind: "sqlite", path: dbRaw.replace(/^sqlite:/, "") };
  }

  const streamPrefix = get("HOOKSTREAM_STREAM_PREFIX") ?? "HOOKSTREAM";
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(streamPrefix)) {
    problems.push(`HOOKSTREAM_STREAM_PREFIX=${streamPrefix}: expected 1 to 32 letters, digits, _ or -`);
  }

  const schedule = (name: string, def: string): number[] => {
    const steps = list(name, def).map((s) => {
      const ms = parseDuration(s);
      if (ms === undefined) problems.push(`${name}: ${s} is not a duration`);
      return ms ?? 0;
    });
    if (steps.length === 0) problems.push(`${name}: needs at least one delay`);
    return steps;
  };
  const retrySchedule = schedule("HOOKSTREAM_RETRY_SCHEDULE", "30m,2h,6h,12h,24h,48h,72h,96h");
  const rateLimitRetrySchedule = schedule("HOOKSTREAM_RATE_LIMIT_RETRY_SCHEDULE", "30s,60s,120s,240s,300s");
  const jitterRaw = get("HOOKSTREAM_RETRY_JITTER") ?? "0.2";
  const retryJitter = Number(jitterRaw);
  if (!Number.isFinite(retryJitter) || retryJitter < 0 || retryJitter > 1) {
    problems.push(`HOOKSTREAM_RETRY_JITTER=${jitterRaw}: expected a number from 0 to 1`);
  }
  const retryableStatuses = list("HOOKSTREAM_RETRYABLE_STATUSES", "").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 400 || n > 499) {
      problems.push(`HOOKSTREAM_RETRYABLE_STATUSES: ${s} is not a 4xx status`);
    }
    return n;
  });

  const parsedKeys = parseEncryptionKeys(get("HOOKSTREAM_ENCRYPTION_KEYS") ?? "");
  for (const p of parsedKeys.problems) problems.push(`HOOKSTREAM_ENCRYPTION_KEYS: ${p}`);
  if (
    parsedKeys.keys.length === 0 &&
    parsedKeys.problems.length === 0 &&
    (role === "api" || role === "worker" || role === "reencrypt")
  ) {
    problems.push(
      `HOOKSTREAM_ENCRYPTION_KEYS is required by the ${role} role: signing secrets are never stored or read in plaintext ` +
        `(create a key with: node -e 'console.log("k1:" + require("crypto").randomBytes(32).toString("base64"))')`,
    );
  }

  const proxyRaw = get("HOOKSTREAM_OUTBOUND_PROXY");
  let outboundProxy: URL | undefined;
  if (proxyRaw !== undefined) {
    try {
      outboundProxy = new URL(proxyRaw);
      if (
        (outboundProxy.protocol !== "http:" && outboundProxy.protocol !== "https:") ||
        outboundProxy.hostname === ""
      ) {
        throw new Error("scheme");
      }
    } catch {
      problems.push(
        `HOOKSTREAM_OUTBOUND_PROXY=${proxyRaw.replace(/\/\/[^@/]*@/, "//***@")}: expected http://host:port or https://host:port`,
      );
      outboundProxy = undefined;
    }
  }
  const outboundNoProxy = list("HOOKSTREAM_OUTBOUND_NO_PROXY", "");
  for (const entry of outboundNoProxy) {
    if (
      entry !== "*" &&
      !/^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(entry) &&
      !/^[0-9A-Fa-f.:[\]]+(\/\d{1,3})?$/.test(entry)
    ) {
      problems.push(`HOOKSTREAM_OUTBOUND_NO_PROXY: ${entry} is not a host name, IP, CIDR or *`);
    }
  }

  const logLevel = get("LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel}: expected fatal, error, warn, info, debug, trace or silent`);
  }

  const host = get("HOST") ?? (dev ? "127.0.0.1" : "0.0.0.0");
  const port = int("PORT", 8080, 0, 65535);
  const publicUrlRaw = get("HOOKSTREAM_PUBLIC_URL");
  if (publicUrlRaw !== undefined && !/^https?:\/\/[^/]+/.test(publicUrlRaw)) {
    problems.push(`HOOKSTREAM_PUBLIC_URL=${publicUrlRaw}: expected an http(s) URL`);
  }
  const config: Config = {
    role,
    database,
    natsUrl: get("NATS_URL") ?? (dev ? undefined : "nats://127.0.0.1:4222"),
    streamPrefix,
    host,
    port,
    healthPort: get("HOOKSTREAM_HEALTH_PORT") === undefined ? undefined : int("HOOKSTREAM_HEALTH_PORT", 0, 0, 65535),
    adminToken: get("HOOKSTREAM_ADMIN_TOKEN"),
    dataDir,
    maxPayloadBytes: int("HOOKSTREAM_MAX_PAYLOAD_BYTES", 262_144, 1, 64 * 1024 * 1024),
    idempotencyTtlMs: Math.max(1_000, duration("HOOKSTREAM_IDEMPOTENCY_TTL", "24h")),
    quotaLimit: int("HOOKSTREAM_QUOTA_LIMIT", 0, 0, Number.MAX_SAFE_INTEGER),
    quotaLimits: new Map(
      list("HOOKSTREAM_QUOTA_LIMITS", "").map((entry): [string, number] => {
        const m = /^(ws_[0-9a-z]{26})=(\d{1,15})$/.exec(entry);
        if (!m) problems.push(`HOOKSTREAM_QUOTA_LIMITS: ${entry} is not ws_…=N`);
        return m ? [m[1]!, Number(m[2])] : ["", 0];
      }),
    ),
    quotaWindowMs: Math.max(1_000, duration("HOOKSTREAM_QUOTA_WINDOW", "1d")),
    quotaFlushIntervalMs: Math.max(10, duration("HOOKSTREAM_QUOTA_FLUSH_INTERVAL", "1s")),
    corsOrigins: list("HOOKSTREAM_CORS_ORIGINS", "*"),
    outboundAllow: list("HOOKSTREAM_OUTBOUND_ALLOW", dev ? "127.0.0.0/8,::1/128" : ""),
    outboundProxy,
    outboundNoProxy,
    outboundCaFile: get("HOOKSTREAM_OUTBOUND_CA_FILE"),
    workerConcurrency: int("HOOKSTREAM_WORKER_CONCURRENCY", 64, 1, 10_000),
    jobAckWaitMs: duration("HOOKSTREAM_JOB_ACK_WAIT", "30s"),
    retrySchedule,
    rateLimitRetrySchedule,
    maxAttempts: int("HOOKSTREAM_MAX_ATTEMPTS", 9, 1, 100),
    retryJitter: Number.isFinite(retryJitter) ? Math.min(Math.max(retryJitter, 0), 1) : 0.2,
    maxRetryAfterMs: duration("HOOKSTREAM_RETRY_AFTER_MAX", "24h"),
    retryableStatuses,
    secretGracePeriodMs: duration("HOOKSTREAM_SECRET_GRACE_PERIOD", "24h"),
    encryptionKeys: parsedKeys.keys,
    cacheTtlMs: duration("HOOKSTREAM_CACHE_TTL", "2s"),
    apiKeyUsageFlushIntervalMs: duration("HOOKSTREAM_API_KEY_USAGE_FLUSH_INTERVAL", "10s"),
    outboxSweepIntervalMs: duration("HOOKSTREAM_OUTBOX_SWEEP_INTERVAL", "1s"),
    publishCheckDelayMs: duration("HOOKSTREAM_PUBLISH_CHECK_DELAY", "10s"),
    statusLeaseTimeoutMs: Math.max(1_000, duration("HOOKSTREAM_STATUS_LEASE_TIMEOUT", "60s")),
    releaseIntervalMs: Math.max(10, duration("HOOKSTREAM_RELEASE_INTERVAL", "250ms")),
    publicUrl: (get("HOOKSTREAM_PUBLIC_URL") ?? `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`).replace(
      /\/+$/,
      "",
    ),
    ackTimeoutMs: duration("HOOKSTREAM_ACK_TIMEOUT", "1h"),
    autoDisableFailures: int("HOOKSTREAM_AUTO_DISABLE_FAILURES", 10, 0, 1_000_000),
    autoDisableWindowMs: duration("HOOKSTREAM_AUTO_DISABLE_WINDOW", "5d"),
    endpointConcurrency: int("HOOKSTREAM_ENDPOINT_CONCURRENCY", 0, 0, 10_000),
    breakerFailures: int("HOOKSTREAM_BREAKER_FAILURES", 5, 0, 1_000_000),
    breakerCooldownMs: duration("HOOKSTREAM_BREAKER_COOLDOWN", "30s"),
    ackSecret: get("HOOKSTREAM_ACK_SECRET"),
    payloadRetentionMs: duration("HOOKSTREAM_PAYLOAD_RETENTION", "30d"),
    retentionSweepIntervalMs: duration("HOOKSTREAM_RETENTION_SWEEP_INTERVAL", "1m"),
    bulkBatchSize: int("HOOKSTREAM_BULK_BATCH_SIZE", 500, 1, 10_000),
    shutdownGraceMs: duration("HOOKSTREAM_SHUTDOWN_GRACE", "20s"),
    watchHeartbeatMs: duration("HOOKSTREAM_WATCH_HEARTBEAT", "15s"),
    logLevel,
  };
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  return config;
}
