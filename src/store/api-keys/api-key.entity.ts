import { defineEntity, p } from "@mikro-orm/core";
import type { ApiKeyModeName, ApiKeyScopeName } from "../../domain/records.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/** Table schema of an API key (producer or management scope); only the secret's hash is kept, unique so lookups are exact. */
export const ApiKeySchema = defineEntity({
  name: "ApiKey",
  tableName: "api_key",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    label: p.text(),
    secretPrefix: p.string().length(64),
    secretHash: p.string().length(128).unique("api_key_secret_hash_unique"),
    createdAt: p.datetime(3),
    revokedAt: p.datetime(3).nullable(),
    scope: p.string().length(32).$type<ApiKeyScopeName>().default("producer"),
    mode: p.string().length(16).$type<ApiKeyModeName>().default("live"),
    lastUsedAt: p.datetime(3).nullable(),
    // A producer key's environment (null: a management-scoped key, or a producer key older
    // than environments, which is bound to the default one).
    environmentId: p.string().length(64).nullable(),
  },
  indexes: [{ name: "api_key_workspace_id_id_index", properties: ["workspaceId", "id"] }],
});

/** An api_key row. */
export class ApiKey extends ApiKeySchema.class {}
ApiKeySchema.setClass(ApiKey);
