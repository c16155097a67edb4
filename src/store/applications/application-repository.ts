import { defaultEnvironmentId } from "../../domain/environments.ts";
import { LockMode } from "@mikro-orm/core";
import type { ApplicationPatch, ApplicationRepository, DeletedApplication } from "../../domain/applications.ts";
import type { ApplicationRecord, DeliveryRecord, NewOutboxRecord, PageQuery } from "../../domain/records.ts";
import { deleteEndpointsIn } from "../endpoints/endpoint-repository.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { DETACHED, keyset, limitOf, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { PortalSession } from "../portal-sessions/portal-session.entity.ts";
import { Application } from "./application.entity.ts";

/** Application row → record. */
export function applicationRecord(row: Application): ApplicationRecord {
  const metadata: unknown = typeof row.metadata === "string" ? JSON.parse(row.metadata) : row.metadata;
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    environmentId: row.environmentId ?? defaultEnvironmentId(row.workspaceId),
    name: row.name,
    uid: row.uid ?? null,
    metadata: { ...(metadata as Record<string, string> | null) },
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** What a store's application repository offers beyond the use cases' port (none yet). */
export type ApplicationStore = ApplicationRepository;

/** Applications on MikroORM (reference implementation, both databases; no hot path). */
export function createApplicationRepository(ctx: StoreContext): ApplicationStore {
  return {
    async createApplication(app: ApplicationRecord): Promise<boolean> {
      try {
        await ctx.run((em) => em.insert(Application, { ...app, deletedAt: null }));
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },

    async getApplication(workspaceId: string, id: string): Promise<ApplicationRecord | null> {
      const row = await ctx.run((em) => em.findOne(Application, { id, workspaceId, deletedAt: null }, DETACHED));
      return row === null ? null : applicationRecord(row);
    },

    async getApplicationByUid(workspaceId: string, uid: string): Promise<ApplicationRecord | null> {
      const row = await ctx.run((em) => em.findOne(Application, { workspaceId, uid, deletedAt: null }, DETACHED));
      return row === null ? null : applicationRecord(row);
    },

    async listApplications(workspaceId: string, page: PageQuery, environmentId?: string): Promise<ApplicationRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Application,
          {
            workspaceId,
            deletedAt: null,
            ...(environmentId === undefined ? {} : { environmentId }),
            ...keyset("desc", page.afterId),
          },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(applicationRecord);
    },

    async updateApplication(
      workspaceId: string,
      id: string,
      patch: ApplicationPatch,
      at: Date,
    ): Promise<ApplicationRecord | null | "uid_taken"> {
      try {
        return await ctx.tx(async (em) => {
          const where = { id, workspaceId, deletedAt: null };
          const row = await em.findOne(Application, where, {
            ...DETACHED,
            lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE),
          });
          if (row === null) return null;
          const changes: ApplicationPatch & { updatedAt: Date } = { updatedAt: at };
          for (const [key, value] of Object.entries(patch) as [keyof ApplicationPatch, unknown][]) {
            if (value !== undefined) Object.assign(changes, { [key]: value });
          }
          await em.nativeUpdate(Application, where, changes);
          return { ...applicationRecord(row), ...changes };
        });
      } catch (error) {
        if (isUniqueViolation(error)) return "uid_taken";
        throw error;
      }
    },

    async deleteApplication(
      workspaceId: string,
      id: string,
      at: Date,
      reason: string,
      outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<DeletedApplication | null> {
      const done = await unitOfWork(ctx, async (em) => {
        // Locked first: an endpoint being created under it (which share-locks it) either
        // committed before, and is deleted here, or finds it deleted.
        const where = { id, workspaceId, deletedAt: null };
        const app = await em.findOne(Application, where, {
          ...DETACHED,
          fields: ["id"],
          lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE),
        });
        if (app === null) return null;
        await em.nativeUpdate(Application, where, { deletedAt: at, updatedAt: at, uid: null });
        // Its portal sessions end with it: their tokens stop working at once.
        await em.nativeDelete(PortalSession, { workspaceId, applicationId: id });
        const endpoints = await em.find(
          Endpoint,
          { workspaceId, applicationId: id, deletedAt: null },
          { ...DETACHED, fields: ["id"], orderBy: { id: "asc" } },
        );
        const endpointIds = endpoints.map((e) => e.id);
        const cancelled = await deleteEndpointsIn(ctx, em, workspaceId, endpointIds, at, reason);
        return { value: { endpointIds, cancelled }, outbox: cancelled.flatMap(outbox) };
      });
      return done === null ? null : { ...done.value, outbox: done.outbox };
    },
  };
}
