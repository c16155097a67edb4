/**
 * A small, strict JSON scanner over UTF-8 bytes (RFC 8259) that finds where values are, without
 * building them: the API uses it to take the producer's exact text of a request member (the
 * `payload` of a Connect JSON Send) instead of re-serializing what JSON.parse made of it.
 *
 * It works on bytes, so a span is exactly the bytes that arrived: every structural character of
 * JSON is ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII. It never recurses per
 * nesting level (an explicit stack), so hostile nesting costs memory bounded by the input only.
 * Bytes ≥ 0x80 inside strings are passed through; check a span with `isUtf8` before using it.
 */

/** Malformed JSON, with the byte offset where scanning stopped. */
export class JsonSyntaxError extends Error {
  readonly offset: number;
  constructor(what: string, offset: number) {
    super(`${what} at byte ${offset}`);
    this.name = "JsonSyntaxError";
    this.offset = offset;
  }
}

/** A value's bytes: `bytes.subarray(start, end)`. */
export interface JsonSpan {
  readonly start: number;
  readonly end: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length && isWs(b[i]!)) i++;
  return i;
}

function unexpected(b: Uint8Array, i: number): JsonSyntaxError {
  if (i >= b.length) return new JsonSyntaxError("unexpected end of JSON", i);
  const c = b[i]!;
  const shown = c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, "0")}`;
  return new JsonSyntaxError(`unexpected ${shown}`, i);
}

function expect(b: Uint8Array, i: number, c: number): number {
  if (b[i] !== c) throw unexpected(b, i);
  return i + 1;
}

/** End of the string starting at `i` (which must be a quote). */
function skipString(b: Uint8Array, i: number): number {
  i = expect(b, i, QUOTE);
  for (;;) {
    if (i >= b.length) throw new JsonSyntaxError("unterminated string", i);
    const c = b[i]!;
    if (c === QUOTE) return i + 1;
    if (c < 0x20) throw new JsonSyntaxError("control character in string", i);
    if (c !== BACKSLASH) {
      i++;
      continue;
    }
    const e = b[i + 1];
    if (e === 0x75) {
      // \uXXXX
      for (let k = 2; k < 6; k++) if (!isHex(b[i + k])) throw new JsonSyntaxError("bad \\u escape", i);
      i += 6;
    } else if (
      e === QUOTE ||
      e === BACKSLASH ||
      e === 0x2f ||
      e === 0x62 ||
      e === 0x66 ||
      e === 0x6e ||
      e === 0x72 ||
      e === 0x74
    ) {
      i += 2;
    } else {
      throw new JsonSyntaxError("bad escape", i);
    }
  }
}

function skipDigits(b: Uint8Array, i: number): number {
  if (!isDigit(b[i])) throw unexpected(b, i);
  while (isDigit(b[i])) i++;
  return i;
}

function skipNumber(b: Uint8Array, i: number): number {
  if (b[i] === MINUS) i++;
  if (b[i] === ZERO) i++;
  else i = skipDigits(b, i);
  if (b[i] === DOT) i = skipDigits(b, i + 1);
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === PLUS || b[i] === MINUS) i++;
    i = skipDigits(b, i);
  }
  return i;
}

const literals = ["true", "false", "null"].map((w) => Buffer.from(w, "latin1"));

function skipScalar(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c === MINUS || isDigit(c)) return skipNumber(b, i);
  for (const word of literals) {
    if (c === word[0]) {
      for (let k = 1; k < word.length; k++) if (b[i + k] !== word[k]) throw unexpected(b, i + k);
      return i + word.length;
    }
  }
  throw unexpected(b, i);
}

/** After a member's key: whitespace, colon, whitespace; returns where its value starts. */
function skipColon(b: Uint8Array, i: number): number {
  return skipWs(b, expect(b, skipWs(b, i), COLON));
}

/**
 * End of the JSON value starting at `i` (no leading whitespace). Validates it; iterative, so
 * nesting depth is limited by the input size only.
 */
export function skipJsonValue(b: Uint8Array, i: number): number {
  const stack: number[] = []; // CLOSE_OBJECT or CLOSE_ARRAY, one per open container
  for (;;) {
    // A value starts at i.
    const c = b[i];
    let afterValue = true;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      i = skipWs(b, i + 1);
      if (b[i] === close) {
        i++;
      } else {
        stack.push(close);
        if (close === CLOSE_OBJECT) i = skipColon(b, skipString(b, i));
        afterValue = false;
      }
    } else {
      i = skipScalar(b, i);
    }
    if (!afterValue) continue;
    // A value ended at i: close containers or move on to the next element.
    for (;;) {
      const top = stack.at(-1);
      if (top === undefined) return i;
      i = skipWs(b, i);
      const d = b[i];
      if (d === top) {
        stack.pop();
        i++;
        continue;
      }
      if (d !== COMMA) throw unexpected(b, i);
      i = skipWs(b, i + 1);
      if (top === CLOSE_OBJECT) i = skipColon(b, skipString(b, i));
      break;
    }
  }
}

/** True when the bytes are one JSON text: one value with optional whitespace around it. */
export function isJsonText(b: Uint8Array): boolean {
  return jsonTextError(b) === undefined;
}

/** Why the bytes are not one JSON text, or undefined when they are. */
export function jsonTextError(b: Uint8Array): JsonSyntaxError | undefined {
  try {
    const end = skipWs(b, skipJsonValue(b, skipWs(b, 0)));
    if (end !== b.length) return new JsonSyntaxError("more than one JSON value", end);
    return undefined;
  } catch (err) {
    if (err instanceof JsonSyntaxError) return err;
    throw err;
  }
}

/** True when the bytes are well-formed UTF-8. */
export function isUtf8(b: Uint8Array): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** A key as JSON.parse sees it (escapes decoded), from its span including the quotes. */
function decodeKey(b: Uint8Array, start: number, end: number): string {
  const raw = b.subarray(start, end);
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8");
  return raw.includes(BACKSLASH) ? (JSON.parse(text) as string) : text.slice(1, -1);
}

/**
 * Parses a member path: `payload`, `items[].payload` (every element of the `items` array),
 * `a.b`. Segments are object keys; `[]` after a key means "each element of that array".
 */
export function parseJsonPath(path: string): string[] {
  const segments: string[] = [];
  for (const part of path.split(".")) {
    const m = /^([^[\]]+)((?:\[\])*)$/.exec(part);
    if (m === null) throw new Error(`bad JSON member path ${JSON.stringify(path)}`);
    segments.push(m[1]!);
    for (let k = 0; k < m[2]!.length / 2; k++) segments.push("[]");
  }
  return segments;
}

/**
 * The spans of the members at `path` (see `parseJsonPath`) of the JSON text `b`, in document
 * order; for `items[].payload` one span per element that has a payload. When an object repeats
 * a key, the last occurrence counts, as with JSON.parse. Throws JsonSyntaxError when `b` is not
 * one JSON text (a leading UTF-8 byte order mark is allowed, as TextDecoder drops it).
 */
export function findJsonMembers(b: Uint8Array, path: string | readonly string[]): JsonSpan[] {
  const segments = typeof path === "string" ? parseJsonPath(path) : path;
  let i = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  i = skipWs(b, i);
  const { end, spans } = membersAt(b, i, segments, 0);
  const rest = skipWs(b, end);
  if (rest !== b.length) throw new JsonSyntaxError("more than one JSON value", rest);
  return spans;
}

// Recursion depth is the path's length, never the document's nesting.
function membersAt(
  b: Uint8Array,
  i: number,
  segments: readonly string[],
  depth: number,
): { end: number; spans: JsonSpan[] } {
  if (depth === segments.length) {
    const end = skipJsonValue(b, i);
    return { end, spans: [{ start: i, end }] };
  }
  const segment = segments[depth]!;
  const wantArray = segment === "[]";
  const open = wantArray ? OPEN_ARRAY : OPEN_OBJECT;
  if (b[i] !== open) return { end: skipJsonValue(b, i), spans: [] };
  const close = wantArray ? CLOSE_ARRAY : CLOSE_OBJECT;
  let spans: JsonSpan[] = [];
  i = skipWs(b, i + 1);
  if (b[i] === close) return { end: i + 1, spans };
  for (;;) {
    if (wantArray) {
      const r = membersAt(b, i, segments, depth + 1);
      spans.push(...r.spans);
      i = r.end;
    } else {
      const keyEnd = skipString(b, i);
      const key = decodeKey(b, i, keyEnd);
      i = skipColon(b, keyEnd);
      if (key === segment) {
        const r = membersAt(b, i, segments, depth + 1);
        spans = r.spans; // the last occurrence of a key wins
        i = r.end;
      } else {
        i = skipJsonValue(b, i);
      }
    }
    i = skipWs(b, i);
    if (b[i] === close) return { end: i + 1, spans };
    i = skipWs(b, expect(b, i, COMMA));
  }
}
