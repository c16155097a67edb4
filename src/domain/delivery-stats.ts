/**
 * GetDeliveryStats: what the deliveries created and the attempts made in a window add up to
 * (counts by status, success rate, attempt latency percentiles, a time series), computed by the
 * database, so no row is sent to the API for it.
 */
import { Violations } from "./errors.ts";
import type { DeliveryStatusName } from "./records.ts";
import { applicationFilterOf, type Scope } from "./scope.ts";
import { checkEventType, checkId } from "./validation.ts";

/** What the store is asked: the window, the bucket width and the filters (all already checked). */
export interface DeliveryStatsQuery {
  from: Date;
  to: Date;
  bucketMs: number;
  endpointId?: string | undefined;
  applicationId?: string | undefined;
  eventType?: string | undefined;
}

/** What the store answers; buckets are indexes from `from` in `bucketMs` steps (only non-empty ones). */
export interface DeliveryStatsRows {
  counts: { status: DeliveryStatusName; count: number }[];
  attempts: number;
  successfulAttempts: number;
  latencySumMs: number;
  /** Latency of the attempt at each rank asked (nearest rank, 1-based), by rank. */
  latencyAtRank: Map<number, number>;
  deliveryBuckets: { bucket: number; deliveries: number; succeeded: number; failed: number }[];
  attemptBuckets: { bucket: number; attempts: number; successful: number; latencySumMs: number }[];
}

/** The port GetDeliveryStats reads through. */
export interface DeliveryStatsReader {
  /** `ranks`: the 1-based ranks (by latency, ascending) of the attempts whose latency to return. */
  deliveryStats(
    workspaceId: string,
    query: DeliveryStatsQuery,
    ranks: (attempts: number) => number[],
  ): Promise<DeliveryStatsRows>;
}

/** GetDeliveryStats in domain terms. */
export interface DeliveryStatsInput {
  /** Undefined: 24 h; NaN: malformed. */
  windowMs: number | undefined;
  endTime: Date | undefined;
  /** Undefined: window / 24. */
  bucketMs: number | undefined;
  endpointId: string;
  applicationId: string;
  eventType: string;
}

/** One point of the series. */
export interface DeliveryStatsPoint {
  start: Date;
  deliveries: number;
  succeeded: number;
  failed: number;
  attempts: number;
  successfulAttempts: number;
  averageLatencyMs: number;
}

/** The answer. */
export interface DeliveryStats {
  start: Date;
  end: Date;
  deliveries: number;
  counts: { status: DeliveryStatusName; count: number }[];
  successRate: number;
  attempts: number;
  successfulAttempts: number;
  latency: { count: number; averageMs: number; p50Ms: number; p95Ms: number; p99Ms: number };
  series: DeliveryStatsPoint[];
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** The longest window. */
export const MAX_STATS_WINDOW_MS = 31 * DAY;
/** The most points a series has. */
export const MAX_STATS_POINTS = 500;

/** Nearest-rank percentile ranks (1-based) of p50, p95 and p99 among `n` attempts. */
export function percentileRanks(n: number): number[] {
  if (n <= 0) return [];
  return [0.5, 0.95, 0.99].map((p) => Math.max(1, Math.ceil(p * n)));
}

/** Summarises a window of the scope's deliveries and attempts. */
export async function getDeliveryStats(
  store: DeliveryStatsReader,
  scope: Scope,
  req: DeliveryStatsInput,
  now: Date = new Date(),
): Promise<DeliveryStats> {
  const v = new Violations();
  const windowMs = req.windowMs ?? DAY;
  const windowOk = Number.isFinite(windowMs) && windowMs >= MINUTE && windowMs <= MAX_STATS_WINDOW_MS;
  if (!windowOk) v.add("window", "must be between 1 minute and 31 days");
  const end = req.endTime ?? now;
  if (!Number.isFinite(end.getTime())) v.add("end_time", "is not a valid time");
  const bucketMs = req.bucketMs ?? Math.ceil(windowMs / 24);
  // Judged against a valid window only (a bad window is reported on its own).
  if (
    windowOk &&
    (!Number.isFinite(bucketMs) || bucketMs < Math.ceil(windowMs / MAX_STATS_POINTS) || bucketMs > windowMs)
  )
    v.add("bucket", `must be between window / ${MAX_STATS_POINTS} and the window`);
  if (req.endpointId !== "") checkId(v, "endpoint_id", "endpoint", req.endpointId);
  if (req.applicationId !== "") checkId(v, "application_id", "application", req.applicationId);
  if (req.eventType !== "") checkEventType(v, "event_type", req.eventType);
  v.throwIfAny();

  const start = new Date(end.getTime() - windowMs);
  const points = Math.ceil(windowMs / bucketMs);
  const empty: DeliveryStats = {
    start,
    end,
    deliveries: 0,
    counts: [],
    successRate: 0,
    attempts: 0,
    successfulAttempts: 0,
    latency: { count: 0, averageMs: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0 },
    series: Array.from({ length: points }, (_, i) => ({
      start: new Date(start.getTime() + i * bucketMs),
      deliveries: 0,
      succeeded: 0,
      failed: 0,
      attempts: 0,
      successfulAttempts: 0,
      averageLatencyMs: 0,
    })),
  };
  // A portal session sees its own application only; naming another matches nothing.
  const applicationId = applicationFilterOf(scope, req.applicationId);
  if (applicationId === null) return empty;
  const rows = await store.deliveryStats(
    scope.workspaceId,
    {
      from: start,
      to: end,
      bucketMs,
      endpointId: req.endpointId || undefined,
      applicationId,
      eventType: req.eventType || undefined,
    },
    percentileRanks,
  );
  const counts = rows.counts.filter((c) => c.count > 0).sort((a, b) => (a.status < b.status ? -1 : 1));
  const countOf = (s: DeliveryStatusName): number => counts.find((c) => c.status === s)?.count ?? 0;
  const final = countOf("succeeded") + countOf("failed");
  const ranks = percentileRanks(rows.attempts);
  const at = (i: number): number => (ranks[i] === undefined ? 0 : (rows.latencyAtRank.get(ranks[i]) ?? 0));
  const series = empty.series.map((p) => ({ ...p }));
  for (const b of rows.deliveryBuckets) {
    const p = series[b.bucket];
    if (p === undefined) continue;
    p.deliveries += b.deliveries;
    p.succeeded += b.succeeded;
    p.failed += b.failed;
  }
  for (const b of rows.attemptBuckets) {
    const p = series[b.bucket];
    if (p === undefined) continue;
    p.attempts += b.attempts;
    p.successfulAttempts += b.successful;
    p.averageLatencyMs = p.attempts === 0 ? 0 : b.latencySumMs / b.attempts;
  }
  return {
    start,
    end,
    deliveries: counts.reduce((n, c) => n + c.count, 0),
    counts,
    successRate: final === 0 ? 0 : countOf("succeeded") / final,
    attempts: rows.attempts,
    successfulAttempts: rows.successfulAttempts,
    latency: {
      count: rows.attempts,
      averageMs: rows.attempts === 0 ? 0 : rows.latencySumMs / rows.attempts,
      p50Ms: at(0),
      p95Ms: at(1),
      p99Ms: at(2),
    },
    series,
  };
}
