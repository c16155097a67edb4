import type { NewOutboxRecord } from "./records.ts";

/**
 * Publishes outbox rows to JetStream: kind "job" to the work stream, "status" to the status
 * stream (subject per workspace), each with its msgId as Nats-Msg-Id, in the given order.
 * Resolves once every row is stored by JetStream; throws DomainError("unavailable") otherwise.
 */
export interface OutboxPublisher {
  publish(rows: readonly NewOutboxRecord[]): Promise<void>;
}

/** One stored status event, with its position in the status stream, or a position mark. */
export interface StatusFeedItem {
  /** Stream sequence: the resume point. */
  seq: number;
  /**
   * Encoded hookstream.internal.v1.DeliveryStatusEvent; undefined for a position mark, which
   * says the feed has read everything up to `seq` (every watch starts with one).
   */
  payload: Uint8Array | undefined;
}

/** Reads the status stream of one workspace, from any API server. */
export interface StatusFeed {
  /**
   * Status events of the workspace, in stream order, starting right after `afterSeq` (or with
   * events stored from now on when undefined), until `signal` aborts; the first item is a
   * position mark as soon as the feed is reading. Throws DomainError("invalid_argument") when
   * afterSeq is past the stream's end or already expired ("RESUME_TOKEN_EXPIRED" as
   * failed_precondition), and "unavailable" when NATS is down.
   */
  watch(workspaceId: string, afterSeq: number | undefined, signal: AbortSignal): AsyncIterable<StatusFeedItem>;
}
