/**
 * The raw baseline of the watchers bench, run as its own process: a bare connect-node h2c
 * server whose WatchDeliveries streams hold no state beyond the stream itself, and a plain
 * `POST /broadcast?id=…` that writes one item to every open stream. Prints its port.
 */
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { DeliverySchema, DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { WatchService } from "../gen/hookstream/v1/watch_service_pb.ts";

const listeners = new Set<(id: string) => void>();
const connect = connectNodeAdapter({
  routes: (router) => {
    router.service(WatchService, {
      async *watchDeliveries(_req, ctx) {
        const queue: string[] = [];
        let wake: (() => void) | undefined;
        const push = (id: string): void => {
          queue.push(id);
          wake?.();
        };
        listeners.add(push);
        ctx.signal.addEventListener("abort", () => wake?.(), { once: true });
        try {
          yield { resumeToken: "0", heartbeat: true };
          while (!ctx.signal.aborted) {
            const id = queue.shift();
            if (id === undefined) {
              await new Promise<void>((resolve) => (wake = resolve));
              continue;
            }
            yield { resumeToken: id, delivery: create(DeliverySchema, { id, status: DeliveryStatus.QUEUED }) };
          }
        } finally {
          listeners.delete(push);
        }
      },
      async *watchMessage() {},
    });
  },
});
const server = createServer((req, res) => {
  if (req.url?.startsWith("/broadcast")) {
    const id = new URL(req.url, "http://x").searchParams.get("id") ?? "";
    for (const push of listeners) push(id);
    res.end(String(listeners.size));
    return;
  }
  connect(req, res);
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
