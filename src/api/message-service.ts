import type { ServiceImpl } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { MessageService, SendRequest } from "../../gen/hookstream/v1/message_service_pb.ts";
import { invalidArgument } from "../domain/errors.ts";
import { getMessage, send, type MessageDeps, type SendBody } from "../domain/messages.ts";
import { deliveryView, messageView } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

const encoder = new TextEncoder();

/** The exact bytes that will be delivered and signed for the request's body. */
function sendBody(req: SendRequest): SendBody {
  switch (req.body.case) {
    case "payload": {
      let json: string;
      try {
        json = JSON.stringify(toJson(ValueSchema, req.body.value));
      } catch (err) {
        throw invalidArgument([{ field: "payload", description: `is not valid JSON: ${(err as Error).message}` }]);
      }
      return { kind: "json", bytes: encoder.encode(json) };
    }
    case "rawPayload":
      return { kind: "raw", bytes: req.body.value, contentType: req.contentType || "application/octet-stream" };
    default:
      return undefined;
  }
}

/** MessageService: the producer surface (API key). */
export function createMessageService(deps: ApiDeps): ServiceImpl<typeof MessageService> {
  const messageDeps: MessageDeps = {
    messages: deps.messages,
    endpoints: deps.endpoints,
    relay: deps.relay,
    maxPayloadBytes: deps.maxPayloadBytes,
    endpointCache: deps.endpointCache,
  };
  return {
    async send(req, ctx) {
      const workspaceId = workspaceIdOf(ctx);
      return send(messageDeps, workspaceId, {
        endpointId: req.endpointId,
        eventType: req.eventType,
        body: sendBody(req),
        idempotencyKey: req.idempotencyKey,
      });
    },
    async getMessage(req, ctx) {
      const { message, deliveries } = await getMessage(deps.messages, workspaceIdOf(ctx), req.id);
      return { message: messageView(message), deliveries: deliveries.map(deliveryView) };
    },
  };
}
