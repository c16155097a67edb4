/**
 * Attempt status events without outbox rows. A worker publishes each recorded attempt's status
 * event straight after the commit, and the durable record of that publish is the attempt row
 * itself, tagged with the worker's status lease (`recordedBy`), and the lease row's watermark:
 * every attempt recorded under the lease that started before `settledBefore` has had its event
 * acknowledged by JetStream. The worker renews the lease every few seconds (one update per worker,
 * not per delivery); an event whose publish failed is kept in memory and published again at the
 * next renewal, holding the watermark back until it is in. A worker that dies leaves its lease to go
 * stale: the dispatcher then re-announces every attempt recorded under it since its watermark,
 * rebuilt from the attempt and its delivery as it is now, and drops the lease. Saves the outbox's
 * insert and delete of one row per attempt (2 of 6 row writes per delivery on PostgreSQL).
 *
 * Why nothing is lost: an attempt enters the worker's open set before it starts (so it pins the
 * watermark) and leaves it only when its event is acknowledged, or when it is certain the attempt
 * was not recorded. A record whose outcome is unknown (its statement failed) is looked up by its
 * attempt id once `doubtAfterMs` have passed. A worker records only while its last renewal is
 * younger than half the lease's stale age, so the dispatcher never re-announces and drops a lease
 * whose worker may still record under it.
 */
import { newId } from "./ids.ts";
import { statusRow } from "./outbox-rows.ts";
import type { OutboxPublisher } from "./ports.ts";
import type { AttemptRecord, DeliveryRecord, NewOutboxRecord } from "./records.ts";

/** A worker's lease as stored. */
export interface StatusLeaseRecord {
  id: string;
  settledBefore: Date;
  heartbeatAt: Date;
}

/** A recorded attempt with its delivery as it is now. */
export interface RecordedAttempt {
  attempt: AttemptRecord;
  delivery: DeliveryRecord;
}

/** The store port of status leases. */
export interface StatusLeaseStore {
  /** Writes the lease (creating it when missing) with its watermark and heartbeat. */
  renewStatusLease(id: string, settledBefore: Date, at: Date): Promise<void>;
  /** Deletes the lease when its heartbeat is still `heartbeatAt` (any, when undefined); true when deleted. */
  dropStatusLease(id: string, heartbeatAt?: Date): Promise<boolean>;
  /** Leases whose heartbeat is older than `heartbeatBefore`, oldest first. */
  staleStatusLeases(heartbeatBefore: Date, limit: number): Promise<StatusLeaseRecord[]>;
  /**
   * Attempts recorded under the lease that started at or after its watermark, in (startedAt, id)
   * order after `after`, each with its delivery.
   */
  unsettledAttempts(
    lease: StatusLeaseRecord,
    after: { startedAt: Date; id: string } | null,
    limit: number,
  ): Promise<RecordedAttempt[]>;
  /** One attempt with its delivery, or null when it was never recorded. */
  recordedAttempt(attemptId: string): Promise<RecordedAttempt | null>;
}

/**
 * The status event a recorded attempt stands for, rebuilt from its rows: the delivery as it is
 * now, with the attempt; null when a later attempt superseded it (that one has its own event).
 * A delivery acted on since (acknowledged, released for its retry, cancelled) is announced as it
 * is now, so a watcher's last word on it is never older than the database's.
 */
export function attemptStatusRow(recorded: RecordedAttempt, now: Date): NewOutboxRecord | null {
  const { attempt, delivery } = recorded;
  if (delivery.attemptCount !== attempt.number) return null;
  return statusRow(delivery, attempt, now);
}

/** An attempt of this worker that may be recorded under its lease. */
export interface AnnounceTicket {
  readonly startedAt: Date;
}

/** Options of createStatusAnnouncer. */
export interface StatusAnnouncerOptions {
  store: Pick<StatusLeaseStore, "renewStatusLease" | "dropStatusLease" | "recordedAttempt">;
  publisher: OutboxPublisher;
  logger: { warn(obj: object, msg: string): void };
  /** How often the lease is renewed and failed publishes retried; default 2 s. */
  renewIntervalMs?: number;
  /** When the dispatcher takes a lease over (see sweepStaleLeases); the worker stops recording at half of it. Default 60 s. */
  staleAfterMs?: number;
  /** How long after a failed record statement its attempt is looked up; default 30 s. */
  doubtAfterMs?: number;
}

/** The worker's side of status leases. */
export interface StatusAnnouncer {
  readonly leaseId: string;
  /** True while the lease was renewed recently enough that an attempt may be recorded under it. */
  canRecord(): boolean;
  /** An attempt is about to start: its start time holds the watermark until it is settled. */
  begin(startedAt: Date): AnnounceTicket;
  /** The attempt was certainly not recorded under the lease: nothing to announce. */
  settle(ticket: AnnounceTicket): void;
  /** The attempt was recorded: publishes its event, or keeps it for the next renewal when that fails. */
  announce(ticket: AnnounceTicket, row: NewOutboxRecord): Promise<void>;
  /** The record statement failed, so whether it committed is unknown: looked up by id later. */
  doubt(ticket: AnnounceTicket, attemptId: string): void;
  /** Writes the lease; attempts may be recorded once this has resolved. */
  start(): Promise<void>;
  /** Publishes what it can and drops the lease when nothing is left open; else leaves it to the dispatcher. */
  stop(): Promise<void>;
  /** One renewal round (the timer's; for tests). */
  renew(): Promise<void>;
}

/** An open attempt. */
interface Open {
  startedAt: number;
  row?: NewOutboxRecord | undefined;
  publishing?: boolean;
  doubt?: { attemptId: string; since: number } | undefined;
}

/** Creates a worker's status announcer with a lease of its own. */
export function createStatusAnnouncer(opts: StatusAnnouncerOptions): StatusAnnouncer {
  const leaseId = newId("statusLease");
  const renewIntervalMs = opts.renewIntervalMs ?? 2_000;
  const staleAfterMs = opts.staleAfterMs ?? 60_000;
  const doubtAfterMs = opts.doubtAfterMs ?? 30_000;
  // Clocks step back a little now and then; the watermark stays that far behind.
  const marginMs = 1_000;
  const open = new Map<AnnounceTicket, Open>();
  let renewedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> | undefined;
  let stopped = false;
  let warned = false;

  const settledBefore = (now: number): Date => {
    let min = now;
    for (const o of open.values()) if (o.startedAt < min) min = o.startedAt;
    return new Date(min - marginMs);
  };

  const publish = async (entries: [AnnounceTicket, Open][]): Promise<void> => {
    for (const [, o] of entries) o.publishing = true;
    try {
      await opts.publisher.publish(entries.map(([, o]) => o.row!));
      for (const [t] of entries) open.delete(t);
      warned = false;
    } catch (err) {
      if (!warned) opts.logger.warn({ err, events: entries.length }, "status event publish failed; retrying");
      warned = true;
    } finally {
      for (const [, o] of entries) o.publishing = false;
    }
  };

  const round = async (): Promise<void> => {
    const now = Date.now();
    // Doubts old enough that their statement has surely ended: recorded (announce it) or not (drop it).
    for (const [t, o] of open) {
      const doubt = o.doubt;
      if (doubt === undefined || now - doubt.since < doubtAfterMs) continue;
      try {
        const recorded = await opts.store.recordedAttempt(doubt.attemptId);
        const row = recorded === null ? null : attemptStatusRow(recorded, new Date());
        if (row === null) open.delete(t);
        else {
          o.doubt = undefined;
          o.row = row;
        }
      } catch (err) {
        opts.logger.warn({ err, attemptId: doubt.attemptId }, "could not look up an attempt whose record failed");
      }
    }
    const pending = [...open].filter(([, o]) => o.row !== undefined && o.publishing !== true);
    if (pending.length > 0) await publish(pending);
    const at = Date.now();
    await opts.store.renewStatusLease(leaseId, settledBefore(at), new Date(at));
    renewedAt = at;
  };

  const renew = (): Promise<void> => {
    renewing ??= round().finally(() => {
      renewing = undefined;
    });
    return renewing;
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      renew().then(
        () => schedule(),
        (err: unknown) => {
          opts.logger.warn({ err, leaseId }, "could not renew the status lease");
          schedule();
        },
      );
    }, renewIntervalMs);
    timer.unref();
  };

  return {
    leaseId,
    canRecord: () => Date.now() - renewedAt < staleAfterMs / 2,
    begin(startedAt) {
      const ticket: AnnounceTicket = { startedAt };
      open.set(ticket, { startedAt: startedAt.getTime() });
      return ticket;
    },
    settle(ticket) {
      open.delete(ticket);
    },
    async announce(ticket, row) {
      const o = open.get(ticket);
      if (o === undefined) return;
      o.row = row;
      await publish([[ticket, o]]);
    },
    doubt(ticket, attemptId) {
      const o = open.get(ticket);
      if (o !== undefined) o.doubt = { attemptId, since: Date.now() };
    },
    async start() {
      await renew();
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      try {
        await renew();
        if (open.size === 0) await opts.store.dropStatusLease(leaseId);
        else opts.logger.warn({ leaseId, open: open.size }, "status events left to the dispatcher");
      } catch (err) {
        opts.logger.warn({ err, leaseId }, "status lease left to the dispatcher");
      }
    },
    renew,
  };
}

/**
 * The dispatcher's side: re-announces what each stale lease (heartbeat older than `staleAfterMs`)
 * left unsettled, then drops it; returns how many events were published. A failed publish throws
 * and leaves the lease for the next round (the events' msgIds make a repeat harmless).
 */
export async function sweepStaleLeases(
  store: StatusLeaseStore,
  publisher: OutboxPublisher,
  now: Date,
  staleAfterMs: number,
  limit: number,
): Promise<number> {
  const stale = await store.staleStatusLeases(new Date(now.getTime() - staleAfterMs), 10);
  let published = 0;
  for (const lease of stale) {
    let after: { startedAt: Date; id: string } | null = null;
    for (;;) {
      const page = await store.unsettledAttempts(lease, after, limit);
      const rows = page.flatMap((r) => attemptStatusRow(r, now) ?? []);
      await publisher.publish(rows);
      published += rows.length;
      if (page.length < limit) break;
      const last = page[page.length - 1]!.attempt;
      after = { startedAt: last.startedAt, id: last.id };
    }
    await store.dropStatusLease(lease.id, lease.heartbeatAt);
  }
  return published;
}
