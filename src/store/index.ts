/** The persistence adapter: the Store port on MikroORM, for PostgreSQL and SQLite. */
export { migrateDatabase, openStore, NOT_MIGRATED_HINT } from "./open-store.ts";
export type { OpenedStore, SqlOrm } from "./mikro-store.ts";
