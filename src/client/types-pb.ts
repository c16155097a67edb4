/** The generated message types the SDK's plain types are derived from (type-only). */
export type { CreateWorkspaceResponse } from "../../gen/hookstream/v1/admin_service_pb.ts";
export type { ApiKey } from "../../gen/hookstream/v1/api_key_pb.ts";
export type {
  CreateApiKeyRequest,
  CreateApiKeyResponse,
  ListApiKeysRequest,
  ListApiKeysResponse,
} from "../../gen/hookstream/v1/api_key_service_pb.ts";
export type { BulkOperation, DeliveryFilter } from "../../gen/hookstream/v1/bulk_operation_pb.ts";
export type { Attempt, Delivery } from "../../gen/hookstream/v1/delivery_pb.ts";
export type {
  GetDeliveryResponse,
  GetDeliveryStatsRequest,
  GetDeliveryStatsResponse,
  ListAttemptsRequest,
  ListAttemptsResponse,
  ListDeliveriesRequest,
  ListDeliveriesResponse,
} from "../../gen/hookstream/v1/delivery_service_pb.ts";
export type { Endpoint } from "../../gen/hookstream/v1/endpoint_pb.ts";
export type {
  CreateEndpointResponse,
  ListEndpointsRequest,
  ListEndpointsResponse,
  RotateEndpointSecretResponse,
  TestEndpointResponse,
} from "../../gen/hookstream/v1/endpoint_service_pb.ts";
export type { Message } from "../../gen/hookstream/v1/message_pb.ts";
export type {
  CancelMessageResponse,
  GetMessageResponse,
  ListMessagesRequest,
  ListMessagesResponse,
  RescheduleMessageResponse,
  SendBatchResponse,
  SendRequest,
  SendResponse,
  TriggerBatchResponse,
} from "../../gen/hookstream/v1/message_service_pb.ts";
export type { PayloadEnvelope } from "../../gen/hookstream/v1/payload_pb.ts";
export type {
  ListDeadLettersResponse,
  ReplayMessageResponse,
  StartBulkOperationRequest,
  WatchBulkOperationResponse,
} from "../../gen/hookstream/v1/recovery_service_pb.ts";
export type {
  WatchDeliveriesRequest,
  WatchDeliveriesResponse,
  WatchMessageRequest,
  WatchMessageResponse,
} from "../../gen/hookstream/v1/watch_service_pb.ts";
export type { Workspace } from "../../gen/hookstream/v1/workspace_pb.ts";
export type { EventType } from "../../gen/hookstream/v1/event_type_pb.ts";
export type { Application } from "../../gen/hookstream/v1/application_pb.ts";
export type { Environment } from "../../gen/hookstream/v1/environment_pb.ts";
export type {
  ListEnvironmentsRequest,
  ListEnvironmentsResponse,
} from "../../gen/hookstream/v1/environment_service_pb.ts";
export type {
  CreatePortalSessionResponse,
  ExchangePortalCodeResponse,
} from "../../gen/hookstream/v1/portal_service_pb.ts";
export type {
  DeleteApplicationResponse,
  ListApplicationsRequest,
  ListApplicationsResponse,
} from "../../gen/hookstream/v1/application_service_pb.ts";
export type {
  DeleteEventTypeResponse,
  ListEventTypesRequest,
  ListEventTypesResponse,
} from "../../gen/hookstream/v1/event_type_service_pb.ts";
export type { Subscription } from "../../gen/hookstream/v1/subscription_pb.ts";
export type {
  ListSubscriptionsRequest,
  ListSubscriptionsResponse,
} from "../../gen/hookstream/v1/subscription_service_pb.ts";
export type { TriggerRequest, TriggerResponse } from "../../gen/hookstream/v1/trigger_pb.ts";
