import { defineEntity, p } from "@mikro-orm/core";
/**
 * Table schema of the transactional outbox: an auto-increment seq gives the publish order;
 * no foreign keys, since rows are short-lived and deleted once published.
 */
export const OutboxSchema = defineEntity({
  name: "Outbox",
  tableName: "outbox",
  properties: {
    seq: p.bigint("number").primary().autoincrement(),
    stream: p.string().length(32),
    subject: p.string().length(255),
    workspaceId: p.string().length(64),
    msgId: p.string().length(128),
    payload: p.blob(),
    createdAt: p.datetime(3),
  },
});

/** An outbox row. */
export class Outbox extends OutboxSchema.class {}
OutboxSchema.setClass(Outbox);
