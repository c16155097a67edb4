import { LockMode, type MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/sql";
import { FINAL_STATUSES } from "../domain/records.ts";
import type {
  ApiKeyRecord,
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
  OutboxRecord,
  PageQuery,
  WorkspaceRecord,
} from "../domain/records.ts";
import type {
  AcceptOutcome,
  AttemptContext,
  AttemptOutcome,
  DeliveryFilter,
  EndpointPatch,
  Store,
} from "../domain/ports.ts";
import { ApiKey, Attempt, Delivery, Endpoint, Message, Outbox, Workspace } from "./entities/index.ts";
import {
  apiKeyRecord,
  attemptRecord,
  deliveryRecord,
  endpointRecord,
  messageRecord,
  outboxInsert,
  outboxRecord,
  toBuffer,
  workspaceRecord,
} from "./record-mappers.ts";
import {
  type AcceptInput,
  type DeliveryChange,
  type PgPool,
  type RecordInput,
  createAttemptContextLoader,
  createGroupCommitter,
  pgAcceptMessages,
  pgDelivery,
  pgDeleteOutbox,
  pgFindApiKeyByHash,
  pgFindMessageByIdempotencyKey,
  pgFindWorkspaceByTokenHash,
  pgGetEndpoint,
  pgPendingOutbox,
  pgRecordAttempts,
} from "./pg-fast-path.ts";
import { isBusyError, isUniqueViolation, translateStoreError } from "./store-errors.ts";

/** The ORM type the store runs on: one of the SQL drivers. */
export type SqlOrm = MikroORM<AbstractSqlDriver, SqlEntityManager>;

/** A Store bound to its ORM, which callers may use for health checks and shutdown. */
export interface OpenedStore extends Store {
  readonly orm: SqlOrm;
}

type Em = SqlEntityManager;

const NON_FINAL: DeliveryStatusName[] = ["scheduled", "queued", "delivering", "awaiting_ack", "pending_retry"];
const DUE: DeliveryStatusName[] = ["pending_retry", "scheduled"];
const ENDPOINT_DELETED = "endpoint deleted";

// Rows read only to be mapped to records stay out of the identity map, so the commit-time
// flush has nothing to diff.
const DETACHED = { disableIdentityMap: true } as const;

/** Thrown inside a transaction to roll it back and hand a value out of it. */
class Rollback<T> extends Error {
  readonly value: T;
  constructor(value: T) {
    super("rollback");
    this.value = value;
  }
}

function keyset(order: "asc" | "desc", afterId: string | undefined): { id?: { $lt: string } | { $gt: string } } {
  if (afterId === undefined || afterId === "") return {};
  return { id: order === "desc" ? { $lt: afterId } : { $gt: afterId } };
}

function limitOf(page: PageQuery): number {
  return Math.max(1, Math.min(1000, Math.trunc(page.limit)));
}

// SQLite busy retries: a whole call is re-run while another process holds the write lock, with a
// jittered backoff, for at most this long (the busy_timeout wait inside SQLite comes on top).
const BUSY_RETRY_MS = 5_000;
const BUSY_BACKOFF_MIN_MS = 5;
const BUSY_BACKOFF_MAX_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const IMMUTABLE_DELIVERY_FIELDS = ["workspaceId", "messageId", "endpointId", "eventType"] as const;

function sameDeliveryIdentity(a: DeliveryRecord, b: DeliveryRecord): boolean {
  return (
    a.id === b.id &&
    IMMUTABLE_DELIVERY_FIELDS.every((f) => a[f] === b[f]) &&
    a.createdAt.getTime() === b.createdAt.getTime()
  );
}

/**
 * The Store port on MikroORM: each call forks its own EntityManager; hot paths use batched
 * native inserts and conditional updates instead of the unit of work's change tracking. On
 * PostgreSQL the hottest calls bypass the ORM for single raw statements (pg-fast-path.ts).
 */
export class MikroStore implements OpenedStore {
  readonly orm: SqlOrm;
  readonly #pg: boolean;
  readonly #loadContext: (deliveryId: string) => Promise<AttemptContext | null>;
  /** Outbox rows with seqs, or null when the idempotency key was taken (then nothing was written). */
  readonly #accept: (call: AcceptInput) => Promise<OutboxRecord[] | null>;
  /** Outbox rows with seqs, or null when the conditional update did not apply. */
  readonly #record: (call: RecordInput) => Promise<OutboxRecord[] | null>;

  constructor(orm: SqlOrm) {
    this.orm = orm;
    this.#pg = orm.config.get("driver")?.name === "PostgreSqlDriver";
    this.#loadContext = createAttemptContextLoader(() => this.#pool());
    // Group commit on PostgreSQL: concurrent writers share one statement (see createGroupCommitter);
    // a lone call is a group of one.
    this.#accept = createGroupCommitter(() => this.#pool(), pgAcceptMessages);
    this.#record = createGroupCommitter(() => this.#pool(), pgRecordAttempts);
  }

  async #run<T>(fn: (em: Em) => Promise<T>): Promise<T> {
    try {
      if (this.#pg) return await fn(this.orm.em.fork());
      return await this.#retryBusy(() => fn(this.orm.em.fork()));
    } catch (error) {
      throw translateStoreError(error);
    }
  }

  /**
   * SQLite, several processes on one file: a statement or transaction that meets another process's
   * write lock fails with SQLITE_BUSY and changed nothing, so it is re-run after a short jittered
   * backoff, for a bounded time. (Transactions start with BEGIN IMMEDIATE, see orm-options.ts, so a
   * busy error cannot strike half-way through one.)
   */
  async #retryBusy<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + BUSY_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (!isBusyError(error) || Date.now() >= deadline) throw error;
        const cap = Math.min(BUSY_BACKOFF_MAX_MS, BUSY_BACKOFF_MIN_MS * 2 ** attempt);
        await sleep(Math.min(deadline - Date.now(), BUSY_BACKOFF_MIN_MS + Math.random() * cap));
      }
    }
  }

  /** Runs raw statements on MikroORM's own pg pool (PostgreSQL only). */
  async #raw<T>(fn: (pool: PgPool) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.#pool());
    } catch (error) {
      throw translateStoreError(error);
    }
  }

  async #pool(): Promise<PgPool> {
    return (await this.orm.driver.getConnection().getNativeClient()) as PgPool;
  }

  async #tx<T>(fn: (em: Em) => Promise<T>): Promise<T> {
    return this.#run((em) => em.transactional((tem) => fn(tem)));
  }

  async #insertOutbox(em: Em, rows: readonly NewOutboxRecord[]): Promise<OutboxRecord[]> {
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

  /** @inheritdoc */
  async ping(): Promise<void> {
    await this.#run((em) => em.execute("select 1"));
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    await this.orm.close(true);
  }

  /** @inheritdoc */
  async createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void> {
    await this.#run((em) => em.insert(Workspace, { ...ws, managementTokenHash }));
  }

  /** @inheritdoc */
  async findWorkspaceByTokenHash(managementTokenHash: string): Promise<WorkspaceRecord | null> {
    if (this.#pg) return this.#raw((pool) => pgFindWorkspaceByTokenHash(pool, managementTokenHash));
    const row = await this.#run((em) => em.findOne(Workspace, { managementTokenHash }, DETACHED));
    return row === null ? null : workspaceRecord(row);
  }

  /** @inheritdoc */
  async createApiKey(key: ApiKeyRecord, secretHash: string): Promise<void> {
    await this.#run((em) => em.insert(ApiKey, { ...key, secretHash }));
  }

  /** @inheritdoc */
  async findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | null> {
    if (this.#pg) return this.#raw((pool) => pgFindApiKeyByHash(pool, secretHash));
    const row = await this.#run((em) => em.findOne(ApiKey, { secretHash }, DETACHED));
    return row === null ? null : apiKeyRecord(row);
  }

  /** @inheritdoc */
  async listApiKeys(workspaceId: string, page: PageQuery): Promise<ApiKeyRecord[]> {
    const rows = await this.#run((em) =>
      em.find(
        ApiKey,
        { workspaceId, ...keyset("desc", page.afterId) },
        { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
      ),
    );
    return rows.map(apiKeyRecord);
  }

  /** @inheritdoc */
  async revokeApiKey(workspaceId: string, id: string, at: Date): Promise<ApiKeyRecord | null> {
    return this.#tx(async (em) => {
      const row = await em.findOne(ApiKey, { id, workspaceId }, DETACHED);
      if (row === null) return null;
      const key = apiKeyRecord(row);
      if (key.revokedAt !== null) return key;
      const changed = await em.nativeUpdate(ApiKey, { id, workspaceId, revokedAt: null }, { revokedAt: at });
      if (changed === 0) {
        const again = await em.findOne(ApiKey, { id, workspaceId }, DETACHED);
        return again === null ? null : apiKeyRecord(again);
      }
      return { ...key, revokedAt: at };
    });
  }

  /** @inheritdoc */
  async createEndpoint(ep: EndpointRecord): Promise<void> {
    await this.#run((em) => em.insert(Endpoint, { ...ep, deletedAt: null }));
  }

  /** @inheritdoc */
  async getEndpoint(workspaceId: string, id: string): Promise<EndpointRecord | null> {
    if (this.#pg) return this.#raw((pool) => pgGetEndpoint(pool, workspaceId, id));
    const row = await this.#run((em) => em.findOne(Endpoint, { id, workspaceId, deletedAt: null }, DETACHED));
    return row === null ? null : endpointRecord(row);
  }

  /** @inheritdoc */
  async listEndpoints(workspaceId: string, page: PageQuery): Promise<EndpointRecord[]> {
    const rows = await this.#run((em) =>
      em.find(
        Endpoint,
        { workspaceId, deletedAt: null, ...keyset("desc", page.afterId) },
        { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
      ),
    );
    return rows.map(endpointRecord);
  }

  /** @inheritdoc */
  async updateEndpoint(
    workspaceId: string,
    id: string,
    patch: EndpointPatch,
    at: Date,
  ): Promise<EndpointRecord | null> {
    return this.#tx(async (em) => {
      const where = { id, workspaceId, deletedAt: null };
      const row = await em.findOne(Endpoint, where, { ...DETACHED, lockMode: this.#lock(LockMode.PESSIMISTIC_WRITE) });
      if (row === null) return null;
      const changes: EndpointPatch & { updatedAt: Date } = { updatedAt: at };
      for (const [key, value] of Object.entries(patch) as [keyof EndpointPatch, unknown][]) {
        if (value !== undefined) Object.assign(changes, { [key]: value });
      }
      await em.nativeUpdate(Endpoint, where, changes);
      return { ...endpointRecord(row), ...changes };
    });
  }

  /** @inheritdoc */
  async deleteEndpoint(
    workspaceId: string,
    id: string,
    at: Date,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null> {
    return this.#tx(async (em) => {
      const deleted = await em.nativeUpdate(
        Endpoint,
        { id, workspaceId, deletedAt: null },
        { deletedAt: at, updatedAt: at },
      );
      if (deleted === 0) return null;
      // Locked so a worker recording an attempt cannot finalise a row we are about to cancel.
      const open = await em.find(
        Delivery,
        { workspaceId, endpointId: id, status: { $in: NON_FINAL } },
        { ...DETACHED, orderBy: { id: "asc" }, lockMode: this.#lock(LockMode.PESSIMISTIC_WRITE) },
      );
      const cancelled = open.map((row) => this.#cancelled(deliveryRecord(row), ENDPOINT_DELETED, at));
      if (cancelled.length > 0) {
        await em.nativeUpdate(
          Delivery,
          { id: { $in: cancelled.map((d) => d.id) } },
          { status: "cancelled", nextAttemptAt: null, lastError: ENDPOINT_DELETED, updatedAt: at },
        );
      }
      return { cancelled, outbox: await this.#insertOutbox(em, cancelled.flatMap(outbox)) };
    });
  }

  /** @inheritdoc */
  async findMessageByIdempotencyKey(
    workspaceId: string,
    key: string,
  ): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] } | null> {
    if (this.#pg) return this.#raw((pool) => pgFindMessageByIdempotencyKey(pool, workspaceId, key));
    return this.#run(async (em) => {
      const row = await em.findOne(Message, { workspaceId, idempotencyKey: key }, DETACHED);
      if (row === null) return null;
      const deliveries = await em.find(
        Delivery,
        { workspaceId, messageId: row.id },
        { ...DETACHED, orderBy: { id: "asc" } },
      );
      return { message: messageRecord(row), deliveries: deliveries.map(deliveryRecord) };
    });
  }

  /** @inheritdoc */
  async acceptMessage(
    message: MessageRecord,
    deliveries: DeliveryRecord[],
    outbox: NewOutboxRecord[],
  ): Promise<{ outcome: AcceptOutcome; outbox: OutboxRecord[] }> {
    try {
      if (this.#pg) {
        const rows = await this.#raw(() => this.#accept({ message, deliveries, outbox }));
        if (rows !== null) return { outcome: { created: true }, outbox: rows };
        // Skipped because the key is taken (ON CONFLICT DO NOTHING): the same answer as below.
        const existing = await this.findMessageByIdempotencyKey(message.workspaceId, message.idempotencyKey);
        if (existing === null) throw new Error(`idempotency key ${message.idempotencyKey} is taken by no message`);
        return { outcome: { created: false, existing: existing.message, deliveries: existing.deliveries }, outbox: [] };
      }
      return await this.#tx(async (em) => {
        await em.insert(Message, { ...message, payload: toBuffer(message.payload) });
        if (deliveries.length > 0) await em.insertMany(Delivery, deliveries);
        return { outcome: { created: true } as const, outbox: await this.#insertOutbox(em, outbox) };
      });
    } catch (error) {
      // The unique (workspace, idempotency key) decided the race: the transaction is rolled back
      // and the winner's message is the answer.
      if (!isUniqueViolation(error)) throw error;
      const existing = await this.findMessageByIdempotencyKey(message.workspaceId, message.idempotencyKey);
      if (existing === null) throw error;
      return { outcome: { created: false, existing: existing.message, deliveries: existing.deliveries }, outbox: [] };
    }
  }

  /** @inheritdoc */
  async getMessage(workspaceId: string, id: string): Promise<MessageRecord | null> {
    const row = await this.#run((em) => em.findOne(Message, { id, workspaceId }, DETACHED));
    return row === null ? null : messageRecord(row);
  }

  /** @inheritdoc */
  async listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]> {
    const rows = await this.#run((em) =>
      em.find(Delivery, { workspaceId, messageId }, { ...DETACHED, orderBy: { id: "asc" } }),
    );
    return rows.map(deliveryRecord);
  }

  /** @inheritdoc */
  async getDelivery(workspaceId: string, id: string): Promise<DeliveryRecord | null> {
    const row = await this.#run((em) => em.findOne(Delivery, { id, workspaceId }, DETACHED));
    return row === null ? null : deliveryRecord(row);
  }

  /** @inheritdoc */
  async listDeliveries(workspaceId: string, filter: DeliveryFilter, page: PageQuery): Promise<DeliveryRecord[]> {
    const rows = await this.#run((em) =>
      em.find(
        Delivery,
        {
          workspaceId,
          ...(filter.endpointId === undefined ? {} : { endpointId: filter.endpointId }),
          ...(filter.messageId === undefined ? {} : { messageId: filter.messageId }),
          ...(filter.statuses === undefined || filter.statuses.length === 0
            ? {}
            : { status: { $in: [...filter.statuses] } }),
          ...keyset("desc", page.afterId),
        },
        { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
      ),
    );
    return rows.map(deliveryRecord);
  }

  /** @inheritdoc */
  async listAttempts(workspaceId: string, deliveryId: string, page: PageQuery): Promise<AttemptRecord[]> {
    const rows = await this.#run((em) =>
      em.find(
        Attempt,
        { workspaceId, deliveryId, ...keyset("asc", page.afterId) },
        { ...DETACHED, orderBy: { id: "asc" }, limit: limitOf(page) },
      ),
    );
    return rows.map(attemptRecord);
  }

  /** @inheritdoc */
  async pendingOutbox(createdBefore: Date, limit: number): Promise<OutboxRecord[]> {
    if (this.#pg) return this.#raw((pool) => pgPendingOutbox(pool, createdBefore, Math.max(1, Math.trunc(limit))));
    const rows = await this.#run((em) =>
      em.find(
        Outbox,
        { createdAt: { $lte: createdBefore } },
        { ...DETACHED, orderBy: { seq: "asc" }, limit: Math.max(1, Math.trunc(limit)) },
      ),
    );
    return rows.map(outboxRecord);
  }

  /** @inheritdoc */
  async deleteOutbox(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    if (this.#pg) return this.#raw((pool) => pgDeleteOutbox(pool, seqs));
    await this.#run((em) => em.nativeDelete(Outbox, { seq: { $in: [...seqs] } }));
  }

  /** @inheritdoc */
  async releaseDue(
    now: Date,
    limit: number,
    outbox: (released: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ released: DeliveryRecord[]; outbox: OutboxRecord[] }> {
    return this.#tx(async (em) => {
      // SKIP LOCKED on PostgreSQL: concurrent dispatchers claim disjoint rows without waiting.
      const due = await em.find(
        Delivery,
        { status: { $in: DUE }, nextAttemptAt: { $lte: now } },
        {
          ...DETACHED,
          orderBy: { nextAttemptAt: "asc", id: "asc" },
          limit: Math.max(1, Math.trunc(limit)),
          lockMode: this.#lock(LockMode.PESSIMISTIC_PARTIAL_WRITE),
        },
      );
      if (due.length === 0) return { released: [], outbox: [] };
      const released = due.map((row): DeliveryRecord => ({
        ...deliveryRecord(row),
        status: "queued",
        nextAttemptAt: null,
        updatedAt: now,
      }));
      await em.nativeUpdate(
        Delivery,
        { id: { $in: released.map((d) => d.id) }, status: { $in: DUE } },
        { status: "queued", nextAttemptAt: null, updatedAt: now },
      );
      return { released, outbox: await this.#insertOutbox(em, released.flatMap(outbox)) };
    });
  }

  /** @inheritdoc */
  async loadAttemptContext(deliveryId: string): Promise<AttemptContext | null> {
    // Concurrent jobs of a worker share one query (see createAttemptContextLoader).
    if (this.#pg) return this.#raw(() => this.#loadContext(deliveryId));
    return this.#run(async (em) => {
      const row = await em.findOne(Delivery, { id: deliveryId }, DETACHED);
      if (row === null) return null;
      // Two forks so the two reads run at once on PostgreSQL's pool.
      const [message, endpoint] = await Promise.all([
        em.fork().findOne(Message, { id: row.messageId }, DETACHED),
        em.fork().findOne(Endpoint, { id: row.endpointId, deletedAt: null }, DETACHED),
      ]);
      if (message === null) return null;
      return {
        delivery: deliveryRecord(row),
        message: messageRecord(message),
        endpoint: endpoint === null ? null : endpointRecord(endpoint),
      };
    });
  }

  /** @inheritdoc */
  async recordAttempt(
    outcome: AttemptOutcome,
  ): Promise<{ applied: boolean; delivery: DeliveryRecord; outbox: OutboxRecord[] }> {
    if (this.#pg) return this.#raw((pool) => this.#pgRecordAttempt(pool, outcome));
    const { attempt } = outcome;
    const notApplied = async (): Promise<{ applied: false; delivery: DeliveryRecord; outbox: OutboxRecord[] }> => {
      const row = await this.#run((em) => em.findOne(Delivery, { id: attempt.deliveryId }, DETACHED));
      if (row === null) throw new Error(`delivery ${attempt.deliveryId} does not exist`);
      return { applied: false, delivery: deliveryRecord(row), outbox: [] };
    };
    try {
      return await this.#tx(async (em) => {
        const row = await em.findOne(Delivery, { id: attempt.deliveryId }, DETACHED);
        if (row === null || row.attemptCount !== attempt.number - 1) {
          throw new Rollback(row === null ? null : deliveryRecord(row));
        }
        const change = {
          status: outcome.delivery.status,
          attemptCount: attempt.number,
          nextAttemptAt: outcome.delivery.nextAttemptAt,
          lastResponseStatus: outcome.delivery.lastResponseStatus,
          lastError: outcome.delivery.lastError,
          updatedAt: outcome.delivery.updatedAt,
        };
        // Conditional on the count we read: a concurrent recorder of the same attempt loses here.
        const updated = await em.nativeUpdate(
          Delivery,
          { id: attempt.deliveryId, attemptCount: attempt.number - 1 },
          change,
        );
        if (updated === 0) throw new Rollback(null);
        await em.insert(Attempt, attempt);
        const delivery: DeliveryRecord = { ...deliveryRecord(row), ...change };
        return { applied: true, delivery, outbox: await this.#insertOutbox(em, outcome.outbox(delivery)) };
      });
    } catch (error) {
      if (error instanceof Rollback) {
        const value = error.value as DeliveryRecord | null;
        return value === null ? notApplied() : { applied: false, delivery: value, outbox: [] };
      }
      if (isUniqueViolation(error)) return notApplied();
      throw error;
    }
  }

  /** @inheritdoc */
  async cancelDelivery(
    deliveryId: string,
    reason: string,
    at: Date,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ delivery: DeliveryRecord; outbox: OutboxRecord[] } | null> {
    return this.#tx(async (em) => {
      const row = await em.findOne(
        Delivery,
        { id: deliveryId },
        { ...DETACHED, lockMode: this.#lock(LockMode.PESSIMISTIC_WRITE) },
      );
      if (row === null || FINAL_STATUSES.has(row.status)) return null;
      const updated = await em.nativeUpdate(
        Delivery,
        { id: deliveryId, status: { $in: NON_FINAL } },
        { status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at },
      );
      if (updated === 0) return null;
      const delivery = this.#cancelled(deliveryRecord(row), reason, at);
      return { delivery, outbox: await this.#insertOutbox(em, outbox(delivery)) };
    });
  }

  // One statement when the caller says which delivery it loaded (outcome.expected), else a read and
  // one statement; the statement's conditions make it atomic without a transaction.
  async #pgRecordAttempt(
    pool: PgPool,
    outcome: AttemptOutcome,
  ): Promise<{ applied: boolean; delivery: DeliveryRecord; outbox: OutboxRecord[] }> {
    const { attempt } = outcome;
    const change: DeliveryChange = {
      status: outcome.delivery.status,
      attemptCount: attempt.number,
      nextAttemptAt: outcome.delivery.nextAttemptAt,
      lastResponseStatus: outcome.delivery.lastResponseStatus,
      lastError: outcome.delivery.lastError,
      updatedAt: outcome.delivery.updatedAt,
    };
    const read = async (): Promise<DeliveryRecord> => {
      const row = await pgDelivery(pool, attempt.deliveryId);
      if (row === null) throw new Error(`delivery ${attempt.deliveryId} does not exist`);
      return row;
    };
    let current = outcome.expected?.id === attempt.deliveryId ? outcome.expected : undefined;
    for (let tries = 0; tries < 2; tries++) {
      if (current === undefined) {
        current = await read();
        if (current.attemptCount !== attempt.number - 1) return { applied: false, delivery: current, outbox: [] };
      }
      const delivery: DeliveryRecord = { ...current, ...change };
      try {
        const outbox = await this.#record({ current, change, attempt, outbox: outcome.outbox(delivery) });
        if (outbox !== null) return { applied: true, delivery, outbox };
      } catch (error) {
        // (delivery, number) already recorded: a concurrent or earlier recorder won.
        if (!isUniqueViolation(error)) throw error;
        return { applied: false, delivery: await read(), outbox: [] };
      }
      const now = await read();
      // Not applied because the count moved on (the usual case), or because the caller's expected
      // row was not this delivery's: then once more from the row as it is.
      if (now.attemptCount !== attempt.number - 1 || sameDeliveryIdentity(now, current)) {
        return { applied: false, delivery: now, outbox: [] };
      }
      current = now;
    }
    return { applied: false, delivery: await read(), outbox: [] };
  }

  #cancelled(d: DeliveryRecord, reason: string, at: Date): DeliveryRecord {
    return { ...d, status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at };
  }

  // SQLite ignores lock modes anyway, but asking for none keeps its SQL plain.
  #lock(
    mode: LockMode.PESSIMISTIC_WRITE | LockMode.PESSIMISTIC_PARTIAL_WRITE,
  ): LockMode.NONE | LockMode.PESSIMISTIC_WRITE | LockMode.PESSIMISTIC_PARTIAL_WRITE {
    return this.#pg ? mode : LockMode.NONE;
  }
}
