import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DeliveryService } from "../../gen/hookstream/v1/delivery_service_pb.ts";
import { getDelivery, listAttempts, listDeliveries } from "../domain/deliveries.ts";
import { payloadEnvelope } from "../domain/retention.ts";
import { attemptView, deliveryView, statusFromProto } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { scopeOf } from "./authorization.ts";

/** DeliveryService: deliveries and attempts (management token). */
export function createDeliveryService(deps: ApiDeps): ServiceImpl<typeof DeliveryService> {
  return {
    async getDelivery(req, ctx) {
      const scope = scopeOf(ctx);
      const delivery = await getDelivery(deps.deliveries, scope, req.id);
      if (!req.includePayload) return { delivery: deliveryView(delivery) };
      const message = await deps.messages.getMessage(scope.workspaceId, delivery.messageId);
      return { delivery: deliveryView(delivery), payload: payloadEnvelope(message) };
    },
    async listDeliveries(req, ctx) {
      const page = await listDeliveries(deps.deliveries, scopeOf(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        endpointId: req.endpointId,
        messageId: req.messageId,
        statuses: req.statuses.map(statusFromProto),
        applicationId: req.applicationId,
        eventType: req.eventType,
        createdAfter: req.createTimeAfter === undefined ? undefined : timestampDate(req.createTimeAfter),
        createdBefore: req.createTimeBefore === undefined ? undefined : timestampDate(req.createTimeBefore),
      });
      return { deliveries: page.items.map(deliveryView), nextPageToken: page.nextPageToken };
    },
    async listAttempts(req, ctx) {
      const page = await listAttempts(deps.deliveries, scopeOf(ctx), req);
      return { attempts: page.items.map(attemptView), nextPageToken: page.nextPageToken };
    },
  };
}
