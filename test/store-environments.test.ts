/**
 * The environment store on both databases: the migration that introduces environments gives
 * every existing workspace its default environment and puts its endpoints, applications and
 * producer keys there (management keys stay workspace-wide, messages keep null and read as the
 * default one), and the repository's CRUD (unique slug, oldest-first pages, patch, delete only
 * when empty).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import { pino } from "pino";
import { defaultEnvironment, defaultEnvironmentId } from "../src/domain/environments.ts";
import { newId } from "../src/domain/ids.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { createOrmOptions, migrationsFor } from "../src/store/orm-options.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";

const logger = pino({ level: "silent" });
const T0 = new Date("2026-12-01T10:00:00.000Z");

for (const kind of testDbKinds()) {
  void describe(`environment store on ${kind}`, () => {
    let db: TestDatabase;
    let store: OpenedStore | undefined;

    before(async () => {
      db = await createTestDatabase(kind);
    });

    after(async () => {
      await store?.close();
      await db?.drop();
    });

    void it("the migration gives existing workspaces their default environment and backfills their resources", async () => {
      const names = migrationsFor(db.config).map((m) => m.name);
      const envMigration = names.findIndex((n) => n.endsWith("_environments"));
      assert.ok(envMigration > 0);
      await migrateDatabase(db.config, { logger, to: names[envMigration - 1]! });

      // Rows as a database older than environments holds them, written with plain SQL.
      const orm = await MikroORM.init<AbstractSqlDriver, SqlEntityManager>(
        createOrmOptions(db.config, { logger, ensureDatabase: false }),
      );
      const at = kind === "sqlite" ? T0.getTime() : T0.toISOString();
      const ws = newId("workspace");
      const ep = newId("endpoint");
      const app = newId("application");
      const producerKey = newId("apiKey");
      const managementKey = newId("apiKey");
      const msg = newId("message");
      try {
        const em = orm.em.fork();
        await em.execute(`insert into workspace (id, name, management_token_hash, created_at) values (?, ?, ?, ?)`, [
          ws,
          "old",
          `hash-${ws}`,
          at,
        ]);
        await em.execute(
          `insert into application (id, workspace_id, name, metadata, created_at, updated_at) values (?, ?, ?, ?, ?, ?)`,
          [app, ws, "A", "{}", at, at],
        );
        await em.execute(
          `insert into endpoint (id, workspace_id, url, description, metadata, enabled, headers, timeout_ms, secret, created_at, updated_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [ep, ws, "https://example.com/hook", "", "{}", true, "{}", 15000, "whsec_x", at, at],
        );
        for (const [id, scope] of [
          [producerKey, "producer"],
          [managementKey, "management"],
        ] as const) {
          await em.execute(
            `insert into api_key (id, workspace_id, label, secret_prefix, secret_hash, created_at, scope) values (?, ?, ?, ?, ?, ?, ?)`,
            [id, ws, scope, "hsk_live_x", `secret-${id}`, at, scope],
          );
        }
        await em.execute(
          `insert into message (id, workspace_id, event_type, payload, content_type, idempotency_key, payload_hash, created_at)
           values (?, ?, ?, ?, ?, ?, ?, ?)`,
          [msg, ws, "order.paid", Buffer.from("{}"), "application/json", "k", "h", at],
        );
      } finally {
        await orm.close(true);
      }

      const applied = await migrateDatabase(db.config, { logger });
      assert.ok(applied.some((n) => n.endsWith("_environments")));
      store = await openStore(db.config, { logger });
      const envId = defaultEnvironmentId(ws);
      assert.deepEqual(await store.environments.getEnvironment(ws, envId), defaultEnvironment(ws, T0));
      assert.equal((await store.endpoints.getEndpoint(ws, ep))?.environmentId, envId);
      assert.equal((await store.applications.getApplication(ws, app))?.environmentId, envId);
      assert.equal((await store.apiKeys.findApiKeyByHash(`secret-${producerKey}`))?.environmentId, envId);
      assert.equal((await store.apiKeys.findApiKeyByHash(`secret-${managementKey}`))?.environmentId, null);
      assert.equal((await store.messages.getMessage(ws, msg))?.environmentId, envId);
      assert.deepEqual(
        (await store.apiKeys.listApiKeys(ws, { afterId: undefined, limit: 10 }, envId)).map((k) => k.id),
        [producerKey],
      );
      assert.deepEqual(
        (await store.endpoints.listEndpoints(ws, { afterId: undefined, limit: 10 }, undefined, envId)).map((e) => e.id),
        [ep],
      );
    });

    void it("environments: unique slug, oldest first, patch, and delete only when empty", async () => {
      assert.ok(store, "opened by the migration test");
      const s = store;
      const ws = newId("workspace");
      await s.workspaces.createWorkspace({ id: ws, name: "w", createdAt: T0 }, `hash-${ws}`);
      const other = newId("workspace");
      await s.workspaces.createWorkspace({ id: other, name: "o", createdAt: T0 }, `hash-${other}`);
      // Created with its workspace, in the same transaction.
      assert.deepEqual(await s.environments.getEnvironmentBySlug(ws, "default"), defaultEnvironment(ws, T0));

      const staging = {
        id: newId("environment"),
        workspaceId: ws,
        name: "Staging",
        slug: "staging",
        unpublishedEventTypes: ["a.b", "c.d"],
        createdAt: T0,
        updatedAt: T0,
      };
      assert.equal(await s.environments.createEnvironment(staging), true);
      assert.equal(
        await s.environments.createEnvironment({ ...staging, id: newId("environment") }),
        false,
        "slug taken",
      );
      assert.equal(
        await s.environments.createEnvironment({ ...staging, id: newId("environment"), workspaceId: other }),
        true,
        "another workspace may use the slug",
      );
      assert.deepEqual(await s.environments.getEnvironment(ws, staging.id), staging);
      assert.equal(await s.environments.getEnvironment(other, staging.id), null, "not across workspaces");
      const page1 = await s.environments.listEnvironments(ws, { afterId: undefined, limit: 1 });
      assert.deepEqual(
        page1.map((e) => e.slug),
        ["default"],
      );
      const page2 = await s.environments.listEnvironments(ws, { afterId: page1[0]!.id, limit: 5 });
      assert.deepEqual(
        page2.map((e) => e.slug),
        ["staging"],
      );

      const later = new Date(T0.getTime() + 1000);
      const patched = await s.environments.updateEnvironment(ws, staging.id, { unpublishedEventTypes: [] }, later);
      assert.deepEqual(patched, { ...staging, unpublishedEventTypes: [], updatedAt: later });
      assert.deepEqual(await s.environments.getEnvironment(ws, staging.id), patched);
      assert.equal(await s.environments.updateEnvironment(other, staging.id, { name: "x" }, later), null);

      // Not empty while it holds a live endpoint or an unrevoked key.
      const key = {
        id: newId("apiKey"),
        workspaceId: ws,
        label: "",
        secretPrefix: "hsk_live_x",
        createdAt: T0,
        revokedAt: null,
        scope: "producer" as const,
        mode: "live" as const,
        lastUsedAt: null,
        environmentId: staging.id,
      };
      await s.apiKeys.createApiKey(key, `secret-${key.id}`);
      assert.deepEqual(await s.environments.deleteEnvironment(ws, staging.id), {
        applications: 0,
        endpoints: 0,
        apiKeys: 1,
      });
      assert.ok(await s.environments.getEnvironment(ws, staging.id), "kept");
      await s.apiKeys.revokeApiKey(ws, key.id, later);
      assert.equal(await s.environments.deleteEnvironment(other, staging.id), null, "not across workspaces");
      assert.deepEqual(await s.environments.deleteEnvironment(ws, staging.id), {
        applications: 0,
        endpoints: 0,
        apiKeys: 0,
      });
      assert.equal(await s.environments.getEnvironment(ws, staging.id), null, "deleted");
      assert.equal(await s.environments.deleteEnvironment(ws, staging.id), null);
    });
  });
}
