import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampFromDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { RetryStrategy, type RetryOverride } from "../../gen/hookstream/v1/retry_override_pb.ts";
import type { RetryOverrideInput } from "../domain/retry-policy.ts";
import {
  MessageService,
  type SendRequest,
  type SendResponseSchema,
} from "../../gen/hookstream/v1/message_service_pb.ts";
import type { ErrorDetailSchema } from "../../gen/hookstream/v1/error_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { TriggerRequest } from "../../gen/hookstream/v1/trigger_pb.ts";
import { DomainError, invalidArgument } from "../domain/errors.ts";
import { cancelMessage, rescheduleMessage, type MessageScheduleDeps } from "../domain/message-schedule.ts";
import { listMessages } from "../domain/message-list.ts";
import {
  getMessage,
  send,
  sendBatch,
  type MessageDeps,
  type SendBody,
  type SendInput,
  type SendResult,
} from "../domain/messages.ts";
import type { ScheduleInput } from "../domain/schedule.ts";
import { deliveryView, durationFromMs, messageView, statusFromProto } from "../domain/proto-views.ts";
import { trigger, triggerBatch, type TriggerDeps, type TriggerInput } from "../domain/triggers.ts";
import type { ApiDeps } from "./api-deps.ts";
import { scopeOf } from "./authorization.ts";
import { isUtf8, jsonTextError } from "./json-spans.ts";
import { rawJsonMembers } from "./raw-json-body.ts";

const encoder = new TextEncoder();

/** The request members whose exact Connect JSON text the handlers read (`rawJsonMembers`). */
export const rawJsonMembersOfMessageService: Readonly<Record<string, readonly string[]>> = {
  [`/${MessageService.typeName}/${MessageService.method.send.name}`]: ["payload"],
  [`/${MessageService.typeName}/${MessageService.method.trigger.name}`]: ["payload"],
  [`/${MessageService.typeName}/${MessageService.method.sendBatch.name}`]: ["items[].payload"],
  [`/${MessageService.typeName}/${MessageService.method.triggerBatch.name}`]: ["items[].payload"],
};

/**
 * The exact bytes that will be delivered and signed for the request's body:
 * - `payload` over Connect JSON: the producer's text of the "payload" member, byte for byte;
 * - `payload` otherwise (binary, gRPC, gRPC-Web): the JSON of the Value (lossy for numbers);
 * - `payload_json`: the UTF-8 of the string, after checking it is one JSON value.
 */
function sendBody(
  req: Pick<SendRequest | TriggerRequest, "body" | "contentType">,
  ctx: HandlerContext,
  captured?: Uint8Array | null,
): SendBody {
  switch (req.body.case) {
    case "payload": {
      // Over Connect JSON the message only says a payload is there; the text is captured.
      const raw = captured === undefined ? rawJsonMembers(ctx, "payload") : captured === null ? undefined : [captured];
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

/** A SendRequest in domain terms, with its body already read. */
function sendInput(req: SendRequest, body: SendBody): SendInput {
  return {
    endpointId: req.endpointId,
    eventType: req.eventType,
    body,
    idempotencyKey: req.idempotencyKey,
    schedule: scheduleOf(req),
    headers: req.headers,
    metadata: req.metadata,
    retry: retryOverrideOf(req.retry),
  };
}

/** The SendResponse of a domain result. */
function sendResponse({ deliverAt, quota, ...result }: SendResult): MessageInitShape<typeof SendResponseSchema> {
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
}

/**
 * The bodies of a batch's items (SendBatch, TriggerBatch), or each item's own error when its body
 * cannot be read. Over Connect JSON the captured payload texts belong, in order, to the items
 * that have one.
 */
function batchBodies(
  items: readonly Pick<SendRequest | TriggerRequest, "body" | "contentType">[],
  ctx: HandlerContext,
): (SendBody | DomainError)[] {
  const captured = rawJsonMembers(ctx, "items[].payload");
  const withPayload = items.filter((i) => i.body.case === "payload").length;
  const spans = captured !== undefined && captured.length === withPayload ? [...captured] : undefined;
  return items.map((item) => {
    const span = item.body.case === "payload" && spans !== undefined ? (spans.shift() ?? null) : null;
    try {
      return sendBody(item, ctx, spans === undefined ? null : span);
    } catch (err) {
      if (err instanceof DomainError) return err;
      throw err;
    }
  });
}

/** A TriggerRequest in domain terms, with its body already read. */
function triggerInput(req: TriggerRequest, body: SendBody): TriggerInput {
  return {
    eventType: req.eventType,
    body,
    idempotencyKey: req.idempotencyKey,
    metadata: req.metadata,
    applicationId: req.applicationId,
  };
}

/** The ErrorDetail of a batch item's error (as the error interceptor attaches it to a call's). */
function errorDetail(err: DomainError): MessageInitShape<typeof ErrorDetailSchema> {
  return {
    reason: err.reason,
    fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description })),
    retryDelay: err.retryDelayMs === undefined ? undefined : durationFromMs(err.retryDelayMs),
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
    publishCheckDelayMs: deps.publishCheckDelayMs,
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
    applications: deps.applications,
    environments: deps.environments,
    environmentCache: deps.environmentCache,
    eventTypeCache: deps.eventTypeCache,
    relay: deps.relay,
    publishCheckDelayMs: deps.publishCheckDelayMs,
    maxPayloadBytes: deps.maxPayloadBytes,
    idempotencyTtlMs: deps.idempotencyTtlMs,
    onFilterError: (where, error) => deps.logger?.warn({ ...where, error }, "filter failed to evaluate: no match"),
  };
  return {
    async trigger(req, ctx) {
      const r = await trigger(triggerDeps, scopeOf(ctx), triggerInput(req, sendBody(req, ctx)));
      return { ...r, noEndpointMatched: r.deliveries.length === 0 };
    },
    async triggerBatch(req, ctx) {
      const bodies = batchBodies(req.items, ctx);
      const inputs = req.items.map((item, i) => {
        const body = bodies[i]!;
        return body instanceof DomainError ? { failed: body } : triggerInput(item, body);
      });
      const results = await triggerBatch(triggerDeps, scopeOf(ctx), inputs);
      const out = results.map((r, index) =>
        r.ok
          ? { index, response: { ...r.result, noEndpointMatched: r.result.deliveries.length === 0 } }
          : { index, code: r.error.kind, message: r.error.message, error: errorDetail(r.error) },
      );
      return { results: out, allSucceeded: results.every((r) => r.ok) };
    },
    async send(req, ctx) {
      return sendResponse(await send(messageDeps, scopeOf(ctx), sendInput(req, sendBody(req, ctx))));
    },
    async sendBatch(req, ctx) {
      const scope = scopeOf(ctx);
      const bodies = batchBodies(req.items, ctx);
      const inputs: (SendInput | DomainError)[] = req.items.map((item, i) => {
        const body = bodies[i]!;
        return body instanceof DomainError ? body : sendInput(item, body);
      });
      // An item whose body cannot even be read fails alone, like any other invalid item.
      const results = await sendBatch(
        messageDeps,
        scope,
        inputs.map((i) => (i instanceof DomainError ? { failed: i } : i)),
      );
      const out = results.map((r, index) =>
        r.ok
          ? { index, response: sendResponse(r.result) }
          : { index, code: r.error.kind, message: r.error.message, error: errorDetail(r.error) },
      );
      return { results: out, allSucceeded: results.every((r) => r.ok) };
    },
    async getMessage(req, ctx) {
      const { message, deliveries } = await getMessage(deps.messages, scopeOf(ctx), req.id);
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
    async listMessages(req, ctx) {
      const page = await listMessages(deps.messages, scopeOf(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        eventType: req.eventType,
        createdAfter: req.createTimeAfter === undefined ? undefined : timestampDate(req.createTimeAfter),
        createdBefore: req.createTimeBefore === undefined ? undefined : timestampDate(req.createTimeBefore),
        statuses: req.statuses.map(statusFromProto),
        applicationId: req.applicationId,
        environmentId: req.environmentId,
      });
      return { messages: page.items.map(messageView), nextPageToken: page.nextPageToken };
    },
    async cancelMessage(req, ctx) {
      const { message, deliveries } = await cancelMessage(scheduleDeps, scopeOf(ctx), req.id);
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
    async rescheduleMessage(req, ctx) {
      const { message, deliveries } = await rescheduleMessage(scheduleDeps, scopeOf(ctx), req.id, scheduleOf(req));
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
  };
}
