import assert from "node:assert/strict";
import { test } from "node:test";
import { createOutboxRelay, type OutboxBacklog } from "./outbox-relay.ts";
import type { OutboxPublisher } from "./ports.ts";
import type { OutboxRecord } from "./records.ts";

const row = (seq: number, createdAt = new Date()): OutboxRecord => ({
  seq,
  stream: "work",
  subject: "ws_a",
  workspaceId: "ws_a",
  msgId: `m${seq}`,
  payload: new Uint8Array([seq]),
  createdAt,
});

// An in-memory outbox table: enough of the port to check what the relay deletes and when.
function memoryOutbox(rows: OutboxRecord[]): { store: OutboxBacklog; rows: OutboxRecord[] } {
  const table = { rows };
  const store: OutboxBacklog = {
    pendingOutbox: async (before: Date, limit: number) =>
      table.rows.filter((r) => r.createdAt <= before).slice(0, limit),
    deleteOutbox: async (seqs: readonly number[]) => {
      table.rows = table.rows.filter((r) => !seqs.includes(r.seq));
    },
  };
  return {
    store,
    get rows() {
      return table.rows;
    },
  };
}

const quiet = { warn: () => undefined, error: () => undefined };

test("published rows are deleted; failed publishes stay for the sweep", async () => {
  const mem = memoryOutbox([row(1), row(2), row(3)]);
  let fail = true;
  const published: string[] = [];
  const publisher: OutboxPublisher = {
    publish: async (rows) => {
      if (fail) throw new Error("nats down");
      published.push(...rows.map((r) => r.msgId));
    },
  };
  const relay = createOutboxRelay(mem.store, publisher, quiet);
  assert.equal(await relay.publishNow([row(1), row(2)]), false);
  await relay.drain();
  assert.equal(mem.rows.length, 3);
  fail = false;
  assert.equal(await relay.publishNow([row(1)]), true);
  await relay.drain();
  assert.deepEqual(
    mem.rows.map((r) => r.seq),
    [2, 3],
  );
  assert.equal(await relay.sweep(0), 2);
  assert.deepEqual(published, ["m1", "m2", "m3"]);
  assert.equal(mem.rows.length, 0);
});

test("the sweep leaves young rows to the process that wrote them", async () => {
  const mem = memoryOutbox([row(1, new Date(Date.now() - 60_000)), row(2, new Date(Date.now() + 60_000))]);
  const relay = createOutboxRelay(mem.store, { publish: async () => undefined }, quiet);
  assert.equal(await relay.sweep(1_000), 1);
  assert.deepEqual(
    mem.rows.map((r) => r.seq),
    [2],
  );
});
