import { isIdOf, type IdKind } from "./ids.ts";
import type { Violations } from "./errors.ts";

const EVENT_TYPE = /^[A-Za-z0-9._:/-]{1,128}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
/** Header names a producer may not set: they are ours, or they break HTTP framing. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-connection",
  "user-agent",
]);

/** Checks an id field: present and of the right kind (existence is checked by the caller). */
export function checkId(v: Violations, field: string, kind: IdKind, value: string): void {
  if (value === "") v.add(field, "is required");
  else if (!isIdOf(kind, value)) v.add(field, `is not a valid ${kind} id`);
}

/** Checks an event type name like "order.paid". */
export function checkEventType(v: Violations, field: string, value: string): void {
  if (value === "") v.add(field, "is required");
  else if (!EVENT_TYPE.test(value)) v.add(field, 'must be 1 to 128 characters of letters, digits and "._-:/"');
}

/** Checks an endpoint URL: absolute http(s), no credentials, at most 2048 characters. */
export function checkEndpointUrl(v: Violations, field: string, value: string): void {
  if (value === "") {
    v.add(field, "is required");
    return;
  }
  if (value.length > 2048) {
    v.add(field, "must be at most 2048 characters");
    return;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    v.add(field, "is not an absolute URL");
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") v.add(field, "must use http or https");
  else if (url.hostname === "") v.add(field, "must name a host");
  else if (url.username !== "" || url.password !== "") v.add(field, "must not contain credentials");
  else if (url.hash !== "") v.add(field, "must not contain a fragment");
}

/** Checks a string's length. */
export function checkLength(v: Violations, field: string, value: string, max: number): void {
  if (value.length > max) v.add(field, `must be at most ${max} characters`);
}

/** Checks a string map: entry count, key and value sizes. */
export function checkStringMap(
  v: Violations,
  field: string,
  map: Record<string, string>,
  limits: { maxEntries: number; maxKey: number; maxValue: number },
): void {
  const keys = Object.keys(map);
  if (keys.length > limits.maxEntries) v.add(field, `must have at most ${limits.maxEntries} entries`);
  for (const k of keys) {
    if (k === "" || k.length > limits.maxKey)
      v.add(`${field}[${JSON.stringify(k)}]`, `key must be 1 to ${limits.maxKey} characters`);
    if (map[k]!.length > limits.maxValue)
      v.add(`${field}[${JSON.stringify(k)}]`, `value must be at most ${limits.maxValue} characters`);
  }
}

/** Checks custom HTTP headers: valid names, no CR/LF, none of the reserved or webhook-* names. */
export function checkHeaders(v: Violations, field: string, headers: Record<string, string>): void {
  const keys = Object.keys(headers);
  if (keys.length > 32) v.add(field, "must have at most 32 entries");
  for (const name of keys) {
    const at = `${field}[${JSON.stringify(name)}]`;
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name)) v.add(at, "is not a valid HTTP header name");
    else if (RESERVED_HEADERS.has(lower) || lower.startsWith("webhook-"))
      v.add(at, "is set by Hookstream and cannot be overridden");
    const value = headers[name]!;
    if (/[\r\n\0]/.test(value)) v.add(at, "value must not contain CR, LF or NUL");
    else if (value.length > 4096) v.add(at, "value must be at most 4096 characters");
  }
}

/** Checks an idempotency key: at most 256 printable ASCII characters. */
export function checkIdempotencyKey(v: Violations, field: string, value: string): void {
  if (value.length > 256) v.add(field, "must be at most 256 characters");
  else if (!/^[\x21-\x7e]*$/.test(value)) v.add(field, "must be printable ASCII without spaces");
}

/** A field mask path in proto spelling: "eventTypes" (the JSON spelling) becomes "event_types". */
export function snakeCase(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
