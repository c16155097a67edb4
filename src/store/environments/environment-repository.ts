import { LockMode } from "@mikro-orm/core";
import type { EnvironmentContents, EnvironmentPatch, EnvironmentRepository } from "../../domain/environments.ts";
import type { EnvironmentRecord, PageQuery } from "../../domain/records.ts";
import { ApiKey } from "../api-keys/api-key.entity.ts";
import { Application } from "../applications/application.entity.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { toStringList } from "../record-mappers.ts";
import { DETACHED, keyset, limitOf, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { Environment } from "./environment.entity.ts";

/** Environment row → record. */
export function environmentRecord(row: Environment): EnvironmentRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    name: row.name,
    slug: row.slug,
    unpublishedEventTypes: toStringList(row.unpublishedEventTypes),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** What a store's environment repository offers beyond the use cases' port (none yet). */
export type EnvironmentStore = EnvironmentRepository;

/** Environments on MikroORM (reference implementation, both databases; no hot path). */
export function createEnvironmentRepository(ctx: StoreContext): EnvironmentStore {
  return {
    async createEnvironment(env: EnvironmentRecord): Promise<boolean> {
      try {
        await ctx.run((em) => em.insert(Environment, { ...env }));
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },

    async getEnvironment(workspaceId: string, id: string): Promise<EnvironmentRecord | null> {
      const row = await ctx.run((em) => em.findOne(Environment, { id, workspaceId }, DETACHED));
      return row === null ? null : environmentRecord(row);
    },

    async getEnvironmentBySlug(workspaceId: string, slug: string): Promise<EnvironmentRecord | null> {
      const row = await ctx.run((em) => em.findOne(Environment, { workspaceId, slug }, DETACHED));
      return row === null ? null : environmentRecord(row);
    },

    async listEnvironments(workspaceId: string, page: PageQuery): Promise<EnvironmentRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Environment,
          { workspaceId, ...keyset("asc", page.afterId) },
          { ...DETACHED, orderBy: { id: "asc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(environmentRecord);
    },

    async updateEnvironment(
      workspaceId: string,
      id: string,
      patch: EnvironmentPatch,
      at: Date,
    ): Promise<EnvironmentRecord | null> {
      return ctx.tx(async (em) => {
        const where = { id, workspaceId };
        const row = await em.findOne(Environment, where, {
          ...DETACHED,
          lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE),
        });
        if (row === null) return null;
        const changes: EnvironmentPatch & { updatedAt: Date } = { updatedAt: at };
        if (patch.name !== undefined) changes.name = patch.name;
        if (patch.unpublishedEventTypes !== undefined) changes.unpublishedEventTypes = patch.unpublishedEventTypes;
        await em.nativeUpdate(Environment, where, changes);
        return { ...environmentRecord(row), ...changes };
      });
    },

    async deleteEnvironment(workspaceId: string, id: string): Promise<EnvironmentContents | null> {
      return ctx.tx(async (em) => {
        const where = { id, workspaceId };
        const row = await em.findOne(Environment, where, {
          ...DETACHED,
          fields: ["id"],
          lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE),
        });
        if (row === null) return null;
        const live = { workspaceId, environmentId: id, deletedAt: null };
        const contents: EnvironmentContents = {
          applications: await em.count(Application, live),
          endpoints: await em.count(Endpoint, live),
          apiKeys: await em.count(ApiKey, { workspaceId, environmentId: id, revokedAt: null }),
        };
        if (contents.applications + contents.endpoints + contents.apiKeys === 0)
          await em.nativeDelete(Environment, where);
        return contents;
      });
    },
  };
}
