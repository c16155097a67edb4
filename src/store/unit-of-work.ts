/**
 * "Data and outbox rows in one transaction": the one way a repository writes a change together
 * with the outbox rows that announce it (the transactional outbox, as MikroORM's docs describe it).
 */
import type { NewOutboxRecord, OutboxRecord } from "../domain/records.ts";
import { Outbox } from "./outbox/outbox.entity.ts";
import { outboxInsert } from "./record-mappers.ts";
import type { Em, StoreContext } from "./store-context.ts";

/** Inserts outbox rows on `em` (inside the caller's transaction) and returns them with their seqs. */
export async function insertOutbox(em: Em, rows: readonly NewOutboxRecord[]): Promise<OutboxRecord[]> {
  if (rows.length === 0) return [];
  // One multi-row INSERT … RETURNING: insertMany reports only one generated key on SQLite.
  const inserted = await em
    .createQueryBuilder(Outbox)
    .insert(rows.map(outboxInsert))
    .returning(["seq"])
    .execute<{ seq: number | string }[]>("all", false);
  const seqs = inserted.map((r) => Number(r.seq)).sort((a, b) => a - b);
  if (seqs.length !== rows.length)
    throw new Error(`outbox insert returned ${seqs.length} seqs for ${rows.length} rows`);
  // Seqs of one statement are assigned in row order; sorting guards against RETURNING's order.
  return rows.map((row, i) => ({ ...row, seq: seqs[i]! }));
}

/** What a unit of work's body returns: its value and the outbox rows to write with it. */
export interface WorkResult<T> {
  value: T;
  outbox: readonly NewOutboxRecord[];
}

/**
 * Runs `work` in one transaction and inserts the outbox rows it returns in the same transaction;
 * `null` from `work` means "nothing to do" (no rows written). Either everything commits or nothing.
 */
export async function unitOfWork<T>(
  ctx: StoreContext,
  work: (em: Em) => Promise<WorkResult<T> | null>,
): Promise<{ value: T; outbox: OutboxRecord[] } | null> {
  return ctx.tx(async (em) => {
    const result = await work(em);
    if (result === null) return null;
    return { value: result.value, outbox: await insertOutbox(em, result.outbox) };
  });
}
