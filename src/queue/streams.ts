/**
 * The two JetStream streams and their subjects, and their provisioning. Provisioning goes
 * through jetstreamManager here and nowhere else; publishers and consumers only use them.
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

/** Stream names and subjects of one installation (the prefix lets several share a server). */
export interface StreamNames {
  prefix: string;
  /** Work-queue stream of DeliveryJob messages. */
  work: string;
  /** Status stream of DeliveryStatusEvent messages, one subject per workspace. */
  status: string;
  /** Subject of a workspace's delivery jobs. */
  workSubject(workspaceId: string): string;
  /** Subject of a workspace's status events. */
  statusSubject(workspaceId: string): string;
  /** Every subject of the work stream (the job consumer's filter). */
  workFilter: string;
  /** Filter selecting one workspace's status events. */
  statusFilter(workspaceId: string): string;
}

/** Names for a stream prefix (HOOKSTREAM_STREAM_PREFIX). */
export function streamNames(prefix: string): StreamNames {
  return {
    prefix,
    work: `${prefix}_WORK`,
    status: `${prefix}_STATUS`,
    workSubject: (ws) => `${prefix}.work.${ws}`,
    statusSubject: (ws) => `${prefix}.status.${ws}`,
    workFilter: `${prefix}.work.>`,
    statusFilter: (ws) => `${prefix}.status.${ws}`,
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
 * Creates the work and status streams, or updates them to the wanted configuration; safe to
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
  const work: StreamConfig = {
    ...baseConfig(),
    name: names.work,
    subjects: [names.workFilter],
    // A job leaves the stream once a worker acks it; retries are rows in the database.
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: 0,
    duplicate_window: nanos(opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
  };
  const status: StreamConfig = {
    ...baseConfig(),
    name: names.status,
    subjects: [`${names.prefix}.status.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(statusMaxAgeMs),
    duplicate_window: nanos(duplicateWindowMs),
  };
  try {
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, work);
    await ensureStream(jsm, status);
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
