import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of a tenant; the management token is stored only as its unique hash. */
export const WorkspaceSchema = defineEntity({
  name: "Workspace",
  tableName: "workspace",
  properties: {
    id: p.string().length(64).primary(),
    name: p.text(),
    managementTokenHash: p.string().length(128).unique("workspace_management_token_hash_unique"),
    createdAt: p.datetime(3),
    payloadRetentionMs: p.bigint("number").default(0),
  },
});

/** A workspace row. */
export class Workspace extends WorkspaceSchema.class {}
WorkspaceSchema.setClass(Workspace);
