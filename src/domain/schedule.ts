import { Temporal } from "temporal-polyfill";
import type { Violations } from "./errors.ts";

/**
 * The longest a message may be held back, whichever way its time is given: long enough for
 * "remind me next quarter", short enough that a typo ("9000d") is caught at Send, not found a
 * decade later in the retry table.
 */
export const MAX_SCHEDULE_AHEAD_MS = 90 * 24 * 60 * 60 * 1000;

/**
 * How far in the past an absolute time may be and still be accepted (as "deliver now"): a
 * producer computing "now + 0" on a clock a little behind ours must not get an error, but a
 * time clearly in the past is a bug in the caller and is refused.
 */
export const PAST_TOLERANCE_MS = 60 * 1000;

/**
 * When a producer wants a message delivered; at most one form may be given, none means now.
 * Absolute times are instants (a Date or epoch milliseconds, UTC); a local wall-clock time comes
 * with the IANA zone that gives it meaning.
 */
export interface ScheduleInput {
  readonly deliverIn?: string | undefined;
  readonly deliverAt?: Date | number | undefined;
  readonly deliverAtLocal?: string | undefined;
  readonly timeZone?: string | undefined;
}

const DURATION = /^(?:(\d{1,7})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,11})s)?$/;
// An ISO 8601 local date-time, nothing more: Temporal's parser would accept (and silently drop)
// an offset or a bracketed zone, which would make "10:00+05:00" mean 10:00 in time_zone.
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?$/;
// IANA names start with a letter; this refuses the "+05:00" offsets Temporal also takes as zones.
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/;

/**
 * Parses a relative delay like "30s", "5m", "2h", "1d" or "1h30m" into milliseconds. Units
 * appear at most once each, largest first (d, h, m, s), so every delay has one spelling and
 * "5m5m" is an error rather than ten minutes. Returns undefined for anything else.
 */
export function parseDelay(text: string): number | undefined {
  if (text === "" || text.length > 32) return undefined;
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Number(s ?? 0) * 1000;
}

/**
 * Checks that `zone` is an IANA time zone Temporal knows, returning its canonical spelling
 * ("america/new_york" → "America/New_York") or undefined.
 */
export function canonicalTimeZone(zone: string): string | undefined {
  if (!ZONE_NAME.test(zone)) return undefined;
  try {
    return Temporal.PlainDate.from("2000-01-01").toZonedDateTime(zone).timeZoneId;
  } catch {
    return undefined;
  }
}

/**
 * Resolves a wall-clock time in an IANA zone to the instant it names, with one fixed answer for
 * the two hours a year where the wall clock is ambiguous:
 * - in a spring-forward gap (02:30 on 2027-03-14 in America/New_York never happens) the time
 *   resolves to the first instant after the gap, i.e. the transition itself (03:00 EDT =
 *   07:00Z). Every time in the gap maps there, so later wall times never resolve earlier. This
 *   is deliberately not Temporal's "compatible", which would shift 02:30 by the gap to 03:30.
 * - in a fall-back overlap (01:30 on 2027-11-07 happens twice) the earlier of the two
 *   instants wins (01:30 EDT = 05:30Z), so the message goes out at the first 01:30.
 * Returns undefined when the text is not a valid local date-time.
 */
export function resolveLocalDateTime(local: string, zone: string): number | undefined {
  if (!LOCAL_DATE_TIME.test(local)) return undefined;
  let wall: Temporal.PlainDateTime;
  try {
    wall = Temporal.PlainDateTime.from(local, { overflow: "reject" });
  } catch {
    return undefined;
  }
  const earlier = wall.toZonedDateTime(zone, { disambiguation: "earlier" });
  // Outside a gap the earlier candidate shows the same wall time; inside one it is shifted back.
  if (Temporal.PlainDateTime.compare(earlier.toPlainDateTime(), wall) === 0) return earlier.epochMilliseconds;
  const transition = earlier.getTimeZoneTransition("next");
  return (transition ?? wall.toZonedDateTime(zone, { disambiguation: "later" })).epochMilliseconds;
}

/**
 * Turns a Send/Trigger schedule into the UTC instant the message becomes due, or null for
 * "deliver now". Rules: at most one of deliver_in / deliver_at / deliver_at_local (each one
 * given when more are is a violation); deliver_in is a positive delay of at most 90 days;
 * absolute times must be within 90 days ahead; a time in the past by at most a minute means
 * now (clock skew), further in the past is invalid; deliver_at_local needs time_zone (and
 * time_zone alone is an error, it would be silently meaningless). `field` is the caller's
 * prefix ("schedule" gives "schedule.deliver_in"; "" gives "deliver_in"). Violations go to `v`
 * and the result is then null: the caller must `throwIfAny()` before using it.
 */
export function resolveSchedule(v: Violations, field: string, input: ScheduleInput, nowMs: number): Date | null {
  const name = (sub: string) => (field === "" ? sub : `${field}.${sub}`);
  const given: string[] = [];
  if (input.deliverIn !== undefined) given.push("deliver_in");
  if (input.deliverAt !== undefined) given.push("deliver_at");
  if (input.deliverAtLocal !== undefined) given.push("deliver_at_local");
  if (given.length > 1) {
    for (const g of given) v.add(name(g), `only one of ${given.join(", ")} may be given`);
    return null;
  }
  if (input.timeZone !== undefined && input.deliverAtLocal === undefined) {
    v.add(name("time_zone"), "is only allowed with deliver_at_local");
    return null;
  }
  if (input.deliverIn !== undefined) {
    const delay = parseDelay(input.deliverIn);
    if (delay === undefined) v.add(name("deliver_in"), 'must be a delay like "30s", "5m", "2h", "1d" or "1h30m"');
    else if (delay <= 0) v.add(name("deliver_in"), "must be positive");
    else if (delay > MAX_SCHEDULE_AHEAD_MS) v.add(name("deliver_in"), "must be at most 90 days");
    else return new Date(nowMs + delay);
    return null;
  }
  if (input.deliverAt !== undefined) {
    const at = typeof input.deliverAt === "number" ? input.deliverAt : input.deliverAt.getTime();
    if (!Number.isFinite(at)) {
      v.add(name("deliver_at"), "is not a valid time");
      return null;
    }
    return checkInstant(v, name("deliver_at"), at, nowMs);
  }
  if (input.deliverAtLocal !== undefined) {
    const zone = input.timeZone === undefined || input.timeZone === "" ? undefined : canonicalTimeZone(input.timeZone);
    if (input.timeZone === undefined || input.timeZone === "")
      v.add(name("time_zone"), "is required with deliver_at_local");
    else if (zone === undefined) v.add(name("time_zone"), "is not a known IANA time zone");
    if (!LOCAL_DATE_TIME.test(input.deliverAtLocal)) {
      v.add(name("deliver_at_local"), 'must be a local date-time without offset, like "2027-03-14T09:30:00"');
      return null;
    }
    if (zone === undefined) return null;
    const at = resolveLocalDateTime(input.deliverAtLocal, zone);
    if (at === undefined) {
      v.add(name("deliver_at_local"), "is not a valid date-time");
      return null;
    }
    return checkInstant(v, name("deliver_at_local"), at, nowMs);
  }
  return null;
}

function checkInstant(v: Violations, field: string, at: number, nowMs: number): Date | null {
  if (at < nowMs - PAST_TOLERANCE_MS) v.add(field, "is in the past");
  else if (at > nowMs + MAX_SCHEDULE_AHEAD_MS) v.add(field, "must be at most 90 days ahead");
  else if (at > nowMs) return new Date(at);
  return null;
}
