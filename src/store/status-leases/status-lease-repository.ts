import type { RecordedAttempt, StatusLeaseRecord, StatusLeaseStore } from "../../domain/status-announcer.ts";
import { Attempt } from "../deliveries/attempt.entity.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { attemptRecord, deliveryRecord } from "../record-mappers.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { StatusLease } from "./status-lease.entity.ts";

/**
 * Status leases on MikroORM (both databases): one renewal per worker every few seconds, and the
 * dispatcher's reads of a stale lease's attempts through attempt_started_at_index, so neither is
 * on any delivery's path.
 */
export function createStatusLeaseRepository(ctx: StoreContext): StatusLeaseStore {
  const withDeliveries = async (attempts: Attempt[]): Promise<RecordedAttempt[]> => {
    if (attempts.length === 0) return [];
    const ids = [...new Set(attempts.map((a) => a.deliveryId))];
    const deliveries = await ctx.run((em) => em.find(Delivery, { id: { $in: ids } }, DETACHED));
    const byId = new Map(deliveries.map((d) => [d.id, deliveryRecord(d)]));
    return attempts.flatMap((a) => {
      const delivery = byId.get(a.deliveryId);
      return delivery === undefined ? [] : [{ attempt: attemptRecord(a), delivery }];
    });
  };

  return {
    async renewStatusLease(id, settledBefore, at) {
      await ctx.run(async (em) => {
        const updated = await em.nativeUpdate(StatusLease, { id }, { settledBefore, heartbeatAt: at });
        if (updated > 0) return;
        // Missing: the first renewal, or the dispatcher took a stalled lease over (nothing was recorded since).
        await em.upsert(StatusLease, { id, settledBefore, heartbeatAt: at, createdAt: at });
      });
    },

    async dropStatusLease(id, heartbeatAt) {
      const where = heartbeatAt === undefined ? { id } : { id, heartbeatAt };
      return (await ctx.run((em) => em.nativeDelete(StatusLease, where))) > 0;
    },

    async staleStatusLeases(heartbeatBefore, limit): Promise<StatusLeaseRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          StatusLease,
          { heartbeatAt: { $lt: heartbeatBefore } },
          { ...DETACHED, orderBy: { heartbeatAt: "asc" }, limit: Math.max(1, limit) },
        ),
      );
      return rows.map((r) => ({ id: r.id, settledBefore: r.settledBefore, heartbeatAt: r.heartbeatAt }));
    },

    async unsettledAttempts(lease, after, limit) {
      const since =
        after === null
          ? { startedAt: { $gte: lease.settledBefore } }
          : {
              $or: [{ startedAt: { $gt: after.startedAt } }, { startedAt: after.startedAt, id: { $gt: after.id } }],
            };
      const attempts = await ctx.run((em) =>
        em.find(
          Attempt,
          { recordedBy: lease.id, ...since },
          { ...DETACHED, orderBy: { startedAt: "asc", id: "asc" }, limit: Math.max(1, limit) },
        ),
      );
      return withDeliveries(attempts);
    },

    async recordedAttempt(attemptId) {
      const attempt = await ctx.run((em) => em.findOne(Attempt, { id: attemptId }, DETACHED));
      const [recorded] = await withDeliveries(attempt === null ? [] : [attempt]);
      return recorded ?? null;
    },
  };
}
