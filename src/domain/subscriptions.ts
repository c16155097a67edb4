import { workspaceScope } from "./scope.ts";
import {
  checkEventTypesExist,
  checkFilter,
  checkRoutedEventTypes,
  getEndpoint,
  type EndpointLookup,
} from "./endpoints.ts";
import { Violations, invalidArgument, notFound } from "./errors.ts";
import type { EventTypeLookup } from "./event-types.ts";
import { newId } from "./ids.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { PageQuery, SubscriptionRecord } from "./records.ts";
import { checkId, snakeCase } from "./validation.ts";

/** Partial update of a subscription (only the present keys change). */
export type SubscriptionPatch = Partial<Pick<SubscriptionRecord, "eventTypes" | "enabled" | "filter">>;

/** The subscription use cases' port. */
export interface SubscriptionRepository {
  /** Stores a new subscription. */
  createSubscription(s: SubscriptionRecord): Promise<void>;
  /** Null when missing, in another workspace, or its endpoint is deleted. */
  getSubscription(workspaceId: string, id: string): Promise<SubscriptionRecord | null>;
  /** Newest first; only the endpoint's when `endpointId` is given. */
  listSubscriptions(
    workspaceId: string,
    endpointId: string | undefined,
    page: PageQuery,
  ): Promise<SubscriptionRecord[]>;
  /** Applies the patch and sets updatedAt; null when not found. */
  updateSubscription(
    workspaceId: string,
    id: string,
    patch: SubscriptionPatch,
    at: Date,
  ): Promise<SubscriptionRecord | null>;
  /** False when not found. */
  deleteSubscription(workspaceId: string, id: string): Promise<boolean>;
}

/** What the subscription use cases need. */
export interface SubscriptionDeps {
  store: SubscriptionRepository;
  endpoints: EndpointLookup;
  eventTypes: EventTypeLookup;
}

/** Subscription fields a producer sets. */
export interface SubscriptionInput {
  id: string;
  endpointId: string;
  eventTypes: readonly string[];
  enabled: boolean | undefined;
  filter: string;
}

/** The fields UpdateSubscription's mask may name. */
export const UPDATABLE_SUBSCRIPTION_FIELDS = ["event_types", "enabled", "filter"] as const;
type UpdatableField = (typeof UPDATABLE_SUBSCRIPTION_FIELDS)[number];

/** Subscribes an endpoint of the workspace to existing event types. */
export async function createSubscription(
  deps: SubscriptionDeps,
  workspaceId: string,
  input: SubscriptionInput | undefined,
): Promise<SubscriptionRecord> {
  if (!input) throw invalidArgument([{ field: "subscription", description: "is required" }]);
  const v = new Violations();
  checkId(v, "subscription.endpoint_id", "endpoint", input.endpointId);
  checkRoutedEventTypes(v, "subscription.event_types", input.eventTypes, false);
  checkFilter(v, "subscription.filter", input.filter);
  v.throwIfAny();
  await getEndpoint(deps.endpoints, workspaceScope(workspaceId), input.endpointId, "subscription.endpoint_id");
  await checkEventTypesExist(deps.eventTypes, workspaceId, "subscription.event_types", input.eventTypes);
  const now = new Date();
  const record: SubscriptionRecord = {
    id: newId("subscription"),
    workspaceId,
    endpointId: input.endpointId,
    eventTypes: [...input.eventTypes],
    enabled: input.enabled ?? true,
    filter: input.filter,
    createdAt: now,
    updatedAt: now,
  };
  await deps.store.createSubscription(record);
  return record;
}

/** Returns a subscription of the workspace. */
export async function getSubscription(
  store: Pick<SubscriptionRepository, "getSubscription">,
  workspaceId: string,
  id: string,
): Promise<SubscriptionRecord> {
  const v = new Violations();
  checkId(v, "id", "subscription", id);
  v.throwIfAny();
  const s = await store.getSubscription(workspaceId, id);
  if (!s) throw notFound("subscription", id);
  return s;
}

/** Lists subscriptions, newest first, optionally only one endpoint's. */
export async function listSubscriptions(
  store: Pick<SubscriptionRepository, "listSubscriptions">,
  workspaceId: string,
  req: { pageSize: number; pageToken: string; endpointId: string },
): Promise<{ items: SubscriptionRecord[]; nextPageToken: string }> {
  const v = new Violations();
  if (req.endpointId !== "") checkId(v, "endpoint_id", "endpoint", req.endpointId);
  v.throwIfAny();
  const limit = pageSize(req.pageSize);
  const filters = { endpointId: req.endpointId };
  const afterId = decodePageToken(req.pageToken, "subscriptions", filters);
  const rows = await store.listSubscriptions(workspaceId, req.endpointId || undefined, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "subscriptions", filters);
}

/** Changes the fields named in `maskPaths` (all updatable fields when empty). */
export async function updateSubscription(
  deps: SubscriptionDeps,
  workspaceId: string,
  input: SubscriptionInput | undefined,
  maskPaths: readonly string[],
): Promise<SubscriptionRecord> {
  const v = new Violations();
  if (!input) v.add("subscription", "is required");
  else checkId(v, "subscription.id", "subscription", input.id);
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths.map(snakeCase)) {
    if ((UPDATABLE_SUBSCRIPTION_FIELDS as readonly string[]).includes(path)) fields.add(path as UpdatableField);
    else
      v.add(
        "update_mask",
        `${JSON.stringify(path)} is not an updatable field (${UPDATABLE_SUBSCRIPTION_FIELDS.join(", ")})`,
      );
  }
  if (maskPaths.length === 0) for (const f of UPDATABLE_SUBSCRIPTION_FIELDS) fields.add(f);
  if (input) {
    if (fields.has("event_types")) checkRoutedEventTypes(v, "subscription.event_types", input.eventTypes, false);
    if (fields.has("filter")) checkFilter(v, "subscription.filter", input.filter);
  }
  v.throwIfAny();
  const given = input!;
  if (fields.has("event_types"))
    await checkEventTypesExist(deps.eventTypes, workspaceId, "subscription.event_types", given.eventTypes);
  const patch: SubscriptionPatch = {};
  if (fields.has("event_types")) patch.eventTypes = [...given.eventTypes];
  if (fields.has("enabled")) patch.enabled = given.enabled ?? true;
  if (fields.has("filter")) patch.filter = given.filter;
  const s = await deps.store.updateSubscription(workspaceId, given.id, patch, new Date());
  if (!s) throw notFound("subscription", given.id);
  return s;
}

/** Deletes a subscription of the workspace. */
export async function deleteSubscription(
  store: Pick<SubscriptionRepository, "deleteSubscription">,
  workspaceId: string,
  id: string,
): Promise<void> {
  const v = new Violations();
  checkId(v, "id", "subscription", id);
  v.throwIfAny();
  if (!(await store.deleteSubscription(workspaceId, id))) throw notFound("subscription", id);
}
