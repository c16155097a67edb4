import type { CredentialLookup } from "../../domain/auth.ts";
import type { WorkspaceRecord } from "../../domain/records.ts";
import type { WorkspaceRepository } from "../../domain/workspaces.ts";
import { workspaceRecord } from "../record-mappers.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { Workspace } from "./workspace.entity.ts";

/** Workspaces on MikroORM: creation, and the management-token half of credential lookup. */
export interface WorkspaceStore extends WorkspaceRepository, Pick<CredentialLookup, "findWorkspaceByTokenHash"> {}

/** Creates the workspace repository (reference implementation; lookups are cached by the authenticator). */
export function createWorkspaceRepository(ctx: StoreContext): WorkspaceStore {
  return {
    async createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void> {
      await ctx.run((em) => em.insert(Workspace, { ...ws, managementTokenHash }));
    },
    async findWorkspaceByTokenHash(managementTokenHash: string): Promise<WorkspaceRecord | null> {
      const row = await ctx.run((em) => em.findOne(Workspace, { managementTokenHash }, DETACHED));
      return row === null ? null : workspaceRecord(row);
    },
  };
}
