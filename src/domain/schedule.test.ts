import assert from "node:assert/strict";
import { test } from "node:test";
import { DomainError, Violations } from "./errors.ts";
import {
  MAX_SCHEDULE_AHEAD_MS,
  canonicalTimeZone,
  parseDelay,
  resolveLocalDateTime,
  resolveSchedule,
  type ScheduleInput,
} from "./schedule.ts";

const NOW = Date.parse("2027-01-10T12:00:00Z");
const DAY = 24 * 60 * 60 * 1000;

function resolve(input: ScheduleInput, nowMs = NOW) {
  const v = new Violations();
  const at = resolveSchedule(v, "schedule", input, nowMs);
  return { at: at?.toISOString() ?? null, violations: v.list };
}

test("no schedule means now, with no violations", () => {
  assert.deepEqual(resolve({}), { at: null, violations: [] });
});

test("deliver_in accepts single units and largest-first combinations", () => {
  assert.equal(parseDelay("30s"), 30_000);
  assert.equal(parseDelay("5m"), 300_000);
  assert.equal(parseDelay("2h"), 7_200_000);
  assert.equal(parseDelay("1d"), DAY);
  assert.equal(parseDelay("1h30m"), 5_400_000);
  assert.equal(parseDelay("1d2h3m4s"), DAY + 2 * 3_600_000 + 3 * 60_000 + 4000);
  assert.equal(parseDelay("90s"), 90_000);
  assert.deepEqual(resolve({ deliverIn: "1h30m" }), { at: "2027-01-10T13:30:00.000Z", violations: [] });
});

test("deliver_in refuses malformed, zero, negative and over-long delays with the caller's field name", () => {
  for (const bad of [
    "",
    "5",
    "m",
    "5 m",
    "5M",
    "-5m",
    "1.5h",
    "30m1h",
    "5m5m",
    "1w",
    "1h 30m",
    "P1D",
    "5ms",
    "1".repeat(40) + "s",
  ]) {
    assert.equal(parseDelay(bad), undefined, bad);
    const r = resolve({ deliverIn: bad });
    assert.equal(r.at, null);
    assert.equal(r.violations.length, 1, bad);
    assert.equal(r.violations[0]!.field, "schedule.deliver_in");
    assert.match(r.violations[0]!.description, /must be a delay like/);
  }
  assert.deepEqual(resolve({ deliverIn: "0s" }).violations, [
    { field: "schedule.deliver_in", description: "must be positive" },
  ]);
  assert.deepEqual(resolve({ deliverIn: "0d0h" }).violations, [
    { field: "schedule.deliver_in", description: "must be positive" },
  ]);
  assert.deepEqual(resolve({ deliverIn: "90d" }), {
    at: new Date(NOW + MAX_SCHEDULE_AHEAD_MS).toISOString(),
    violations: [],
  });
  assert.deepEqual(resolve({ deliverIn: "90d1s" }).violations, [
    { field: "schedule.deliver_in", description: "must be at most 90 days" },
  ]);
  assert.deepEqual(resolve({ deliverIn: "9999999d" }).violations, [
    { field: "schedule.deliver_in", description: "must be at most 90 days" },
  ]);
});

test("an empty field prefix gives bare field names", () => {
  const v = new Violations();
  resolveSchedule(v, "", { deliverIn: "nope" }, NOW);
  assert.equal(v.list[0]!.field, "deliver_in");
});

test("more than one form is a violation on each given field, and throwIfAny reports them all", () => {
  const v = new Violations();
  const at = resolveSchedule(
    v,
    "schedule",
    { deliverIn: "5m", deliverAt: NOW + 60_000, deliverAtLocal: "2027-01-11T09:00:00", timeZone: "Europe/Berlin" },
    NOW,
  );
  assert.equal(at, null);
  assert.deepEqual(
    v.list.map((x) => x.field),
    ["schedule.deliver_in", "schedule.deliver_at", "schedule.deliver_at_local"],
  );
  for (const x of v.list)
    assert.equal(x.description, "only one of deliver_in, deliver_at, deliver_at_local may be given");
  assert.throws(
    () => v.throwIfAny(),
    (e: unknown) => e instanceof DomainError && e.kind === "invalid_argument" && e.violations.length === 3,
  );
  assert.deepEqual(
    resolve({ deliverIn: "5m", deliverAt: new Date(NOW) }).violations.map((x) => x.field),
    ["schedule.deliver_in", "schedule.deliver_at"],
  );
});

test("deliver_at takes a Date or epoch ms; the future within 90 days is kept exactly", () => {
  assert.deepEqual(resolve({ deliverAt: new Date("2027-01-10T12:00:00.250Z") }), {
    at: "2027-01-10T12:00:00.250Z",
    violations: [],
  });
  assert.deepEqual(resolve({ deliverAt: NOW + 3_600_000 }), { at: "2027-01-10T13:00:00.000Z", violations: [] });
  assert.deepEqual(resolve({ deliverAt: NOW + MAX_SCHEDULE_AHEAD_MS }).violations, []);
  assert.deepEqual(resolve({ deliverAt: NOW + MAX_SCHEDULE_AHEAD_MS + 1 }).violations, [
    { field: "schedule.deliver_at", description: "must be at most 90 days ahead" },
  ]);
  assert.deepEqual(resolve({ deliverAt: Date.parse("2100-01-01T00:00:00Z") }).violations, [
    { field: "schedule.deliver_at", description: "must be at most 90 days ahead" },
  ]);
  for (const bad of [new Date("garbage"), Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.deepEqual(resolve({ deliverAt: bad }).violations, [
      { field: "schedule.deliver_at", description: "is not a valid time" },
    ]);
  }
});

test("a time up to one minute in the past means now; further back is invalid", () => {
  assert.deepEqual(resolve({ deliverAt: NOW }), { at: null, violations: [] });
  assert.deepEqual(resolve({ deliverAt: NOW - 60_000 }), { at: null, violations: [] });
  assert.deepEqual(resolve({ deliverAt: NOW - 60_001 }).violations, [
    { field: "schedule.deliver_at", description: "is in the past" },
  ]);
  assert.deepEqual(resolve({ deliverAt: 0 }).violations, [
    { field: "schedule.deliver_at", description: "is in the past" },
  ]);
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-10T12:59:30", timeZone: "Europe/Berlin" }), {
    at: null,
    violations: [],
  });
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-10T07:00:00", timeZone: "America/New_York" }), {
    at: null,
    violations: [],
  });
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-09T09:00:00", timeZone: "Europe/Berlin" }).violations, [
    { field: "schedule.deliver_at_local", description: "is in the past" },
  ]);
});

test("deliver_at_local resolves ordinary wall times in their zone, both sides of DST", () => {
  // Winter: Berlin UTC+1, New York UTC-5; summer: Berlin UTC+2, New York UTC-4.
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-11T09:00:00", timeZone: "Europe/Berlin" }), {
    at: "2027-01-11T08:00:00.000Z",
    violations: [],
  });
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-11T09:00", timeZone: "America/New_York" }), {
    at: "2027-01-11T14:00:00.000Z",
    violations: [],
  });
  const summer = Date.parse("2027-06-01T00:00:00Z");
  assert.equal(
    resolve({ deliverAtLocal: "2027-06-15T09:00:00", timeZone: "Europe/Berlin" }, summer).at,
    "2027-06-15T07:00:00.000Z",
  );
  assert.equal(
    resolve({ deliverAtLocal: "2027-06-15T09:00:00.5", timeZone: "America/New_York" }, summer).at,
    "2027-06-15T13:00:00.500Z",
  );
});

test("spring-forward gap: a nonexistent wall time resolves to the transition instant just after the gap", () => {
  // America/New_York springs from 02:00 EST to 03:00 EDT on 2027-03-14 (07:00Z).
  for (const t of ["2027-03-14T02:00:00", "2027-03-14T02:30:00", "2027-03-14T02:59:59.999"]) {
    assert.equal(new Date(resolveLocalDateTime(t, "America/New_York")!).toISOString(), "2027-03-14T07:00:00.000Z", t);
  }
  // Just before and just after the gap keep their ordinary meaning.
  assert.equal(
    new Date(resolveLocalDateTime("2027-03-14T01:59:00", "America/New_York")!).toISOString(),
    "2027-03-14T06:59:00.000Z",
  );
  assert.equal(
    new Date(resolveLocalDateTime("2027-03-14T03:00:00", "America/New_York")!).toISOString(),
    "2027-03-14T07:00:00.000Z",
  );
  assert.equal(
    new Date(resolveLocalDateTime("2027-03-14T03:30:00", "America/New_York")!).toISOString(),
    "2027-03-14T07:30:00.000Z",
  );
  // Europe/Berlin springs from 02:00 CET to 03:00 CEST on 2027-03-28 (01:00Z).
  const march = Date.parse("2027-03-01T00:00:00Z");
  assert.deepEqual(resolve({ deliverAtLocal: "2027-03-28T02:30:00", timeZone: "Europe/Berlin" }, march), {
    at: "2027-03-28T01:00:00.000Z",
    violations: [],
  });
});

test("fall-back overlap: a repeated wall time resolves to the earlier of its two instants", () => {
  // America/New_York falls back from 02:00 EDT to 01:00 EST on 2027-11-07: 01:30 happens at 05:30Z and 06:30Z.
  assert.equal(
    new Date(resolveLocalDateTime("2027-11-07T01:30:00", "America/New_York")!).toISOString(),
    "2027-11-07T05:30:00.000Z",
  );
  assert.equal(
    new Date(resolveLocalDateTime("2027-11-07T01:00:00", "America/New_York")!).toISOString(),
    "2027-11-07T05:00:00.000Z",
  );
  assert.equal(
    new Date(resolveLocalDateTime("2027-11-07T02:00:00", "America/New_York")!).toISOString(),
    "2027-11-07T07:00:00.000Z",
  );
  // Europe/Berlin falls back from 03:00 CEST to 02:00 CET on 2027-10-31: 02:30 happens at 00:30Z and 01:30Z.
  const october = Date.parse("2027-10-01T00:00:00Z");
  assert.deepEqual(resolve({ deliverAtLocal: "2027-10-31T02:30:00", timeZone: "Europe/Berlin" }, october), {
    at: "2027-10-31T00:30:00.000Z",
    violations: [],
  });
});

test("time zones are validated IANA names, canonicalised; offsets and unknown names are refused", () => {
  assert.equal(canonicalTimeZone("america/new_york"), "America/New_York");
  assert.equal(canonicalTimeZone("UTC"), "UTC");
  assert.equal(canonicalTimeZone("Europe/Berlin"), "Europe/Berlin");
  for (const bad of ["Mars/Olympus", "+05:00", "-0500", "Europe/", "", "x".repeat(100), "Europe/Berlin\n"]) {
    assert.equal(canonicalTimeZone(bad), undefined, JSON.stringify(bad));
  }
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-11T09:00:00", timeZone: "Mars/Olympus" }).violations, [
    { field: "schedule.time_zone", description: "is not a known IANA time zone" },
  ]);
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-11T09:00:00", timeZone: "+01:00" }).violations, [
    { field: "schedule.time_zone", description: "is not a known IANA time zone" },
  ]);
  assert.deepEqual(resolve({ deliverAtLocal: "2027-01-11T09:00:00" }).violations, [
    { field: "schedule.time_zone", description: "is required with deliver_at_local" },
  ]);
  assert.deepEqual(resolve({ timeZone: "Europe/Berlin" }).violations, [
    { field: "schedule.time_zone", description: "is only allowed with deliver_at_local" },
  ]);
  assert.deepEqual(resolve({ deliverIn: "5m", timeZone: "Europe/Berlin" }).violations, [
    { field: "schedule.time_zone", description: "is only allowed with deliver_at_local" },
  ]);
});

test("malformed local date-times are refused, including offsets and zones that would be silently dropped", () => {
  for (const bad of [
    "2027-03-14T02:30:00Z",
    "2027-03-14T02:30:00+01:00",
    "2027-03-14T02:30:00[Europe/Berlin]",
    "2027-03-14",
    "2027-03-14 02:30:00",
    "14.03.2027 02:30",
    "+002027-03-14T02:30:00",
    "2027-3-14T02:30:00",
    "",
    "2027-03-14T02:30:00.1234567890",
  ]) {
    assert.deepEqual(
      resolve({ deliverAtLocal: bad, timeZone: "Europe/Berlin" }).violations,
      [
        {
          field: "schedule.deliver_at_local",
          description: 'must be a local date-time without offset, like "2027-03-14T09:30:00"',
        },
      ],
      bad,
    );
  }
  for (const bad of ["2027-02-30T10:00:00", "2027-13-01T10:00:00", "2027-03-14T24:00:00", "2027-03-14T10:60:00"]) {
    assert.deepEqual(
      resolve({ deliverAtLocal: bad, timeZone: "Europe/Berlin" }).violations,
      [{ field: "schedule.deliver_at_local", description: "is not a valid date-time" }],
      bad,
    );
  }
  // A bad date and a bad zone are both reported at once.
  assert.deepEqual(
    resolve({ deliverAtLocal: "soon", timeZone: "Nowhere/Land" }).violations.map((x) => x.field),
    ["schedule.time_zone", "schedule.deliver_at_local"],
  );
});

test("far-future local times are refused at the 90-day limit", () => {
  assert.deepEqual(resolve({ deliverAtLocal: "2027-04-10T12:00:00", timeZone: "UTC" }).violations, []);
  assert.deepEqual(resolve({ deliverAtLocal: "2027-04-10T12:00:01", timeZone: "UTC" }).violations, [
    { field: "schedule.deliver_at_local", description: "must be at most 90 days ahead" },
  ]);
  assert.deepEqual(resolve({ deliverAtLocal: "9999-12-31T23:59:59", timeZone: "Pacific/Kiritimati" }).violations, [
    { field: "schedule.deliver_at_local", description: "must be at most 90 days ahead" },
  ]);
});
