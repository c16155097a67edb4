import { workspaceScope } from "./scope.ts";
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { DeliveryStatusEventSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
import { DomainError } from "./errors.ts";
import type { StatusFeed, StatusFeedItem } from "./ports.ts";
import { newId } from "./ids.ts";
import type { MessageReader } from "./messages.ts";
import type { DeliveryRecord, MessageRecord } from "./records.ts";
import { decodeResumeToken, encodeResumeToken, watchDeliveries, watchMessage, type WatchItem } from "./watch.ts";

const quiet = { heartbeatMs: 3_600_000 };
const EP1 = newId("endpoint");
const EP2 = newId("endpoint");
const MSG1 = newId("message");
const MSG2 = newId("message");

test("resume tokens round-trip and reject anything else", () => {
  assert.equal(decodeResumeToken(encodeResumeToken(42)), 42);
  assert.throws(
    () => decodeResumeToken("nope"),
    (e: unknown) => e instanceof DomainError && e.violations[0]?.field === "resume_token",
  );
});

test("watch filters by endpoint, message and status and tokens point at stream positions", async () => {
  const ev = (seq: number, endpointId: string, status: DeliveryStatus): StatusFeedItem => ({
    seq,
    payload: toBinary(
      DeliveryStatusEventSchema,
      create(DeliveryStatusEventSchema, {
        workspaceId: "ws_a",
        delivery: { id: `dlv_${seq}`, endpointId, messageId: "msg_1", status },
      }),
    ),
  });
  const seen: (number | undefined)[] = [];
  const feed: StatusFeed = {
    async *watch(_ws, afterSeq) {
      seen.push(afterSeq);
      yield { seq: 0, payload: undefined };
      yield ev(1, "ep_01", DeliveryStatus.QUEUED);
      yield ev(2, "ep_02", DeliveryStatus.QUEUED);
      yield ev(3, "ep_01", DeliveryStatus.SUCCEEDED);
    },
  };
  const out = [];
  const filter = { endpointId: "", messageId: "", statuses: [DeliveryStatus.SUCCEEDED] };
  const signal = new AbortController().signal;
  for await (const item of watchDeliveries(feed, workspaceScope("ws_a"), filter, encodeResumeToken(0), signal, quiet))
    out.push(item);
  assert.deepEqual(seen, [0]);
  assert.deepEqual(
    out.map((i) => i.event?.delivery?.id ?? "heartbeat"),
    ["heartbeat", "dlv_3"],
    "a heartbeat as soon as the feed reads, then the matching change",
  );
  assert.equal(decodeResumeToken(out[0]!.resumeToken), 0);
  assert.equal(decodeResumeToken(out[1]!.resumeToken), 3);
});

test("durations from fractional milliseconds encode as valid protobuf", async () => {
  const { durationFromMs } = await import("./proto-views.ts");
  const { DurationSchema } = await import("@bufbuild/protobuf/wkt");
  for (const ms of [0, 0.4, 17.356637999999292, 999.9999, 1000, 86_400_000.5]) {
    const d = durationFromMs(ms);
    assert.ok(Number.isInteger(d.nanos) && d.nanos >= 0 && d.nanos < 1e9, String(ms));
    assert.ok(Math.abs(Number(d.seconds) * 1000 + d.nanos / 1e6 - ms) < 1e-3);
    toBinary(DurationSchema, d);
  }
});

/** A feed the test pushes items into; it ends when the watch's signal aborts. */
function pushFeed(): { feed: StatusFeed; push: (item: StatusFeedItem) => void; watching: Promise<void> } {
  const queue: StatusFeedItem[] = [];
  let wake: (() => void) | undefined;
  let started!: () => void;
  const watching = new Promise<void>((resolve) => (started = resolve));
  const feed: StatusFeed = {
    async *watch(_ws, _after, signal) {
      const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      started();
      yield { seq: 10, payload: undefined };
      while (!signal.aborted) {
        const item = queue.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
      }
    },
  };
  return {
    feed,
    watching,
    push: (item) => {
      queue.push(item);
      wake?.();
    },
  };
}

function statusEvent(seq: number, messageId: string, deliveryId: string, status: DeliveryStatus): StatusFeedItem {
  return {
    seq,
    payload: toBinary(
      DeliveryStatusEventSchema,
      create(DeliveryStatusEventSchema, {
        workspaceId: "ws_a",
        delivery: { id: deliveryId, endpointId: EP1, messageId, status },
        eventTimeMs: 1n,
      }),
    ),
  };
}

test("a quiet watch sends heartbeats with the latest position, also past filtered-out events", async () => {
  const { feed, push, watching } = pushFeed();
  const ac = new AbortController();
  const filter = { endpointId: EP2, messageId: "", statuses: [] };
  const it = watchDeliveries(feed, workspaceScope("ws_a"), filter, "", ac.signal, { heartbeatMs: 20 })[
    Symbol.asyncIterator
  ]();
  const first = await it.next();
  if (first.done === true) assert.fail("the watch ended");
  assert.equal(first.value.event, undefined, "starts with a heartbeat");
  assert.equal(decodeResumeToken(first.value.resumeToken), 10);
  await watching;
  push(statusEvent(11, MSG1, "dlv_1", DeliveryStatus.QUEUED)); // another endpoint: filtered out
  let beat: WatchItem | undefined;
  while (beat === undefined || decodeResumeToken(beat.resumeToken) !== 11) {
    const next = await it.next();
    if (next.done === true) assert.fail("the watch ended");
    beat = next.value;
    assert.equal(beat.event, undefined, "nothing but heartbeats for this filter");
  }
  ac.abort();
  assert.equal((await it.next()).done, true, "ends when its signal aborts");
});

test("WatchMessage: the deliveries as they stand, their changes, and the end once all are final", async () => {
  const { feed, push, watching } = pushFeed();
  const at = new Date(1_700_000_000_000);
  const delivery = (id: string, status: DeliveryRecord["status"]): DeliveryRecord => ({
    id,
    workspaceId: "ws_a",
    messageId: MSG1,
    endpointId: EP1,
    eventType: "order.paid",
    status,
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: at,
    updatedAt: at,
  });
  const reads: string[] = [];
  const reader: MessageReader = {
    async getMessage(ws, id) {
      reads.push(`message ${ws} ${id}`);
      return ws === "ws_a" && id === MSG1 ? ({ id, workspaceId: ws } as MessageRecord) : null;
    },
    async listDeliveriesOfMessage(ws, id) {
      reads.push(`deliveries ${ws} ${id}`);
      return [delivery("dlv_1", "succeeded"), delivery("dlv_2", "queued")];
    },
  };
  const signal = new AbortController().signal;
  await assert.rejects(
    (async () => {
      for await (const _ of watchMessage(feed, reader, workspaceScope("ws_b"), MSG1, signal, quiet))
        assert.fail("no item");
    })(),
    (e: unknown) => e instanceof DomainError && e.kind === "not_found",
    "another workspace's message is not_found",
  );
  const out: WatchItem[] = [];
  const done = (async () => {
    for await (const item of watchMessage(feed, reader, workspaceScope("ws_a"), MSG1, signal, quiet)) out.push(item);
  })();
  await watching;
  push(statusEvent(11, MSG2, "dlv_9", DeliveryStatus.SUCCEEDED)); // another message
  push(statusEvent(12, MSG1, "dlv_2", DeliveryStatus.PENDING_RETRY));
  push(statusEvent(13, MSG1, "dlv_2", DeliveryStatus.FAILED));
  push(statusEvent(14, MSG1, "dlv_2", DeliveryStatus.QUEUED)); // after the end: never seen
  await done;
  assert.deepEqual(
    out.map((i) => [i.event?.delivery?.id, i.event?.delivery?.status]),
    [
      ["dlv_1", DeliveryStatus.SUCCEEDED],
      ["dlv_2", DeliveryStatus.QUEUED],
      ["dlv_2", DeliveryStatus.PENDING_RETRY],
      ["dlv_2", DeliveryStatus.FAILED],
    ],
  );
  assert.deepEqual(
    out.map((i) => decodeResumeToken(i.resumeToken)),
    [10, 10, 12, 13],
  );
  assert.equal(reads.at(-1), `deliveries ws_a ${MSG1}`);
});
