/**
 * The shared state of per-endpoint rate limits: a NATS KV bucket (a JetStream stream in the KV
 * layout, `KV_<prefix>_rate_limits`, one subject per endpoint, one message kept per subject), so
 * every worker process of an installation takes tokens from the same bucket. Each take is a
 * compare-and-set: read the endpoint's last state, publish the new one expecting that state's
 * sequence, and start over when another worker wrote in between.
 *
 * Why NATS and not the database: NATS is in every deployment (PostgreSQL and SQLite alike), the
 * limiter's writes stay off the database's hot path, and a lost state (NATS replaced, or the
 * key aged out after a day of quiet) is a full bucket, which is the state it would be in anyway
 * after a day without deliveries.
 */
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  takeToken,
  type BucketState,
  type RateLimit,
  type SharedRateLimiter,
  type TakeResult,
} from "../domain/rate-limit.ts";
import { DomainError } from "../domain/errors.ts";

/** Options of createNatsRateLimiter. */
export interface NatsRateLimiterOptions {
  nc: NatsConnection;
  /** HOOKSTREAM_STREAM_PREFIX. */
  prefix: string;
  /** Clock; default Date.now. */
  now?: () => number;
}

/** Compare-and-set rounds before a take gives up (then the job is handed back briefly). */
const MAX_ROUNDS = 50;
/** A key not written for a day is dropped: by then its bucket would be full anyway. */
const KEY_MAX_AGE_MS = 24 * 3_600_000;

/** The KV bucket's name for a stream prefix. */
export function rateLimitBucketName(prefix: string): string {
  return `${prefix}_rate_limits`;
}

/** Creates the bucket if needed and returns the limiter over it. */
export async function createNatsRateLimiter(opts: NatsRateLimiterOptions): Promise<SharedRateLimiter> {
  const { nc } = opts;
  const now = opts.now ?? Date.now;
  const bucket = rateLimitBucketName(opts.prefix);
  const stream = `KV_${bucket}`;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  try {
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    const config = {
      name: stream,
      subjects: [`$KV.${bucket}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      max_msgs_per_subject: 1,
      max_age: nanos(KEY_MAX_AGE_MS),
      allow_rollup_hdrs: true,
      deny_delete: true,
      allow_direct: true,
      num_replicas: 1,
    };
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
      // Two workers racing here: the identical second add succeeds as well.
      await jsm.streams.add(config);
    }
  } catch (cause) {
    throw new DomainError("unavailable", "QUEUE_UNAVAILABLE", `cannot provision the rate limit bucket ${bucket}`, {
      cause,
    });
  }

  const subjectOf = (endpointId: string): string => `$KV.${bucket}.${endpointId}`;

  // Takes of one endpoint in this process run one after another, so compare-and-set only ever
  // races other processes.
  const queues = new Map<string, Promise<unknown>>();
  const serially = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = queues.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    queues.set(key, tail);
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key);
    });
    return run;
  };

  async function takeOnce(endpointId: string, limit: RateLimit): Promise<TakeResult> {
    const subject = subjectOf(endpointId);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const last = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
        throw err;
      });
      const state = last === null ? undefined : (JSON.parse(new TextDecoder().decode(last.data)) as BucketState);
      const next = takeToken(state, limit, now());
      try {
        await js.publish(subject, JSON.stringify(next.state), {
          expect: { lastSubjectSequence: last?.seq ?? 0 },
        });
        return next.result;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) continue;
        throw err;
      }
    }
    throw new DomainError(
      "unavailable",
      "RATE_LIMIT_CONTENDED",
      `rate limit of ${endpointId}: too many concurrent takes`,
    );
  }

  return {
    take: (endpointId, limit) => serially(endpointId, () => takeOnce(endpointId, limit)),
  };
}
