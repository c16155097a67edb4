import { MikroORM } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import type { Logger } from "pino";
import type { DatabaseConfig } from "../config/config.ts";
import { DomainError } from "../domain/errors.ts";
import { createApiKeyRepository, type ApiKeyStore } from "./api-keys/api-key-repository.ts";
import { createPortalSessionRepository, type PortalSessionStore } from "./portal-sessions/portal-session-repository.ts";
import { createApplicationRepository, type ApplicationStore } from "./applications/application-repository.ts";
import { createDeliveryRepository, type DeliveryStore } from "./deliveries/delivery-repository.ts";
import { createDeliveryStatsRepository } from "./deliveries/delivery-stats-repository.ts";
import type { DeliveryStatsReader } from "../domain/delivery-stats.ts";
import { createEndpointRepository } from "./endpoints/endpoint-repository.ts";
import { createEnvironmentRepository, type EnvironmentStore } from "./environments/environment-repository.ts";
import { createEventTypeRepository } from "./event-types/event-type-repository.ts";
import { createSubscriptionRepository, type SubscriptionStore } from "./subscriptions/subscription-repository.ts";
import { createMessageRepository, type MessageStore } from "./messages/message-repository.ts";
import { outboxBacklogFor } from "./outbox/outbox-repository.ts";
import { createRecoveryRepository, type RecoveryStore } from "./recovery/recovery-repository.ts";
import { createQuotaRepository } from "./quota/quota-repository.ts";
import { createRetentionRepository } from "./retention/retention-repository.ts";
import { createStatusLeaseRepository } from "./status-leases/status-lease-repository.ts";
import type { StatusLeaseStore } from "../domain/status-announcer.ts";
import type { QuotaStore } from "../domain/quota.ts";
import type { RetentionStore } from "../domain/retention.ts";
import { StoreContext, type SqlOrm } from "./store-context.ts";
import { createWorkspaceRepository, type WorkspaceStore } from "./workspaces/workspace-repository.ts";
import { MIGRATIONS_TABLE, createOrmOptions, migrationsFor } from "./orm-options.ts";
import { isMissingTable, translateStoreError } from "./store-errors.ts";

import type { CredentialLookup } from "../domain/auth.ts";
import type { EndpointRepository } from "../domain/endpoints.ts";
import type { EventTypeRepository } from "../domain/event-types.ts";
import type { EndpointSecretStore } from "../domain/secret-resealing.ts";
import type { OutboxBacklog } from "../domain/outbox-relay.ts";

/**
 * The opened database: one repository per feature, each implementing the narrow ports its
 * consumers declare (no single interface covers every table), plus health and shutdown.
 */
export interface OpenedStore {
  readonly orm: SqlOrm;
  /** Checks the database answers (readiness). */
  ping(): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
  readonly workspaces: WorkspaceStore;
  /** Environments: their CRUD, and the lookup resources that live in one resolve theirs with. */
  readonly environments: EnvironmentStore;
  readonly apiKeys: ApiKeyStore;
  /** What the authenticator reads: management tokens and API keys. */
  readonly credentials: CredentialLookup;
  readonly endpoints: EndpointRepository;
  /** Applications: their CRUD, and the lookup endpoint creation and Trigger check against. */
  readonly applications: ApplicationStore;
  /** Consumer portal sessions (the authenticator reads their tokens through `credentials`). */
  readonly portalSessions: PortalSessionStore;
  /** Event types: their CRUD, and the lookup Send and Trigger check messages with. */
  readonly eventTypes: EventTypeRepository;
  /** Subscriptions, and Trigger's lookup of the endpoints a message fans out to. */
  readonly subscriptions: SubscriptionStore;
  /** Every endpoint's stored secrets, for resealing them under the current encryption key. */
  readonly endpointSecrets: EndpointSecretStore;
  readonly messages: MessageStore;
  readonly deliveries: DeliveryStore;
  /** GetDeliveryStats' aggregates (both databases). */
  readonly deliveryStats: DeliveryStatsReader;
  readonly outbox: OutboxBacklog;
  /** Operator actions on deliveries and bulk operations. */
  readonly recovery: RecoveryStore;
  /** The payload retention sweeper's store. */
  readonly retention: RetentionStore;
  /** The shared message quota counters. */
  readonly quota: QuotaStore;
  /** Workers' status leases: the durable record of attempt status events published directly. */
  readonly statusLeases: StatusLeaseStore;
}

/** How the store is opened. */
export interface StoreOptions {
  /**
   * Use the PostgreSQL overrides of the hot paths (default true). False runs the MikroORM
   * reference everywhere, so the conformance suite can check both implementations of each port.
   */
  overrides?: boolean;
}

/** Wires the feature repositories over one ORM. */
export function createStore(orm: SqlOrm, options: StoreOptions = {}): OpenedStore {
  const ctx = new StoreContext(orm);
  const overrides = options.overrides ?? true;
  const workspaces = createWorkspaceRepository(ctx);
  const apiKeys = createApiKeyRepository(ctx);
  const endpoints = createEndpointRepository(ctx);
  const portalSessions = createPortalSessionRepository(ctx);
  return {
    orm,
    ping: async () => {
      await ctx.run((em) => em.execute("select 1"));
    },
    close: () => orm.close(true),
    workspaces,
    environments: createEnvironmentRepository(ctx),
    apiKeys,
    credentials: {
      findWorkspaceByTokenHash: (hash) => workspaces.findWorkspaceByTokenHash(hash),
      findApiKeyByHash: (hash) => apiKeys.findApiKeyByHash(hash),
      findPortalSessionByTokenHash: (hash) => portalSessions.findPortalSessionByTokenHash(hash),
    },
    endpoints,
    applications: createApplicationRepository(ctx),
    portalSessions,
    endpointSecrets: endpoints,
    eventTypes: createEventTypeRepository(ctx),
    subscriptions: createSubscriptionRepository(ctx),
    messages: createMessageRepository(ctx, overrides),
    deliveries: createDeliveryRepository(ctx, overrides),
    deliveryStats: createDeliveryStatsRepository(ctx),
    outbox: outboxBacklogFor(ctx, overrides),
    recovery: createRecoveryRepository(ctx),
    retention: createRetentionRepository(ctx),
    quota: createQuotaRepository(ctx),
    statusLeases: createStatusLeaseRepository(ctx),
  };
}

/** What a database needs before the store can use it. */
export const NOT_MIGRATED_HINT = "run `hookstream migrate`";

async function initOrm(db: DatabaseConfig, logger: Logger, debug: boolean, ensureDatabase: boolean): Promise<SqlOrm> {
  const orm = await MikroORM.init<AbstractSqlDriver, SqlEntityManager>(
    createOrmOptions(db, { logger, debug, ensureDatabase }),
  );
  try {
    if (db.kind === "sqlite") {
      // One writer at a time is fine (the dispatcher is single on SQLite); WAL lets readers in other
      // processes proceed, and busy_timeout makes a second process wait instead of failing at once.
      const em = orm.em.fork();
      await em.execute("pragma journal_mode = wal");
      await em.execute("pragma busy_timeout = 5000");
      await em.execute("pragma foreign_keys = on");
    }
    return orm;
  } catch (error) {
    await orm.close(true);
    throw translateStoreError(error);
  }
}

async function appliedMigrations(orm: SqlOrm): Promise<Set<string>> {
  try {
    const rows = await orm.em.fork().execute<{ name: string }[]>(`select name from ${MIGRATIONS_TABLE}`);
    return new Set(rows.map((r) => r.name.replace(/\.[jt]s$/, "")));
  } catch (error) {
    if (isMissingTable(error)) return new Set();
    throw error;
  }
}

/**
 * Opens the store on a database that `migrateDatabase` has brought up to date. It never changes
 * the schema: an unmigrated or outdated database fails here, before any request, with a message
 * saying what to run. An unreachable database fails with DomainError("unavailable").
 */
export async function openStore(
  db: DatabaseConfig,
  opts: { logger: Logger; debug?: boolean } & StoreOptions,
): Promise<OpenedStore> {
  let orm: SqlOrm;
  try {
    orm = await initOrm(db, opts.logger, opts.debug ?? false, false);
  } catch (error) {
    throw translateStoreError(error);
  }
  try {
    const applied = await appliedMigrations(orm);
    const pending = migrationsFor(db)
      .map((m) => m.name)
      .filter((name) => !applied.has(name));
    if (pending.length > 0) {
      throw new DomainError(
        "failed_precondition",
        "DATABASE_NOT_MIGRATED",
        `the ${db.kind} database schema is not up to date (${pending.length} pending migration(s): ${pending.join(", ")}); ${NOT_MIGRATED_HINT} first`,
      );
    }
    if (db.kind === "postgresql") await warnWithoutAutovacuum(orm, opts.logger);
    return createStore(orm, opts);
  } catch (error) {
    await orm.close(true);
    throw translateStoreError(error);
  }
}

/**
 * Every delivery updates its row and the tables grow without end: without autovacuum, dead rows
 * pile up and the planner's statistics never follow the tables (README, "PostgreSQL settings").
 */
async function warnWithoutAutovacuum(orm: SqlOrm, logger: Logger): Promise<void> {
  const [row] = await orm.em.fork().execute<{ autovacuum: string }[]>("show autovacuum");
  if (row?.autovacuum === "off") {
    logger.warn(
      { setting: "autovacuum" },
      "PostgreSQL autovacuum is off: dead delivery rows accumulate and table statistics go stale; turn it on (see the README's PostgreSQL settings)",
    );
  }
}

/**
 * Applies the pending versioned migrations of the database's dialect, all or nothing, and returns
 * their names (empty when already up to date, so running it twice is harmless).
 */
export async function migrateDatabase(db: DatabaseConfig, opts: { logger: Logger; to?: string }): Promise<string[]> {
  const orm = await initOrm(db, opts.logger, false, true);
  try {
    const migrator = new Migrator(orm.em.fork());
    // `to`: stop after that migration (tests of a migration's backfill start from the schema before it).
    const done = await migrator.up(opts.to === undefined ? undefined : { to: opts.to });
    for (const m of done) opts.logger.info({ migration: m.name }, "applied migration");
    return done.map((m) => m.name);
  } catch (error) {
    throw translateStoreError(error);
  } finally {
    await orm.close(true);
  }
}
