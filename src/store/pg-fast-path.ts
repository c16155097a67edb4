/**
 * PostgreSQL hot paths as single raw statements on MikroORM's own `pg` pool: one round trip each,
 * no BEGIN/COMMIT (one statement is atomic), no query building and no entity hydration. Every
 * statement text is fixed (row lists travel as arrays and are unnested server side), so each is a
 * named prepared statement, parsed once per pooled connection. The group statements are planned at
 * every execution, a lone call included: with array parameters PostgreSQL keeps choosing custom plans.
 */
import type {
  ApiKeyRecord,
  AttemptRecord,
  DeliveryRecord,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
  WorkspaceRecord,
} from "../domain/records.ts";
import type { AttemptContext } from "../domain/ports.ts";
import { toBuffer } from "./record-mappers.ts";
import { isUnavailableError } from "./store-errors.ts";

/** The part of `pg`'s Pool used here (pg ships no type declarations in this project). */
export interface PgPool {
  query(config: { name: string; text: string; values: readonly unknown[] }): Promise<{ rows: unknown[] }>;
}

type Row = Record<string, unknown>;

async function rows(pool: PgPool, name: string, text: string, values: readonly unknown[]): Promise<Row[]> {
  const res = await pool.query({ name, text, values });
  return res.rows as Row[];
}

// ---- column lists and row mappers (MikroORM's pool returns timestamptz as text, int8 as text) ----

const DELIVERY_COLS = [
  "id",
  "workspace_id",
  "message_id",
  "endpoint_id",
  "event_type",
  "status",
  "attempt_count",
  "next_attempt_at",
  "last_response_status",
  "last_error",
  "created_at",
  "updated_at",
] as const;
const MESSAGE_COLS = [
  "id",
  "workspace_id",
  "event_type",
  "payload",
  "content_type",
  "idempotency_key",
  "payload_hash",
  "created_at",
] as const;
const ENDPOINT_COLS = [
  "id",
  "workspace_id",
  "url",
  "description",
  "metadata",
  "enabled",
  "headers",
  "timeout_ms",
  "secret",
  "previous_secret",
  "previous_secret_expires_at",
  "created_at",
  "updated_at",
] as const;
const OUTBOX_COLS = ["seq", "kind", "workspace_id", "msg_id", "payload", "created_at"] as const;

/** `a.col AS pcol, …` for a joined select. */
function aliased(alias: string, cols: readonly string[], prefix: string): string {
  return cols.map((c) => `${alias}.${c} AS ${prefix}${c}`).join(", ");
}

function date(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}

function dateOrNull(value: unknown): Date | null {
  return value === null || value === undefined ? null : date(value);
}

function bytes(value: unknown): Uint8Array {
  const b = value as Uint8Array;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function stringMap(value: unknown): Record<string, string> {
  const parsed: unknown = typeof value === "string" ? JSON.parse(value) : value;
  return parsed !== null && typeof parsed === "object" ? { ...(parsed as Record<string, string>) } : {};
}

function deliveryOf(r: Row, p = ""): DeliveryRecord {
  return {
    id: r[`${p}id`] as string,
    workspaceId: r[`${p}workspace_id`] as string,
    messageId: r[`${p}message_id`] as string,
    endpointId: r[`${p}endpoint_id`] as string,
    eventType: r[`${p}event_type`] as string,
    status: r[`${p}status`] as DeliveryRecord["status"],
    attemptCount: r[`${p}attempt_count`] as number,
    nextAttemptAt: dateOrNull(r[`${p}next_attempt_at`]),
    lastResponseStatus: r[`${p}last_response_status`] as number,
    lastError: r[`${p}last_error`] as string,
    createdAt: date(r[`${p}created_at`]),
    updatedAt: date(r[`${p}updated_at`]),
  };
}

function messageOf(r: Row, p = ""): MessageRecord {
  return {
    id: r[`${p}id`] as string,
    workspaceId: r[`${p}workspace_id`] as string,
    eventType: r[`${p}event_type`] as string,
    payload: bytes(r[`${p}payload`]),
    contentType: r[`${p}content_type`] as string,
    idempotencyKey: r[`${p}idempotency_key`] as string,
    payloadHash: r[`${p}payload_hash`] as string,
    createdAt: date(r[`${p}created_at`]),
  };
}

function endpointOf(r: Row, p = ""): EndpointRecord {
  return {
    id: r[`${p}id`] as string,
    workspaceId: r[`${p}workspace_id`] as string,
    url: r[`${p}url`] as string,
    description: r[`${p}description`] as string,
    metadata: stringMap(r[`${p}metadata`]),
    enabled: Boolean(r[`${p}enabled`]),
    headers: stringMap(r[`${p}headers`]),
    timeoutMs: r[`${p}timeout_ms`] as number,
    secret: r[`${p}secret`] as string,
    previousSecret: (r[`${p}previous_secret`] as string | null) ?? null,
    previousSecretExpiresAt: dateOrNull(r[`${p}previous_secret_expires_at`]),
    createdAt: date(r[`${p}created_at`]),
    updatedAt: date(r[`${p}updated_at`]),
  };
}

function outboxOf(r: Row): OutboxRecord {
  return {
    seq: Number(r["seq"]),
    kind: r["kind"] as OutboxRecord["kind"],
    workspaceId: r["workspace_id"] as string,
    msgId: r["msg_id"] as string,
    payload: bytes(r["payload"]),
    createdAt: date(r["created_at"]),
  };
}

/** The five outbox column arrays, for `unnest(…) WITH ORDINALITY`. */
function outboxArrays(rows: readonly NewOutboxRecord[]): unknown[] {
  return [
    rows.map((r) => r.kind),
    rows.map((r) => r.workspaceId),
    rows.map((r) => r.msgId),
    rows.map((r) => toBuffer(r.payload)),
    rows.map((r) => r.createdAt.toISOString()),
  ];
}

/** Pairs rows with the seqs one statement assigned them; bigserial follows insertion order. */
function withSeqs(rows: readonly NewOutboxRecord[], seqs: readonly unknown[]): OutboxRecord[] {
  const sorted = seqs.map(Number).sort((a, b) => a - b);
  if (sorted.length !== rows.length)
    throw new Error(`outbox insert returned ${sorted.length} seqs for ${rows.length} rows`);
  return rows.map((row, i) => ({ ...row, seq: sorted[i]! }));
}

// Outbox rows are fed to the INSERT in ordinality order, so the sequence hands out increasing seqs in
// the caller's order; RETURNING's own order is not guaranteed, hence the sort on the way out.
const OUTBOX_INSERT = `INSERT INTO outbox (kind, workspace_id, msg_id, payload, created_at)
    SELECT t.kind, t.workspace_id, t.msg_id, t.payload, t.created_at`;
// Each row carries its call's key (`owner`), so a group statement inserts the rows of applied calls only.
const outboxUnnest = (first: number, ownerType: "text" | "int"): string =>
  `unnest($${first}::text[], $${first + 1}::text[], $${first + 2}::text[], $${first + 3}::bytea[], $${first + 4}::timestamptz[],
        $${first + 5}::${ownerType}[])
      WITH ORDINALITY AS t(kind, workspace_id, msg_id, payload, created_at, owner, ord)`;

// ---- statements ----

const LOAD_CONTEXT_SQL = `SELECT ${aliased("d", DELIVERY_COLS, "d_")}, ${aliased("m", MESSAGE_COLS, "m_")},
    ${aliased("e", ENDPOINT_COLS, "e_")}
  FROM delivery d
  JOIN message m ON m.id = d.message_id
  LEFT JOIN endpoint e ON e.id = d.endpoint_id AND e.deleted_at IS NULL
  WHERE d.id = $1`;

const LOAD_CONTEXTS_SQL = LOAD_CONTEXT_SQL.replace("WHERE d.id = $1", "WHERE d.id = ANY($1::text[])");

const DELIVERY_SQL = `SELECT ${DELIVERY_COLS.join(", ")} FROM delivery WHERE id = $1`;

const IDEMPOTENCY_SQL = `SELECT ${aliased("m", MESSAGE_COLS, "m_")}, ${aliased("d", DELIVERY_COLS, "d_")}
  FROM message m
  LEFT JOIN delivery d ON d.workspace_id = m.workspace_id AND d.message_id = m.id
  WHERE m.workspace_id = $1 AND m.idempotency_key = $2
  ORDER BY d.id`;

const API_KEY_SQL = `SELECT id, workspace_id, label, secret_prefix, created_at, revoked_at FROM api_key WHERE secret_hash = $1`;
const WORKSPACE_SQL = `SELECT id, name, created_at FROM workspace WHERE management_token_hash = $1`;
const ENDPOINT_SQL = `SELECT ${ENDPOINT_COLS.join(", ")} FROM endpoint
  WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`;
const PENDING_OUTBOX_SQL = `SELECT ${OUTBOX_COLS.join(", ")} FROM outbox WHERE created_at <= $1 ORDER BY seq LIMIT $2`;
const DELETE_OUTBOX_SQL = `DELETE FROM outbox WHERE seq = ANY($1::bigint[])`;

// ---- operations ----

function contextOf(row: Row): AttemptContext {
  return {
    delivery: deliveryOf(row, "d_"),
    message: messageOf(row, "m_"),
    endpoint: row["e_id"] === null ? null : endpointOf(row, "e_"),
  };
}

/** Delivery, message and live endpoint in one query. */
export async function pgLoadAttemptContext(pool: PgPool, deliveryId: string): Promise<AttemptContext | null> {
  const [row] = await rows(pool, "hs_load_attempt_context", LOAD_CONTEXT_SQL, [deliveryId]);
  return row === undefined ? null : contextOf(row);
}

/** The contexts of several deliveries in one query, keyed by delivery id. */
export async function pgLoadAttemptContexts(
  pool: PgPool,
  ids: readonly string[],
): Promise<Map<string, AttemptContext>> {
  const result = await rows(pool, "hs_load_attempt_contexts", LOAD_CONTEXTS_SQL, [ids]);
  return new Map(result.map((r) => [r["d_id"] as string, contextOf(r)]));
}

/**
 * Coalesces concurrent loads: a call made while `maxInFlight` queries are already running waits
 * and goes out with every other such call in one `= ANY($1)` query. An idle store sends each call
 * at once; a busy worker sends one query per batch of jobs instead of one per job.
 */
export function createAttemptContextLoader(
  pool: () => Promise<PgPool>,
  maxInFlight = 2,
  maxBatch = 256,
): (deliveryId: string) => Promise<AttemptContext | null> {
  interface Waiter {
    id: string;
    resolve: (ctx: AttemptContext | null) => void;
    reject: (error: unknown) => void;
  }
  let queue: Waiter[] = [];
  let inFlight = 0;
  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      void (async () => {
        try {
          const p = await pool();
          if (batch.length === 1) {
            const only = batch[0]!;
            only.resolve(await pgLoadAttemptContext(p, only.id));
          } else {
            const found = await pgLoadAttemptContexts(p, [...new Set(batch.map((w) => w.id))]);
            for (const w of batch) w.resolve(found.get(w.id) ?? null);
          }
        } catch (error) {
          for (const w of batch) w.reject(error);
        } finally {
          inFlight--;
          pump();
        }
      })();
    }
  };
  return (id) =>
    new Promise<AttemptContext | null>((resolve, reject) => {
      queue.push({ id, resolve, reject });
      pump();
    });
}

/** The delivery's new state, written by recordAttempt. */
export type DeliveryChange = Pick<
  DeliveryRecord,
  "status" | "attemptCount" | "nextAttemptAt" | "lastResponseStatus" | "lastError" | "updatedAt"
>;

/** One delivery by id, unscoped (worker paths). */
export async function pgDelivery(pool: PgPool, id: string): Promise<DeliveryRecord | null> {
  const [row] = await rows(pool, "hs_delivery", DELIVERY_SQL, [id]);
  return row === undefined ? null : deliveryOf(row);
}

/** The message under an idempotency key with its deliveries (oldest first), in one query. */
export async function pgFindMessageByIdempotencyKey(
  pool: PgPool,
  workspaceId: string,
  key: string,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] } | null> {
  const result = await rows(pool, "hs_find_by_idempotency_key", IDEMPOTENCY_SQL, [workspaceId, key]);
  const [first] = result;
  if (first === undefined) return null;
  return {
    message: messageOf(first, "m_"),
    deliveries: result.filter((r) => r["d_id"] !== null).map((r) => deliveryOf(r, "d_")),
  };
}

/** The API key with this secret hash. */
export async function pgFindApiKeyByHash(pool: PgPool, secretHash: string): Promise<ApiKeyRecord | null> {
  const [r] = await rows(pool, "hs_api_key_by_hash", API_KEY_SQL, [secretHash]);
  if (r === undefined) return null;
  return {
    id: r["id"] as string,
    workspaceId: r["workspace_id"] as string,
    label: r["label"] as string,
    secretPrefix: r["secret_prefix"] as string,
    createdAt: date(r["created_at"]),
    revokedAt: dateOrNull(r["revoked_at"]),
  };
}

/** The workspace with this management token hash. */
export async function pgFindWorkspaceByTokenHash(pool: PgPool, tokenHash: string): Promise<WorkspaceRecord | null> {
  const [r] = await rows(pool, "hs_workspace_by_token_hash", WORKSPACE_SQL, [tokenHash]);
  if (r === undefined) return null;
  return { id: r["id"] as string, name: r["name"] as string, createdAt: date(r["created_at"]) };
}

/** A live endpoint of the workspace. */
export async function pgGetEndpoint(pool: PgPool, workspaceId: string, id: string): Promise<EndpointRecord | null> {
  const [r] = await rows(pool, "hs_endpoint", ENDPOINT_SQL, [id, workspaceId]);
  return r === undefined ? null : endpointOf(r);
}

/** Unpublished outbox rows up to a creation time, in seq order. */
export async function pgPendingOutbox(pool: PgPool, createdBefore: Date, limit: number): Promise<OutboxRecord[]> {
  const result = await rows(pool, "hs_pending_outbox", PENDING_OUTBOX_SQL, [createdBefore.toISOString(), limit]);
  return result.map(outboxOf);
}

/** Deletes published outbox rows. */
export async function pgDeleteOutbox(pool: PgPool, seqs: readonly number[]): Promise<void> {
  await rows(pool, "hs_delete_outbox", DELETE_OUTBOX_SQL, [seqs.map(String)]);
}

// ---- group commit: many callers' writes in one statement ----

/**
 * Coalesces concurrent writes like createAttemptContextLoader: a call made while `maxInFlight`
 * statements are running queues, and the queue goes out as one group statement (`many`) when one
 * finishes; a lone call goes at once as a group of one, so an idle store adds no latency. A group
 * whose statement fails (a statement is atomic: it wrote nothing) is re-run call by call, each as a
 * group of one, so a bad call fails alone; only an unreachable database fails the whole group at once.
 */
export function createGroupCommitter<I, O>(
  pool: () => Promise<PgPool>,
  many: (pool: PgPool, inputs: readonly I[]) => Promise<O[]>,
  maxInFlight = 2,
  maxBatch = 200,
): (input: I) => Promise<O> {
  interface Waiter {
    input: I;
    resolve: (out: O) => void;
    reject: (error: unknown) => void;
  }
  let queue: Waiter[] = [];
  let inFlight = 0;
  const alone = async (p: PgPool, w: Waiter): Promise<void> => {
    try {
      const [out] = await many(p, [w.input]);
      w.resolve(out!);
    } catch (error) {
      w.reject(error);
    }
  };
  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      void (async () => {
        try {
          const p = await pool();
          if (batch.length === 1) return await alone(p, batch[0]!);
          let outs: O[];
          try {
            outs = await many(
              p,
              batch.map((w) => w.input),
            );
          } catch (error) {
            if (isUnavailableError(error)) throw error;
            await Promise.all(batch.map((w) => alone(p, w)));
            return;
          }
          batch.forEach((w, i) => w.resolve(outs[i]!));
        } catch (error) {
          for (const w of batch) w.reject(error);
        } finally {
          inFlight--;
          pump();
        }
      })();
    }
  };
  return (input) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ input, resolve, reject });
      pump();
    });
}

/** One acceptMessage call. */
export interface AcceptInput {
  message: MessageRecord;
  deliveries: readonly DeliveryRecord[];
  outbox: readonly NewOutboxRecord[];
}

const ACCEPT_GROUP_SQL = `WITH mi AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::text[],
    $8::timestamptz[]) WITH ORDINALITY AS t(${MESSAGE_COLS.join(", ")}, ord)
), m AS (
  INSERT INTO message (${MESSAGE_COLS.join(", ")})
  SELECT ${MESSAGE_COLS.join(", ")} FROM mi ORDER BY ord
  ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
  RETURNING id
), d AS (
  INSERT INTO delivery (${DELIVERY_COLS.join(", ")})
  SELECT ${DELIVERY_COLS.join(", ")}
  FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int[],
    $16::timestamptz[], $17::int[], $18::text[], $19::timestamptz[], $20::timestamptz[], $21::text[])
    AS x(${DELIVERY_COLS.join(", ")}, owner)
  WHERE x.owner IN (SELECT id FROM m)
), o AS (
  ${OUTBOX_INSERT}
    FROM ${outboxUnnest(22, "text")}
    WHERE t.owner IN (SELECT id FROM m)
    ORDER BY t.ord
  RETURNING seq
)
SELECT ARRAY(SELECT id FROM m) AS ids, ARRAY(SELECT seq FROM o) AS seqs`;

/**
 * One or several acceptMessage calls in one statement. A message whose (workspace, idempotency key)
 * is taken, by an earlier message or by an earlier call of the same group, is skipped with its
 * deliveries and outbox rows: null for that call. Others get their outbox rows with seqs.
 */
export async function pgAcceptMessages(
  pool: PgPool,
  calls: readonly AcceptInput[],
): Promise<(OutboxRecord[] | null)[]> {
  // Rows find their call through its message id; a (never seen) repeated id could not tell them apart.
  if (new Set(calls.map((c) => c.message.id)).size !== calls.length) throw new Error("message ids repeat in a group");
  const ms = calls.map((c) => c.message);
  const ds = calls.flatMap((c) => c.deliveries.map((d) => ({ d, owner: c.message.id })));
  const os = calls.flatMap((c) => c.outbox.map((o) => ({ o, owner: c.message.id })));
  const [row] = await rows(pool, "hs_accept_messages", ACCEPT_GROUP_SQL, [
    ms.map((m) => m.id),
    ms.map((m) => m.workspaceId),
    ms.map((m) => m.eventType),
    ms.map((m) => toBuffer(m.payload)),
    ms.map((m) => m.contentType),
    ms.map((m) => m.idempotencyKey),
    ms.map((m) => m.payloadHash),
    ms.map((m) => m.createdAt.toISOString()),
    ds.map((x) => x.d.id),
    ds.map((x) => x.d.workspaceId),
    ds.map((x) => x.d.messageId),
    ds.map((x) => x.d.endpointId),
    ds.map((x) => x.d.eventType),
    ds.map((x) => x.d.status),
    ds.map((x) => x.d.attemptCount),
    ds.map((x) => x.d.nextAttemptAt?.toISOString() ?? null),
    ds.map((x) => x.d.lastResponseStatus),
    ds.map((x) => x.d.lastError),
    ds.map((x) => x.d.createdAt.toISOString()),
    ds.map((x) => x.d.updatedAt.toISOString()),
    ds.map((x) => x.owner),
    ...outboxArrays(os.map((x) => x.o)),
    os.map((x) => x.owner),
  ]);
  const created = new Set(row!["ids"] as string[]);
  return splitSeqs(
    calls.map((c) => (created.has(c.message.id) ? c.outbox : null)),
    row!["seqs"] as unknown[],
  );
}

/**
 * Hands each applied call its outbox rows with seqs: the statement inserted the applied calls' rows
 * in call order, and the sequence numbers them in that order.
 */
function splitSeqs(
  applied: readonly (readonly NewOutboxRecord[] | null)[],
  seqs: readonly unknown[],
): (OutboxRecord[] | null)[] {
  const all = withSeqs(
    applied.flatMap((o) => o ?? []),
    seqs,
  );
  let next = 0;
  return applied.map((o) => {
    if (o === null) return null;
    const mine = all.slice(next, next + o.length);
    next += o.length;
    return mine;
  });
}

/** One recordAttempt statement's input. */
export interface RecordInput {
  current: DeliveryRecord;
  change: DeliveryChange;
  attempt: AttemptRecord;
  outbox: readonly NewOutboxRecord[];
}

// One statement for any number of calls, a lone call included. Each call's update is conditional on
// the attempt count (a concurrent recorder of the same attempt waits for the row lock, re-checks, and
// updates nothing) and on the delivery's immutable columns being the ones the caller built the outbox
// rows from; RETURNING names the input row that applied (of several inputs for one delivery,
// PostgreSQL applies one and skips the rest). Attempts and outbox rows are inserted for applied input
// rows only. The attempt insert has no ON CONFLICT: an applied update moved attempt_count from
// number - 1 to number, and an attempt (delivery, number) is only ever written together with that
// move, while attempt_count never goes down; so a conflict would mean broken data, and it fails the
// statement as a whole (nothing written) with a unique violation, which a group of one hands to its
// caller and a larger group answers by running every call alone.
const RECORD_GROUP_SQL = `WITH v AS (
  SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::int[], $6::text[], $7::timestamptz[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[],
    $13::text[], $14::text[], $15::timestamptz[], $16::int[], $17::jsonb[], $18::int[], $19::jsonb[], $20::text[],
    $21::text[], $22::text[], $23::timestamptz[])
    WITH ORDINALITY AS v(id, number, status, next_attempt_at, last_response_status, last_error, updated_at,
      workspace_id, message_id, endpoint_id, event_type, created_at,
      a_id, a_workspace_id, started_at, latency_ms, request_headers, response_status, response_headers, response_body,
      error_kind, error_message, next_retry_at, ord)
), u AS (
  UPDATE delivery
  SET status = v.status, attempt_count = v.number, next_attempt_at = v.next_attempt_at,
    last_response_status = v.last_response_status, last_error = v.last_error, updated_at = v.updated_at
  FROM v
  WHERE delivery.id = v.id AND delivery.attempt_count = v.number - 1
    AND delivery.workspace_id = v.workspace_id AND delivery.message_id = v.message_id
    AND delivery.endpoint_id = v.endpoint_id AND delivery.event_type = v.event_type
    AND delivery.created_at = v.created_at
  RETURNING v.ord
), a AS (
  INSERT INTO attempt (id, workspace_id, delivery_id, number, started_at, latency_ms, request_headers, response_status,
    response_headers, response_body, error_kind, error_message, next_retry_at)
  SELECT a_id, a_workspace_id, id, number, started_at, latency_ms, request_headers, response_status,
    response_headers, response_body, error_kind, error_message, next_retry_at
  FROM v WHERE v.ord IN (SELECT ord FROM u)
), o AS (
  ${OUTBOX_INSERT}
    FROM ${outboxUnnest(24, "int")}
    WHERE t.owner IN (SELECT ord FROM u)
    ORDER BY t.ord
  RETURNING seq
)
SELECT ARRAY(SELECT ord FROM u) AS applied, ARRAY(SELECT seq FROM o) AS seqs`;

/**
 * One or several recordAttempt statements in one: per call, its outbox rows with seqs when its
 * update applied, null when it did not. Rows go in delivery id order, so two groups touching the
 * same deliveries lock them in the same order.
 */
export async function pgRecordAttempts(
  pool: PgPool,
  calls: readonly RecordInput[],
): Promise<(OutboxRecord[] | null)[]> {
  const order = calls.map((_, i) => i).sort((a, b) => compare(calls[a]!.current.id, calls[b]!.current.id));
  const sorted = order.map((i) => calls[i]!);
  // 1-based position of each call in `sorted`: its ordinality in the statement.
  const os = sorted.flatMap((c, i) => c.outbox.map((o) => ({ o, owner: i + 1 })));
  const [row] = await rows(pool, "hs_record_attempts", RECORD_GROUP_SQL, [
    sorted.map((c) => c.current.id),
    sorted.map((c) => c.change.attemptCount),
    sorted.map((c) => c.change.status),
    sorted.map((c) => c.change.nextAttemptAt?.toISOString() ?? null),
    sorted.map((c) => c.change.lastResponseStatus),
    sorted.map((c) => c.change.lastError),
    sorted.map((c) => c.change.updatedAt.toISOString()),
    sorted.map((c) => c.current.workspaceId),
    sorted.map((c) => c.current.messageId),
    sorted.map((c) => c.current.endpointId),
    sorted.map((c) => c.current.eventType),
    sorted.map((c) => c.current.createdAt.toISOString()),
    sorted.map((c) => c.attempt.id),
    sorted.map((c) => c.attempt.workspaceId),
    sorted.map((c) => c.attempt.startedAt.toISOString()),
    sorted.map((c) => c.attempt.latencyMs),
    sorted.map((c) => JSON.stringify(c.attempt.requestHeaders)),
    sorted.map((c) => c.attempt.responseStatus),
    sorted.map((c) => JSON.stringify(c.attempt.responseHeaders)),
    sorted.map((c) => c.attempt.responseBody),
    sorted.map((c) => c.attempt.errorKind),
    sorted.map((c) => c.attempt.errorMessage),
    sorted.map((c) => c.attempt.nextRetryAt?.toISOString() ?? null),
    ...outboxArrays(os.map((x) => x.o)),
    os.map((x) => x.owner),
  ]);
  const applied = new Set((row!["applied"] as unknown[]).map(Number));
  const outs = splitSeqs(
    sorted.map((c, i) => (applied.has(i + 1) ? c.outbox : null)),
    row!["seqs"] as unknown[],
  );
  const result: (OutboxRecord[] | null)[] = Array.from({ length: calls.length }, () => null);
  order.forEach((callIndex, i) => {
    result[callIndex] = outs[i]!;
  });
  return result;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
