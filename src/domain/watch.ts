import { create, fromBinary } from "@bufbuild/protobuf";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import type { DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
import { Violations, invalidArgument, notFound } from "./errors.ts";
import type { EndpointLookup } from "./endpoints.ts";
import type { MessageReader } from "./messages.ts";
import { endpointInScope, inScopeEnvironment, type Scope } from "./scope.ts";
import type { StatusFeed, StatusFeedItem } from "./ports.ts";
import { deliveryView, statusFromProto } from "./proto-views.ts";
import { FINAL_STATUSES } from "./records.ts";
import { checkId } from "./validation.ts";

/** WatchDeliveries filters; empty means "any". */
export interface WatchFilter {
  endpointId: string;
  messageId: string;
  statuses: readonly DeliveryStatus[];
}

/** One item of a watch stream: a status change, or a heartbeat when `event` is undefined. */
export interface WatchItem {
  resumeToken: string;
  event: DeliveryStatusEvent | undefined;
}

/** How a watch stream keeps itself visibly alive. */
export interface WatchOptions {
  /** A heartbeat item goes out after this long without any item (and one at the start). */
  heartbeatMs: number;
}

const TOKEN = /^r1\.(\d{1,15})$/;

/** The opaque resume token of a status-stream position. */
export function encodeResumeToken(seq: number): string {
  return Buffer.from(`r1.${seq}`, "utf8").toString("base64url");
}

/** The status-stream position inside a resume token; invalid_argument when it is not one. */
export function decodeResumeToken(token: string): number {
  const m = TOKEN.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m) throw invalidArgument([{ field: "resume_token", description: "is not a resume token returned by this API" }]);
  return Number(m[1]);
}

/**
 * Streams the workspace's delivery status changes that match `filter`, from the resume point
 * on, until `signal` aborts: first a heartbeat as soon as the feed is reading (so the response
 * headers go out at once), then the changes, and a heartbeat whenever the stream was quiet for
 * `heartbeatMs`. Works on any API server: the status stream is the source.
 */
export async function* watchDeliveries(
  feed: StatusFeed,
  scope: Scope,
  filter: WatchFilter,
  resumeToken: string,
  signal: AbortSignal,
  opts: WatchOptions,
  endpoints?: EndpointLookup,
): AsyncGenerator<WatchItem> {
  const workspaceId = scope.workspaceId;
  const v = new Violations();
  if (filter.endpointId !== "") checkId(v, "endpoint_id", "endpoint", filter.endpointId);
  if (filter.messageId !== "") checkId(v, "message_id", "message", filter.messageId);
  filter.statuses.forEach((s, i) => {
    if (statusFromProto(s) === undefined) v.add(`statuses[${i}]`, "is not a delivery status");
  });
  v.throwIfAny();
  const afterSeq = resumeToken === "" ? undefined : decodeResumeToken(resumeToken);
  const statuses = new Set<number>(filter.statuses);
  const read = new Position();
  // A producer key sees its own environment's deliveries only: each endpoint's environment is
  // read once per stream (it never changes); an endpoint it cannot read is outside.
  const visible = new Map<string, boolean>();
  const inScope = async (endpointId: string): Promise<boolean> => {
    if (scope.environmentId === null) return true;
    if (endpoints === undefined) return false;
    let ok = visible.get(endpointId);
    if (ok === undefined) {
      const ep = await endpoints.getEndpoint(workspaceId, endpointId);
      ok = ep !== null && endpointInScope(scope, ep);
      if (visible.size >= 10_000) visible.clear();
      visible.set(endpointId, ok);
    }
    return ok;
  };
  // A filter naming an endpoint outside the scope (or none) is not_found, as GetEndpoint says.
  if (filter.endpointId !== "" && endpoints !== undefined) {
    const ep = await endpoints.getEndpoint(workspaceId, filter.endpointId);
    if (ep === null || !endpointInScope(scope, ep)) throw notFound("endpoint", filter.endpointId);
  }

  async function* matching(): AsyncGenerator<WatchItem> {
    for await (const item of feed.watch(workspaceId, afterSeq, signal)) {
      const first = read.seq === undefined;
      read.seq = item.seq;
      if (item.payload === undefined) {
        if (first) yield read.heartbeat();
        continue;
      }
      const event = decodeEvent(item);
      const d = event?.delivery;
      if (!event || !d || event.workspaceId !== workspaceId) continue;
      if (filter.endpointId !== "" && d.endpointId !== filter.endpointId) continue;
      if (filter.messageId !== "" && d.messageId !== filter.messageId) continue;
      if (statuses.size > 0 && !statuses.has(d.status)) continue;
      if (!(await inScope(d.endpointId))) continue;
      yield { resumeToken: encodeResumeToken(item.seq), event };
    }
  }
  yield* withHeartbeats(matching(), opts.heartbeatMs, read);
}

/**
 * Follows one message of the workspace until every delivery of it is final, then ends: first
 * each delivery as it stands (resume tokens of these items are the stream position the watch
 * started from), then every change of them, with heartbeats like `watchDeliveries`.
 * not_found for a message that does not exist or belongs to another workspace.
 */
export async function* watchMessage(
  feed: StatusFeed,
  reader: MessageReader,
  scope: Scope,
  messageId: string,
  signal: AbortSignal,
  opts: WatchOptions,
): AsyncGenerator<WatchItem> {
  const workspaceId = scope.workspaceId;
  const v = new Violations();
  checkId(v, "id", "message", messageId);
  v.throwIfAny();
  const message = await reader.getMessage(workspaceId, messageId);
  if (message === null || !inScopeEnvironment(scope, message)) throw notFound("message", messageId);
  const read = new Position();
  const statusOf = new Map<string, DeliveryStatus>();
  const allFinal = (): boolean => [...statusOf.values()].every(isFinal);

  async function* items(): AsyncGenerator<WatchItem> {
    const source = feed.watch(workspaceId, undefined, signal)[Symbol.asyncIterator]();
    try {
      // Reading the deliveries only once the feed reads: every change after what they show
      // arrives through the feed, so nothing falls in between.
      const mark = await source.next();
      if (mark.done === true) return;
      read.seq = mark.value.seq;
      for (const d of await reader.listDeliveriesOfMessage(workspaceId, messageId)) {
        const delivery = deliveryView(d);
        statusOf.set(d.id, delivery.status);
        const event = create(DeliveryStatusEventSchema, {
          workspaceId,
          delivery,
          eventTimeMs: BigInt(d.updatedAt.getTime()),
        });
        yield { resumeToken: read.token(), event };
      }
      if (allFinal()) return;
      for (;;) {
        const next = await source.next();
        if (next.done === true) return;
        read.seq = next.value.seq;
        const event = decodeEvent(next.value);
        const d = event?.delivery;
        if (!event || !d || event.workspaceId !== workspaceId || d.messageId !== messageId) continue;
        statusOf.set(d.id, d.status);
        yield { resumeToken: encodeResumeToken(next.value.seq), event };
        if (allFinal()) return;
      }
    } finally {
      await source.return?.();
    }
  }
  yield* withHeartbeats(items(), opts.heartbeatMs, read);
}

function isFinal(status: DeliveryStatus): boolean {
  const name = statusFromProto(status);
  return name !== undefined && FINAL_STATUSES.has(name);
}

/** How far a watch has read the status stream: what a heartbeat's resume token says. */
class Position {
  seq: number | undefined;

  token(): string {
    return encodeResumeToken(this.seq ?? 0);
  }

  heartbeat(): WatchItem {
    return { resumeToken: this.token(), event: undefined };
  }
}

// Events decoded once per feed item: a feed that fans one item out to many watchers hands
// each the same object.
const decoded = new WeakMap<StatusFeedItem, DeliveryStatusEvent | null>();

function decodeEvent(item: StatusFeedItem): DeliveryStatusEvent | null {
  let event = decoded.get(item);
  if (event === undefined) {
    try {
      event = item.payload === undefined ? null : fromBinary(DeliveryStatusEventSchema, item.payload);
    } catch {
      event = null; // not ours to show; the stream position still advances
    }
    decoded.set(item, event);
  }
  return event;
}

/**
 * `source`'s items, plus a heartbeat whenever none came for `intervalMs` (only once the
 * position is known). The source must end when the watch's signal aborts.
 */
async function* withHeartbeats(
  source: AsyncGenerator<WatchItem>,
  intervalMs: number,
  read: Position,
): AsyncGenerator<WatchItem> {
  let pending: Promise<IteratorResult<WatchItem>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    for (;;) {
      pending ??= source.next();
      const beat = new Promise<"beat">((resolve) => (timer = setTimeout(() => resolve("beat"), intervalMs)));
      const next = await Promise.race([pending, beat]);
      clearTimeout(timer);
      if (next === "beat") {
        if (read.seq !== undefined) yield read.heartbeat();
        continue;
      }
      pending = undefined;
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    // A next() still pending settles once the watch's signal ends the source; return() waits
    // behind it, so do not hold the caller.
    if (pending === undefined) await source.return(undefined);
    else void pending.then(() => source.return(undefined)).catch(() => undefined);
  }
}
