import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampFromDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { RetryStrategy, type RetryOverride } from "../../gen/hookstream/v1/retry_override_pb.ts";
import type { RetryOverrideInput } from "../domain/retry-policy.ts";
import { MessageService, type SendRequest } from "../../gen/hookstream/v1/message_service_pb.ts";
import type { TriggerRequest } from "../../gen/hookstream/v1/trigger_pb.ts";
import { invalidArgument } from "../domain/errors.ts";
import { cancelMessage, rescheduleMessage, type MessageScheduleDeps } from "../domain/message-schedule.ts";
import { listMessages } from "../domain/message-list.ts";
import { getMessage, send, type MessageDeps, type SendBody } from "../domain/messages.ts";
import type { ScheduleInput } from "../domain/schedule.ts";
import { deliveryView, messageView, statusFromProto } from "../domain/proto-views.ts";
import { trigger, type TriggerDeps } from "../domain/triggers.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";
import { isUtf8, jsonTextError } from "./json-spans.ts";
import { rawJsonMembers } from "./raw-json-body.ts";

const encoder = new TextEncoder();

/** The request members whose exact Connect JSON text the handlers read (`rawJsonMembers`). */
export const rawJsonMembersOfMessageService: Readonly<Record<string, readonly string[]>> = {
  [`/${MessageService.typeName}/${MessageService.method.send.name}`]: ["payload"],
  [`/${MessageService.typeName}/${MessageService.method.trigger.name}`]: ["payload"],
};

/**
 * The exact bytes that will be delivered and signed for the request's body:
 * - `payload` over Connect JSON: the producer's text of the "payload" member, byte for byte;
 * - `payload` otherwise (binary, gRPC, gRPC-Web): the JSON of the Value (lossy for numbers);
 * - `payload_json`: the UTF-8 of the string, after checking it is one JSON value.
 */
function sendBody(req: Pick<SendRequest | TriggerRequest, "body" | "contentType">, ctx: HandlerContext): SendBody {
  switch (req.body.case) {
    case "payload": {
      // Over Connect JSON the message only says a payload is there; the text is captured.
      const raw = rawJsonMembers(ctx, "payload");
      if (raw?.length === 1) {
        if (!isUtf8(raw[0]!)) throw invalidArgument([{ field: "payload", description: "is not valid UTF-8" }]);
        return { kind: "json", bytes: raw[0]! };
      }
      let json: string;
      try {
        json = JSON.stringify(toJson(ValueSchema, req.body.value));
      } catch (err) {
        throw invalidArgument([{ field: "payload", description: `is not valid JSON: ${(err as Error).message}` }]);
      }
      return { kind: "json", bytes: encoder.encode(json) };
    }
    case "payloadJson": {
      const bytes = encoder.encode(req.body.value);
      const error = jsonTextError(bytes);
      if (error !== undefined) {
        throw invalidArgument([{ field: "payload_json", description: `is not one JSON value: ${error.message}` }]);
      }
      return { kind: "json", bytes, field: "payload_json" };
    }
    case "rawPayload":
      return { kind: "raw", bytes: req.body.value, contentType: req.contentType || "application/octet-stream" };
    default:
      return undefined;
  }
}

/** The schedule fields of a Send or RescheduleMessage request, as given (presence kept). */
export function scheduleOf(req: {
  deliverIn?: string | undefined;
  deliverAt?: Timestamp | undefined;
  deliverAtLocal?: string | undefined;
  timeZone?: string | undefined;
}): ScheduleInput {
  return {
    deliverIn: req.deliverIn,
    deliverAt: req.deliverAt === undefined ? undefined : timestampDate(req.deliverAt),
    deliverAtLocal: req.deliverAtLocal,
    timeZone: req.timeZone,
  };
}

function durationMs(d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** A request's retry override in domain terms (checked by the domain). */
export function retryOverrideOf(r: RetryOverride | undefined): RetryOverrideInput | undefined {
  if (r === undefined) return undefined;
  return {
    minRetries: r.minRetries,
    firstDelayMs: durationMs(r.firstDelay),
    strategy:
      r.strategy === RetryStrategy.FIXED
        ? "fixed"
        : r.strategy === RetryStrategy.EXPONENTIAL
          ? "exponential"
          : undefined,
    factor: r.factor,
    maxDelayMs: durationMs(r.maxDelay),
    jitter: r.jitter,
  };
}

/** MessageService: the producer surface (API key). */
export function createMessageService(deps: ApiDeps): ServiceImpl<typeof MessageService> {
  const messageDeps: MessageDeps = {
    messages: deps.messages,
    endpoints: deps.endpoints,
    relay: deps.relay,
    maxPayloadBytes: deps.maxPayloadBytes,
    idempotencyTtlMs: deps.idempotencyTtlMs,
    quota: deps.quota,
    endpointCache: deps.endpointCache,
    eventTypes: deps.eventTypes,
    eventTypeCache: deps.eventTypeCache,
  };
  const scheduleDeps: MessageScheduleDeps = { store: deps.messages, relay: deps.relay };
  const triggerDeps: TriggerDeps = {
    messages: deps.messages,
    targets: deps.triggerTargets,
    eventTypes: deps.eventTypes,
    eventTypeCache: deps.eventTypeCache,
    relay: deps.relay,
    maxPayloadBytes: deps.maxPayloadBytes,
    onFilterError: (where, error) => deps.logger?.warn({ ...where, error }, "filter failed to evaluate: no match"),
  };
  return {
    async trigger(req, ctx) {
      const r = await trigger(triggerDeps, workspaceIdOf(ctx), {
        eventType: req.eventType,
        body: sendBody(req, ctx),
        idempotencyKey: req.idempotencyKey,
        metadata: req.metadata,
      });
      return { ...r, noEndpointMatched: r.deliveries.length === 0 };
    },
    async send(req, ctx) {
      const workspaceId = workspaceIdOf(ctx);
      const { deliverAt, quota, ...result } = await send(messageDeps, workspaceId, {
        endpointId: req.endpointId,
        eventType: req.eventType,
        body: sendBody(req, ctx),
        idempotencyKey: req.idempotencyKey,
        schedule: scheduleOf(req),
        headers: req.headers,
        metadata: req.metadata,
        retry: retryOverrideOf(req.retry),
      });
      return {
        ...result,
        deliverTime: deliverAt === null ? undefined : timestampFromDate(deliverAt),
        quota:
          quota === undefined
            ? undefined
            : {
                limit: BigInt(quota.limit),
                used: BigInt(quota.used),
                remaining: BigInt(quota.remaining),
                resetTime: timestampFromDate(quota.resetAt),
              },
      };
    },
    async getMessage(req, ctx) {
      const { message, deliveries } = await getMessage(deps.messages, workspaceIdOf(ctx), req.id);
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
    async listMessages(req, ctx) {
      const page = await listMessages(deps.messages, workspaceIdOf(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        eventType: req.eventType,
        createdAfter: req.createTimeAfter === undefined ? undefined : timestampDate(req.createTimeAfter),
        createdBefore: req.createTimeBefore === undefined ? undefined : timestampDate(req.createTimeBefore),
        statuses: req.statuses.map(statusFromProto),
      });
      return { messages: page.items.map(messageView), nextPageToken: page.nextPageToken };
    },
    async cancelMessage(req, ctx) {
      const { message, deliveries } = await cancelMessage(scheduleDeps, workspaceIdOf(ctx), req.id);
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
    async rescheduleMessage(req, ctx) {
      const { message, deliveries } = await rescheduleMessage(
        scheduleDeps,
        workspaceIdOf(ctx),
        req.id,
        scheduleOf(req),
      );
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
  };
}
