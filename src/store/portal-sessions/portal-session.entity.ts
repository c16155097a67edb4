import { defineEntity, p } from "@mikro-orm/core";
import { Application } from "../applications/application.entity.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of a consumer portal session: only SHA-256 hashes of its one-time code and of
 * its bearer token are stored, each unique; deleting the application deletes its sessions.
 */
export const PortalSessionSchema = defineEntity({
  name: "PortalSession",
  tableName: "portal_session",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    applicationId: p.manyToOne(Application).mapToPk().fieldName("application_id").deleteRule("cascade"),
    codeHash: p.string().length(64).unique(),
    tokenHash: p.string().length(64).nullable().unique(),
    codeExpiresAt: p.datetime(3),
    expiresAt: p.datetime(3),
    exchangedAt: p.datetime(3).nullable(),
    createdAt: p.datetime(3),
  },
});

/** A portal session row. */
export class PortalSession extends PortalSessionSchema.class {}
PortalSessionSchema.setClass(PortalSession);
