import { Violations, notFound } from "./errors.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { AttemptRecord, DeliveryRecord, DeliveryStatusName, PageQuery } from "./records.ts";
import { applicationFilterOf, type Scope } from "./scope.ts";
import { checkEventType, checkId } from "./validation.ts";

/** Filters of ListDeliveries. */
export interface DeliveryFilter {
  endpointId?: string | undefined;
  messageId?: string | undefined;
  statuses?: readonly DeliveryStatusName[] | undefined;
  /** Only deliveries to this application's endpoints (deleted ones included). */
  applicationId?: string | undefined;
  eventType?: string | undefined;
  /** Created at or after. */
  createdAfter?: Date | undefined;
  /** Created before. */
  createdBefore?: Date | undefined;
}

/** Reads deliveries and attempts back: the delivery service's port. */
export interface DeliveryReader {
  /**
   * Null when missing or in another workspace, or, when `applicationId` is given, when its
   * endpoint is not that application's.
   */
  getDelivery(workspaceId: string, id: string, applicationId?: string): Promise<DeliveryRecord | null>;
  /** Newest first. */
  listDeliveries(workspaceId: string, filter: DeliveryFilter, page: PageQuery): Promise<DeliveryRecord[]>;
  /** Oldest first; afterId is an attempt id. */
  listAttempts(workspaceId: string, deliveryId: string, page: PageQuery): Promise<AttemptRecord[]>;
}

/** Returns a delivery within the scope (not_found for one outside it). */
export async function getDelivery(
  store: DeliveryReader,
  scope: Scope,
  id: string,
  field = "id",
): Promise<DeliveryRecord> {
  const v = new Violations();
  checkId(v, field, "delivery", id);
  v.throwIfAny();
  const d = await store.getDelivery(scope.workspaceId, id, scope.applicationId ?? undefined);
  if (!d) throw notFound("delivery", id);
  return d;
}

/** ListDeliveries in domain terms; statuses already translated (undefined entries are invalid). */
export interface ListDeliveriesInput {
  pageSize: number;
  pageToken: string;
  endpointId: string;
  messageId: string;
  statuses: readonly (DeliveryStatusName | undefined)[];
  /** "" for no application filter. */
  applicationId?: string | undefined;
  /** "" for no event type filter. */
  eventType?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
}

/** Lists deliveries newest first, filtered by endpoint, message, status, event type and creation time. */
export async function listDeliveries(
  store: DeliveryReader,
  scope: Scope,
  req: ListDeliveriesInput,
): Promise<{ items: DeliveryRecord[]; nextPageToken: string }> {
  const v = new Violations();
  const requestedApp = req.applicationId ?? "";
  if (requestedApp !== "") checkId(v, "application_id", "application", requestedApp);
  if (req.endpointId !== "") checkId(v, "endpoint_id", "endpoint", req.endpointId);
  if (req.messageId !== "") checkId(v, "message_id", "message", req.messageId);
  req.statuses.forEach((s, i) => {
    if (s === undefined) v.add(`statuses[${i}]`, "is not a delivery status");
  });
  const eventType = req.eventType ?? "";
  if (eventType !== "") checkEventType(v, "event_type", eventType);
  for (const [field, t] of [
    ["create_time_after", req.createdAfter],
    ["create_time_before", req.createdBefore],
  ] as const) {
    if (t !== undefined && !Number.isFinite(t.getTime())) v.add(field, "is not a valid time");
  }
  if (req.createdAfter !== undefined && req.createdBefore !== undefined && req.createdAfter >= req.createdBefore)
    v.add("create_time_before", "must be after create_time_after");
  const limit = (() => {
    try {
      return pageSize(req.pageSize);
    } catch {
      v.add("page_size", "must not be negative");
      return 0;
    }
  })();
  v.throwIfAny();
  const filter: DeliveryFilter = {
    endpointId: req.endpointId || undefined,
    messageId: req.messageId || undefined,
    statuses: req.statuses.length > 0 ? [...new Set(req.statuses as DeliveryStatusName[])].sort() : undefined,
    ...(requestedApp === "" ? {} : { applicationId: requestedApp }),
    // Only when given, so page tokens of lists without them stay valid.
    ...(eventType === "" ? {} : { eventType }),
    ...(req.createdAfter === undefined ? {} : { createdAfter: req.createdAfter }),
    ...(req.createdBefore === undefined ? {} : { createdBefore: req.createdBefore }),
  };
  const afterId = decodePageToken(req.pageToken, "deliveries", filter);
  // The scope narrows the request's filter; the page token stays bound to the request's.
  const applicationId = applicationFilterOf(scope, requestedApp);
  if (applicationId === null) return { items: [], nextPageToken: "" };
  const rows = await store.listDeliveries(
    scope.workspaceId,
    { ...filter, applicationId },
    { afterId, limit: limit + 1 },
  );
  return pageOf(rows, limit, "deliveries", filter);
}

/** Lists the attempts of a delivery, oldest first. */
export async function listAttempts(
  store: DeliveryReader,
  scope: Scope,
  req: { deliveryId: string; pageSize: number; pageToken: string },
): Promise<{ items: AttemptRecord[]; nextPageToken: string }> {
  const workspaceId = scope.workspaceId;
  const delivery = await getDelivery(store, scope, req.deliveryId, "delivery_id");
  const limit = pageSize(req.pageSize);
  const afterId = decodePageToken(req.pageToken, "attempts", delivery.id);
  const rows = await store.listAttempts(workspaceId, delivery.id, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "attempts", delivery.id);
}
