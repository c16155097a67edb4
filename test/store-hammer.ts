/**
 * Child process of store-sqlite-processes.test.ts: opens the store on a shared SQLite file and
 * writes as fast as it can — acceptMessage, then recordAttempt (a transaction that reads, then
 * writes) and releaseDue — reporting each failed call instead of stopping.
 * Usage: node test/store-hammer.ts <sqlite path> <workspace id> <endpoint id> <rounds>
 */
import { pino } from "pino";
import { newId } from "../src/domain/ids.ts";
import type { DeliveryRecord, MessageRecord, NewOutboxRecord } from "../src/domain/records.ts";
import { openStore } from "../src/store/index.ts";

const [path, workspaceId, endpointId, roundsArg] = process.argv.slice(2);
if (path === undefined || workspaceId === undefined || endpointId === undefined || roundsArg === undefined) {
  throw new Error("usage: store-hammer.ts <sqlite path> <workspace id> <endpoint id> <rounds>");
}
const rounds = Number(roundsArg);

const store = await openStore({ kind: "sqlite", path }, { logger: pino({ level: "silent" }) });
const row = (d: DeliveryRecord, tag: string): NewOutboxRecord => ({
  stream: "status",
  subject: workspaceId,
  workspaceId,
  msgId: `${d.id}:${tag}`,
  payload: new Uint8Array([1, 2, 3]),
  createdAt: d.updatedAt,
});

let failures = 0;
let applied = 0;
const errors: string[] = [];
const attempt = async (fn: () => Promise<void>): Promise<void> => {
  try {
    await fn();
  } catch (error) {
    failures++;
    if (errors.length < 5) errors.push(String(error instanceof Error && error.cause ? error.cause : error));
  }
};

for (let i = 0; i < rounds; i++) {
  const now = new Date();
  const message: MessageRecord = {
    id: newId("message"),
    workspaceId,
    eventType: "hammer",
    payload: new Uint8Array([i & 0xff]),
    contentType: "application/octet-stream",
    idempotencyKey: newId("message"),
    payloadHash: "00".repeat(32),
    createdAt: now,
  };
  const delivery: DeliveryRecord = {
    id: newId("delivery"),
    workspaceId,
    messageId: message.id,
    endpointId,
    eventType: message.eventType,
    status: "queued",
    attemptCount: 0,
    nextAttemptAt: null,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: now,
    updatedAt: now,
  };
  await attempt(async () => {
    await store.messages.acceptMessage(message, [delivery], [row(delivery, "queued")]);
  });
  await attempt(async () => {
    const res = await store.deliveries.recordAttempt({
      attempt: {
        id: newId("attempt"),
        workspaceId,
        deliveryId: delivery.id,
        number: 1,
        startedAt: now,
        latencyMs: 1,
        requestHeaders: {},
        responseStatus: 500,
        responseHeaders: {},
        responseBody: "",
        errorKind: "http_status",
        errorMessage: "HTTP 500",
        nextRetryAt: now,
        recordedBy: null,
      },
      delivery: {
        status: "pending_retry",
        nextAttemptAt: now,
        lastResponseStatus: 500,
        lastError: "HTTP 500",
        updatedAt: now,
      },
      outbox: (d) => [row(d, "pending_retry")],
    });
    if (res.applied) applied++;
  });
  await attempt(async () => {
    await store.deliveries.releaseDue(new Date(), 5, (d) => [row(d, "released")]);
  });
}
await store.close();
process.stdout.write(`${JSON.stringify({ failures, applied, errors })}\n`);
