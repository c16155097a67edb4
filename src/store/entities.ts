import { ApiKey } from "./api-keys/api-key.entity.ts";
import { Application } from "./applications/application.entity.ts";
import { Attempt } from "./deliveries/attempt.entity.ts";
import { Delivery } from "./deliveries/delivery.entity.ts";
import { Endpoint } from "./endpoints/endpoint.entity.ts";
import { Environment } from "./environments/environment.entity.ts";
import { EventType } from "./event-types/event-type.entity.ts";
import { Subscription } from "./subscriptions/subscription.entity.ts";
import { IdempotencyKey } from "./messages/idempotency-key.entity.ts";
import { Message } from "./messages/message.entity.ts";
import { Outbox } from "./outbox/outbox.entity.ts";
import { PortalSession } from "./portal-sessions/portal-session.entity.ts";
import { QuotaUsage } from "./quota/quota-usage.entity.ts";
import { BulkOperation } from "./recovery/bulk-operation.entity.ts";
import { StatusLease } from "./status-leases/status-lease.entity.ts";
import { Workspace } from "./workspaces/workspace.entity.ts";

export {
  ApiKey,
  Application,
  Attempt,
  BulkOperation,
  Delivery,
  Endpoint,
  Environment,
  EventType,
  IdempotencyKey,
  Message,
  Outbox,
  PortalSession,
  QuotaUsage,
  StatusLease,
  Subscription,
  Workspace,
};

/** Every entity of the store, for MikroORM's discovery. */
export const ENTITIES = [
  Workspace,
  Environment,
  ApiKey,
  Application,
  Endpoint,
  Message,
  IdempotencyKey,
  Delivery,
  Attempt,
  Outbox,
  StatusLease,
  BulkOperation,
  QuotaUsage,
  EventType,
  Subscription,
  PortalSession,
] as const;
