import type { Authenticator } from "../domain/auth.ts";
import type { OutboxRelay } from "../domain/outbox-relay.ts";
import type { DirectPublisher } from "../domain/publish-check.ts";
import type { ApiKeyRepository } from "../domain/api-keys.ts";
import type { ApplicationRepository } from "../domain/applications.ts";
import type { PortalSessionRepository } from "../domain/portal-sessions.ts";
import type { DeliveryReader } from "../domain/deliveries.ts";
import type { DeliveryStatsReader } from "../domain/delivery-stats.ts";
import type { EndpointRepository } from "../domain/endpoints.ts";
import type { EndpointProbe } from "../domain/endpoint-test.ts";
import type { EventTypeRepository } from "../domain/event-types.ts";
import type { MessageLister } from "../domain/message-list.ts";
import type { ScheduledMessages } from "../domain/message-schedule.ts";
import type { SubscriptionRepository } from "../domain/subscriptions.ts";
import type { TriggerTargets } from "../domain/triggers.ts";
import type { MessageIntake, MessageReader } from "../domain/messages.ts";
import type { StatusFeed } from "../domain/ports.ts";
import type { QuotaMeter } from "../domain/quota.ts";
import type { DeliveryRecovery } from "../domain/recovery.ts";
import type { WorkspaceRepository } from "../domain/workspaces.ts";
import type { EndpointRecord, EnvironmentRecord, EventTypeRecord } from "../domain/records.ts";
import type { EnvironmentRepository } from "../domain/environments.ts";
import type { SecretBox } from "../domain/secret-box.ts";
import type { TtlCache } from "../domain/ttl-cache.ts";

/** What the RPC handlers are given; they reach storage and the queue only through the domain. */
export interface ApiDeps {
  readonly workspaces: WorkspaceRepository;
  readonly environments: EnvironmentRepository;
  /** Environments recently read by Trigger (null: none of that id), shared with the environment service. */
  readonly environmentCache?: TtlCache<EnvironmentRecord | null> | undefined;
  readonly apiKeys: ApiKeyRepository;
  readonly endpoints: EndpointRepository;
  readonly applications: ApplicationRepository;
  readonly portalSessions: PortalSessionRepository;
  /** The installation's public base URL (HOOKSTREAM_PUBLIC_URL): portal URLs start with it. */
  readonly publicUrl: string;
  readonly eventTypes: EventTypeRepository;
  readonly subscriptions: SubscriptionRepository;
  /** Which endpoints a Trigger fans out to. */
  readonly triggerTargets: TriggerTargets;
  /** Where handlers report what is worth an operator's look (e.g. a filter that failed to evaluate). */
  readonly logger?: { warn(obj: object, msg: string): void } | undefined;
  /** Sends TestEndpoint's ping (the API role's own outbound sender, behind the SSRF guard). */
  readonly endpointProbe?: EndpointProbe | undefined;
  readonly messages: MessageIntake & MessageReader & ScheduledMessages & MessageLister;
  readonly deliveries: DeliveryReader;
  /** GetDeliveryStats' aggregates. */
  readonly deliveryStats: DeliveryStatsReader;
  readonly recovery: DeliveryRecovery;
  readonly relay: OutboxRelay & DirectPublisher;
  readonly feed: StatusFeed;
  readonly auth: Authenticator;
  readonly maxPayloadBytes: number;
  /** The message quota of this API process; none counted when undefined. */
  readonly quota?: QuotaMeter | undefined;
  /** How long an idempotency key is held (HOOKSTREAM_IDEMPOTENCY_TTL). */
  readonly idempotencyTtlMs?: number | undefined;
  /** How long after accepting a delivery the dispatcher checks its publish (default 10 s). */
  readonly publishCheckDelayMs?: number | undefined;
  readonly secretGracePeriodMs: number;
  /** Seals endpoint secrets before they are stored. */
  readonly secrets: Pick<SecretBox, "seal">;
  /** Endpoints recently read by Send, shared with the endpoint service that invalidates them. */
  readonly endpointCache?: TtlCache<EndpointRecord> | undefined;
  /** Event types recently read by Send (null: none of that name), shared with the event type service. */
  readonly eventTypeCache?: TtlCache<EventTypeRecord | null> | undefined;
  /** How often an idle watch stream sends a heartbeat item (default 15 s). */
  readonly watchHeartbeatMs?: number | undefined;
  /** Aborted when the server shuts down, so long-lived streams end cleanly. */
  readonly shutdownSignal: AbortSignal;
}
