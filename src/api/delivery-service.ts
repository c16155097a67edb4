import type { ServiceImpl } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, type Duration } from "@bufbuild/protobuf/wkt";
import { getDeliveryStats } from "../domain/delivery-stats.ts";
import type { DeliveryService } from "../../gen/hookstream/v1/delivery_service_pb.ts";
import { getDelivery, listAttempts, listDeliveries } from "../domain/deliveries.ts";
import { payloadEnvelope } from "../domain/retention.ts";
import { attemptView, deliveryView, statusFromProto, statusToProto } from "../domain/proto-views.ts";
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
    async getDeliveryStats(req, ctx) {
      const ms = (d: Duration | undefined): number | undefined =>
        d === undefined ? undefined : Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
      const s = await getDeliveryStats(deps.deliveryStats, scopeOf(ctx), {
        windowMs: ms(req.window),
        endTime: req.endTime === undefined ? undefined : timestampDate(req.endTime),
        bucketMs: ms(req.bucket),
        endpointId: req.endpointId,
        applicationId: req.applicationId,
        eventType: req.eventType,
      });
      return {
        startTime: timestampFromDate(s.start),
        endTime: timestampFromDate(s.end),
        deliveries: BigInt(s.deliveries),
        counts: s.counts.map((c) => ({ status: statusToProto(c.status), count: BigInt(c.count) })),
        successRate: s.successRate,
        attempts: BigInt(s.attempts),
        successfulAttempts: BigInt(s.successfulAttempts),
        latency: {
          count: BigInt(s.latency.count),
          averageMs: s.latency.averageMs,
          p50Ms: BigInt(s.latency.p50Ms),
          p95Ms: BigInt(s.latency.p95Ms),
          p99Ms: BigInt(s.latency.p99Ms),
        },
        series: s.series.map((p) => ({
          startTime: timestampFromDate(p.start),
          deliveries: BigInt(p.deliveries),
          succeeded: BigInt(p.succeeded),
          failed: BigInt(p.failed),
          attempts: BigInt(p.attempts),
          successfulAttempts: BigInt(p.successfulAttempts),
          averageLatencyMs: p.averageLatencyMs,
        })),
      };
    },
  };
}
