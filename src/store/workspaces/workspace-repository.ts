import type { CredentialLookup } from "../../domain/auth.ts";
import type { WorkspaceRecord } from "../../domain/records.ts";
import type { WorkspaceRepository } from "../../domain/workspaces.ts";
import { workspaceRecord } from "../record-mappers.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { defaultEnvironment } from "../../domain/environments.ts";
import { Environment } from "../environments/environment.entity.ts";
import { Workspace } from "./workspace.entity.ts";

/** Workspaces on MikroORM: creation, and the management-token half of credential lookup. */
export interface WorkspaceStore extends WorkspaceRepository, Pick<CredentialLookup, "findWorkspaceByTokenHash"> {}

/** Creates the workspace repository (reference implementation; lookups are cached by the authenticator). */
export function createWorkspaceRepository(ctx: StoreContext): WorkspaceStore {
  return {
    async createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void> {
      // Its default environment is created with it: a workspace never exists without one.
      await ctx.tx(async (em) => {
        await em.insert(Workspace, { ...ws, managementTokenHash, payloadRetentionMs: ws.payloadRetentionMs ?? 0 });
        await em.insert(Environment, defaultEnvironment(ws.id, ws.createdAt));
      });
    },
    async getWorkspace(id: string): Promise<WorkspaceRecord | null> {
      const row = await ctx.run((em) => em.findOne(Workspace, { id }, DETACHED));
      return row === null ? null : workspaceRecord(row);
    },
    async updateWorkspace(
      id: string,
      patch: Partial<Pick<WorkspaceRecord, "name" | "payloadRetentionMs">>,
    ): Promise<WorkspaceRecord | null> {
      return ctx.tx(async (em) => {
        const changes: { name?: string; payloadRetentionMs?: number } = {};
        if (patch.name !== undefined) changes.name = patch.name;
        if (patch.payloadRetentionMs !== undefined) changes.payloadRetentionMs = patch.payloadRetentionMs;
        if (Object.keys(changes).length > 0) await em.nativeUpdate(Workspace, { id }, changes);
        const row = await em.findOne(Workspace, { id }, DETACHED);
        return row === null ? null : workspaceRecord(row);
      });
    },
    async findWorkspaceByTokenHash(managementTokenHash: string): Promise<WorkspaceRecord | null> {
      const row = await ctx.run((em) => em.findOne(Workspace, { managementTokenHash }, DETACHED));
      return row === null ? null : workspaceRecord(row);
    },
  };
}
