import { MikroORM } from "@mikro-orm/core";
import { Migrator } from "@mikro-orm/migrations";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import type { Logger } from "pino";
import type { DatabaseConfig } from "../config/config.ts";
import { DomainError } from "../domain/errors.ts";
import { MikroStore, type OpenedStore, type SqlOrm } from "./mikro-store.ts";
import { MIGRATIONS_TABLE, createOrmOptions, migrationsFor } from "./orm-options.ts";
import { isMissingTable, translateStoreError } from "./store-errors.ts";

export type { OpenedStore } from "./mikro-store.ts";

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
export async function openStore(db: DatabaseConfig, opts: { logger: Logger; debug?: boolean }): Promise<OpenedStore> {
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
    return new MikroStore(orm);
  } catch (error) {
    await orm.close(true);
    throw translateStoreError(error);
  }
}

/**
 * Applies the pending versioned migrations of the database's dialect, all or nothing, and returns
 * their names (empty when already up to date, so running it twice is harmless).
 */
export async function migrateDatabase(db: DatabaseConfig, opts: { logger: Logger }): Promise<string[]> {
  const orm = await initOrm(db, opts.logger, false, true);
  try {
    const migrator = new Migrator(orm.em.fork());
    const done = await migrator.up();
    for (const m of done) opts.logger.info({ migration: m.name }, "applied migration");
    return done.map((m) => m.name);
  } catch (error) {
    throw translateStoreError(error);
  } finally {
    await orm.close(true);
  }
}
