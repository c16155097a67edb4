import { defineEntity, p } from "@mikro-orm/core";

/**
 * Table schema of a live idempotency key: (workspace, key) → the message accepted under it, until
 * it expires (HOOKSTREAM_IDEMPOTENCY_TTL after the message was accepted). Its primary key decides
 * idempotency races; an expired row is taken over by the next message with the same key. Messages
 * sent without a key (generated "auto_…" keys) have no row. Plain columns without foreign keys:
 * the row is an index entry, read only through its primary key.
 */
export const IdempotencyKeySchema = defineEntity({
  name: "IdempotencyKey",
  tableName: "idempotency_key",
  properties: {
    workspaceId: p.string().length(64).primary().fieldName("workspace_id"),
    key: p.string().length(255).primary(),
    messageId: p.string().length(64),
    expiresAt: p.datetime(3),
    /** When its message was accepted; a later message may take the key over once expiresAt <= its own time. */
    createdAt: p.datetime(3),
  },
});

/** An idempotency key row. */
export class IdempotencyKey extends IdempotencyKeySchema.class {}
IdempotencyKeySchema.setClass(IdempotencyKey);
