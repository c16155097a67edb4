/**
 * Which SDK method calls each RPC of the schema: `client.path.to.method`, where the client is
 * `producer` ({@link Hookstream}), `management` ({@link HookstreamManagement}), `portal`
 * ({@link HookstreamPortal}) or `operator` ({@link HookstreamOperator}); `HookstreamPortal.…` is a
 * static method. src/client/coverage.test.ts fails when an RPC of gen/ is missing
 * here or a path does not lead to a function: add the method in the same change as the RPC.
 */
export const RPC_METHODS: Readonly<Record<string, string>> = {
  "hookstream.v1.AdminService/CreateWorkspace": "operator.workspaces.create",
  "hookstream.v1.ApiKeyService/CreateApiKey": "management.apiKeys.create",
  "hookstream.v1.ApiKeyService/ListApiKeys": "management.apiKeys.list management.apiKeys.listAll",
  "hookstream.v1.ApiKeyService/RevokeApiKey": "management.apiKeys.revoke",
  "hookstream.v1.EnvironmentService/CreateEnvironment": "management.environments.create",
  "hookstream.v1.EnvironmentService/GetEnvironment": "management.environments.get",
  "hookstream.v1.EnvironmentService/ListEnvironments": "management.environments.list management.environments.listAll",
  "hookstream.v1.EnvironmentService/UpdateEnvironment": "management.environments.update",
  "hookstream.v1.EnvironmentService/DeleteEnvironment": "management.environments.delete",
  "hookstream.v1.ApplicationService/CreateApplication": "management.applications.create",
  "hookstream.v1.ApplicationService/GetApplication": "management.applications.get",
  "hookstream.v1.ApplicationService/ListApplications": "management.applications.list management.applications.listAll",
  "hookstream.v1.ApplicationService/UpdateApplication": "management.applications.update",
  "hookstream.v1.ApplicationService/DeleteApplication": "management.applications.delete",
  "hookstream.v1.PortalService/CreatePortalSession": "management.portalSessions.create",
  "hookstream.v1.PortalService/ExchangePortalCode": "HookstreamPortal.exchangeCode HookstreamPortal.open",
  "hookstream.v1.DeliveryService/GetDelivery": "management.deliveries.get portal.deliveries.get",
  "hookstream.v1.DeliveryService/ListDeliveries":
    "management.deliveries.list management.deliveries.listAll portal.deliveries.list portal.deliveries.listAll",
  "hookstream.v1.DeliveryService/ListAttempts":
    "management.deliveries.listAttempts management.deliveries.listAllAttempts portal.deliveries.listAttempts portal.deliveries.listAllAttempts",
  "hookstream.v1.EndpointService/CreateEndpoint": "management.endpoints.create portal.endpoints.create",
  "hookstream.v1.EndpointService/GetEndpoint": "management.endpoints.get portal.endpoints.get",
  "hookstream.v1.EndpointService/ListEndpoints":
    "management.endpoints.list management.endpoints.listAll portal.endpoints.list portal.endpoints.listAll",
  "hookstream.v1.EndpointService/UpdateEndpoint": "management.endpoints.update portal.endpoints.update",
  "hookstream.v1.EndpointService/DeleteEndpoint": "management.endpoints.delete portal.endpoints.delete",
  "hookstream.v1.EndpointService/RotateEndpointSecret": "management.endpoints.rotateSecret",
  "hookstream.v1.EndpointService/TestEndpoint": "management.endpoints.test portal.endpoints.test",
  "hookstream.v1.EventTypeService/CreateEventType": "management.eventTypes.create",
  "hookstream.v1.EventTypeService/GetEventType": "management.eventTypes.get",
  "hookstream.v1.EventTypeService/ListEventTypes": "management.eventTypes.list management.eventTypes.listAll",
  "hookstream.v1.EventTypeService/UpdateEventType": "management.eventTypes.update",
  "hookstream.v1.EventTypeService/DeleteEventType": "management.eventTypes.delete",
  "hookstream.v1.MessageService/Send": "producer.send",
  "hookstream.v1.MessageService/Trigger": "producer.trigger",
  "hookstream.v1.SubscriptionService/CreateSubscription": "management.subscriptions.create",
  "hookstream.v1.SubscriptionService/GetSubscription": "management.subscriptions.get",
  "hookstream.v1.SubscriptionService/ListSubscriptions":
    "management.subscriptions.list management.subscriptions.listAll",
  "hookstream.v1.SubscriptionService/UpdateSubscription": "management.subscriptions.update",
  "hookstream.v1.SubscriptionService/DeleteSubscription": "management.subscriptions.delete",
  "hookstream.v1.MessageService/SendBatch": "producer.sendBatch",
  "hookstream.v1.MessageService/TriggerBatch": "producer.triggerBatch",
  "hookstream.v1.MessageService/GetMessage": "producer.messages.get",
  "hookstream.v1.MessageService/CancelMessage": "producer.messages.cancel",
  "hookstream.v1.MessageService/ListMessages": "producer.messages.list producer.messages.listAll",
  "hookstream.v1.MessageService/RescheduleMessage": "producer.messages.reschedule",
  "hookstream.v1.RecoveryService/ReplayDelivery": "management.deliveries.replay",
  "hookstream.v1.RecoveryService/ReplayMessage": "management.messages.replay",
  "hookstream.v1.RecoveryService/RetryDelivery": "management.deliveries.retry",
  "hookstream.v1.RecoveryService/CancelRetry": "management.deliveries.cancelRetry",
  "hookstream.v1.RecoveryService/ListDeadLetters": "management.deadLetters.list management.deadLetters.listAll",
  "hookstream.v1.RecoveryService/StartBulkOperation": "management.bulk.start",
  "hookstream.v1.RecoveryService/GetBulkOperation": "management.bulk.get",
  "hookstream.v1.RecoveryService/WatchBulkOperation": "management.bulk.watch",
  "hookstream.v1.WatchService/WatchDeliveries": "management.watchDeliveries producer.watchDeliveries",
  "hookstream.v1.WatchService/WatchMessage": "management.watchMessage producer.watchMessage",
  "hookstream.v1.WorkspaceService/GetWorkspace": "management.workspace.get",
  "hookstream.v1.WorkspaceService/UpdateWorkspace": "management.workspace.update",
};
