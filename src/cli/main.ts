/**
 * The `hookstream` binary: one process per role (api, dispatcher, worker), all of them
 * together (dev), or a one-shot schema migration (migrate).
 */
import { X509Certificate, createHash } from "node:crypto";
import { createAckRoutes } from "../api/ack-routes.ts";
import { createAckSigner } from "../domain/async-ack.ts";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { createAuthorizationInterceptor } from "../api/authorization.ts";
import { startHttpServer } from "../api/http-server.ts";
import { createRoutes, rawJsonMembers } from "../api/routes.ts";
import { CONFIG_DOCS, ConfigError, loadConfig, type Config, type Role } from "../config/config.ts";
import { createDispatcher } from "../dispatcher/dispatcher.ts";
import { createApiKeyUsageRecorder } from "../domain/api-keys.ts";
import { createAuthenticator } from "../domain/auth.ts";
import { createOutboxRelay } from "../domain/outbox-relay.ts";
import { createQuotaMeter } from "../domain/quota.ts";
import type { EndpointRecord, EnvironmentRecord, EventTypeRecord } from "../domain/records.ts";
import { createTtlCache } from "../domain/ttl-cache.ts";
import {
  createSecretBox,
  generateEncryptionKey,
  parseEncryptionKeys,
  type EncryptionKey,
  type SecretBox,
} from "../domain/secret-box.ts";
import { resealEndpointSecrets } from "../domain/secret-resealing.ts";
import { createMetrics } from "../observability/metrics.ts";
import { createLogger } from "../observability/logger.ts";
import { createJobConsumer } from "../queue/job-consumer.ts";
import { DeliveryJobSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { createNatsRateLimiter } from "../queue/rate-limit-bucket.ts";
import { connectNats } from "../queue/nats-connection.ts";
import { createOutboxPublisher } from "../queue/outbox-publisher.ts";
import { createStatusFeed } from "../queue/status-feed.ts";
import { ensureStreams, streamNames } from "../queue/streams.ts";
import { migrateDatabase, openStore } from "../store/open-store.ts";
import { createStatusAnnouncer } from "../domain/status-announcer.ts";
import { createDeliveryWorker } from "../worker/delivery-worker.ts";
import { createEndpointGuard } from "../worker/endpoint-guard.ts";
import { createHttpSender, type HttpSenderOptions } from "../worker/http-sender.ts";
import { createOutboundPolicy } from "../worker/outbound-policy.ts";
import { createSigningKeys } from "../worker/signing-keys.ts";
import { createEndpointProbe } from "../worker/endpoint-probe.ts";
import { createSlackDestination } from "../worker/slack-destination.ts";
import { createWebhookDestination } from "../worker/webhook-destination.ts";
import { startHealthServer, type Readiness } from "./health-server.ts";
import { startLocalNats } from "./local-nats.ts";
import { USER_USAGE, USER_VERBS, runUserCommand } from "./client-cli.ts";

const ROLES: readonly Role[] = ["dev", "api", "dispatcher", "worker", "migrate", "reencrypt"];

const USAGE = `Usage: hookstream <role> | <command>

Roles:
  dev         everything in one process: API, dispatcher and worker, an SQLite file under
              ./.hookstream/ and a local nats-server (unless NATS_URL is set)
  api         the Connect / gRPC / gRPC-Web server, health and metrics
  dispatcher  publishes committed work to JetStream and releases due retries
  worker      performs deliveries from the JetStream work stream
  migrate     applies pending database migrations, encrypts any plaintext signing secret
              (when HOOKSTREAM_ENCRYPTION_KEYS is set) and exits
  reencrypt   re-encrypts every stored secret with the first key of HOOKSTREAM_ENCRYPTION_KEYS
              and exits (after it, older keys can be removed)

Configuration (environment variables):
${CONFIG_DOCS.map((d) => `  ${d.env.padEnd(34)} ${d.doc}\n  ${"".padEnd(34)} default: ${d.default}`).join("\n")}
`;

/** Something to undo on shutdown, in reverse order of start. */
type Closer = { name: string; close: () => Promise<void> };

/** What this process started, undone on shutdown and when start-up fails half-way. */
const closers: Closer[] = [];

async function closeAll(logger: Pick<Logger, "error"> | undefined): Promise<number> {
  let code = 0;
  for (const c of closers.splice(0).reverse()) {
    try {
      await c.close();
    } catch (err) {
      code = 1;
      logger?.error({ err, step: c.name }, "shutdown step failed");
    }
  }
  return code;
}

function adminTokenForDev(config: Config, logger: Logger): string {
  if (config.adminToken !== undefined) return config.adminToken;
  const file = join(config.dataDir, "admin-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = `hsa_${randomBytes(24).toString("base64url")}`;
  writeFileSync(file, token + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
  logger.info({ file }, "generated an operator token");
  return token;
}

/**
 * dev without HOOKSTREAM_ENCRYPTION_KEYS: a local key generated once into the data directory
 * (mode 0600), so dev never stores a secret in plaintext either. Losing the file loses the
 * endpoints' signing secrets (rotate them); production roles take the key from configuration.
 */
function encryptionKeysForDev(config: Config, logger: Logger): readonly EncryptionKey[] {
  if (config.encryptionKeys.length > 0) return config.encryptionKeys;
  const file = join(config.dataDir, "encryption-key");
  if (!existsSync(file)) {
    writeFileSync(file, generateEncryptionKey("local") + "\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    logger.info({ file }, "generated a local encryption key for signing secrets");
  }
  const parsed = parseEncryptionKeys(readFileSync(file, "utf8"));
  if (parsed.problems.length > 0 || parsed.keys.length === 0) {
    throw new Error(`${file}: not an encryption key (${parsed.problems.join("; ")})`);
  }
  return parsed.keys;
}

/** Seals what is stored in plaintext ("plaintext") or under an older key ("all"), logging the counts. */
async function reseal(config: Config, box: SecretBox, scope: "plaintext" | "all", logger: Logger): Promise<void> {
  const store = await openStore(config.database, { logger });
  try {
    const report = await resealEndpointSecrets(store.endpointSecrets, box, scope);
    logger.info({ ...report, keyId: box.primaryKeyId, scope }, "endpoint secrets encrypted with the current key");
  } finally {
    await store.close();
  }
}

/**
 * The outbound sender's settings, the same for deliveries and TestEndpoint pings: the SSRF policy,
 * the proxy with its no-proxy list, and extra CA certificates from HOOKSTREAM_OUTBOUND_CA_FILE.
 */
function outboundOptions(config: Config): HttpSenderOptions {
  let ca: string[] | undefined;
  if (config.outboundCaFile !== undefined) {
    const text = readFileSync(config.outboundCaFile, "utf8");
    ca = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (ca.length === 0)
      throw new Error(`HOOKSTREAM_OUTBOUND_CA_FILE ${config.outboundCaFile} holds no PEM certificate`);
    for (const pem of ca) new X509Certificate(pem);
  }
  return {
    policy: createOutboundPolicy(config.outboundAllow),
    proxy:
      config.outboundProxy === undefined ? undefined : { url: config.outboundProxy, noProxy: config.outboundNoProxy },
    ca,
  };
}

async function run(role: Role): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(role, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, role);
  let shuttingDown = false;

  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    shuttingDown = true;
    logger.info({ signal }, "shutting down");
    const code = await closeAll(logger);
    logger.info({ code }, "stopped");
    logger.flush();
    process.exit(code);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  if (config.database.kind === "sqlite" || role === "dev") mkdirSync(config.dataDir, { recursive: true });

  if (role === "migrate" || role === "reencrypt") {
    if (role === "migrate") {
      const applied = await migrateDatabase(config.database, { logger });
      logger.info({ applied }, applied.length === 0 ? "database schema is up to date" : "applied migrations");
    }
    if (config.encryptionKeys.length > 0) {
      await reseal(config, createSecretBox(config.encryptionKeys), role === "reencrypt" ? "all" : "plaintext", logger);
    } else {
      logger.warn(
        "HOOKSTREAM_ENCRYPTION_KEYS is not set: plaintext signing secrets, if any, stay as they are until migrate runs with a key",
      );
    }
    logger.flush();
    process.exit(0);
  }

  const dev = role === "dev";
  const runs = (r: Role): boolean => dev || role === r;
  let adminToken = config.adminToken;
  let encryptionKeys = config.encryptionKeys;
  if (dev) {
    adminToken = adminTokenForDev(config, logger);
    encryptionKeys = encryptionKeysForDev(config, logger);
    await migrateDatabase(config.database, { logger });
    await reseal(config, createSecretBox(encryptionKeys), "plaintext", logger);
  }
  const secretBox = createSecretBox(encryptionKeys);

  let natsUrl = config.natsUrl;
  if (natsUrl === undefined) {
    const local = await startLocalNats(resolve(config.dataDir), process.env, logger);
    closers.push({ name: "local nats-server", close: () => local.stop() });
    natsUrl = local.url;
  }

  const store = await openStore(config.database, { logger });
  closers.push({ name: "database", close: () => store.close() });
  const nc: NatsConnection = await connectNats({ url: natsUrl, name: `hookstream-${role}`, logger });
  closers.push({ name: "nats", close: () => nc.drain() });
  const names = streamNames(config.streamPrefix);
  await ensureStreams(nc, names);
  const publisher = createOutboxPublisher(nc, names);
  const relay = createOutboxRelay(store.outbox, publisher, logger);
  closers.push({ name: "outbox relay", close: () => relay.drain() });
  const metrics = createMetrics(role);

  const ready = async (): Promise<Readiness> => {
    const checks: Record<string, string> = {};
    let ok = !shuttingDown;
    if (shuttingDown) checks["process"] = "shutting down";
    try {
      await store.ping();
      checks["database"] = "ok";
    } catch (err) {
      ok = false;
      checks["database"] = err instanceof Error ? err.message : String(err);
    }
    if (nc.isClosed() || nc.isDraining()) {
      ok = false;
      checks["nats"] = "closed";
    } else {
      try {
        await nc.flush();
        checks["nats"] = "ok";
      } catch (err) {
        ok = false;
        checks["nats"] = err instanceof Error ? err.message : String(err);
      }
    }
    return { ok, checks };
  };

  const retry = {
    schedule: config.retrySchedule,
    rateLimitSchedule: config.rateLimitRetrySchedule,
    maxAttempts: config.maxAttempts,
    jitter: config.retryJitter,
    maxRetryAfterMs: config.maxRetryAfterMs,
    retryableStatuses: config.retryableStatuses,
  };
  // Ack URLs are signed with HOOKSTREAM_ACK_SECRET, else a key derived from the operator token
  // (the same on every role of an installation); with neither, async ack is off.
  const ackSecret =
    config.ackSecret ??
    (adminToken === undefined ? undefined : createHash("sha256").update(`hookstream-ack\0${adminToken}`).digest("hex"));
  const ackSigner = ackSecret === undefined ? undefined : createAckSigner(config.publicUrl, ackSecret);

  if (runs("worker")) {
    const sender = createHttpSender(outboundOptions(config));
    closers.push({ name: "http sender", close: () => sender.close() });
    const asyncAck = ackSigner === undefined ? undefined : { signer: ackSigner, timeoutMs: config.ackTimeoutMs };
    const guard = createEndpointGuard({
      maxInFlight:
        config.endpointConcurrency > 0 ? config.endpointConcurrency : Math.ceil(config.workerConcurrency / 2),
      // Every waiting job holds one of the consumer's slots, so at most its concurrency wait.
      maxWaiters: config.workerConcurrency,
      breakerFailures: config.breakerFailures,
      breakerCooldownMs: config.breakerCooldownMs,
    });
    metrics.observeSlotWaiters(() => guard.waiting());
    // Attempt status events go out under this process's status lease, before any job is taken.
    const announcer = createStatusAnnouncer({
      store: store.statusLeases,
      publisher,
      logger,
      staleAfterMs: config.statusLeaseTimeoutMs,
      renewIntervalMs: Math.min(2_000, Math.max(100, Math.floor(config.statusLeaseTimeoutMs / 10))),
    });
    await announcer.start();
    closers.push({ name: "status announcer", close: () => announcer.stop() });
    const worker = createDeliveryWorker({
      store: store.deliveries,
      relay,
      announcer,
      destinations: {
        webhook: createWebhookDestination(sender, asyncAck, createSigningKeys(secretBox)),
        slack: createSlackDestination(sender),
      },
      retry,
      rateLimiter: await createNatsRateLimiter({ nc, prefix: config.streamPrefix }),
      guard,
      autoDisable: { failures: config.autoDisableFailures, windowMs: config.autoDisableWindowMs },
      asyncAck,
      logger,
      metrics,
    });
    const consumer = createJobConsumer({
      nc,
      names,
      schema: DeliveryJobSchema,
      durable: `${config.streamPrefix}_workers`,
      validate: (job) => (job.deliveryId === "" ? "delivery_id is empty" : undefined),
      describe: (job) => ({ deliveryId: job.deliveryId, attemptNumber: job.attemptNumber }),
      concurrency: config.workerConcurrency,
      ackWaitMs: config.jobAckWaitMs,
      logger,
      handle: (job, info) => worker.handle(job, info),
    });
    await consumer.start();
    closers.push({ name: "job consumer", close: () => consumer.stop(config.shutdownGraceMs) });
    logger.info({ concurrency: config.workerConcurrency, outboundAllow: config.outboundAllow }, "worker started");
  }

  if (runs("dispatcher")) {
    const dispatcher = createDispatcher({
      store: store.deliveries,
      bulk: store.recovery,
      bulkBatchSize: config.bulkBatchSize,
      acks: { ledger: store.recovery, retry },
      retention: {
        store: store.retention,
        defaultMs: config.payloadRetentionMs,
        intervalMs: config.retentionSweepIntervalMs,
      },
      relay,
      publishChecks: { store: store.deliveries, publisher },
      statusLeases: { store: store.statusLeases, publisher, staleAfterMs: config.statusLeaseTimeoutMs },
      logger,
      intervalMs: config.outboxSweepIntervalMs,
      releaseIntervalMs: config.releaseIntervalMs,
    });
    dispatcher.start();
    closers.push({ name: "dispatcher", close: () => dispatcher.stop() });
    logger.info({ intervalMs: config.outboxSweepIntervalMs }, "dispatcher started");
  }

  if (runs("api")) {
    const shutdownController = new AbortController();
    // TestEndpoint's pings go out from the API role, through the same outbound policy as deliveries.
    const probeSender = createHttpSender(outboundOptions(config));
    closers.push({ name: "probe http sender", close: () => probeSender.close() });
    const endpointProbe = createEndpointProbe({
      webhook: createWebhookDestination(probeSender, undefined, createSigningKeys(secretBox)),
      slack: createSlackDestination(probeSender),
    });
    const feed = createStatusFeed(nc, names);
    const keyUsage = createApiKeyUsageRecorder(store.apiKeys, config.apiKeyUsageFlushIntervalMs, (error) =>
      logger.warn({ err: error }, "could not write API key last-used times; retrying at the next flush"),
    );
    const auth = createAuthenticator(store.credentials, adminToken, config.cacheTtlMs, (id) => keyUsage.used(id));
    const quota = createQuotaMeter(store.quota, {
      limit: config.quotaLimit,
      limits: config.quotaLimits,
      windowMs: config.quotaWindowMs,
      flushIntervalMs: config.quotaFlushIntervalMs,
    });
    quota.start();
    const server = await startHttpServer({
      host: config.host,
      port: config.port,
      routes: createRoutes({
        workspaces: store.workspaces,
        environments: store.environments,
        environmentCache: createTtlCache<EnvironmentRecord | null>(config.cacheTtlMs),
        apiKeys: store.apiKeys,
        endpoints: store.endpoints,
        applications: store.applications,
        portalSessions: store.portalSessions,
        publicUrl: config.publicUrl,
        eventTypes: store.eventTypes,
        subscriptions: store.subscriptions,
        triggerTargets: store.subscriptions,
        logger,
        endpointProbe,
        messages: store.messages,
        deliveries: store.deliveries,
        deliveryStats: store.deliveryStats,
        recovery: store.recovery,
        relay,
        feed,
        auth,
        endpointCache: createTtlCache<EndpointRecord>(config.cacheTtlMs),
        eventTypeCache: createTtlCache<EventTypeRecord | null>(config.cacheTtlMs),
        maxPayloadBytes: config.maxPayloadBytes,
        idempotencyTtlMs: config.idempotencyTtlMs,
        publishCheckDelayMs: config.publishCheckDelayMs,
        quota,
        secretGracePeriodMs: config.secretGracePeriodMs,
        secrets: secretBox,
        shutdownSignal: shutdownController.signal,
        watchHeartbeatMs: config.watchHeartbeatMs,
      }),
      // Every RPC is authorized here, by the policy its method declares in the schema.
      interceptors: [createAuthorizationInterceptor(auth)],
      corsOrigins: config.corsOrigins,
      rawJsonMembers,
      plainRoutes:
        ackSigner === undefined ? [] : createAckRoutes({ ledger: store.recovery, relay, signer: ackSigner, retry }),
      // The payload limit plus room for the rest of the request and JSON's base64 of raw bytes.
      readMaxBytes: Math.ceil(config.maxPayloadBytes * 1.4) + 64 * 1024,
      ready,
      metrics: () => metrics.render(),
      logger,
    });
    closers.push({
      name: "api server",
      close: async () => {
        shutdownController.abort();
        await server.close(config.shutdownGraceMs);
        await feed.close();
        await keyUsage.stop();
        await quota.stop();
      },
    });
    const url = `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${server.port}`;
    logger.info({ port: server.port, url }, "api listening");
    if (dev) {
      process.stdout.write(
        `\n  Hookstream dev is running at ${url}\n` +
          `  Operator token (AdminService): ${adminToken}\n` +
          `  (kept in ${join(config.dataDir, "admin-token")}; data in ${config.dataDir}/)\n` +
          `  Try: curl -s ${url}/hookstream.v1.AdminService/CreateWorkspace -H 'Content-Type: application/json' \\\n` +
          `         -H "Authorization: Bearer ${adminToken}" -d '{"name":"demo"}'\n\n`,
      );
    }
  } else if (config.healthPort !== undefined) {
    const health = await startHealthServer(config.host, config.healthPort, ready, () => metrics.render());
    closers.push({ name: "health server", close: () => health.close() });
    logger.info({ port: health.port }, "health listener started");
  }
}

const arg = process.argv[2];
if (arg === undefined || arg === "help" || arg === "--help" || arg === "-h") {
  process.stdout.write(`${USAGE}\n${USER_USAGE}`);
  process.exit(arg === undefined ? 2 : 0);
}
if ((USER_VERBS as readonly string[]).includes(arg)) {
  // User commands (send, tail, endpoints, …) talk to an API over the SDK (bin/hookstream.js
  // starts them from src/cli/user-main.ts, which skips loading the server's modules).
  process.exit(await runUserCommand(process.argv.slice(2)));
}
if (!(ROLES as readonly string[]).includes(arg)) {
  process.stderr.write(`hookstream: unknown role ${JSON.stringify(arg)}\n\n${USAGE}`);
  process.exit(2);
}
run(arg as Role).catch(async (err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`hookstream ${arg}: ${message}\n`);
  await closeAll(undefined);
  process.exit(1);
});
