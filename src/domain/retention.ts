/**
 * Payload retention: each workspace keeps message payloads (and the attempts of finished
 * deliveries) for its retention period, the installation's default unless the workspace sets its
 * own. The dispatcher's sweeper deletes what is older in small batches (each its own short
 * transaction), so it never locks the API out; a payload whose message still has a delivery in
 * flight is kept until that delivery is final, so nothing is ever delivered empty.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PayloadEnvelopeSchema, PayloadStatus, type PayloadEnvelope } from "../../gen/hookstream/v1/payload_pb.ts";
import type { MessageRecord, WorkspaceRecord } from "./records.ts";

/** Which workspaces a sweep covers: `only` these, or every workspace `except` these. */
export type WorkspaceScope = { only: readonly string[] } | { except: readonly string[] };

/** The sweeper's port. */
export interface RetentionStore {
  /** Workspaces whose retention is not the default. */
  workspacesWithOwnRetention(): Promise<Pick<WorkspaceRecord, "id" | "payloadRetentionMs">[]>;
  /**
   * Empties up to `limit` payloads of messages in `scope` accepted before `cutoff` whose deliveries
   * are all final, setting their payloadDeletedAt to `at`, in one transaction; returns how many.
   */
  expirePayloads(scope: WorkspaceScope, cutoff: Date, at: Date, limit: number): Promise<number>;
  /** Deletes up to `limit` attempts in `scope` started before `cutoff` of final deliveries; returns how many. */
  deleteAttempts(scope: WorkspaceScope, cutoff: Date, limit: number): Promise<number>;
}

/** Bounds of a workspace's retention period. */
export const MIN_RETENTION_MS = 3_600_000;
/** At most 400 days. */
export const MAX_RETENTION_MS = 400 * 86_400_000;

/** The retention a workspace has in effect. */
export function effectiveRetentionMs(ws: Pick<WorkspaceRecord, "payloadRetentionMs">, defaultMs: number): number {
  return ws.payloadRetentionMs !== undefined && ws.payloadRetentionMs > 0 ? ws.payloadRetentionMs : defaultMs;
}

/**
 * One sweep: for the default-retention workspaces and for each workspace with its own period,
 * batches of at most `batch` rows until nothing is left or `maxBatches` ran. Returns the counts.
 */
export async function sweepRetention(
  store: RetentionStore,
  now: Date,
  defaultMs: number,
  batch = 500,
  maxBatches = 20,
): Promise<{ payloads: number; attempts: number }> {
  const own = await store.workspacesWithOwnRetention();
  const groups: { scope: WorkspaceScope; retentionMs: number }[] = [
    { scope: { except: own.map((w) => w.id) }, retentionMs: defaultMs },
  ];
  const byRetention = new Map<number, string[]>();
  for (const w of own) {
    const ms = effectiveRetentionMs(w, defaultMs);
    byRetention.set(ms, [...(byRetention.get(ms) ?? []), w.id]);
  }
  for (const [retentionMs, ids] of byRetention) groups.push({ scope: { only: ids }, retentionMs });
  let payloads = 0;
  let attempts = 0;
  let batches = 0;
  for (const { scope, retentionMs } of groups) {
    const cutoff = new Date(now.getTime() - retentionMs);
    for (let n = batch; n === batch && batches < maxBatches; batches++) {
      n = await store.expirePayloads(scope, cutoff, now, batch);
      payloads += n;
    }
    for (let n = batch; n === batch && batches < maxBatches; batches++) {
      n = await store.deleteAttempts(scope, cutoff, batch);
      attempts += n;
    }
  }
  return { payloads, attempts };
}

/** The envelope GetDelivery returns for a delivery's payload. */
export function payloadEnvelope(message: MessageRecord | null): PayloadEnvelope {
  if (message === null) return create(PayloadEnvelopeSchema, { status: PayloadStatus.NOT_FOUND });
  if (message.payloadDeletedAt !== undefined && message.payloadDeletedAt !== null) {
    return create(PayloadEnvelopeSchema, {
      status: PayloadStatus.EXPIRED,
      contentType: message.contentType,
      expireTime: timestampFromDate(message.payloadDeletedAt),
    });
  }
  const json = message.contentType === "application/json";
  return create(PayloadEnvelopeSchema, {
    status: PayloadStatus.AVAILABLE,
    contentType: message.contentType,
    ...(json ? { payloadJson: Buffer.from(message.payload).toString("utf8") } : { rawPayload: message.payload }),
  });
}
