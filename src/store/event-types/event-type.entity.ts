import { defineEntity, p } from "@mikro-orm/core";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of an event type: unique by (workspace, name), the name being the API's key; the
 * JSON Schema is kept as the text that was compiled when it was saved.
 */
export const EventTypeSchema = defineEntity({
  name: "EventType",
  tableName: "event_type",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    name: p.string().length(128),
    description: p.text(),
    schema: p.text().nullable(),
    archived: p.boolean().default(false),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
  },
  uniques: [{ name: "event_type_workspace_id_name_unique", properties: ["workspaceId", "name"] }],
});

/** An event type row. */
export class EventType extends EventTypeSchema.class {}
EventTypeSchema.setClass(EventType);
