import { defineEntity, p } from "@mikro-orm/core";
import type { AttemptErrorKindName } from "../../domain/records.ts";
import { Delivery } from "./delivery.entity.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/** Table schema of one HTTP try; unique on (delivery_id, number) so recording is idempotent. */
export const AttemptSchema = defineEntity({
  name: "Attempt",
  tableName: "attempt",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    deliveryId: p.manyToOne(Delivery).mapToPk().fieldName("delivery_id").deleteRule("cascade"),
    number: p.integer(),
    startedAt: p.datetime(3),
    latencyMs: p.integer(),
    requestHeaders: p.json<Record<string, string>>(),
    responseStatus: p.integer(),
    responseHeaders: p.json<Record<string, string>>(),
    responseBody: p.text(),
    errorKind: p.string().length(32).$type<AttemptErrorKindName>().nullable(),
    errorMessage: p.text(),
    nextRetryAt: p.datetime(3).nullable(),
    /** The status lease of the worker that recorded it, whose event it published directly; null when an outbox row carried it. */
    recordedBy: p.string().length(64).nullable(),
  },
  uniques: [{ name: "attempt_delivery_id_number_unique", properties: ["deliveryId", "number"] }],
  indexes: [{ name: "attempt_started_at_index", properties: ["startedAt"] }],
});

/** An attempt row. */
export class Attempt extends AttemptSchema.class {}
AttemptSchema.setClass(Attempt);
