/**
 * GetDeliveryStats on both databases: grouped counts, sums and nearest-rank latencies computed
 * by the database over the window (delivery rows by created_at, attempt rows by started_at on
 * attempt_started_at_index), so no row travels to the API. The only dialect difference is how a
 * time becomes a bucket index and how times are bound (SQLite stores epoch milliseconds).
 */
import type { DeliveryStatsQuery, DeliveryStatsReader, DeliveryStatsRows } from "../../domain/delivery-stats.ts";
import type { DeliveryStatusName } from "../../domain/records.ts";
import type { StoreContext } from "../store-context.ts";

type Row = Record<string, unknown>;

/** Creates the stats reader. */
export function createDeliveryStatsRepository(ctx: StoreContext): DeliveryStatsReader {
  const time = (d: Date): Date | number => (ctx.pg ? d : d.getTime());
  const bucketOf = (column: string): string =>
    ctx.pg ? `floor((extract(epoch from ${column}) * 1000 - ?) / ?)` : `cast((${column} - ?) / ? as integer)`;

  return {
    async deliveryStats(
      workspaceId: string,
      q: DeliveryStatsQuery,
      ranks: (attempts: number) => number[],
    ): Promise<DeliveryStatsRows> {
      // The filters on the delivery (d), shared by both halves.
      const dWhere: string[] = ["d.workspace_id = ?"];
      const dParams: unknown[] = [workspaceId];
      if (q.endpointId !== undefined) {
        dWhere.push("d.endpoint_id = ?");
        dParams.push(q.endpointId);
      }
      if (q.applicationId !== undefined) {
        dWhere.push("d.endpoint_id in (select e.id from endpoint e where e.workspace_id = ? and e.application_id = ?)");
        dParams.push(workspaceId, q.applicationId);
      }
      if (q.eventType !== undefined) {
        dWhere.push("d.event_type = ?");
        dParams.push(q.eventType);
      }
      const from = time(q.from);
      const to = time(q.to);
      const start = q.from.getTime();
      const deliveries = `from delivery d where ${dWhere.join(" and ")} and d.created_at >= ? and d.created_at < ?`;
      const deliveryParams = [...dParams, from, to];
      const attempts = `from attempt a join delivery d on d.id = a.delivery_id where a.workspace_id = ? and a.started_at >= ? and a.started_at < ? and ${dWhere.join(" and ")}`;
      const attemptParams = [workspaceId, from, to, ...dParams];

      return ctx.run(async (em) => {
        const counts = await em.execute<Row[]>(
          `select d.status as status, count(*) as n ${deliveries} group by d.status`,
          deliveryParams,
        );
        const [totals] = await em.execute<Row[]>(
          `select count(*) as n, coalesce(sum(case when a.response_status between 200 and 299 then 1 else 0 end), 0) as ok, coalesce(sum(a.latency_ms), 0) as latency ${attempts}`,
          attemptParams,
        );
        const attemptCount = Number(totals?.["n"] ?? 0);
        const latencyAtRank = new Map<number, number>();
        for (const rank of new Set(ranks(attemptCount))) {
          const [row] = await em.execute<Row[]>(
            `select a.latency_ms as latency ${attempts} order by a.latency_ms limit 1 offset ?`,
            [...attemptParams, rank - 1],
          );
          if (row !== undefined) latencyAtRank.set(rank, Number(row["latency"]));
        }
        const deliveryBuckets = await em.execute<Row[]>(
          `select ${bucketOf("d.created_at")} as bucket, count(*) as n,
             sum(case when d.status = 'succeeded' then 1 else 0 end) as succeeded,
             sum(case when d.status = 'failed' then 1 else 0 end) as failed
           ${deliveries} group by 1`,
          [start, q.bucketMs, ...deliveryParams],
        );
        const attemptBuckets = await em.execute<Row[]>(
          `select ${bucketOf("a.started_at")} as bucket, count(*) as n,
             sum(case when a.response_status between 200 and 299 then 1 else 0 end) as ok,
             sum(a.latency_ms) as latency
           ${attempts} group by 1`,
          [start, q.bucketMs, ...attemptParams],
        );
        return {
          counts: counts.map((r) => ({ status: r["status"] as DeliveryStatusName, count: Number(r["n"]) })),
          attempts: attemptCount,
          successfulAttempts: Number(totals?.["ok"] ?? 0),
          latencySumMs: Number(totals?.["latency"] ?? 0),
          latencyAtRank,
          deliveryBuckets: deliveryBuckets.map((r) => ({
            bucket: Number(r["bucket"]),
            deliveries: Number(r["n"]),
            succeeded: Number(r["succeeded"]),
            failed: Number(r["failed"]),
          })),
          attemptBuckets: attemptBuckets.map((r) => ({
            bucket: Number(r["bucket"]),
            attempts: Number(r["n"]),
            successful: Number(r["ok"]),
            latencySumMs: Number(r["latency"]),
          })),
        };
      });
    },
  };
}
