import { raw } from "@mikro-orm/core";
import type { QuotaStore } from "../../domain/quota.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { QuotaUsage } from "./quota-usage.entity.ts";

/** The shared quota counters on MikroORM (both databases): one row per workspace and window. */
export function createQuotaRepository(ctx: StoreContext): QuotaStore {
  const add = (workspaceId: string, windowStart: Date, count: number): Promise<number> =>
    ctx.tx(async (em) => {
      const where = { workspaceId, windowStart };
      const n = Math.max(0, Math.trunc(count));
      const used: number = raw<number>(`used + ${n}`);
      const updated = await em.nativeUpdate(QuotaUsage, where, { used });
      if (updated === 0) await em.insert(QuotaUsage, { ...where, used: n });
      const row = await em.findOneOrFail(QuotaUsage, where, DETACHED);
      return Number(row.used);
    });
  return {
    async addQuotaUsage(workspaceId, windowStart, count) {
      try {
        return await add(workspaceId, windowStart, count);
      } catch (error) {
        // Two processes inserted the window's first row at once: the loser adds to the winner's.
        if (!isUniqueViolation(error)) throw error;
        return add(workspaceId, windowStart, count);
      }
    },
    async getQuotaUsage(workspaceId, windowStart) {
      const row = await ctx.run((em) => em.findOne(QuotaUsage, { workspaceId, windowStart }, DETACHED));
      return row === null ? 0 : Number(row.used);
    },
  };
}
