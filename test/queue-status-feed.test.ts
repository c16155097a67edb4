// The status feed against a private nats-server: filtering, resume points, errors, restarts.
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { DomainError } from "../src/domain/errors.ts";
import type { StatusFeed, StatusFeedItem } from "../src/domain/ports.ts";
import { connectNats } from "../src/queue/nats-connection.ts";
import { createOutboxPublisher } from "../src/queue/outbox-publisher.ts";
import { createStatusFeed as createFeed, type ClosableStatusFeed } from "../src/queue/status-feed.ts";
import { ensureStreams, streamNames, type StreamNames } from "../src/queue/streams.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";

let server: TestNats;
let nc: NatsConnection;
const quiet = pino({ level: "silent" });
let prefixCounter = 0;
let msgCounter = 0;

before(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: server.url, name: "status-feed-test", logger: quiet });
});

// Every feed's shared reader stops at the end.
const feeds: ClosableStatusFeed[] = [];
function createStatusFeed(conn: NatsConnection, names: StreamNames): ClosableStatusFeed {
  const feed = createFeed(conn, names);
  feeds.push(feed);
  return feed;
}

after(async () => {
  for (const feed of feeds) await feed.close();
  await nc.close();
  await server.stop();
});

async function freshStreams(opts: { statusMaxAgeMs?: number } = {}): Promise<StreamNames> {
  prefixCounter++;
  const names = streamNames(`FEED${prefixCounter}`);
  await ensureStreams(nc, names, opts);
  return names;
}

/** Publishes one status event per label, `label` as the payload; returns their stream seqs. */
async function publishStatus(names: StreamNames, ws: string, ...labels: string[]): Promise<void> {
  const publisher = createOutboxPublisher(nc, names);
  await publisher.publish(
    labels.map((label) => ({
      seq: 0,
      stream: "status",
      subject: ws,
      workspaceId: ws,
      msgId: `st_${++msgCounter}`,
      payload: new TextEncoder().encode(label),
      createdAt: new Date(),
    })),
  );
}

/** A watch reading `count` events (position marks apart), then aborting. */
function watchFor(
  feed: StatusFeed,
  ws: string,
  afterSeq: number | undefined,
  count: number,
): { events: Promise<StatusFeedItem[]>; marks: StatusFeedItem[]; reading: Promise<void> } {
  const ac = new AbortController();
  const marks: StatusFeedItem[] = [];
  let read!: () => void;
  const reading = new Promise<void>((resolve) => (read = resolve));
  const guard = setTimeout(() => ac.abort(), 20_000);
  const events = (async () => {
    const items: StatusFeedItem[] = [];
    try {
      for await (const item of feed.watch(ws, afterSeq, ac.signal)) {
        if (item.payload === undefined) {
          marks.push(item);
          read();
          continue;
        }
        items.push(item);
        if (items.length === count) break;
      }
    } finally {
      clearTimeout(guard);
      ac.abort();
      read();
    }
    return items;
  })();
  return { events, marks, reading };
}

/** Reads `count` events from a watch, then aborts it. */
function take(feed: StatusFeed, ws: string, afterSeq: number | undefined, count: number): Promise<StatusFeedItem[]> {
  return watchFor(feed, ws, afterSeq, count).events;
}

const label = (item: StatusFeedItem): string => new TextDecoder().decode(item.payload);

async function statusConsumers(names: StreamNames): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(names.status)).state.consumer_count;
}

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

void describe("status feed", () => {
  void it("yields only the watched workspace's events, with their stream sequences", async () => {
    const names = await freshStreams();
    await publishStatus(names, "ws_a", "a1");
    await publishStatus(names, "ws_b", "b1");
    await publishStatus(names, "ws_a", "a2");
    await publishStatus(names, "ws_b", "b2");
    await publishStatus(names, "ws_a", "a3");
    const feed = createStatusFeed(nc, names);
    const items = await take(feed, "ws_a", 0, 3);
    assert.deepEqual(items.map(label), ["a1", "a2", "a3"]);
    assert.deepEqual(
      items.map((i) => i.seq),
      [1, 3, 5],
    );
    const b = await take(feed, "ws_b", 0, 2);
    assert.deepEqual(b.map(label), ["b1", "b2"]);
  });

  void it("resumes exactly after a token's event", async () => {
    const names = await freshStreams();
    await publishStatus(names, "ws_r", "e1", "e2", "e3", "e4", "e5");
    const feed = createStatusFeed(nc, names);
    const all = await take(feed, "ws_r", 0, 5);
    const token = all[1]?.seq;
    assert.equal(token, 2);
    const resumed = await take(feed, "ws_r", token, 3);
    assert.deepEqual(resumed.map(label), ["e3", "e4", "e5"]);
    // Resuming at the very end yields only what comes later.
    const atEnd = watchFor(feed, "ws_r", all[4]?.seq, 1);
    await atEnd.reading;
    assert.deepEqual(
      atEnd.marks.map((m) => m.seq),
      [5],
      "a watch starts with its position",
    );
    await publishStatus(names, "ws_r", "e6");
    assert.deepEqual((await atEnd.events).map(label), ["e6"]);
  });

  void it("without a token starts from now", async () => {
    const names = await freshStreams();
    await publishStatus(names, "ws_n", "old1", "old2");
    const feed = createStatusFeed(nc, names);
    const live = watchFor(feed, "ws_n", undefined, 2);
    await live.reading;
    assert.deepEqual(
      live.marks.map((m) => m.seq),
      [2],
      "from now: after the stream's last event",
    );
    await publishStatus(names, "ws_n", "new1");
    await publishStatus(names, "ws_other", "noise");
    await publishStatus(names, "ws_n", "new2");
    assert.deepEqual((await live.events).map(label), ["new1", "new2"]);
  });

  void it("rejects a token past the end of the stream as invalid_argument on resume_token", async () => {
    const names = await freshStreams();
    await publishStatus(names, "ws_i", "x");
    const feed = createStatusFeed(nc, names);
    await assert.rejects(take(feed, "ws_i", 2, 1), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "invalid_argument");
      assert.equal(err.reason, "RESUME_TOKEN_INVALID");
      assert.deepEqual(
        err.violations.map((v) => v.field),
        ["resume_token"],
      );
      return true;
    });
  });

  void it("rejects a token whose next event has expired as failed_precondition", async () => {
    const names = await freshStreams({ statusMaxAgeMs: 1_000 });
    await publishStatus(names, "ws_e", "gone1", "gone2");
    const jsm = await jetstreamManager(nc);
    await eventually(
      "events expired by max_age",
      async () => (await jsm.streams.info(names.status)).state.first_seq > 2,
    );
    await publishStatus(names, "ws_e", "fresh");
    const feed = createStatusFeed(nc, names);
    await assert.rejects(take(feed, "ws_e", 1, 1), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "failed_precondition");
      assert.equal(err.reason, "RESUME_TOKEN_EXPIRED");
      return true;
    });
    // The last expired event's seq is still a valid resume point: nothing after it was lost.
    assert.deepEqual((await take(feed, "ws_e", 2, 1)).map(label), ["fresh"]);
  });

  void it("ends when the signal aborts; live watchers share one consumer, closed with the feed", async () => {
    const names = await freshStreams();
    const feed = createStatusFeed(nc, names);
    const watches = Array.from({ length: 50 }, (_, i) => watchFor(feed, i % 2 === 0 ? "ws_c" : "ws_d", undefined, 1));
    await Promise.all(watches.map((w) => w.reading));
    assert.equal(await statusConsumers(names), 1, "one shared reader for 50 live watchers");
    await publishStatus(names, "ws_c", "c1");
    await publishStatus(names, "ws_d", "d1");
    const got = await Promise.all(watches.map((w) => w.events));
    got.forEach((events, i) => assert.deepEqual(events.map(label), [i % 2 === 0 ? "c1" : "d1"]));
    const ac = new AbortController();
    const reading = (async () => {
      const items: StatusFeedItem[] = [];
      for await (const item of feed.watch("ws_c", undefined, ac.signal)) items.push(item);
      return items.filter((i) => i.payload !== undefined);
    })();
    ac.abort();
    assert.deepEqual(await reading, []);
    await feed.close();
    await eventually("shared reader deleted", async () => (await statusConsumers(names)) === 0);
  });

  void it("catches up from an old token on its own consumer, then goes live without a gap or a repeat", async () => {
    const names = await freshStreams();
    const feed = createStatusFeed(nc, names);
    const live = watchFor(feed, "ws_k", undefined, 3); // starts the shared reader at seq 0
    await live.reading;
    await publishStatus(names, "ws_k", "k1", "k2");
    await publishStatus(names, "ws_other", "noise");
    await publishStatus(names, "ws_k", "k3");
    // The shared reader is past k3 now: resuming after k1 must catch up on its own consumer.
    assert.deepEqual((await live.events).map(label), ["k1", "k2", "k3"]);
    const resumed = watchFor(feed, "ws_k", 1, 4);
    await resumed.reading;
    await publishStatus(names, "ws_k", "k4", "k5");
    assert.deepEqual((await resumed.events).map(label), ["k2", "k3", "k4", "k5"]);
  });

  void it("a watcher that falls behind the shared reader reads on its own and misses nothing", async () => {
    const names = await freshStreams();
    const feed = createStatusFeed(nc, names);
    const total = 6_000; // more than a live watcher may have queued
    const ac = new AbortController();
    const slow = feed.watch("ws_slow", undefined, ac.signal)[Symbol.asyncIterator]();
    const mark = await slow.next();
    if (mark.done === true) assert.fail("the watch ended");
    assert.equal(mark.value.payload, undefined, "the position mark");
    // Nobody reads while all of them are published.
    const labels = Array.from({ length: total }, (_, i) => `s${i}`);
    for (let i = 0; i < total; i += 500) await publishStatus(names, "ws_slow", ...labels.slice(i, i + 500));
    const got: string[] = [];
    while (got.length < total) {
      const next = await slow.next();
      if (next.done === true) assert.fail("the watch ended");
      got.push(label(next.value));
    }
    ac.abort();
    await slow.return?.();
    assert.deepEqual(got, labels);
  });

  void it("keeps streaming across a NATS restart without replaying history", async () => {
    const names = await freshStreams();
    await publishStatus(names, "ws_s", "history1", "history2");
    const feed = createStatusFeed(nc, names);
    const live = watchFor(feed, "ws_s", undefined, 2);
    await live.reading;
    await eventually("watch consumer created", async () => (await statusConsumers(names)) === 1);
    await server.restart();
    await eventually("reconnected", async () => {
      try {
        await publishStatus(names, "ws_s", "after-restart");
        return true;
      } catch {
        return false;
      }
    });
    await publishStatus(names, "ws_s", "later");
    assert.deepEqual((await live.events).map(label), ["after-restart", "later"]);
  });

  void it("reports unavailable when NATS cannot be reached", async () => {
    const names = await freshStreams();
    const other = await connectNats({ url: server.url, name: "closing", logger: quiet });
    await other.close();
    const feed = createStatusFeed(other, names);
    await assert.rejects(take(feed, "ws_u", undefined, 1), (err: unknown) => {
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "unavailable");
      return true;
    });
  });
});
