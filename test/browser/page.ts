/**
 * Browser entry of test/browser.test.ts, bundled with esbuild at test time and loaded by a page on
 * another origin than the api. It uses Hookstream the way a web app would: the generated services
 * with `@connectrpc/connect-web` (Connect JSON, or gRPC-Web binary), an API key in the
 * Authorization header. It exposes {@link PageApi} as `globalThis.hookstreamPage`; the test calls
 * it with `page.evaluate` and gets plain JSON back. No DOM types: only fetch, timers and streams.
 */
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../../gen/hookstream/v1/error_pb.ts";
import { MessageService } from "../../gen/hookstream/v1/message_service_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";

/** The browser protocols of connect-web. */
export type WebProtocol = "connect" | "grpc-web";

/** Where and as whom the page calls. */
export interface PageTarget {
  /** The api's base URL (another origin than the page's). */
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer …`; none when undefined. */
  readonly apiKey?: string;
  readonly endpointId: string;
}

/** A failed call as the page saw it: the Connect code and our ErrorDetail, decoded in the browser. */
export interface CallFailure {
  readonly code: number;
  readonly codeName: string;
  readonly rawMessage: string;
  /** `ErrorDetail.reason` of every detail, from `err.findDetails(ErrorDetailSchema)`. */
  readonly reasons: string[];
  /** `field` of every field violation of every detail. */
  readonly fields: string[];
}

/** Send with the API key, then GetMessage of what was sent. */
export type SendOutcome =
  | {
      readonly ok: true;
      readonly messageId: string;
      readonly deliveryId: string;
      readonly readBack: { readonly id: string; readonly eventType: string; readonly deliveryIds: string[] };
    }
  | { readonly ok: false; readonly error: CallFailure };

/** One WatchDeliveries item, flattened. */
export interface WatchedItem {
  readonly deliveryId: string;
  readonly messageId: string;
  readonly endpointId: string;
  readonly status: string;
  readonly resumeToken: string;
}

/** What a WatchDeliveries stream showed until deliveries the page sent reached SUCCEEDED. */
export interface WatchOutcome {
  /** Deliveries the page sent while watching (one, unless the stream attached after the first). */
  readonly sent: string[];
  /** The sent delivery seen SUCCEEDED on the stream, or "" when none was. */
  readonly succeeded: string;
  /** A delivery sent once the stream had shown one: all its statuses are on the stream. */
  readonly followUp: string;
  readonly items: WatchedItem[];
  /** Heartbeat items seen (the stream starts with one). */
  readonly heartbeats: number;
  /** The stream's own error, if it ended with one before the page cancelled it. */
  readonly streamError?: CallFailure;
}

/** What the page offers the test. */
export interface PageApi {
  sendAndRead(target: PageTarget, protocol: WebProtocol, eventType: string): Promise<SendOutcome>;
  getMessageFailure(target: PageTarget, protocol: WebProtocol, id: string): Promise<CallFailure | undefined>;
  watchUntilSucceeded(target: PageTarget, protocol: WebProtocol, probeWindowMs: number): Promise<WatchOutcome>;
}

/** The shape of the page's global, for `page.evaluate` callbacks. */
export interface PageGlobal {
  hookstreamPage: PageApi;
}

function transportFor(target: PageTarget, protocol: WebProtocol): Transport {
  const interceptors: Interceptor[] = [];
  const { apiKey } = target;
  if (apiKey !== undefined) {
    interceptors.push((next) => async (req) => {
      req.header.set("Authorization", `Bearer ${apiKey}`);
      return next(req);
    });
  }
  return protocol === "connect"
    ? createConnectTransport({ baseUrl: target.baseUrl, useBinaryFormat: false, interceptors })
    : createGrpcWebTransport({ baseUrl: target.baseUrl, useBinaryFormat: true, interceptors });
}

function failure(error: unknown): CallFailure {
  const ce = ConnectError.from(error);
  const details = ce.findDetails(ErrorDetailSchema);
  return {
    code: ce.code,
    codeName: Code[ce.code],
    rawMessage: ce.rawMessage,
    reasons: details.map((d) => d.reason),
    fields: details.flatMap((d) => d.fieldViolations.map((v) => v.field)),
  };
}

const statusName = (s: DeliveryStatus): string =>
  Object.entries(DeliveryStatus).find(([, v]) => v === s)?.[0] ?? String(s);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until true (returns true) or until `ms` pass (returns false). */
async function within(ms: number, check: () => boolean): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 25) {
    if (check()) return true;
    await sleep(25);
  }
  return check();
}

function payload(json: JsonValue): { case: "payload"; value: Value } {
  return { case: "payload", value: fromJson(ValueSchema, json) };
}

async function sendOne(
  messages: Client<typeof MessageService>,
  target: PageTarget,
  protocol: WebProtocol,
  eventType: string,
): Promise<{ messageId: string; deliveryId: string }> {
  return messages.send({
    endpointId: target.endpointId,
    eventType,
    body: payload({ from: "browser", protocol, eventType }),
  });
}

const api: PageApi = {
  async sendAndRead(target, protocol, eventType) {
    const messages = createClient(MessageService, transportFor(target, protocol));
    try {
      const sent = await sendOne(messages, target, protocol, eventType);
      const read = await messages.getMessage({ id: sent.messageId });
      return {
        ok: true,
        messageId: sent.messageId,
        deliveryId: sent.deliveryId,
        readBack: {
          id: read.message?.id ?? "",
          eventType: read.message?.eventType ?? "",
          deliveryIds: read.deliveries.map((d) => d.id),
        },
      };
    } catch (error) {
      return { ok: false, error: failure(error) };
    }
  },

  async getMessageFailure(target, protocol, id) {
    const messages = createClient(MessageService, transportFor(target, protocol));
    try {
      await messages.getMessage({ id });
      return undefined;
    } catch (error) {
      return failure(error);
    }
  },

  // The stream starts at "now" on the server, at some moment after the call is made: a delivery
  // sent right away may have finished before it attached. So send one, and if it is not seen
  // SUCCEEDED within the probe window, send another; once the stream has attached, the next one
  // is seen. The window only decides how many messages are sent, never the outcome.
  async watchUntilSucceeded(target, protocol, probeWindowMs) {
    const transport = transportFor(target, protocol);
    const messages = createClient(MessageService, transport);
    const watch = createClient(WatchService, transport);
    const controller = new AbortController();
    const items: WatchedItem[] = [];
    let streamError: CallFailure | undefined;
    let ended = false;
    let heartbeats = 0;
    const reading = (async () => {
      try {
        const stream = watch.watchDeliveries({ endpointId: target.endpointId }, { signal: controller.signal });
        for await (const item of stream) {
          if (item.heartbeat) {
            heartbeats++;
            continue;
          }
          items.push({
            deliveryId: item.delivery?.id ?? "",
            messageId: item.delivery?.messageId ?? "",
            endpointId: item.delivery?.endpointId ?? "",
            status: statusName(item.delivery?.status ?? DeliveryStatus.UNSPECIFIED),
            resumeToken: item.resumeToken,
          });
        }
      } catch (error) {
        if (!controller.signal.aborted) streamError = failure(error);
      } finally {
        ended = true;
      }
    })();

    const sent: string[] = [];
    const succeeded = (): string =>
      items.find((i) => i.status === "SUCCEEDED" && sent.includes(i.deliveryId))?.deliveryId ?? "";
    for (let probe = 0; probe < 15 && succeeded() === "" && !ended; probe++) {
      const res = await sendOne(messages, target, protocol, "browser.watch");
      sent.push(res.deliveryId);
      await within(probeWindowMs, () => succeeded() !== "" || ended);
    }
    // Attached now: a delivery sent from here on is seen from its first status to its last.
    let followUp = "";
    if (succeeded() !== "" && !ended) {
      followUp = (await sendOne(messages, target, protocol, "browser.watch")).deliveryId;
      await within(30_000, () => ended || items.some((i) => i.deliveryId === followUp && i.status === "SUCCEEDED"));
    }
    controller.abort();
    await reading;
    return {
      sent,
      succeeded: succeeded(),
      followUp,
      items,
      heartbeats,
      ...(streamError === undefined ? {} : { streamError }),
    };
  },
};

(globalThis as unknown as PageGlobal).hookstreamPage = api;
