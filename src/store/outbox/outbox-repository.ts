import type { OutboxBacklog } from "../../domain/outbox-relay.ts";
import type { OutboxRecord } from "../../domain/records.ts";
import { createPgOutbox } from "./pg-outbox-repository.ts";
import { outboxRecord } from "../record-mappers.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { Outbox } from "./outbox.entity.ts";

/** The outbox backlog on MikroORM (the reference implementation, both databases). */
export function createOutboxRepository(ctx: StoreContext): OutboxBacklog {
  return {
    async pendingOutbox(createdBefore: Date, limit: number): Promise<OutboxRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Outbox,
          { createdAt: { $lte: createdBefore } },
          { ...DETACHED, orderBy: { seq: "asc" }, limit: Math.max(1, Math.trunc(limit)) },
        ),
      );
      return rows.map(outboxRecord);
    },
    async deleteOutbox(seqs: readonly number[]): Promise<void> {
      if (seqs.length === 0) return;
      await ctx.run((em) => em.nativeDelete(Outbox, { seq: { $in: [...seqs] } }));
    },
  };
}

/** The outbox backlog for this database: the PostgreSQL override where it applies. */
export function outboxBacklogFor(ctx: StoreContext, overrides: boolean): OutboxBacklog {
  return ctx.pg && overrides ? createPgOutbox(ctx) : createOutboxRepository(ctx);
}
