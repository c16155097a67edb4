import type { OutboxRecord } from "./records.ts";

/**
 * Publishes outbox rows to JetStream: kind "job" to the work stream, "status" to the status
 * stream (subject per workspace), each with its msgId as Nats-Msg-Id, in the given order.
 * Resolves once every row is stored by JetStream; throws DomainError("unavailable") otherwise.
 */
export interface OutboxPublisher {
  publish(rows: readonly OutboxRecord[]): Promise<void>;
}

/** One stored status event, with its position in the status stream. */
export interface StatusFeedItem {
  /** Stream sequence: the resume point. */
  seq: number;
  /** Encoded hookstream.internal.v1.DeliveryStatusEvent. */
  payload: Uint8Array;
}

/** Reads the status stream of one workspace, from any API server. */
export interface StatusFeed {
  /**
   * Status events of the workspace, in stream order, starting right after `afterSeq` (or with
   * events stored from now on when undefined), until `signal` aborts. Throws
   * DomainError("invalid_argument") when afterSeq is past the stream's end or already expired
   * ("RESUME_TOKEN_EXPIRED" as failed_precondition), and "unavailable" when NATS is down.
   */
  watch(workspaceId: string, afterSeq: number | undefined, signal: AbortSignal): AsyncIterable<StatusFeedItem>;
}
