/** Durations as people write them: `30s`, `5m`, `2h`, `1d`, `1h30m`, `1.5s`, `250ms`. */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { ClientInputError } from "./errors.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a duration string; throws ClientInputError (naming `field`) when it is not one. */
export function parseDuration(text: string, field = "duration"): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? 0);
    matched = re.lastIndex;
  }
  if (text === "" || matched !== text.length) {
    throw new ClientInputError(field, `${JSON.stringify(text)} is not a duration such as 30s, 5m, 2h, 1d or 1h30m`);
  }
  return total;
}

/** Milliseconds of a protobuf Duration. */
export function durationMs(d: Duration): number {
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** The shortest `1h30m`-style spelling of whole seconds (what the server's deliver_in takes). */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join("");
}
