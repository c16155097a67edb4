import { defineEntity, p } from "@mikro-orm/core";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/** Table schema of a subscription: an endpoint's route for some event types, with its own filter. */
export const SubscriptionSchema = defineEntity({
  name: "Subscription",
  tableName: "subscription",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    endpointId: p.manyToOne(Endpoint).mapToPk().fieldName("endpoint_id").deleteRule("cascade"),
    eventTypes: p.json<string[]>(),
    enabled: p.boolean(),
    filter: p.text(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
  },
  indexes: [
    { name: "subscription_workspace_id_id_index", properties: ["workspaceId", "id"] },
    { name: "subscription_workspace_id_endpoint_id_index", properties: ["workspaceId", "endpointId"] },
  ],
});

/** A subscription row. */
export class Subscription extends SubscriptionSchema.class {}
SubscriptionSchema.setClass(Subscription);
