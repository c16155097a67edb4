/** The persistence adapter: feature repositories on MikroORM (PostgreSQL and SQLite), with PostgreSQL overrides of the hot paths. */
export { createStore, migrateDatabase, openStore, NOT_MIGRATED_HINT } from "./open-store.ts";
export type { OpenedStore, StoreOptions } from "./open-store.ts";
export type { SqlOrm } from "./store-context.ts";
