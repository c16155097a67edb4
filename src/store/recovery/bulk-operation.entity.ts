import { defineEntity, p } from "@mikro-orm/core";
import type { DeliveryActionName } from "../../domain/recovery.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of a bulk operation: what to do to which deliveries, and how far the dispatcher has
 * got (a cursor over delivery ids and the counts, advanced in the same transaction as each batch).
 */
export const BulkOperationSchema = defineEntity({
  name: "BulkOperation",
  tableName: "bulk_operation",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    action: p.string().length(32).$type<DeliveryActionName>(),
    /** The selection as JSON (times as ISO strings). */
    filter: p.json<Record<string, unknown>>(),
    deliveryIds: p.json<string[]>(),
    limit: p.integer(),
    state: p.string().length(16).$type<"running" | "succeeded">(),
    matched: p.integer(),
    affected: p.integer(),
    cursor: p.string().length(64),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    finishedAt: p.datetime(3).nullable(),
  },
  indexes: [
    { name: "bulk_operation_workspace_id_id_index", properties: ["workspaceId", "id"] },
    { name: "bulk_operation_state_id_index", properties: ["state", "id"] },
  ],
});

/** A bulk operation row. */
export class BulkOperation extends BulkOperationSchema.class {}
BulkOperationSchema.setClass(BulkOperation);
