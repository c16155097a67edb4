import { defineEntity, p } from "@mikro-orm/core";
import type { RetryOverride } from "../../domain/retry-policy.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/**
 * Table schema of a sent message: the exact payload bytes and the idempotency key it was accepted
 * under (live keys, which decide idempotency races, are rows of idempotency_key).
 */
export const MessageSchema = defineEntity({
  name: "Message",
  tableName: "message",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    eventType: p.string().length(255),
    payload: p.blob(),
    contentType: p.string().length(255),
    idempotencyKey: p.string().length(255),
    payloadHash: p.string().length(64),
    createdAt: p.datetime(3),
    payloadDeletedAt: p.datetime(3).nullable(),
    deliverAt: p.datetime(3).nullable(),
    // Null when the producer gave none (most messages): nothing to write or parse on the hot path.
    headers: p.json<Record<string, string>>().nullable(),
    metadata: p.json<Record<string, string>>().nullable(),
    retry: p.json<RetryOverride>().nullable(),
    // The environment it was sent in; null: the workspace's default one (every message older
    // than environments, so the migration rewrites no message row).
    environmentId: p.string().length(64).nullable(),
  },
  indexes: [
    { name: "message_payload_deleted_at_created_at_index", properties: ["payloadDeletedAt", "createdAt"] },
    // ListMessages: a workspace's messages newest first.
    { name: "message_workspace_id_id_index", properties: ["workspaceId", "id"] },
  ],
});

/** A message row. */
export class Message extends MessageSchema.class {}
MessageSchema.setClass(Message);
