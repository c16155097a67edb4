import {
  ConnectionException,
  LockWaitTimeoutException,
  TableNotFoundException,
  UniqueConstraintViolationException,
} from "@mikro-orm/core";
import { DomainError } from "../domain/errors.ts";

// Socket-level failures: the database is down, restarting or unreachable.
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

// PostgreSQL SQLSTATEs that mean "try again later": connection exceptions (class 08),
// too many connections, server shutting down or starting up.
const UNAVAILABLE_SQLSTATE = /^(08|53300|57P0[1-3])/;

const NETWORK_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
  "unable to open database file",
];

function causes(error: unknown): unknown[] {
  const seen: unknown[] = [];
  const queue = [error];
  while (queue.length > 0 && seen.length < 16) {
    const e = queue.shift();
    if (e === undefined || e === null || seen.includes(e)) continue;
    seen.push(e);
    if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
    if (e instanceof Error && "cause" in e) queue.push(e.cause);
  }
  return seen;
}

/** Whether the error (or anything in its cause chain) means the database cannot be reached. */
export function isUnavailableError(error: unknown): boolean {
  return causes(error).some((e) => {
    if (e instanceof ConnectionException || e instanceof LockWaitTimeoutException) return true;
    if (!(e instanceof Error)) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    return NETWORK_MESSAGES.some((m) => e.message.includes(m));
  });
}

/**
 * Whether the error is a unique-constraint violation (the loser of an insert race): MikroORM's
 * exception, or SQLSTATE 23505 straight from pg (the raw statements of the PostgreSQL overrides).
 */
export function isUniqueViolation(error: unknown): boolean {
  return causes(error).some(
    (e) =>
      e instanceof UniqueConstraintViolationException ||
      (e instanceof Error && (e as { code?: unknown }).code === "23505"),
  );
}

// SQLITE_BUSY (5) and its extended codes (BUSY_RECOVERY 261, BUSY_SNAPSHOT 517, BUSY_TIMEOUT 773).
const SQLITE_BUSY = 5;

/**
 * Whether SQLite refused because another connection holds the lock ("database is locked"):
 * nothing was changed and the same work may simply be run again.
 */
export function isBusyError(error: unknown): boolean {
  return causes(error).some((e) => {
    if (!(e instanceof Error)) return false;
    const errcode = (e as { errcode?: unknown }).errcode;
    if (typeof errcode === "number" && (errcode & 0xff) === SQLITE_BUSY) return true;
    return e.message.includes("database is locked");
  });
}

/** Whether the error says a table is missing (an unmigrated database). */
export function isMissingTable(error: unknown): boolean {
  return causes(error).some((e) => e instanceof TableNotFoundException);
}

/**
 * Translates a failure once, at the store's edge: an unreachable database becomes
 * DomainError("unavailable") with the cause kept for logs; anything else is returned as is.
 */
export function translateStoreError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (isUnavailableError(error)) {
    return new DomainError("unavailable", "DATABASE_UNAVAILABLE", "the database is unavailable", { cause: error });
  }
  return error;
}
