import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { MigrationObject, Options } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { type AbstractSqlDriver, NodeSqliteDialect, type SqlEntityManager, SqliteDriver } from "@mikro-orm/sql";
import type { Logger } from "pino";
import type { DatabaseConfig } from "../config/config.ts";
import { ENTITIES } from "./entities.ts";
import { postgresqlMigrations } from "./migrations/postgresql/index.ts";
import { sqliteMigrations } from "./migrations/sqlite/index.ts";
import { isBusyError } from "./store-errors.ts";

// Kysely's types, reached through the dialect MikroORM exports (kysely is its dependency, not ours).
type KyselyDriver = ReturnType<NodeSqliteDialect["createDriver"]>;
type KyselyConnection = Parameters<KyselyDriver["beginTransaction"]>[0];
type KyselyCompiledQuery = Parameters<KyselyConnection["executeQuery"]>[0];

/** A parameterless raw statement, as kysely's own CompiledQuery.raw builds it. */
function rawStatement(sql: string): KyselyCompiledQuery {
  return Object.freeze({
    sql,
    parameters: Object.freeze([]),
    query: Object.freeze({
      kind: "RawNode" as const,
      sqlFragments: Object.freeze([sql]),
      parameters: Object.freeze([]),
    }),
    queryId: Object.freeze({ queryId: `hookstream:${sql}` }),
  });
}

const BEGIN_IMMEDIATE = rawStatement("begin immediate");
const BEGIN_DEFERRED = rawStatement("begin");

/**
 * node:sqlite whose transactions start with BEGIN IMMEDIATE. With several processes on one file
 * (api, dispatcher, worker), a deferred transaction that reads and then writes fails at once with
 * SQLITE_BUSY when another process wrote in between: busy_timeout does not cover that upgrade.
 * Taking the write lock at BEGIN makes the wait happen there, under busy_timeout, before anything
 * is read. Our transactions all write, so nothing is lost by taking it early.
 */
export class ImmediateNodeSqliteDialect extends NodeSqliteDialect {
  override createDriver(): KyselyDriver {
    const driver = super.createDriver();
    driver.beginTransaction = async (connection: KyselyConnection): Promise<void> => {
      try {
        await connection.executeQuery(BEGIN_IMMEDIATE);
      } catch (error) {
        // Kysely does not release its single connection when BEGIN throws, which would stall every
        // later query of the process: still busy after busy_timeout, start deferred instead and let
        // the transaction's first write fail (and the store's busy retry take over).
        if (!isBusyError(error)) throw error;
        await connection.executeQuery(BEGIN_DEFERRED);
      }
    };
    return driver;
  }
}

/** MikroORM options for one of our SQL drivers. */
export type SqlOrmOptions = Partial<Options<AbstractSqlDriver, SqlEntityManager>>;

/** Name of the table where MikroORM's migrator records applied migrations. */
export const MIGRATIONS_TABLE = "mikro_orm_migrations";

/** The committed migrations of a dialect, in the order they apply. */
export function migrationsFor(db: DatabaseConfig): readonly MigrationObject[] {
  return db.kind === "postgresql" ? postgresqlMigrations : sqliteMigrations;
}

/** Directory holding a dialect's migration files (used only when generating a new migration). */
export function migrationsDirectory(kind: DatabaseConfig["kind"]): string {
  return new URL(`./migrations/${kind}`, import.meta.url).pathname;
}

/**
 * MikroORM options for a database. Migrations come from an explicit list rather than a glob so
 * they run the same from any working directory and never touch the filesystem at run time.
 * The SQLite file's parent directory is created here because node:sqlite will not.
 */
export function createOrmOptions(
  db: DatabaseConfig,
  opts: { logger: Logger; debug?: boolean | undefined; ensureDatabase: boolean },
): SqlOrmOptions {
  const common = {
    entities: [...ENTITIES],
    extensions: [Migrator],
    // Every call forks its own EntityManager; using the global one is a bug we want to see.
    allowGlobalContext: false,
    ensureDatabase: opts.ensureDatabase,
    debug: opts.debug ?? false,
    logger: (message: string) => opts.logger.debug({ component: "mikro-orm" }, message),
    migrations: {
      tableName: MIGRATIONS_TABLE,
      migrationsList: [...migrationsFor(db)],
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
    },
  } satisfies SqlOrmOptions;
  if (db.kind === "postgresql") {
    return {
      ...common,
      driver: PostgreSqlDriver,
      clientUrl: db.url,
      pool: { min: 0, max: 20, idleTimeoutMillis: 30_000 },
      driverOptions: {
        // Without a connect timeout an unreachable host would hang callers instead of failing fast.
        connectionTimeoutMillis: 5_000,
        // The hot paths are named prepared statements. PostgreSQL's plan cache would switch each
        // to a generic plan after five runs and keep it until the tables' statistics change: one
        // planned on a young, near-empty table (a sequential scan and a hash join) then stays for
        // the life of the connection, and where autovacuum is off it never changes (delivery
        // throughput at 100,000 messages fell to 0.56 × that at 8,000). Planning every run with its
        // parameters keeps the index plans as tables grow, for a few tens of µs per statement.
        options: "-c plan_cache_mode=force_custom_plan",
      },
    };
  }
  if (db.path !== ":memory:") mkdirSync(dirname(db.path), { recursive: true });
  return {
    ...common,
    driver: SqliteDriver,
    dbName: db.path,
    driverOptions: new ImmediateNodeSqliteDialect(db.path),
  };
}
