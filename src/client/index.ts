/**
 * `@hookstream/client`: the TypeScript SDK of Hookstream, for Node and browsers.
 * See the README's "TypeScript SDK" section.
 */
export {
  Hookstream,
  HookstreamManagement,
  HookstreamOperator,
  HookstreamPortal,
  type PortalOptions,
  type ApiKey,
  type Application,
  type Environment,
  type Attempt,
  type BatchItem,
  type TriggerBatchItem,
  type BulkOperation,
  type Delivery,
  type DeliveryEvent,
  type MessageDeliveryEvent,
  type Endpoint,
  type Subscription,
  type TriggerOptions,
  type TriggerResult,
  type EventType,
  type ManagementOptions,
  type Message,
  type OperatorOptions,
  type PayloadEnvelope,
  type Payload,
  type ProducerOptions,
  type SendOptions,
  type SendResult,
  type WatchFilter,
  type Workspace,
} from "./clients.ts";
export type { CallOpts, CommonOptions, RetryOptions } from "./core.ts";
export { parseDuration, formatDuration } from "./duration.ts";
export {
  ClientInputError,
  HookstreamError,
  NetworkError,
  TimeoutError,
  isHookstreamError,
  type FieldViolation,
} from "./errors.ts";
export { rawJson, RawJson, stringifyJson } from "./json.ts";
export type { Input, Plain } from "./plain.ts";
export { RPC_METHODS } from "./rpc-methods.ts";
export {
  parseDelivery,
  verifyWebhook,
  WebhookVerificationError,
  type AckResult,
  type VerifiedWebhook,
  type VerifyOptions,
  type WebhookDelivery,
  type WebhookHeaders,
} from "./webhooks.ts";
export { AttemptErrorKind, DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
export { BulkOperationState, DeliveryAction } from "../../gen/hookstream/v1/bulk_operation_pb.ts";
export { ApiKeyMode, ApiKeyScope } from "../../gen/hookstream/v1/api_key_pb.ts";
export { PayloadStatus } from "../../gen/hookstream/v1/payload_pb.ts";
export { Code } from "@connectrpc/connect";
