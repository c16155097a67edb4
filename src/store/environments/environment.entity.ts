import { defineEntity, p } from "@mikro-orm/core";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of an environment: its slug is unique in the workspace. The resources that live
 * in one (application, endpoint, api_key, message) carry its id in a plain environment_id
 * column, not a foreign key: deleted endpoints and past messages keep naming an environment
 * after it is deleted.
 */
export const EnvironmentSchema = defineEntity({
  name: "Environment",
  tableName: "environment",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    name: p.string().length(256),
    slug: p.string().length(64),
    unpublishedEventTypes: p.json<string[]>(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
  },
  uniques: [{ name: "environment_workspace_id_slug_unique", properties: ["workspaceId", "slug"] }],
  indexes: [{ name: "environment_workspace_id_id_index", properties: ["workspaceId", "id"] }],
});

/** An environment row. */
export class Environment extends EnvironmentSchema.class {}
EnvironmentSchema.setClass(Environment);
