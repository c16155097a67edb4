import type { ConnectRouter } from "@connectrpc/connect";
import { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { ApiKeyService } from "../../gen/hookstream/v1/api_key_service_pb.ts";
import { ApplicationService } from "../../gen/hookstream/v1/application_service_pb.ts";
import { DeliveryService } from "../../gen/hookstream/v1/delivery_service_pb.ts";
import { EndpointService } from "../../gen/hookstream/v1/endpoint_service_pb.ts";
import { EnvironmentService } from "../../gen/hookstream/v1/environment_service_pb.ts";
import { EventTypeService } from "../../gen/hookstream/v1/event_type_service_pb.ts";
import { SubscriptionService } from "../../gen/hookstream/v1/subscription_service_pb.ts";
import { MessageService } from "../../gen/hookstream/v1/message_service_pb.ts";
import { PortalService } from "../../gen/hookstream/v1/portal_service_pb.ts";
import { RecoveryService } from "../../gen/hookstream/v1/recovery_service_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { WorkspaceService } from "../../gen/hookstream/v1/workspace_service_pb.ts";
import { createAdminService } from "./admin-service.ts";
import type { ApiDeps } from "./api-deps.ts";
import { createApiKeyService } from "./api-key-service.ts";
import { createApplicationService } from "./application-service.ts";
import { createDeliveryService } from "./delivery-service.ts";
import { createEndpointService } from "./endpoint-service.ts";
import { createEnvironmentService } from "./environment-service.ts";
import { createEventTypeService } from "./event-type-service.ts";
import { createSubscriptionService } from "./subscription-service.ts";
import { createMessageService, rawJsonMembersOfMessageService } from "./message-service.ts";
import { createPortalService } from "./portal-service.ts";
import { createRecoveryService } from "./recovery-service.ts";
import { createWatchService } from "./watch-service.ts";
import { createWorkspaceService } from "./workspace-service.ts";

/**
 * Request members whose exact Connect JSON text the handlers read (the `rawJsonMembers` option
 * of `startHttpServer`), so what they deliver is the producer's text, not JSON.parse's.
 */
export const rawJsonMembers: Readonly<Record<string, readonly string[]>> = { ...rawJsonMembersOfMessageService };

/** Registers every hookstream.v1 service on a Connect router. */
export function createRoutes(deps: ApiDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(AdminService, createAdminService(deps));
    router.service(WorkspaceService, createWorkspaceService(deps));
    router.service(EnvironmentService, createEnvironmentService(deps));
    router.service(ApiKeyService, createApiKeyService(deps));
    router.service(ApplicationService, createApplicationService(deps));
    router.service(PortalService, createPortalService(deps));
    router.service(EndpointService, createEndpointService(deps));
    router.service(EventTypeService, createEventTypeService(deps));
    router.service(SubscriptionService, createSubscriptionService(deps));
    router.service(MessageService, createMessageService(deps));
    router.service(DeliveryService, createDeliveryService(deps));
    router.service(RecoveryService, createRecoveryService(deps));
    router.service(WatchService, createWatchService(deps));
  };
}
