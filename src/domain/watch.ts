import { fromBinary } from "@bufbuild/protobuf";
import { DeliveryStatusEventSchema, type DeliveryStatusEvent } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import type { DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
import { Violations, invalidArgument } from "./errors.ts";
import type { StatusFeed } from "./ports.ts";
import { statusFromProto } from "./proto-views.ts";
import { checkId } from "./validation.ts";

/** WatchDeliveries filters; empty means "any". */
export interface WatchFilter {
  endpointId: string;
  messageId: string;
  statuses: readonly DeliveryStatus[];
}

/** One item of the watch stream. */
export interface WatchItem {
  resumeToken: string;
  event: DeliveryStatusEvent;
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
 * on, until `signal` aborts. Works on any API server: the status stream is the source.
 */
export async function* watchDeliveries(
  feed: StatusFeed,
  workspaceId: string,
  filter: WatchFilter,
  resumeToken: string,
  signal: AbortSignal,
): AsyncGenerator<WatchItem> {
  const v = new Violations();
  if (filter.endpointId !== "") checkId(v, "endpoint_id", "endpoint", filter.endpointId);
  if (filter.messageId !== "") checkId(v, "message_id", "message", filter.messageId);
  filter.statuses.forEach((s, i) => {
    if (statusFromProto(s) === undefined) v.add(`statuses[${i}]`, "is not a delivery status");
  });
  v.throwIfAny();
  const afterSeq = resumeToken === "" ? undefined : decodeResumeToken(resumeToken);
  const statuses = new Set<number>(filter.statuses);
  for await (const item of feed.watch(workspaceId, afterSeq, signal)) {
    let event: DeliveryStatusEvent;
    try {
      event = fromBinary(DeliveryStatusEventSchema, item.payload);
    } catch {
      continue; // not ours to show; the stream position still advances
    }
    const d = event.delivery;
    if (!d || event.workspaceId !== workspaceId) continue;
    if (filter.endpointId !== "" && d.endpointId !== filter.endpointId) continue;
    if (filter.messageId !== "" && d.messageId !== filter.messageId) continue;
    if (statuses.size > 0 && !statuses.has(d.status)) continue;
    yield { resumeToken: encodeResumeToken(item.seq), event };
  }
}
