// The job consumer against a private nats-server: acks, naks, bounds, crashes, shutdown, restarts.
import { create, toBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino, type Logger } from "pino";
import { DeliveryJobSchema, type DeliveryJob } from "../gen/hookstream/internal/v1/jobs_pb.ts";
import type { OutboxRecord } from "../src/domain/records.ts";
import { createJobConsumer, type JobConsumer, type JobHandler } from "../src/queue/job-consumer.ts";
import { connectNats } from "../src/queue/nats-connection.ts";
import { createOutboxPublisher } from "../src/queue/outbox-publisher.ts";
import { ensureStreams, streamNames, type StreamNames } from "../src/queue/streams.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";

let server: TestNats;
let nc: NatsConnection;
const connections: NatsConnection[] = [];
const quiet = pino({ level: "silent" });
let prefixCounter = 0;

before(async () => {
  server = await startNatsServer();
  nc = await connect();
});

after(async () => {
  for (const c of connections) if (!c.isClosed()) await c.close();
  await server.stop();
});

async function connect(): Promise<NatsConnection> {
  const c = await connectNats({ url: server.url, name: "job-consumer-test", logger: quiet });
  connections.push(c);
  return c;
}

/** A fresh pair of streams per test, so tests never see each other's jobs. */
async function freshStreams(): Promise<StreamNames> {
  prefixCounter++;
  const names = streamNames(`JOBS${prefixCounter}`);
  await ensureStreams(nc, names);
  return names;
}

function jobRow(ws: string, deliveryId: string): OutboxRecord {
  const job = create(DeliveryJobSchema, { workspaceId: ws, deliveryId, attemptNumber: 1 });
  return {
    seq: 0,
    stream: "work",
    subject: ws,
    workspaceId: ws,
    msgId: `${ws}:${deliveryId}:1`,
    payload: toBinary(DeliveryJobSchema, job),
    createdAt: new Date(),
  };
}

async function publishJobs(names: StreamNames, count: number, ws = "ws_t"): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `dlv_${String(i).padStart(4, "0")}`);
  await createOutboxPublisher(nc, names).publish(ids.map((id) => jobRow(ws, id)));
  return ids;
}

/** Polls `check` until it holds; generous, since these wait for real server events. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

async function consumerState(
  names: StreamNames,
  durable: string,
): Promise<{ ackPending: number; redelivered: number; pending: number }> {
  const jsm = await jetstreamManager(nc);
  const ci = await jsm.consumers.info(names.work, durable);
  return { ackPending: ci.num_ack_pending, redelivered: ci.num_redelivered, pending: ci.num_pending };
}

async function streamMessages(names: StreamNames): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(names.work)).state.messages;
}

function capturingLogger(): { logger: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: "debug" },
    { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) },
  );
  return { logger, lines };
}

function consumer(
  names: StreamNames,
  handle: JobHandler<typeof DeliveryJobSchema>,
  over: Partial<{
    concurrency: number;
    ackWaitMs: number;
    nc: NatsConnection;
    logger: Logger;
    durable: string;
    subjectFilter: string;
  }> = {},
): JobConsumer {
  return createJobConsumer({
    nc: over.nc ?? nc,
    names,
    schema: DeliveryJobSchema,
    durable: over.durable ?? "workers",
    ...(over.subjectFilter === undefined ? {} : { subjectFilter: over.subjectFilter }),
    validate: (job) => (job.deliveryId === "" ? "delivery_id is empty" : undefined),
    concurrency: over.concurrency ?? 8,
    ackWaitMs: over.ackWaitMs ?? 30_000,
    logger: over.logger ?? quiet,
    handle,
  });
}

void describe("job consumer", () => {
  void it("handles every job and acks each exactly once", async () => {
    const names = await freshStreams();
    const ids = await publishJobs(names, 50);
    const seen: string[] = [];
    const c = consumer(names, async (job) => {
      seen.push(job.deliveryId);
      return { kind: "ack" };
    });
    await c.start();
    await eventually("all jobs handled", () => seen.length >= ids.length);
    await eventually("work stream drained", async () => (await streamMessages(names)) === 0);
    await c.stop(1_000);
    assert.deepEqual([...seen].sort(), ids);
    const state = await consumerState(names, "workers");
    assert.deepEqual(state, { ackPending: 0, redelivered: 0, pending: 0 });
  });

  void it("takes only the subjects of its filter: two durables split one work stream", async () => {
    const names = await freshStreams();
    const a = await publishJobs(names, 20, "ws_a");
    const b = await publishJobs(names, 30, "ws_b");
    const seen = { a: [] as string[], b: [] as string[] };
    const ca = consumer(names, async (job) => (seen.a.push(`${job.workspaceId}/${job.deliveryId}`), { kind: "ack" }), {
      durable: "only_a",
      subjectFilter: "ws_a",
    });
    const cb = consumer(names, async (job) => (seen.b.push(`${job.workspaceId}/${job.deliveryId}`), { kind: "ack" }), {
      durable: "only_b",
      subjectFilter: "ws_b",
    });
    await ca.start();
    await cb.start();
    await eventually("work stream drained", async () => (await streamMessages(names)) === 0);
    await Promise.all([ca.stop(1_000), cb.stop(1_000)]);
    assert.deepEqual(
      [...seen.a].sort(),
      a.map((id) => `ws_a/${id}`),
    );
    assert.deepEqual(
      [...seen.b].sort(),
      b.map((id) => `ws_b/${id}`),
    );
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.consumers.info(names.work, "only_a")).config.filter_subject, `${names.prefix}.work.ws_a`);
  });

  void it("redelivers a job after nak with a delay", async () => {
    const names = await freshStreams();
    await publishJobs(names, 1);
    const counts: number[] = [];
    const c = consumer(names, async (_job, info) => {
      counts.push(info.deliveryCount);
      return info.deliveryCount === 1 ? { kind: "nak", delayMs: 300 } : { kind: "ack" };
    });
    await c.start();
    await eventually(
      "job redelivered and acked",
      async () => counts.length === 2 && (await streamMessages(names)) === 0,
    );
    await c.stop(1_000);
    assert.deepEqual(counts, [1, 2]);
  });

  void it("never runs more handlers than its concurrency, and pulls no more than it can run", async () => {
    const names = await freshStreams();
    const ids = await publishJobs(names, 30);
    let active = 0;
    let maxActive = 0;
    let maxAckPending = 0;
    let done = 0;
    const c = consumer(
      names,
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        // Everything this process holds is unacked on the server: it must stay within the bound.
        maxAckPending = Math.max(maxAckPending, (await consumerState(names, "workers")).ackPending);
        await sleep(30);
        active--;
        done++;
        return { kind: "ack" };
      },
      { concurrency: 3 },
    );
    await c.start();
    await eventually("all jobs handled", () => done === ids.length);
    await c.stop(1_000);
    assert.equal(maxActive, 3);
    assert.ok(maxAckPending <= 3, `ack pending reached ${maxAckPending}`);
  });

  void it("terminates an undecodable job with an error log and never calls the handler", async () => {
    const names = await freshStreams();
    await nc.request(names.workSubject("ws_bad"), new Uint8Array([0xff, 0xff, 0xff]));
    const { logger, lines } = capturingLogger();
    let calls = 0;
    const c = consumer(
      names,
      async () => {
        calls++;
        return { kind: "ack" };
      },
      { logger },
    );
    await c.start();
    await eventually("error logged", () => lines.some((l) => l.level >= 50 && /undecodable/.test(l.msg)));
    await eventually("job terminated", async () => (await consumerState(names, "workers")).ackPending === 0);
    await c.stop(1_000);
    assert.equal(calls, 0);
  });

  void it("naks a job whose handler throws, logs the error, and retries it", async () => {
    const names = await freshStreams();
    await publishJobs(names, 1);
    const { logger, lines } = capturingLogger();
    const counts: number[] = [];
    const c = consumer(
      names,
      async (_job, info) => {
        counts.push(info.deliveryCount);
        if (info.deliveryCount === 1) throw new Error("endpoint store exploded");
        return { kind: "ack" };
      },
      { logger },
    );
    await c.start();
    await eventually(
      "retried after the backoff and acked",
      async () => counts.length === 2 && (await streamMessages(names)) === 0,
    );
    await c.stop(1_000);
    assert.deepEqual(counts, [1, 2]);
    assert.ok(lines.some((l) => l.level === 50 && /threw/.test(l.msg)));
  });

  void it("redelivers the jobs of a consumer that died without acking to a new consumer after ack_wait", async () => {
    const names = await freshStreams();
    await publishJobs(names, 1);
    const doomed = await connect();
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const firstCounts: number[] = [];
    const first = consumer(
      names,
      async (_job, info) => {
        firstCounts.push(info.deliveryCount);
        await stuck;
        return { kind: "ack" };
      },
      { nc: doomed, ackWaitMs: 2_000 },
    );
    await first.start();
    await eventually("first consumer got the job", () => firstCounts.length === 1);
    // The process "dies": its connection goes away with the job unacked and no more progress.
    await doomed.close();

    const secondCounts: number[] = [];
    const second = consumer(
      names,
      async (_job, info) => {
        secondCounts.push(info.deliveryCount);
        return { kind: "ack" };
      },
      { ackWaitMs: 2_000 },
    );
    await second.start();
    await eventually(
      "job redelivered to the new consumer",
      async () => secondCounts.length === 1 && (await streamMessages(names)) === 0,
    );
    await second.stop(1_000);
    release();
    await first.stop(1_000);
    assert.deepEqual(firstCounts, [1]);
    assert.deepEqual(secondCounts, [2]);
  });

  void it("keeps a long handler's job from being redelivered by signalling progress", async () => {
    const names = await freshStreams();
    await publishJobs(names, 1);
    const counts: number[] = [];
    const c = consumer(
      names,
      async (_job, info) => {
        counts.push(info.deliveryCount);
        // Three times ack_wait: without progress signals the job would come back meanwhile.
        await sleep(6_000);
        return { kind: "ack" };
      },
      { ackWaitMs: 2_000, concurrency: 2 },
    );
    await c.start();
    await eventually("job acked", async () => (await streamMessages(names)) === 0);
    await c.stop(1_000);
    assert.deepEqual(counts, [1]);
    assert.equal((await consumerState(names, "workers")).redelivered, 0);
  });

  void it("stop(grace) stops pulling and lets running handlers finish", async () => {
    const names = await freshStreams();
    await publishJobs(names, 10);
    let started = 0;
    let finished = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const c = consumer(
      names,
      async () => {
        started++;
        await gate;
        finished++;
        return { kind: "ack" };
      },
      { concurrency: 4 },
    );
    await c.start();
    await eventually("handlers running", () => started === 4);
    const stopping = c.stop(10_000);
    release();
    await stopping;
    assert.equal(started, 4);
    assert.equal(finished, 4);
    await eventually("acks reached the server", async () => (await streamMessages(names)) === 6);
    assert.equal((await consumerState(names, "workers")).ackPending, 0);
  });

  void it("after the grace period aborts unfinished handlers and hands their jobs straight to another worker", async () => {
    const names = await freshStreams();
    await publishJobs(names, 1);
    let aborted = false;
    let started = false;
    const first = consumer(
      names,
      async (_job, info) => {
        started = true;
        await new Promise<void>((resolve) => info.signal.addEventListener("abort", () => resolve(), { once: true }));
        aborted = true;
        // A verdict after the hand-back must not ack the job.
        return { kind: "ack" };
      },
      // ack_wait far beyond the test's patience: only the nak can bring the job back in time.
      { ackWaitMs: 120_000 },
    );
    await first.start();
    await eventually("handler running", () => started);
    await first.stop(200);
    assert.equal(aborted, true);

    const counts: number[] = [];
    const second = consumer(
      names,
      async (_job, info) => {
        counts.push(info.deliveryCount);
        return { kind: "ack" };
      },
      { ackWaitMs: 120_000 },
    );
    await second.start();
    await eventually("job taken over", async () => counts.length === 1 && (await streamMessages(names)) === 0);
    await second.stop(1_000);
    // Not asserting the delivery count: nats-server 2.9 rewinds an immediate nak of the only
    // pending job instead of counting a redelivery (newer servers report 2).
    assert.equal(counts.length, 1);
  });

  void it("processes every job across a NATS restart", async () => {
    const names = await freshStreams();
    const ids = await publishJobs(names, 100);
    const seen = new Set<string>();
    let handled = 0;
    const c = consumer(
      names,
      async (job: DeliveryJob) => {
        await sleep(50);
        seen.add(job.deliveryId);
        handled++;
        return { kind: "ack" };
      },
      { concurrency: 4, ackWaitMs: 2_000 },
    );
    await c.start();
    await eventually("some jobs handled", () => handled >= 10);
    await server.restart();
    assert.ok(seen.size < ids.length, "the restart happened mid-consumption");
    await eventually("every job handled", () => seen.size === ids.length, 60_000);
    await eventually("work stream drained", async () => (await streamMessages(names).catch(() => -1)) === 0, 30_000);
    await c.stop(1_000);
    assert.deepEqual([...seen].sort(), ids);
    // At-least-once: a job in flight during the restart may run twice, never more than that here.
    assert.ok(handled <= ids.length + 4, `handled ${handled} times for ${ids.length} jobs`);
    assert.equal((await consumerState(names, "workers")).ackPending, 0);
  });

  void it("re-creates its consumer when it is deleted under it", async () => {
    const names = await freshStreams();
    const seen: string[] = [];
    const c = consumer(names, async (job) => {
      seen.push(job.deliveryId);
      return { kind: "ack" };
    });
    await c.start();
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.delete(names.work, "workers");
    const ids = await publishJobs(names, 5);
    await eventually("jobs handled by the re-created consumer", () => seen.length === ids.length, 60_000);
    await c.stop(1_000);
    assert.deepEqual([...seen].sort(), ids);
  });
});
