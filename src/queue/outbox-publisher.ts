/** Publishes committed outbox rows to JetStream, deduplicated by their Nats-Msg-Id. */
import { jetstream, type PubAck } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { DomainError } from "../domain/errors.ts";
import type { OutboxPublisher } from "../domain/ports.ts";
import type { OutboxRecord } from "../domain/records.ts";
import type { StreamNames } from "./streams.ts";

/**
 * The OutboxPublisher port on JetStream: "job" rows go to the work stream, "status" rows to the
 * workspace's status subject, each with its msgId as Nats-Msg-Id so a re-publish after a crash
 * is dropped by the stream. Rows are sent pipelined (in order on the one connection) and the
 * call resolves only when every PubAck is in; any failure is DomainError("unavailable",
 * "QUEUE_UNAVAILABLE") and the caller keeps the rows for the next sweep.
 */
export function createOutboxPublisher(nc: NatsConnection, names: StreamNames): OutboxPublisher {
  const js = jetstream(nc);
  const subjectOf = (row: OutboxRecord): string =>
    row.kind === "job" ? names.workSubject(row.workspaceId) : names.statusSubject(row.workspaceId);

  return {
    async publish(rows) {
      if (rows.length === 0) return;
      // Start every publish before awaiting any, so N rows cost about one round trip; the
      // client writes them to the socket in call order.
      const pending = rows.map((row) => js.publish(subjectOf(row), row.payload, { msgID: row.msgId }));
      const results = await Promise.allSettled(pending);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed !== undefined) {
        const cause: unknown = failed.reason;
        const detail = cause instanceof Error ? cause.message : String(cause);
        const count = results.filter((r) => r.status === "rejected").length;
        throw new DomainError("unavailable", "QUEUE_UNAVAILABLE", `publishing ${count} of ${rows.length} outbox rows failed: ${detail}`, {
          cause,
        });
      }
      for (const r of results as PromiseFulfilledResult<PubAck>[]) {
        // A stream that is not ours answering would mean a misconfigured prefix.
        if (r.value.stream !== names.work && r.value.stream !== names.status) {
          throw new DomainError("unavailable", "QUEUE_UNAVAILABLE", `outbox row stored in unexpected stream ${r.value.stream}`);
        }
      }
    },
  };
}
