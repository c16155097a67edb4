/**
 * The JetStream streams the schema declares (one per queue stream key of hookstream.internal.v1)
 * and their subjects, and their provisioning. Provisioning goes through jetstreamManager here and
 * nowhere else; publishers and consumers only use them.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig as JsStreamConfig,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { DomainError } from "../domain/errors.ts";
import { declaredStreams } from "../domain/queue-kinds.ts";

/** Stream names and subjects of one installation (the prefix lets several share a server). */
export interface StreamNames {
  prefix: string;
  /** JetStream stream of a declared stream key ("work" → "<PREFIX>_WORK"). */
  stream(key: string): string;
  /** Full subject of `subject` within the stream `key` ("<PREFIX>.<key>.<subject>"). */
  subject(key: string, subject: string): string;
  /** Every subject of the stream `key`, or those matching `subjectFilter` within it. */
  filter(key: string, subjectFilter?: string): string;
  /** Work-queue stream of DeliveryJob messages. */
  work: string;
  /** Status stream of DeliveryStatusEvent messages, one subject per workspace. */
  status: string;
  /** Subject of a workspace's delivery jobs. */
  workSubject(workspaceId: string): string;
  /** Subject of a workspace's status events. */
  statusSubject(workspaceId: string): string;
  /** Every subject of the work stream. */
  workFilter: string;
  /** Filter selecting one workspace's status events. */
  statusFilter(workspaceId: string): string;
}

/** Names for a stream prefix (HOOKSTREAM_STREAM_PREFIX). */
export function streamNames(prefix: string): StreamNames {
  const stream = (key: string): string => `${prefix}_${key.toUpperCase()}`;
  const subject = (key: string, rest: string): string => `${prefix}.${key}.${rest}`;
  const filter = (key: string, subjectFilter = ">"): string => `${prefix}.${key}.${subjectFilter}`;
  return {
    prefix,
    stream,
    subject,
    filter,
    work: stream("work"),
    status: stream("status"),
    workSubject: (ws) => subject("work", ws),
    statusSubject: (ws) => subject("status", ws),
    workFilter: filter("work"),
    statusFilter: (ws) => filter("status", ws),
  };
}

/** Options of ensureStreams. */
export interface EnsureStreamsOptions {
  /** How long status events stay resumable; default 7 days. */
  statusMaxAgeMs?: number;
  /** Window in which a re-published Nats-Msg-Id is dropped; default 2 minutes. */
  duplicateWindowMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_STATUS_MAX_AGE_MS = 7 * DAY_MS;
const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

/**
 * Creates every declared stream (work queues and event streams), or updates them to the wanted configuration; safe to
 * run from every process at every start. Throws DomainError("unavailable") when NATS or
 * JetStream cannot be reached, with the cause.
 */
export async function ensureStreams(
  nc: NatsConnection,
  names: StreamNames,
  opts: EnsureStreamsOptions = {},
): Promise<void> {
  const statusMaxAgeMs = opts.statusMaxAgeMs ?? DEFAULT_STATUS_MAX_AGE_MS;
  // The server rejects a duplicate window longer than max_age.
  const duplicateWindowMs = Math.min(opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS, statusMaxAgeMs);
  const configs = declaredStreams().map(({ stream, workQueue }): StreamConfig => ({
    ...baseConfig(),
    name: names.stream(stream),
    subjects: [names.filter(stream)],
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    ...(workQueue
      ? // A job leaves the stream once a worker acks it; retries are rows in the database.
        {
          retention: RetentionPolicy.Workqueue,
          max_age: 0,
          duplicate_window: nanos(opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
        }
      : {
          retention: RetentionPolicy.Limits,
          max_age: nanos(statusMaxAgeMs),
          duplicate_window: nanos(duplicateWindowMs),
        }),
  }));
  try {
    const jsm = await jetstreamManager(nc);
    for (const config of configs) await ensureStream(jsm, config);
  } catch (cause) {
    throw new DomainError("unavailable", "QUEUE_UNAVAILABLE", `cannot provision JetStream streams: ${message(cause)}`, {
      cause,
    });
  }
}

type StreamConfig = Partial<JsStreamConfig> & Pick<JsStreamConfig, "name" | "retention" | "storage">;

/** Limits we leave at the server's "unlimited" defaults, spelled out so an update compares. */
function baseConfig(): Pick<
  StreamConfig,
  "max_msgs" | "max_bytes" | "max_msg_size" | "max_msgs_per_subject" | "num_replicas"
> {
  return { max_msgs: -1, max_bytes: -1, max_msg_size: -1, max_msgs_per_subject: -1, num_replicas: 1 };
}

async function ensureStream(jsm: JetStreamManager, wanted: StreamConfig): Promise<void> {
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(wanted.name)).config;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    try {
      await jsm.streams.add(wanted);
      return;
    } catch (addErr) {
      // Another process created it between our info and add: fall through to an update.
      if (!(addErr instanceof JetStreamApiError) || addErr.code !== STREAM_NAME_IN_USE) throw addErr;
      current = (await jsm.streams.info(wanted.name)).config;
    }
  }
  for (const fixed of ["retention", "storage"] as const) {
    if (current[fixed] !== wanted[fixed]) {
      throw new Error(
        `stream ${wanted.name} has ${fixed} ${String(current[fixed])}, expected ${String(wanted[fixed])}; ` +
          "JetStream cannot change it in place: delete the stream or choose another HOOKSTREAM_STREAM_PREFIX",
      );
    }
  }
  if (differs(current, wanted)) {
    const { name, ...update } = wanted;
    await jsm.streams.update(name, update);
  }
}

/** JSStreamNameExistErr: "stream name already in use with a different configuration". */
const STREAM_NAME_IN_USE = 10058;

function differs(current: StreamConfig, wanted: StreamConfig): boolean {
  for (const [key, value] of Object.entries(wanted)) {
    const have: unknown = (current as unknown as Record<string, unknown>)[key];
    if (JSON.stringify(have) !== JSON.stringify(value)) return true;
  }
  return false;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
