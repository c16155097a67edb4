import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { watchDeliveries, watchMessage, type WatchItem } from "../domain/watch.ts";
import type { ApiDeps } from "./api-deps.ts";
import { scopeOf } from "./authorization.ts";

/** Default heartbeat interval of watch streams (HOOKSTREAM_WATCH_HEARTBEAT). */
export const DEFAULT_WATCH_HEARTBEAT_MS = 15_000;

/** WatchService: live delivery status (management token or API key). */
export function createWatchService(deps: ApiDeps): ServiceImpl<typeof WatchService> {
  const opts = { heartbeatMs: deps.watchHeartbeatMs ?? DEFAULT_WATCH_HEARTBEAT_MS };
  return {
    async *watchDeliveries(req, ctx) {
      const scope = scopeOf(ctx);
      // Ends when the client goes away or the server shuts down.
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal]);
      const filter = { endpointId: req.endpointId, messageId: req.messageId, statuses: req.statuses };
      const items = watchDeliveries(deps.feed, scope, filter, req.resumeToken, signal, opts, deps.endpoints);
      for await (const item of items) {
        yield responseOf(item);
      }
    },
    async *watchMessage(req, ctx) {
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal]);
      for await (const item of watchMessage(deps.feed, deps.messages, scopeOf(ctx), req.id, signal, opts)) {
        yield responseOf(item);
      }
    },
  };
}

function responseOf({ resumeToken, event }: WatchItem) {
  if (event === undefined) return { resumeToken, heartbeat: true };
  return {
    resumeToken,
    delivery: event.delivery,
    attempt: event.attempt,
    eventTime: timestampFromMs(Number(event.eventTimeMs)),
  };
}
