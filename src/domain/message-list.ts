/** ListMessages: the workspace's messages, newest first, filtered, in keyset pages. */
import { Violations } from "./errors.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { DeliveryStatusName, MessageRecord, PageQuery } from "./records.ts";
import { checkEnvironmentFilter } from "./environments.ts";
import { environmentFilterOf, type Scope } from "./scope.ts";
import { checkEventType, checkId } from "./validation.ts";

/** Which messages a list returns; every filter given must hold. */
export interface MessageFilter {
  eventType?: string | undefined;
  /** Accepted at or after. */
  createdAfter?: Date | undefined;
  /** Accepted before. */
  createdBefore?: Date | undefined;
  /** With at least one delivery in one of these statuses. */
  statuses?: readonly DeliveryStatusName[] | undefined;
  /**
   * With at least one delivery to an endpoint (deleted ones too) of this application; in one of
   * `statuses`, when given, that same delivery.
   */
  applicationId?: string | undefined;
  /** Sent in this environment (messages older than environments: the default one). */
  environmentId?: string | undefined;
}

/** The port ListMessages reads through. */
export interface MessageLister {
  /** Messages of the workspace matching `filter`, newest first (by id), after page.afterId. */
  listMessages(workspaceId: string, filter: MessageFilter, page: PageQuery): Promise<MessageRecord[]>;
}

/** ListMessages in domain terms; statuses already translated (undefined entries are invalid). */
export interface ListMessagesInput {
  pageSize: number;
  pageToken: string;
  eventType: string;
  createdAfter: Date | undefined;
  createdBefore: Date | undefined;
  statuses: readonly (DeliveryStatusName | undefined)[];
  /** "" for no application filter. */
  applicationId?: string | undefined;
  /** "" for no environment filter (a producer key sees its own environment's only). */
  environmentId?: string | undefined;
}

/** Lists messages newest first, filtered by event type, creation time range and delivery status. */
export async function listMessages(
  store: MessageLister,
  scope: Scope,
  req: ListMessagesInput,
): Promise<{ items: MessageRecord[]; nextPageToken: string }> {
  const v = new Violations();
  if (req.eventType !== "") checkEventType(v, "event_type", req.eventType);
  req.statuses.forEach((s, i) => {
    if (s === undefined) v.add(`statuses[${i}]`, "is not a delivery status");
  });
  for (const [field, t] of [
    ["create_time_after", req.createdAfter],
    ["create_time_before", req.createdBefore],
  ] as const) {
    if (t !== undefined && !Number.isFinite(t.getTime())) v.add(field, "is not a valid time");
  }
  if (req.createdAfter !== undefined && req.createdBefore !== undefined && req.createdAfter >= req.createdBefore)
    v.add("create_time_before", "must be after create_time_after");
  if (req.pageSize < 0) v.add("page_size", "must not be negative");
  const applicationId = req.applicationId ?? "";
  if (applicationId !== "") checkId(v, "application_id", "application", applicationId);
  const requestedEnv = req.environmentId ?? "";
  checkEnvironmentFilter(v, "environment_id", requestedEnv);
  v.throwIfAny();
  const environmentId = environmentFilterOf(scope, requestedEnv);
  const limit = pageSize(req.pageSize);
  const filter: MessageFilter = {
    eventType: req.eventType || undefined,
    createdAfter: req.createdAfter,
    createdBefore: req.createdBefore,
    statuses: req.statuses.length > 0 ? [...new Set(req.statuses as DeliveryStatusName[])].sort() : undefined,
    // Only when given, so page tokens of lists without it stay valid.
    ...(applicationId === "" ? {} : { applicationId }),
    ...(requestedEnv === "" ? {} : { environmentId: requestedEnv }),
  };
  const afterId = decodePageToken(req.pageToken, "messages", filter);
  // Another environment than the scope's holds nothing this caller may see.
  if (environmentId === null) return { items: [], nextPageToken: "" };
  const rows = await store.listMessages(
    scope.workspaceId,
    { ...filter, ...(environmentId === undefined ? {} : { environmentId }) },
    { afterId, limit: limit + 1 },
  );
  return pageOf(rows, limit, "messages", filter);
}
