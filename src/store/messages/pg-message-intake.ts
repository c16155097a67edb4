/**
 * PostgreSQL override of accepting a message: concurrent Sends share one group-committed statement
 * (message, deliveries and outbox rows of every call, atomically; ~700 → ~1,200 deliveries/s in the
 * foundation's bench). Columns come from the entities' metadata (pg-table.ts).
 */
import type { DeliveryRecord, MessageRecord, NewOutboxRecord, OutboxRecord } from "../../domain/records.ts";
import { pgOutboxGroupInsert, splitSeqs } from "../outbox/pg-outbox-repository.ts";
import { createGroupCommitter } from "../pg/pg-batching.ts";
import { PgTable, pgRows, type PgPool } from "../pg/pg-table.ts";
import type { StoreContext } from "../store-context.ts";
import type { AcceptWriter } from "./message-repository.ts";

/** One acceptMessage call. */
interface AcceptInput {
  message: MessageRecord;
  deliveries: readonly DeliveryRecord[];
  outbox: readonly NewOutboxRecord[];
}

/** Creates the group-committed accept writer; a lone call is a group of one. */
export function createPgAcceptMessage(ctx: StoreContext): AcceptWriter {
  const m = new PgTable<MessageRecord>(ctx.orm, "Message");
  const d = new PgTable<DeliveryRecord>(ctx.orm, "Delivery");
  const mCols = m.select();
  const dCols = d.select();
  const dFirst = 1 + m.columns.length;
  const dOwner = dFirst + d.columns.length;
  const outbox = pgOutboxGroupInsert(ctx, dOwner + 1, "text", "SELECT id FROM m");
  // A message whose (workspace, idempotency key) is taken, by an earlier message or by an earlier
  // call of the same group, is skipped with its deliveries and outbox rows.
  const sql = `WITH mi AS (
  SELECT * FROM unnest(${m.unnestParams(1)}) WITH ORDINALITY AS t(${mCols}, ord)
), m AS (
  INSERT INTO ${m.table} (${mCols})
  SELECT ${mCols} FROM mi ORDER BY ord
  ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
  RETURNING id
), d AS (
  INSERT INTO ${d.table} (${dCols})
  SELECT ${dCols}
  FROM unnest(${d.unnestParams(dFirst)}, $${dOwner}::text[]) AS x(${dCols}, owner)
  WHERE x.owner IN (SELECT id FROM m)
), o AS (
  ${outbox.sql}
)
SELECT ARRAY(SELECT id FROM m) AS ids, ARRAY(SELECT seq FROM o) AS seqs`;

  const many = async (pool: PgPool, calls: readonly AcceptInput[]): Promise<(OutboxRecord[] | null)[]> => {
    // Rows find their call through its message id; a (never seen) repeated id could not tell them apart.
    if (new Set(calls.map((c) => c.message.id)).size !== calls.length) throw new Error("message ids repeat in a group");
    const ds = calls.flatMap((c) => c.deliveries.map((x) => ({ x, owner: c.message.id })));
    const os = calls.flatMap((c) => c.outbox.map((x) => ({ x, owner: c.message.id })));
    const [row] = await pgRows(pool, "hs_accept_messages", sql, [
      ...m.arrays(calls.map((c) => c.message)),
      ...d.arrays(ds.map((e) => e.x)),
      ds.map((e) => e.owner),
      ...outbox.params(
        os.map((e) => e.x),
        os.map((e) => e.owner),
      ),
    ]);
    const created = new Set(row!["ids"] as string[]);
    return splitSeqs(
      calls.map((c) => (created.has(c.message.id) ? c.outbox : null)),
      row!["seqs"] as unknown[],
    );
  };
  const commit = createGroupCommitter(() => ctx.pool(), many);
  return (message, deliveries, outbox) => ctx.raw(() => commit({ message, deliveries, outbox }));
}
