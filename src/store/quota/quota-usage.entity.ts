import { defineEntity, p } from "@mikro-orm/core";

/** Table schema of a workspace's message count in one quota window, added to by every API process. */
export const QuotaUsageSchema = defineEntity({
  name: "QuotaUsage",
  tableName: "quota_usage",
  properties: {
    workspaceId: p.string().length(64).primary().fieldName("workspace_id"),
    windowStart: p.datetime(3).primary(),
    used: p.bigint("number"),
  },
});

/** A quota usage row. */
export class QuotaUsage extends QuotaUsageSchema.class {}
QuotaUsageSchema.setClass(QuotaUsage);
