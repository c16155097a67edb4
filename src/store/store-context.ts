import { defaultEnvironmentId } from "../domain/environments.ts";
import { LockMode, type MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import type { PageQuery } from "../domain/records.ts";
import type { PgPool } from "./pg/pg-table.ts";
import { isBusyError, translateStoreError } from "./store-errors.ts";

/** The ORM type the store runs on: one of the SQL drivers. */
export type SqlOrm = MikroORM<AbstractSqlDriver, SqlEntityManager>;

/** The entity manager every repository works with (a fork per call, never the global one). */
export type Em = SqlEntityManager;

// Rows read only to be mapped to records stay out of the identity map, so the commit-time
// flush has nothing to diff.
/** Find options for rows that are only mapped to records. */
export const DETACHED = { disableIdentityMap: true } as const;

/** Keyset condition for a newest-first ("desc") or oldest-first ("asc") list by id. */
export function keyset(order: "asc" | "desc", afterId: string | undefined): { id?: { $lt: string } | { $gt: string } } {
  if (afterId === undefined || afterId === "") return {};
  return { id: order === "desc" ? { $lt: afterId } : { $gt: afterId } };
}

/**
 * The condition "lives in environment `environmentId`" (none when null or undefined): rows older
 * than environments (environment_id null) are the workspace's default environment's.
 */
export function inEnvironment(
  workspaceId: string,
  environmentId: string | null | undefined,
): { environmentId?: string } | { $or: ({ environmentId: string } | { environmentId: null })[] } {
  if (environmentId === null || environmentId === undefined) return {};
  if (environmentId !== defaultEnvironmentId(workspaceId)) return { environmentId };
  return { $or: [{ environmentId }, { environmentId: null }] };
}

/** A page's row limit, kept sane whatever the caller asked for. */
export function limitOf(page: PageQuery): number {
  return Math.max(1, Math.min(1000, Math.trunc(page.limit)));
}

// SQLite busy retries: a whole call is re-run while another process holds the write lock, with a
// jittered backoff, for at most this long (the busy_timeout wait inside SQLite comes on top). Long
// enough that a loaded machine (a writer descheduled while it holds the lock) still waits rather
// than fails: on PostgreSQL the same call would wait for the row lock without a limit.
const BUSY_RETRY_MS = 30_000;
const BUSY_BACKOFF_MIN_MS = 5;
const BUSY_BACKOFF_MAX_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What every repository shares: the ORM, which dialect it runs on, and the one way to run a
 * call (a fresh fork per call, SQLite busy retries, store errors translated to DomainError).
 */
export class StoreContext {
  readonly orm: SqlOrm;
  /** True on PostgreSQL, where dialect overrides may be used. */
  readonly pg: boolean;

  constructor(orm: SqlOrm) {
    this.orm = orm;
    this.pg = orm.config.get("driver")?.name === "PostgreSqlDriver";
  }

  /** Runs `fn` on a fresh fork of the entity manager. */
  async run<T>(fn: (em: Em) => Promise<T>): Promise<T> {
    try {
      if (this.pg) return await fn(this.orm.em.fork());
      return await this.#retryBusy(() => fn(this.orm.em.fork()));
    } catch (error) {
      throw translateStoreError(error);
    }
  }

  /** Runs `fn` in one transaction on a fresh fork. */
  async tx<T>(fn: (em: Em) => Promise<T>): Promise<T> {
    return this.run((em) => em.transactional((tem) => fn(tem)));
  }

  /** Runs raw statements on MikroORM's own pg pool (PostgreSQL overrides only). */
  async raw<T>(fn: (pool: PgPool) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.pool());
    } catch (error) {
      throw translateStoreError(error);
    }
  }

  /** MikroORM's pg pool (PostgreSQL only). */
  async pool(): Promise<PgPool> {
    return (await this.orm.driver.getConnection().getNativeClient()) as PgPool;
  }

  /** The lock mode to ask for: SQLite ignores lock modes anyway, and asking for none keeps its SQL plain. */
  lock<M extends LockMode.PESSIMISTIC_WRITE | LockMode.PESSIMISTIC_PARTIAL_WRITE | LockMode.PESSIMISTIC_READ>(
    mode: M,
  ): LockMode.NONE | M {
    return this.pg ? mode : LockMode.NONE;
  }

  /**
   * SQLite, several processes on one file: a statement or transaction that meets another process's
   * write lock fails with SQLITE_BUSY and changed nothing, so it is re-run after a short jittered
   * backoff, for a bounded time. (Transactions start with BEGIN IMMEDIATE, see orm-options.ts, so a
   * busy error cannot strike half-way through one.)
   */
  async #retryBusy<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + BUSY_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (!isBusyError(error) || Date.now() >= deadline) throw error;
        const cap = Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MIN_MS * 2 ** attempt);
        await sleep(Math.min(deadline - Date.now(), BUSY_BACKOFF_MIN_MS + Math.random() * cap));
      }
    }
  }
}
