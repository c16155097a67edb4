import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import { pino } from "pino";
import type { DatabaseConfig } from "../../src/config/config.ts";
import { createOrmOptions } from "../../src/store/orm-options.ts";

/** The databases the integration tests can run against. */
export type TestDbKind = "sqlite" | "postgresql";

// Test-only configuration: the product reads its environment once, in config.ts; tests choose
// their databases here.
const env = process.env;

/** The kinds selected by HOOKSTREAM_TEST_DB ("sqlite", "postgresql" or "both"; default both). */
export function testDbKinds(): TestDbKind[] {
  const wanted = (env["HOOKSTREAM_TEST_DB"] ?? "both").trim().toLowerCase();
  if (wanted === "sqlite" || wanted === "postgresql") return [wanted];
  if (wanted === "both" || wanted === "") return ["sqlite", "postgresql"];
  throw new Error(`HOOKSTREAM_TEST_DB=${wanted}: expected sqlite, postgresql or both`);
}

/** A fresh, empty database for one test run, with what DATABASE_URL would be for it. */
export interface TestDatabase {
  config: DatabaseConfig;
  url: string;
  drop(): Promise<void>;
}

function adminUrl(): string {
  return env["HOOKSTREAM_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

// CREATE/DROP DATABASE through the same driver the store uses, on the maintenance database.
async function adminExecute(sql: string): Promise<void> {
  const orm = await MikroORM.init<AbstractSqlDriver, SqlEntityManager>(
    createOrmOptions(
      { kind: "postgresql", url: adminUrl() },
      { logger: pino({ level: "silent" }), ensureDatabase: false },
    ),
  );
  try {
    await orm.em.fork().execute(sql);
  } finally {
    await orm.close(true);
  }
}

/** Creates an empty database (PostgreSQL: hookstream_test_<random>; SQLite: a temp file). */
export async function createTestDatabase(kind: TestDbKind): Promise<TestDatabase> {
  if (kind === "sqlite") {
    const dir = await mkdtemp(join(tmpdir(), "hookstream-test-"));
    // A subdirectory that does not exist yet: the store must create it.
    const path = join(dir, "data", "hookstream.db");
    return {
      config: { kind: "sqlite", path },
      url: `sqlite:${path}`,
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const name = `hookstream_test_${randomBytes(6).toString("hex")}`;
  await adminExecute(`create database ${name}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    config: { kind: "postgresql", url: url.toString() },
    url: url.toString(),
    drop: () => adminExecute(`drop database if exists ${name} with (force)`),
  };
}
