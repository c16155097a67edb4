import type { MessageLister } from "../../domain/message-list.ts";
import type { ScheduledMessages } from "../../domain/message-schedule.ts";
import {
  DEFAULT_IDEMPOTENCY_TTL_MS,
  type AcceptOutcome,
  type MessageIntake,
  type MessageReader,
} from "../../domain/messages.ts";
import type { DeliveryRecord, MessageRecord, NewOutboxRecord, OutboxRecord } from "../../domain/records.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { deliveryRecord, messageRecord, toBuffer } from "../record-mappers.ts";
import { DETACHED, type Em, type StoreContext } from "../store-context.ts";
import { isUniqueViolation } from "../store-errors.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { IdempotencyKey } from "./idempotency-key.entity.ts";
import { Message } from "./message.entity.ts";
import { createPgAcceptMessage } from "./pg-message-intake.ts";
import { createMessageListRepository } from "./message-list-repository.ts";
import { createScheduledMessageRepository } from "./scheduled-message-repository.ts";

/** Messages: intake (Send), reads (GetMessage) and schedule changes (Cancel/RescheduleMessage). */
export interface MessageStore extends MessageIntake, MessageReader, ScheduledMessages, MessageLister {}

/**
 * Writes one accepted message with its deliveries and outbox rows, and its idempotency key row
 * (unless `keyExpiresAt` is null); null when the key is held by a live row.
 */
export type AcceptWriter = (
  message: MessageRecord,
  deliveries: readonly DeliveryRecord[],
  outbox: readonly NewOutboxRecord[],
  keyExpiresAt: Date | null,
) => Promise<OutboxRecord[] | null>;

/**
 * When the key row of `message` expires: the caller's time, none (null) for generated "auto_" keys,
 * else the default TTL after the message was accepted.
 */
export function keyExpiryOf(message: MessageRecord, keyExpiresAt: Date | null | undefined): Date | null {
  if (keyExpiresAt !== undefined) return keyExpiresAt;
  if (message.idempotencyKey.startsWith("auto_")) return null;
  return new Date(message.createdAt.getTime() + DEFAULT_IDEMPOTENCY_TTL_MS);
}

/** Writes several accepted messages in one transaction; per message its outbox rows, or null when its key is taken. */
export type BatchAcceptWriter = (
  calls: readonly {
    message: MessageRecord;
    deliveries: readonly DeliveryRecord[];
    outbox: readonly NewOutboxRecord[];
    keyExpiresAt: Date | null;
  }[],
) => Promise<(OutboxRecord[] | null)[]>;

/** The message (and its key row) on `em`, inside the caller's transaction. */
export async function insertAccepted(
  em: Em,
  message: MessageRecord,
  deliveries: readonly DeliveryRecord[],
  keyExpiresAt: Date | null,
): Promise<void> {
  await em.insert(Message, { ...message, payload: toBuffer(message.payload) });
  if (keyExpiresAt !== null) {
    // An expired key is taken over; a live one makes the insert fail on the primary key (→ taken).
    const where = { workspaceId: message.workspaceId, key: message.idempotencyKey };
    const took = await em.nativeUpdate(
      IdempotencyKey,
      { ...where, expiresAt: { $lte: message.createdAt } },
      { messageId: message.id, expiresAt: keyExpiresAt, createdAt: message.createdAt },
    );
    if (took === 0) {
      await em.insert(IdempotencyKey, {
        ...where,
        messageId: message.id,
        expiresAt: keyExpiresAt,
        createdAt: message.createdAt,
      });
    }
  }
  if (deliveries.length > 0) await em.insertMany(Delivery, [...deliveries]);
}

/** The reference batch accept: one MikroORM transaction for every message. */
function ormAcceptBatch(ctx: StoreContext): BatchAcceptWriter {
  return async (calls) => {
    const done = await unitOfWork(ctx, async (em) => {
      for (const c of calls) await insertAccepted(em, c.message, c.deliveries, c.keyExpiresAt);
      return { value: true, outbox: calls.flatMap((c) => c.outbox) };
    });
    // Outbox rows come back in input order: hand each call its own.
    let at = 0;
    return calls.map((c) => {
      const rows = done!.outbox.slice(at, at + c.outbox.length);
      at += c.outbox.length;
      return rows;
    });
  };
}

/** The reference accept: one MikroORM transaction (both databases). */
function ormAccept(ctx: StoreContext): AcceptWriter {
  return async (message, deliveries, outbox, keyExpiresAt) => {
    const done = await unitOfWork(ctx, async (em) => {
      await insertAccepted(em, message, deliveries, keyExpiresAt);
      return { value: true, outbox };
    });
    return done === null ? null : done.outbox;
  };
}

/**
 * Creates the message repository. With `overrides` on PostgreSQL, accepting goes through the
 * group-committed statement of pg-message-intake.ts (~700 → ~1,200 deliveries/s in the
 * foundation's bench); everything else is the MikroORM reference on both databases.
 */
export function createMessageRepository(ctx: StoreContext, overrides: boolean): MessageStore {
  const pgWriter = ctx.pg && overrides ? createPgAcceptMessage(ctx) : undefined;
  const write: AcceptWriter = pgWriter ?? ormAccept(ctx);
  const writeBatch: BatchAcceptWriter = pgWriter?.batch ?? ormAcceptBatch(ctx);

  const findMessageByIdempotencyKey = async (
    workspaceId: string,
    key: string,
    now: Date = new Date(),
  ): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] } | null> =>
    ctx.run(async (em) => {
      const live = await em.findOne(IdempotencyKey, { workspaceId, key, expiresAt: { $gt: now } }, DETACHED);
      if (live === null) return null;
      const row = await em.findOne(Message, { id: live.messageId, workspaceId }, DETACHED);
      if (row === null) return null;
      const deliveries = await em.find(
        Delivery,
        { workspaceId, messageId: row.id },
        { ...DETACHED, orderBy: { id: "asc" } },
      );
      return { message: messageRecord(row), deliveries: deliveries.map(deliveryRecord) };
    });

  const taken = async (message: MessageRecord, cause?: unknown): Promise<{ outcome: AcceptOutcome; outbox: [] }> => {
    const existing = await findMessageByIdempotencyKey(message.workspaceId, message.idempotencyKey, message.createdAt);
    if (existing === null) {
      if (cause instanceof Error) throw cause;
      throw new Error(`idempotency key ${message.idempotencyKey} is taken by no message`, { cause });
    }
    return { outcome: { created: false, existing: existing.message, deliveries: existing.deliveries }, outbox: [] };
  };

  return {
    ...createScheduledMessageRepository(ctx),
    ...createMessageListRepository(ctx),
    findMessageByIdempotencyKey,

    async acceptMessage(
      message: MessageRecord,
      deliveries: DeliveryRecord[],
      outbox: NewOutboxRecord[],
      keyExpiresAt?: Date | null,
    ): Promise<{ outcome: AcceptOutcome; outbox: OutboxRecord[] }> {
      try {
        const rows = await write(message, deliveries, outbox, keyExpiryOf(message, keyExpiresAt));
        // Skipped because the key is taken (ON CONFLICT DO NOTHING): the same answer as a unique violation.
        if (rows === null) return await taken(message);
        return { outcome: { created: true }, outbox: rows };
      } catch (error) {
        // The unique (workspace, idempotency key) decided the race: the transaction is rolled back
        // and the winner's message is the answer.
        if (!isUniqueViolation(error)) throw error;
        return taken(message, error);
      }
    },

    async acceptMessages(batch) {
      const accept = this.acceptMessage.bind(this);
      let written: (OutboxRecord[] | null)[];
      try {
        written = await writeBatch(batch);
      } catch (error) {
        // A key taken by a racing request (or repeated within the batch) rolled the transaction
        // back: the messages are then accepted one by one, each answered on its own.
        if (!isUniqueViolation(error)) throw error;
        const out: { outcome: AcceptOutcome; outbox: OutboxRecord[] }[] = [];
        for (const c of batch) out.push(await accept(c.message, c.deliveries, c.outbox, c.keyExpiresAt));
        return out;
      }
      const out: { outcome: AcceptOutcome; outbox: OutboxRecord[] }[] = [];
      for (const [i, rows] of written.entries()) {
        out.push(rows === null ? await taken(batch[i]!.message) : { outcome: { created: true }, outbox: rows });
      }
      return out;
    },

    async getMessage(workspaceId: string, id: string): Promise<MessageRecord | null> {
      const row = await ctx.run((em) => em.findOne(Message, { id, workspaceId }, DETACHED));
      return row === null ? null : messageRecord(row);
    },

    async listDeliveriesOfMessage(workspaceId: string, messageId: string): Promise<DeliveryRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(Delivery, { workspaceId, messageId }, { ...DETACHED, orderBy: { id: "asc" } }),
      );
      return rows.map(deliveryRecord);
    },
  };
}
