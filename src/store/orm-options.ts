import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { MigrationObject, Options } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { type AbstractSqlDriver, NodeSqliteDialect, type SqlEntityManager, SqliteDriver } from "@mikro-orm/sql";
import type { Logger } from "pino";
import type { DatabaseConfig } from "../config/config.ts";
import { ENTITIES } from "./entities/index.ts";
import { postgresqlMigrations } from "./migrations/postgresql/index.ts";
import { sqliteMigrations } from "./migrations/sqlite/index.ts";

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
      // Without a connect timeout an unreachable host would hang callers instead of failing fast.
      driverOptions: { connectionTimeoutMillis: 5_000 },
    };
  }
  if (db.path !== ":memory:") mkdirSync(dirname(db.path), { recursive: true });
  return {
    ...common,
    driver: SqliteDriver,
    dbName: db.path,
    driverOptions: new NodeSqliteDialect(db.path),
  };
}
