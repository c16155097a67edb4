/**
 * The queue declarations of the schema (`option (hookstream.internal.v1.queue)` on each job kind
 * and event type), read once per message type: which stream carries it and whether that stream
 * is a work queue. Outbox rows and the generic consumer take their stream from here, so a new job
 * kind is a message in jobs.proto plus its handler.
 */
import { create, getOption, hasOption, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import {
  DeliveryJobSchema,
  DeliveryStatusEventSchema,
  queue as queueOption,
} from "../../gen/hookstream/internal/v1/jobs_pb.ts";
import type { NewOutboxRecord } from "./records.ts";

/** Where a message type travels. */
export interface QueueDeclaration {
  /** Lower-case stream key, e.g. "work". */
  stream: string;
  /** Work-queue stream of jobs (true) or event stream kept for its maximum age (false). */
  workQueue: boolean;
}

/** Every message type the queue layer carries; the streams are provisioned from this list. */
export const QUEUED_MESSAGES: readonly DescMessage[] = [DeliveryJobSchema, DeliveryStatusEventSchema];

const STREAM_KEY = /^[a-z][a-z0-9_]{0,31}$/;
const declared = new Map<string, QueueDeclaration>();

/** The queue declaration of a message type; throws when the schema declares none (a programming error). */
export function queueOf(schema: DescMessage): QueueDeclaration {
  let d = declared.get(schema.typeName);
  if (d !== undefined) return d;
  if (!hasOption(schema, queueOption)) throw new Error(`${schema.typeName} declares no (hookstream.internal.v1.queue)`);
  const { stream, workQueue } = getOption(schema, queueOption);
  if (!STREAM_KEY.test(stream)) throw new Error(`${schema.typeName} declares an invalid queue stream key "${stream}"`);
  d = { stream, workQueue };
  declared.set(schema.typeName, d);
  return d;
}

/** The streams of all queued message types, each once (kinds sharing a stream must agree on its kind). */
export function declaredStreams(): QueueDeclaration[] {
  const byKey = new Map<string, QueueDeclaration>();
  for (const schema of QUEUED_MESSAGES) {
    const d = queueOf(schema);
    const seen = byKey.get(d.stream);
    if (seen !== undefined && seen.workQueue !== d.workQueue)
      throw new Error(`stream "${d.stream}" is declared both as a work queue and as an event stream`);
    byKey.set(d.stream, d);
  }
  return [...byKey.values()];
}

/** What an outbox row needs besides the message: its subject within the stream and its dedupe id. */
export interface OutboxAddress {
  workspaceId: string;
  /** Subject after "<PREFIX>.<stream>."; one or more dot-separated tokens. */
  subject: string;
  /** JetStream Nats-Msg-Id, so a re-publish is deduplicated. */
  msgId: string;
}

/** An outbox row carrying `message`, on the stream its type declares. */
export function outboxRow<S extends DescMessage>(
  schema: S,
  message: MessageInitShape<S>,
  at: OutboxAddress,
  now: Date,
): NewOutboxRecord {
  return {
    stream: queueOf(schema).stream,
    subject: at.subject,
    workspaceId: at.workspaceId,
    msgId: at.msgId,
    payload: toBinary(schema, create(schema, message)),
    createdAt: now,
  };
}
