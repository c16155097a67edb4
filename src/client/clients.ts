/**
 * The three entry points, one per credential, like the services Hookstream replaces:
 * - {@link Hookstream}: the producer's client (API key): send, read messages, watch deliveries;
 * - {@link HookstreamManagement}: the management client (management token): every resource of a workspace;
 * - {@link HookstreamOperator}: the installation operator (operator token): workspaces.
 */
import { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { ApiKeyService } from "../../gen/hookstream/v1/api_key_service_pb.ts";
import { ApplicationService } from "../../gen/hookstream/v1/application_service_pb.ts";
import type * as pb from "./types-pb.ts";
import { BulkOperationState } from "../../gen/hookstream/v1/bulk_operation_pb.ts";
import { DeliveryService } from "../../gen/hookstream/v1/delivery_service_pb.ts";
import { EndpointService } from "../../gen/hookstream/v1/endpoint_service_pb.ts";
import { EnvironmentService } from "../../gen/hookstream/v1/environment_service_pb.ts";
import { EventTypeService } from "../../gen/hookstream/v1/event_type_service_pb.ts";
import { MessageService, SendRequestSchema } from "../../gen/hookstream/v1/message_service_pb.ts";
import { PortalService } from "../../gen/hookstream/v1/portal_service_pb.ts";
import { RecoveryService } from "../../gen/hookstream/v1/recovery_service_pb.ts";
import { SubscriptionService } from "../../gen/hookstream/v1/subscription_service_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { WorkspaceService } from "../../gen/hookstream/v1/workspace_service_pb.ts";
import { BaseClient, environment, type CallOpts, type CommonOptions } from "./core.ts";
import { formatDuration } from "./duration.ts";
import { ClientInputError } from "./errors.ts";
import { RawJson, stringifyJson } from "./json.ts";
import type { Input, Plain } from "./plain.ts";

export type Endpoint = Plain<pb.Endpoint>;
export type Delivery = Plain<pb.Delivery>;
export type Attempt = Plain<pb.Attempt>;
export type Message = Plain<pb.Message>;
export type ApiKey = Plain<pb.ApiKey>;
export type Workspace = Plain<pb.Workspace>;
export type BulkOperation = Plain<pb.BulkOperation>;
export type PayloadEnvelope = Plain<pb.PayloadEnvelope>;
/** One item of a delivery watch: a delivery's new status, with the attempt that caused it when there was one. */
export type DeliveryEvent = Plain<pb.WatchDeliveriesResponse>;
/** One item of a message watch: one of its deliveries as it stands, or after a change. */
export type MessageDeliveryEvent = Plain<pb.WatchMessageResponse>;
export type SendResult = Plain<pb.SendResponse>;
export type EventType = Plain<pb.EventType>;
export type Application = Plain<pb.Application>;
/** An environment of the workspace ("production", "staging"). */
export type Environment = Plain<pb.Environment>;

/** A payload: any JSON value (bigints exact), pre-serialised JSON text ({@link RawJson}), or raw bytes. */
export type Payload = unknown;

export type TriggerResult = Plain<pb.TriggerResponse>;
export type Subscription = Plain<pb.Subscription>;

/** Options of {@link Hookstream.trigger}. */
export interface TriggerOptions extends CallOpts {
  /** Makes the trigger safe to repeat: the same key and request return the first result (`replayed`). */
  readonly idempotencyKey?: string;
  /** Content type of raw bytes (default application/octet-stream). */
  readonly contentType?: string;
  /** What the endpoints' and subscriptions' filters see as `metadata`. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Only this application's endpoints receive the event ("app_…"). */
  readonly applicationId?: string;
  /** Further TriggerRequest fields of the schema, by their TypeScript names. */
  readonly fields?: Readonly<Record<string, unknown>>;
}

/** Options of {@link Hookstream.send}. */
export interface SendOptions extends CallOpts {
  /** The event type (`order.paid`). */
  readonly eventType?: string;
  /** Makes the send safe to repeat: the same key and request return the first message (`replayed`). */
  readonly idempotencyKey?: string;
  /** Content type of raw bytes (default application/octet-stream); JSON payloads are application/json. */
  readonly contentType?: string;
  /** Deliver after this long: `"5m"`, `"1h30m"`, or milliseconds. */
  readonly deliverIn?: string | number;
  /** Deliver at this instant. */
  readonly deliverAt?: Date | string | number;
  /** Deliver at this wall-clock time (`2027-03-14T09:30:00`, no offset) in {@link timeZone}. */
  readonly deliverAtLocal?: string;
  /** The IANA time zone of {@link deliverAtLocal} (`Europe/Paris`). */
  readonly timeZone?: string;
  /** Key-value metadata of the message (filters see it as `metadata`). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Further SendRequest fields of the schema, by their TypeScript names (`headers`, `retry`, …). */
  readonly fields?: Readonly<Record<string, unknown>>;
}

type ListInput<T> = Omit<Input<T>, "pageToken"> & { pageToken?: string };

/** The request body of a send: JSON text (exact) or raw bytes. */
export function bodyOf(payload: Payload, contentType?: string): Record<string, unknown> {
  if (payload instanceof Uint8Array) {
    return { body: { case: "rawPayload", value: payload }, contentType: contentType ?? "application/octet-stream" };
  }
  const text = payload instanceof RawJson ? payload.text : stringifyJson(payload);
  return { body: { case: "payloadJson", value: text }, ...(contentType === undefined ? {} : { contentType }) };
}

/** SendRequest fields for the scheduling options, as the schema spells them (string or Duration/Timestamp). */
function scheduleOf(opts: SendOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (name: "deliverIn" | "deliverAt" | "deliverAtLocal" | "timeZone", value: unknown): void => {
    if (value === undefined) return;
    const field = SendRequestSchema.fields.find((f) => f.localName === name);
    if (field === undefined) {
      throw new ClientInputError(name, "the server's schema this SDK was built with has no scheduled sends");
    }
    if (name === "deliverIn" && field.fieldKind === "scalar" && typeof value === "number")
      value = formatDuration(value);
    if (name === "deliverAt" && field.fieldKind === "scalar" && value instanceof Date) value = value.toISOString();
    out[name] = value;
  };
  set("deliverIn", opts.deliverIn);
  set("deliverAt", opts.deliverAt);
  set("deliverAtLocal", opts.deliverAtLocal);
  set("timeZone", opts.timeZone);
  return out;
}

/** One message of {@link Hookstream.sendBatch}: the arguments of {@link Hookstream.send} as one object. */
export interface BatchItem extends Omit<SendOptions, keyof CallOpts> {
  readonly endpointId: string;
  readonly payload: Payload;
}

/** The SendRequest of `send(endpointId, payload, opts)`. */
function sendRequestOf(
  endpointId: string,
  payload: Payload,
  opts: Omit<SendOptions, keyof CallOpts>,
): Record<string, unknown> {
  return {
    endpointId,
    eventType: opts.eventType ?? "",
    idempotencyKey: opts.idempotencyKey ?? "",
    ...bodyOf(payload, opts.contentType),
    ...scheduleOf(opts),
    ...(opts.metadata === undefined ? {} : { metadata: opts.metadata }),
    ...opts.fields,
  };
}

/** One event of {@link Hookstream.triggerBatch}: the arguments of {@link Hookstream.trigger} as one object. */
export interface TriggerBatchItem extends Omit<TriggerOptions, keyof CallOpts> {
  readonly eventType: string;
  readonly payload: Payload;
}

/** The TriggerRequest of `trigger(eventType, payload, opts)`. */
function triggerRequestOf(
  eventType: string,
  payload: Payload,
  opts: Omit<TriggerOptions, keyof CallOpts>,
): Record<string, unknown> {
  return {
    eventType,
    idempotencyKey: opts.idempotencyKey ?? "",
    metadata: { ...opts.metadata },
    ...(opts.applicationId === undefined ? {} : { applicationId: opts.applicationId }),
    ...bodyOf(payload, opts.contentType),
    ...opts.fields,
  };
}

/** Options of {@link Hookstream}. */
export interface ProducerOptions extends CommonOptions {
  /** The workspace's API key (`HOOKSTREAM_API_KEY`). */
  readonly apiKey?: string;
}

/** Filters of a delivery watch. */
export type WatchFilter = Omit<Input<pb.WatchDeliveriesRequest>, "resumeToken"> & {
  /** Start after this token (from an earlier event) instead of now. */
  resumeToken?: string;
};

const isHeartbeat = (e: DeliveryEvent | MessageDeliveryEvent): boolean =>
  e.delivery === undefined && e.attempt === undefined;

/** The producer's client: authenticates with an API key. */
export class Hookstream extends BaseClient {
  constructor(options: ProducerOptions = {}) {
    super(options, options.apiKey ?? environment()["HOOKSTREAM_API_KEY"], "HOOKSTREAM_API_KEY");
  }

  /**
   * Sends one message to one endpoint. `payload` goes out byte-exact: a JSON value (bigints keep
   * every digit), `rawJson(text)` as written, or a Uint8Array with `contentType`.
   */
  async send(endpointId: string, payload: Payload, opts: SendOptions = {}): Promise<SendResult> {
    return this.unary(MessageService.method.send, sendRequestOf(endpointId, payload, opts), opts);
  }

  /**
   * Fans one event out by its type to every endpoint that receives it (see SubscriptionService);
   * `payload` goes out byte-exact as in {@link send}. `deliveries` is empty (and
   * `noEndpointMatched` true) when no endpoint matched.
   */
  async trigger(eventType: string, payload: Payload, opts: TriggerOptions = {}): Promise<TriggerResult> {
    return this.unary(MessageService.method.trigger, triggerRequestOf(eventType, payload, opts), opts);
  }

  /**
   * Triggers up to 20 events in one call (one transaction). Each item is what {@link trigger}
   * takes, as one object (`{ eventType, payload, idempotencyKey, metadata, applicationId, … }`,
   * payloads byte-exact), or a TriggerRequest of the schema as it is; each succeeds or fails on
   * its own: `results[i]` has `response` or `code`, `message` and `error`. With retries on, every
   * item carries an idempotency key (generated when absent), so a retried batch never triggers
   * an item twice.
   */
  async triggerBatch(
    items: readonly (TriggerBatchItem | Input<pb.TriggerRequest>)[],
    opts: CallOpts = {},
  ): Promise<Plain<pb.TriggerBatchResponse>> {
    const requests = items.map((item) =>
      "payload" in item ? triggerRequestOf(item.eventType, item.payload, item) : item,
    );
    return this.unary(MessageService.method.triggerBatch, { items: requests }, opts);
  }

  /**
   * Sends up to 20 messages in one call (one transaction). Each item is what {@link send} takes,
   * as one object (`{ endpointId, payload, eventType, idempotencyKey, deliverIn, … }`, payloads
   * byte-exact as in send), or a SendRequest of the schema as it is; each succeeds or fails on
   * its own: `results[i]` has `response` or `code`, `message` and `error`. With retries on,
   * every item carries an idempotency key (generated when absent), so a retried batch never
   * sends an item twice.
   */
  async sendBatch(
    items: readonly (BatchItem | Input<pb.SendRequest>)[],
    opts: CallOpts = {},
  ): Promise<Plain<pb.SendBatchResponse>> {
    const requests = items.map((item) =>
      "payload" in item ? sendRequestOf(item.endpointId, item.payload, item) : item,
    );
    return this.unary(MessageService.method.sendBatch, { items: requests }, opts);
  }

  readonly messages = {
    /** A message with its deliveries; `payloadJson` is the exact stored text. */
    get: (id: string, opts?: CallOpts): Promise<Plain<pb.GetMessageResponse>> =>
      this.unary(MessageService.method.getMessage, { id }, opts),
    /** One page of messages, newest first, filtered by event type, creation time and delivery status. */
    list: (filter: ListInput<pb.ListMessagesRequest> = {}, opts?: CallOpts): Promise<Plain<pb.ListMessagesResponse>> =>
      this.unary(MessageService.method.listMessages, filter, opts),
    /** Every matching message, page after page. */
    listAll: (filter: ListInput<pb.ListMessagesRequest> = {}, opts?: CallOpts): AsyncGenerator<Message> =>
      this.pages(MessageService.method.listMessages, filter, "messages", opts),
    /** Cancels a scheduled message that has not been sent (`MESSAGE_NOT_SCHEDULED` otherwise). */
    cancel: (id: string, opts?: CallOpts): Promise<Plain<pb.CancelMessageResponse>> =>
      this.unary(MessageService.method.cancelMessage, { id }, opts),
    /** Moves a scheduled message that has not been sent: exactly one of deliverIn, deliverAt, deliverAtLocal. */
    reschedule: (
      id: string,
      when: Pick<SendOptions, "deliverIn" | "deliverAt" | "deliverAtLocal" | "timeZone">,
      opts?: CallOpts,
    ): Promise<Plain<pb.RescheduleMessageResponse>> =>
      this.unary(MessageService.method.rescheduleMessage, { id, ...scheduleOf(when) }, opts),
  };

  /** Live status changes of this workspace's deliveries (see {@link HookstreamManagement.watchDeliveries}). */
  watchDeliveries(filter: WatchFilter = {}, opts: CallOpts = {}): AsyncGenerator<DeliveryEvent, void, undefined> {
    return this.stream(WatchService.method.watchDeliveries, filter, { ...opts, isHeartbeat });
  }

  /** One message's deliveries until every one is final (see {@link HookstreamManagement.watchMessage}). */
  watchMessage(id: string, opts: CallOpts = {}): AsyncGenerator<MessageDeliveryEvent, void, undefined> {
    return this.stream(WatchService.method.watchMessage, { id }, { ...opts, isHeartbeat, endsWithServer: true });
  }
}

/** Options of {@link HookstreamManagement}. */
export interface ManagementOptions extends CommonOptions {
  /** The workspace's management token (`HOOKSTREAM_MANAGEMENT_TOKEN`). */
  readonly managementToken?: string;
}

/** The field mask of a patch: its keys (undefined values included: they clear the field). */
const maskOf = (patch: object): string[] => Object.keys(patch).filter((k) => k !== "id");

/** The management client: authenticates with a workspace's management token. */
export class HookstreamManagement extends BaseClient {
  constructor(options: ManagementOptions = {}) {
    super(
      options,
      options.managementToken ?? environment()["HOOKSTREAM_MANAGEMENT_TOKEN"],
      "HOOKSTREAM_MANAGEMENT_TOKEN",
    );
  }

  readonly endpoints = {
    /** Creates an endpoint; `signingSecret` (whsec_…) is returned only here and by rotateSecret. */
    create: (endpoint: Input<pb.Endpoint>, opts?: CallOpts): Promise<Plain<pb.CreateEndpointResponse>> =>
      this.unary(EndpointService.method.createEndpoint, { endpoint }, opts),
    get: async (id: string, opts?: CallOpts): Promise<Endpoint> =>
      (await this.unary(EndpointService.method.getEndpoint, { id }, opts)).endpoint!,
    list: (page: ListInput<pb.ListEndpointsRequest> = {}, opts?: CallOpts): Promise<Plain<pb.ListEndpointsResponse>> =>
      this.unary(EndpointService.method.listEndpoints, page, opts),
    listAll: (page: ListInput<pb.ListEndpointsRequest> = {}, opts?: CallOpts): AsyncGenerator<Endpoint> =>
      this.pages(EndpointService.method.listEndpoints, page, "endpoints", opts),
    /** Changes the fields present in `patch` (its keys are the update mask unless `updateMask` is given). */
    update: async (
      id: string,
      patch: Input<pb.Endpoint>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<Endpoint> =>
      (
        await this.unary(
          EndpointService.method.updateEndpoint,
          { endpoint: { ...patch, id }, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).endpoint!,
    delete: async (id: string, opts?: CallOpts): Promise<void> => {
      await this.unary(EndpointService.method.deleteEndpoint, { id }, opts);
    },
    /** A new signing secret; the previous one keeps verifying until `previousSecretExpireTime`. */
    rotateSecret: (id: string, opts?: CallOpts): Promise<Plain<pb.RotateEndpointSecretResponse>> =>
      this.unary(EndpointService.method.rotateEndpointSecret, { id }, opts),
    /** Sends one signed ping now and reports success, status code, latency and the failure class. */
    test: (id: string, opts?: CallOpts): Promise<Plain<pb.TestEndpointResponse>> =>
      this.unary(EndpointService.method.testEndpoint, { id }, opts),
  };

  readonly subscriptions = {
    create: async (subscription: Input<pb.Subscription>, opts?: CallOpts): Promise<Subscription> =>
      (await this.unary(SubscriptionService.method.createSubscription, { subscription }, opts)).subscription!,
    get: async (id: string, opts?: CallOpts): Promise<Subscription> =>
      (await this.unary(SubscriptionService.method.getSubscription, { id }, opts)).subscription!,
    list: (
      page: ListInput<pb.ListSubscriptionsRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListSubscriptionsResponse>> =>
      this.unary(SubscriptionService.method.listSubscriptions, page, opts),
    listAll: (page: ListInput<pb.ListSubscriptionsRequest> = {}, opts?: CallOpts): AsyncGenerator<Subscription> =>
      this.pages(SubscriptionService.method.listSubscriptions, page, "subscriptions", opts),
    /** Changes the fields present in `patch` (its keys are the update mask unless `updateMask` is given). */
    update: async (
      id: string,
      patch: Input<pb.Subscription>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<Subscription> =>
      (
        await this.unary(
          SubscriptionService.method.updateSubscription,
          { subscription: { ...patch, id }, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).subscription!,
    delete: async (id: string, opts?: CallOpts): Promise<void> => {
      await this.unary(SubscriptionService.method.deleteSubscription, { id }, opts);
    },
  };

  readonly environments = {
    /**
     * Adds an environment (`name` and a unique `slug`); create producer keys bound to it with
     * `apiKeys.create({ environmentId })` and endpoints in it with `endpoints.create({ environmentId })`.
     */
    create: async (env: Input<pb.Environment>, opts?: CallOpts): Promise<Environment> =>
      (await this.unary(EnvironmentService.method.createEnvironment, { environment: env }, opts)).environment!,
    /** By id ("env_…"), or by slug with `{ slug }`. */
    get: async (idOrSlug: string | { slug: string }, opts?: CallOpts): Promise<Environment> =>
      (
        await this.unary(
          EnvironmentService.method.getEnvironment,
          typeof idOrSlug === "string" ? { id: idOrSlug } : { slug: idOrSlug.slug },
          opts,
        )
      ).environment!,
    list: (
      page: ListInput<pb.ListEnvironmentsRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListEnvironmentsResponse>> =>
      this.unary(EnvironmentService.method.listEnvironments, page, opts),
    listAll: (page: ListInput<pb.ListEnvironmentsRequest> = {}, opts?: CallOpts): AsyncGenerator<Environment> =>
      this.pages(EnvironmentService.method.listEnvironments, page, "environments", opts),
    /** Changes `name` and/or `unpublishedEventTypes` (the keys of `patch` are the update mask unless `updateMask` is given). */
    update: async (
      id: string,
      patch: Input<pb.Environment>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<Environment> =>
      (
        await this.unary(
          EnvironmentService.method.updateEnvironment,
          { environment: { ...patch, id }, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).environment!,
    /** Deletes an empty environment (not the default one). */
    delete: async (id: string, opts?: CallOpts): Promise<void> => {
      await this.unary(EnvironmentService.method.deleteEnvironment, { id }, opts);
    },
  };

  readonly applications = {
    /** Registers an application (one of your customers); endpoints can then be created under it. */
    create: async (application: Input<pb.Application>, opts?: CallOpts): Promise<Application> =>
      (await this.unary(ApplicationService.method.createApplication, { application }, opts)).application!,
    /** By id ("app_…"), or by your own id with `{ uid }`. */
    get: async (idOrUid: string | { uid: string }, opts?: CallOpts): Promise<Application> =>
      (
        await this.unary(
          ApplicationService.method.getApplication,
          typeof idOrUid === "string" ? { id: idOrUid } : { uid: idOrUid.uid },
          opts,
        )
      ).application!,
    list: (
      page: ListInput<pb.ListApplicationsRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListApplicationsResponse>> =>
      this.unary(ApplicationService.method.listApplications, page, opts),
    listAll: (page: ListInput<pb.ListApplicationsRequest> = {}, opts?: CallOpts): AsyncGenerator<Application> =>
      this.pages(ApplicationService.method.listApplications, page, "applications", opts),
    /** Changes the fields present in `patch` (its keys are the update mask unless `updateMask` is given). */
    update: async (
      id: string,
      patch: Input<pb.Application>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<Application> =>
      (
        await this.unary(
          ApplicationService.method.updateApplication,
          { application: { ...patch, id }, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).application!,
    /** Deletes an application with its endpoints; their pending deliveries are cancelled. */
    delete: (id: string, opts?: CallOpts): Promise<Plain<pb.DeleteApplicationResponse>> =>
      this.unary(ApplicationService.method.deleteApplication, { id }, opts),
  };

  readonly portalSessions = {
    /**
     * Opens a consumer portal session for an application: a one-time `code` (and the portal
     * `url` carrying it) that {@link HookstreamPortal.open} exchanges, once, for a token limited
     * to that application's endpoints and deliveries. `ttl`: how long the session lasts,
     * milliseconds or `"30m"` (1m to 24h, default 1h).
     */
    create: (
      applicationId: string,
      opts: CallOpts & { ttl?: string | number } = {},
    ): Promise<Plain<pb.CreatePortalSessionResponse>> =>
      this.unary(
        PortalService.method.createPortalSession,
        { applicationId, ...(opts.ttl === undefined ? {} : { ttl: opts.ttl }) },
        opts,
      ),
  };

  readonly eventTypes = {
    /** Adds an event type to the catalog, optionally with a JSON Schema its payloads must match. */
    create: async (eventType: Input<pb.EventType>, opts?: CallOpts): Promise<EventType> =>
      (await this.unary(EventTypeService.method.createEventType, { eventType }, opts)).eventType!,
    get: async (name: string, opts?: CallOpts): Promise<EventType> =>
      (await this.unary(EventTypeService.method.getEventType, { name }, opts)).eventType!,
    list: (
      page: ListInput<pb.ListEventTypesRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListEventTypesResponse>> => this.unary(EventTypeService.method.listEventTypes, page, opts),
    listAll: (page: ListInput<pb.ListEventTypesRequest> = {}, opts?: CallOpts): AsyncGenerator<EventType> =>
      this.pages(EventTypeService.method.listEventTypes, page, "eventTypes", opts),
    /** Changes the fields present in `patch` (e.g. `{ archived: true }` or a new `schema`). */
    update: async (
      name: string,
      patch: Input<pb.EventType>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<EventType> =>
      (
        await this.unary(
          EventTypeService.method.updateEventType,
          { eventType: { ...patch, name }, updateMask: opts.updateMask ?? maskOf(patch).filter((k) => k !== "name") },
          opts,
        )
      ).eventType!,
    /** Deletes an event type; its pending deliveries are cancelled (their count is returned). */
    delete: (name: string, opts?: CallOpts): Promise<Plain<pb.DeleteEventTypeResponse>> =>
      this.unary(EventTypeService.method.deleteEventType, { name }, opts),
  };

  readonly apiKeys = {
    /** Creates an API key for a producer; `secret` is returned only here. */
    create: (
      label: string,
      opts: CallOpts & Omit<Input<pb.CreateApiKeyRequest>, "label"> = {},
    ): Promise<Plain<pb.CreateApiKeyResponse>> => {
      const { signal, timeout, headers, ...fields } = opts;
      const call = {
        ...(signal && { signal }),
        ...(timeout !== undefined && { timeout }),
        ...(headers && { headers }),
      };
      return this.unary(ApiKeyService.method.createApiKey, { ...fields, label }, call);
    },
    list: (page: ListInput<pb.ListApiKeysRequest> = {}, opts?: CallOpts): Promise<Plain<pb.ListApiKeysResponse>> =>
      this.unary(ApiKeyService.method.listApiKeys, page, opts),
    listAll: (page: ListInput<pb.ListApiKeysRequest> = {}, opts?: CallOpts): AsyncGenerator<ApiKey> =>
      this.pages(ApiKeyService.method.listApiKeys, page, "apiKeys", opts),
    revoke: async (id: string, opts?: CallOpts): Promise<ApiKey> =>
      (await this.unary(ApiKeyService.method.revokeApiKey, { id }, opts)).apiKey!,
  };

  readonly deliveries = {
    /** A delivery; with `includePayload`, its payload envelope (available, expired or not found). */
    get: (id: string, opts: CallOpts & { includePayload?: boolean } = {}): Promise<Plain<pb.GetDeliveryResponse>> =>
      this.unary(DeliveryService.method.getDelivery, { id, includePayload: opts.includePayload ?? false }, opts),
    list: (
      filter: ListInput<pb.ListDeliveriesRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListDeliveriesResponse>> => this.unary(DeliveryService.method.listDeliveries, filter, opts),
    listAll: (filter: ListInput<pb.ListDeliveriesRequest> = {}, opts?: CallOpts): AsyncGenerator<Delivery> =>
      this.pages(DeliveryService.method.listDeliveries, filter, "deliveries", opts),
    listAttempts: (
      deliveryId: string,
      page: Omit<ListInput<pb.ListAttemptsRequest>, "deliveryId"> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListAttemptsResponse>> =>
      this.unary(DeliveryService.method.listAttempts, { ...page, deliveryId }, opts),
    listAllAttempts: (
      deliveryId: string,
      page: Omit<ListInput<pb.ListAttemptsRequest>, "deliveryId"> = {},
      opts?: CallOpts,
    ): AsyncGenerator<Attempt> =>
      this.pages(DeliveryService.method.listAttempts, { ...page, deliveryId }, "attempts", opts),
    /**
     * Delivery statistics of a window (`window`: milliseconds or `"24h"`, `"7d"`; default 24 h):
     * counts by status, success rate, attempt latency (average, p50, p95, p99) and a series of
     * `bucket`-wide points, optionally for one `endpointId`, `applicationId` or `eventType`.
     */
    stats: (
      query: Input<pb.GetDeliveryStatsRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.GetDeliveryStatsResponse>> => this.unary(DeliveryService.method.getDeliveryStats, query, opts),
    /** One more attempt of a final delivery (same webhook-id). */
    replay: async (id: string, opts?: CallOpts): Promise<Delivery> =>
      (await this.unary(RecoveryService.method.replayDelivery, { id }, opts)).delivery!,
    /** Attempts a pending retry now. */
    retry: async (id: string, opts?: CallOpts): Promise<Delivery> =>
      (await this.unary(RecoveryService.method.retryDelivery, { id }, opts)).delivery!,
    /** Gives up on a pending retry (the delivery is dead-lettered). */
    cancelRetry: async (id: string, opts?: CallOpts): Promise<Delivery> =>
      (await this.unary(RecoveryService.method.cancelRetry, { id }, opts)).delivery!,
  };

  readonly messages = {
    /** Replays every final delivery of a message. */
    replay: (id: string, opts?: CallOpts): Promise<Plain<pb.ReplayMessageResponse>> =>
      this.unary(RecoveryService.method.replayMessage, { id }, opts),
  };

  readonly deadLetters = {
    list: (
      filter: Input<pb.DeliveryFilter> = {},
      page: { pageSize?: number; pageToken?: string } = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListDeadLettersResponse>> =>
      this.unary(RecoveryService.method.listDeadLetters, { ...page, filter }, opts),
    listAll: (filter: Input<pb.DeliveryFilter> = {}, opts?: CallOpts): AsyncGenerator<Delivery> =>
      this.pages(RecoveryService.method.listDeadLetters, { filter }, "deliveries", opts),
  };

  readonly bulk = {
    /** Starts a background operation (replay, retry now, cancel retry) over ids or a filter. */
    start: async (request: Input<pb.StartBulkOperationRequest>, opts?: CallOpts): Promise<BulkOperation> =>
      (await this.unary(RecoveryService.method.startBulkOperation, request, opts)).operation!,
    get: async (id: string, opts?: CallOpts): Promise<BulkOperation> =>
      (await this.unary(RecoveryService.method.getBulkOperation, { id }, opts)).operation!,
    /** The operation's progress until it finishes (reconnecting when the connection drops). */
    watch: (id: string, opts?: CallOpts): AsyncGenerator<BulkOperation> => this.#watchBulk(id, opts),
  };

  readonly workspace = {
    get: async (opts?: CallOpts): Promise<Workspace> =>
      (await this.unary(WorkspaceService.method.getWorkspace, {}, opts)).workspace!,
    /** Changes the fields present in `patch` (e.g. `{ payloadRetention: "7d" }`). */
    update: async (patch: Input<pb.Workspace>, opts: CallOpts & { updateMask?: string[] } = {}): Promise<Workspace> =>
      (
        await this.unary(
          WorkspaceService.method.updateWorkspace,
          { workspace: patch, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).workspace!,
  };

  /**
   * Live status changes of the workspace's deliveries, filtered by endpoint, message or status,
   * as an async iterable that reconnects by itself from the last resume token it saw (a server
   * restart or a dropped connection loses nothing). Break out of the loop, abort `signal` or
   * close the client to stop.
   */
  watchDeliveries(filter: WatchFilter = {}, opts: CallOpts = {}): AsyncGenerator<DeliveryEvent, void, undefined> {
    return this.stream(WatchService.method.watchDeliveries, filter, { ...opts, isHeartbeat });
  }

  /**
   * Follows one message: each of its deliveries as it stands, then every change of them; the
   * iteration ends once every delivery is final (succeeded, failed or cancelled). After a
   * dropped connection it calls again, and the deliveries' current state comes again.
   */
  watchMessage(id: string, opts: CallOpts = {}): AsyncGenerator<MessageDeliveryEvent, void, undefined> {
    return this.stream(WatchService.method.watchMessage, { id }, { ...opts, isHeartbeat, endsWithServer: true });
  }

  async *#watchBulk(id: string, opts?: CallOpts): AsyncGenerator<BulkOperation> {
    const isDone = (i: Plain<pb.WatchBulkOperationResponse>): boolean =>
      i.operation?.state === BulkOperationState.SUCCEEDED;
    for await (const item of this.stream(RecoveryService.method.watchBulkOperation, { id }, { ...opts, isDone })) {
      if (item.operation !== undefined) yield item.operation;
    }
  }
}

/** Options of {@link HookstreamOperator}. */
export interface OperatorOptions extends CommonOptions {
  /** The installation's operator token (`HOOKSTREAM_ADMIN_TOKEN`). */
  readonly operatorToken?: string;
}

/** The operator's client: creates workspaces (operator token). */
/** Options of {@link HookstreamPortal}. */
export interface PortalOptions extends CommonOptions {
  /** The portal session token ("hsp_…") that {@link HookstreamPortal.exchangeCode} returned. */
  readonly portalToken?: string;
}

/**
 * The consumer portal's client (a portal session token): one application's endpoints, their
 * deliveries and attempts, and nothing else of the workspace.
 */
export class HookstreamPortal extends BaseClient {
  constructor(options: PortalOptions = {}) {
    super(options, options.portalToken ?? environment()["HOOKSTREAM_PORTAL_TOKEN"], "HOOKSTREAM_PORTAL_TOKEN");
  }

  /** Exchanges a one-time portal code (it works once) for the session's token. No credential needed. */
  static async exchangeCode(code: string, options: CommonOptions = {}): Promise<Plain<pb.ExchangePortalCodeResponse>> {
    // The RPC takes no credential; the placeholder token is ignored by the server.
    const client = new HookstreamPortal({ ...options, portalToken: "hsp_none" });
    return client.unary(PortalService.method.exchangePortalCode, { code }, {});
  }

  /** Exchanges a one-time portal code and returns a client holding the session's token. */
  static async open(code: string, options: CommonOptions = {}): Promise<HookstreamPortal> {
    const { token } = await HookstreamPortal.exchangeCode(code, options);
    return new HookstreamPortal({ ...options, portalToken: token });
  }

  readonly endpoints = {
    /** Creates an endpoint of the session's application. */
    create: (endpoint: Input<pb.Endpoint>, opts?: CallOpts): Promise<Plain<pb.CreateEndpointResponse>> =>
      this.unary(EndpointService.method.createEndpoint, { endpoint }, opts),
    get: async (id: string, opts?: CallOpts): Promise<Endpoint> =>
      (await this.unary(EndpointService.method.getEndpoint, { id }, opts)).endpoint!,
    list: (page: ListInput<pb.ListEndpointsRequest> = {}, opts?: CallOpts): Promise<Plain<pb.ListEndpointsResponse>> =>
      this.unary(EndpointService.method.listEndpoints, page, opts),
    listAll: (page: ListInput<pb.ListEndpointsRequest> = {}, opts?: CallOpts): AsyncGenerator<Endpoint> =>
      this.pages(EndpointService.method.listEndpoints, page, "endpoints", opts),
    /** Changes the fields present in `patch` (its keys are the update mask unless `updateMask` is given). */
    update: async (
      id: string,
      patch: Input<pb.Endpoint>,
      opts: CallOpts & { updateMask?: string[] } = {},
    ): Promise<Endpoint> =>
      (
        await this.unary(
          EndpointService.method.updateEndpoint,
          { endpoint: { ...patch, id }, updateMask: opts.updateMask ?? maskOf(patch) },
          opts,
        )
      ).endpoint!,
    delete: async (id: string, opts?: CallOpts): Promise<void> => {
      await this.unary(EndpointService.method.deleteEndpoint, { id }, opts);
    },
    /** Sends one signed ping now and reports how it went. */
    test: (id: string, opts?: CallOpts): Promise<Plain<pb.TestEndpointResponse>> =>
      this.unary(EndpointService.method.testEndpoint, { id }, opts),
  };

  readonly deliveries = {
    get: (id: string, opts: CallOpts & { includePayload?: boolean } = {}): Promise<Plain<pb.GetDeliveryResponse>> =>
      this.unary(DeliveryService.method.getDelivery, { id, includePayload: opts.includePayload ?? false }, opts),
    list: (
      filter: ListInput<pb.ListDeliveriesRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListDeliveriesResponse>> => this.unary(DeliveryService.method.listDeliveries, filter, opts),
    listAll: (filter: ListInput<pb.ListDeliveriesRequest> = {}, opts?: CallOpts): AsyncGenerator<Delivery> =>
      this.pages(DeliveryService.method.listDeliveries, filter, "deliveries", opts),
    listAttempts: (
      deliveryId: string,
      page: Omit<ListInput<pb.ListAttemptsRequest>, "deliveryId"> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.ListAttemptsResponse>> =>
      this.unary(DeliveryService.method.listAttempts, { ...page, deliveryId }, opts),
    listAllAttempts: (
      deliveryId: string,
      page: Omit<ListInput<pb.ListAttemptsRequest>, "deliveryId"> = {},
      opts?: CallOpts,
    ): AsyncGenerator<Attempt> =>
      this.pages(DeliveryService.method.listAttempts, { ...page, deliveryId }, "attempts", opts),
    /**
     * Delivery statistics of a window (`window`: milliseconds or `"24h"`, `"7d"`; default 24 h):
     * counts by status, success rate, attempt latency (average, p50, p95, p99) and a series of
     * `bucket`-wide points, optionally for one `endpointId`, `applicationId` or `eventType`.
     */
    stats: (
      query: Input<pb.GetDeliveryStatsRequest> = {},
      opts?: CallOpts,
    ): Promise<Plain<pb.GetDeliveryStatsResponse>> => this.unary(DeliveryService.method.getDeliveryStats, query, opts),
  };
}

export class HookstreamOperator extends BaseClient {
  constructor(options: OperatorOptions = {}) {
    super(options, options.operatorToken ?? environment()["HOOKSTREAM_ADMIN_TOKEN"], "HOOKSTREAM_ADMIN_TOKEN");
  }

  readonly workspaces = {
    /** A new workspace and its management token (returned only here). */
    create: (name: string, opts?: CallOpts): Promise<Plain<pb.CreateWorkspaceResponse>> =>
      this.unary(AdminService.method.createWorkspace, { name }, opts),
  };
}
