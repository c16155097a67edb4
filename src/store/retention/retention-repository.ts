import type { RetentionStore, WorkspaceScope } from "../../domain/retention.ts";
import { Attempt } from "../deliveries/attempt.entity.ts";
import { NON_FINAL } from "../deliveries/delivery-states.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { Message } from "../messages/message.entity.ts";
import type { StoreContext } from "../store-context.ts";
import { Workspace } from "../workspaces/workspace.entity.ts";

function scoped(scope: WorkspaceScope): { workspaceId?: { $in: string[] } | { $nin: string[] } } {
  if ("only" in scope) return { workspaceId: { $in: [...scope.only] } };
  return scope.except.length === 0 ? {} : { workspaceId: { $nin: [...scope.except] } };
}

const EMPTY = Buffer.alloc(0);

/**
 * The retention sweeper's store on MikroORM (both databases): each call is one short transaction
 * over at most `limit` rows, picked by indexed columns (message created_at with payload_deleted_at,
 * attempt started_at), so the API keeps its locks.
 */
export function createRetentionRepository(ctx: StoreContext): RetentionStore {
  return {
    async workspacesWithOwnRetention() {
      const rows = await ctx.run((em) =>
        em.find(
          Workspace,
          { payloadRetentionMs: { $gt: 0 } },
          { fields: ["id", "payloadRetentionMs"], disableIdentityMap: true },
        ),
      );
      return rows.map((r) => ({ id: r.id, payloadRetentionMs: Number(r.payloadRetentionMs) }));
    },

    async expirePayloads(scope: WorkspaceScope, cutoff: Date, at: Date, limit: number): Promise<number> {
      if ("only" in scope && scope.only.length === 0) return 0;
      return ctx.tx(async (em) => {
        // Messages with a delivery still in flight keep their payload until it is final.
        const candidates = await em
          .createQueryBuilder(Message, "m")
          .select("m.id")
          .where({ payloadDeletedAt: null, createdAt: { $lt: cutoff }, ...scoped(scope) })
          .andWhere(
            `not exists (select 1 from delivery d where d.message_id = m.id and d.status in (${NON_FINAL.map(() => "?").join(", ")}))`,
            [...NON_FINAL],
          )
          .orderBy({ createdAt: "asc" })
          .limit(Math.max(1, limit))
          .execute<{ id: string }[]>("all", false);
        if (candidates.length === 0) return 0;
        const ids = candidates.map((m) => m.id);
        await em.nativeUpdate(
          Message,
          { id: { $in: ids }, payloadDeletedAt: null },
          { payload: EMPTY, payloadDeletedAt: at },
        );
        return ids.length;
      });
    },

    async deleteAttempts(scope: WorkspaceScope, cutoff: Date, limit: number): Promise<number> {
      if ("only" in scope && scope.only.length === 0) return 0;
      return ctx.tx(async (em) => {
        const old = await em.find(
          Attempt,
          { startedAt: { $lt: cutoff }, ...scoped(scope) },
          {
            fields: ["id", "deliveryId"],
            orderBy: { startedAt: "asc" },
            limit: Math.max(1, limit),
            disableIdentityMap: true,
          },
        );
        if (old.length === 0) return 0;
        const open = await em.find(
          Delivery,
          { id: { $in: [...new Set(old.map((a) => a.deliveryId))] }, status: { $in: NON_FINAL } },
          { fields: ["id"], disableIdentityMap: true },
        );
        const live = new Set(open.map((d) => d.id));
        const remove = old.filter((a) => !live.has(a.deliveryId)).map((a) => a.id);
        if (remove.length > 0) await em.nativeDelete(Attempt, { id: { $in: remove } });
        return remove.length === old.length ? old.length : remove.length;
      });
    },
  };
}
