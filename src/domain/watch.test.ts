import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { DeliveryStatusEventSchema } from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import { DeliveryStatus } from "../../gen/hookstream/v1/delivery_pb.ts";
import { DomainError } from "./errors.ts";
import type { StatusFeed, StatusFeedItem } from "./ports.ts";
import { decodeResumeToken, encodeResumeToken, watchDeliveries } from "./watch.ts";

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
      yield ev(1, "ep_01", DeliveryStatus.QUEUED);
      yield ev(2, "ep_02", DeliveryStatus.QUEUED);
      yield ev(3, "ep_01", DeliveryStatus.SUCCEEDED);
    },
  };
  const out = [];
  const filter = { endpointId: "", messageId: "", statuses: [DeliveryStatus.SUCCEEDED] };
  for await (const item of watchDeliveries(feed, "ws_a", filter, encodeResumeToken(0), new AbortController().signal))
    out.push(item);
  assert.deepEqual(seen, [0]);
  assert.deepEqual(
    out.map((i) => i.event.delivery?.id),
    ["dlv_3"],
  );
  assert.equal(decodeResumeToken(out[0]!.resumeToken), 3);
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
