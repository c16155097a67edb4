import { defineEntity, p } from "@mikro-orm/core";
import type { EndpointHealthState, EndpointTypeName } from "../../domain/records.ts";
import type { RetryOverride } from "../../domain/retry-policy.ts";
import { Application } from "../applications/application.entity.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

/** Table schema of a customer's receiver; soft-deleted (deleted_at) so deliveries keep their reference. */
export const EndpointSchema = defineEntity({
  name: "Endpoint",
  tableName: "endpoint",
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.manyToOne(Workspace).mapToPk().fieldName("workspace_id").deleteRule("cascade"),
    url: p.text(),
    description: p.text(),
    metadata: p.json<Record<string, string>>(),
    enabled: p.boolean(),
    headers: p.json<Record<string, string>>(),
    timeoutMs: p.integer(),
    secret: p.text(),
    previousSecret: p.text().nullable(),
    previousSecretExpiresAt: p.datetime(3).nullable(),
    createdAt: p.datetime(3),
    updatedAt: p.datetime(3),
    deletedAt: p.datetime(3).nullable(),
    asyncAck: p.boolean().default(false),
    ordered: p.boolean().default(false),
    // The endpoint's own retry schedule; null (most endpoints): the installation's default.
    retryPolicy: p.json<RetryOverride>().nullable(),
    health: p.json<EndpointHealthState>().nullable(),
    type: p.string().length(16).$type<EndpointTypeName>().default("webhook"),
    eventTypes: p.json<string[]>().nullable(),
    filter: p.text().nullable(),
    // ed25519 endpoints: the whpk_ public keys of the current and the previous (grace period) key.
    publicKey: p.text().nullable(),
    previousPublicKey: p.text().nullable(),
    // mTLS: the client certificate chain (PEM) and its private key, sealed like the signing secret.
    clientCertificatePem: p.text().nullable(),
    clientKey: p.text().nullable(),
    rateLimit: p.integer().default(0),
    rateLimitBurst: p.integer().default(0),
    // The application the endpoint belongs to (null: workspace-wide); set on create only.
    applicationId: p.manyToOne(Application).mapToPk().fieldName("application_id").nullable(),
    // The environment it lives in (null in rows older than environments: the default one).
    environmentId: p.string().length(64).nullable(),
  },
  indexes: [
    { name: "endpoint_workspace_id_id_index", properties: ["workspaceId", "id"] },
    { name: "endpoint_workspace_id_application_id_index", properties: ["workspaceId", "applicationId"] },
    { name: "endpoint_workspace_id_environment_id_index", properties: ["workspaceId", "environmentId"] },
  ],
});

/** An endpoint row. */
export class Endpoint extends EndpointSchema.class {}
EndpointSchema.setClass(Endpoint);
