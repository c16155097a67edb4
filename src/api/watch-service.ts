import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { watchDeliveries } from "../domain/watch.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

/** WatchService: live delivery status (management token or API key). */
export function createWatchService(deps: ApiDeps): ServiceImpl<typeof WatchService> {
  return {
    async *watchDeliveries(req, ctx) {
      const workspaceId = workspaceIdOf(ctx);
      // Ends when the client goes away or the server shuts down.
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal]);
      const items = watchDeliveries(
        deps.feed,
        workspaceId,
        { endpointId: req.endpointId, messageId: req.messageId, statuses: req.statuses },
        req.resumeToken,
        signal,
      );
      for await (const { resumeToken, event } of items) {
        yield {
          resumeToken,
          delivery: event.delivery,
          attempt: event.attempt,
          eventTime: timestampFromMs(Number(event.eventTimeMs)),
        };
      }
    },
  };
}
