import { defineEntity, p } from "@mikro-orm/core";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of an application: its uid is unique in the workspace (null for none). Deleted
 * applications keep their row (deleted_at set, uid cleared so it can be used again), so the
 * endpoints deleted with them keep a valid reference.
 */
export const ApplicationSchema = defineEntity({
  name: "Application",
  tableName: "application",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    name: p.string().length(256),
    uid: p.string().length(256).nullable(),
    metadata: p.json<Record<string, string>>(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    deletedAt: p.datetime(3).nullable(),
    // The environment it lives in (null in rows older than environments: the default one).
    environmentId: p.string().length(64).nullable(),
  },
  uniques: [{ name: "application_workspace_id_uid_unique", properties: ["workspaceId", "uid"] }],
  indexes: [
    { name: "application_workspace_id_id_index", properties: ["workspaceId", "id"] },
    { name: "application_workspace_id_environment_id_index", properties: ["workspaceId", "environmentId"] },
  ],
});

/** An application row. */
export class Application extends ApplicationSchema.class {}
ApplicationSchema.setClass(Application);
