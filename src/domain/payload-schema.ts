import { createHash } from "node:crypto";
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { FieldViolation } from "./errors.ts";

/** The largest schema accepted, in UTF-16 code units of its JSON text: ample for an event's shape. */
export const MAX_SCHEMA_LENGTH = 64 * 1024;

/** The deepest JSON nesting a schema may have; refused before ajv's recursive compiler sees it. */
export const MAX_SCHEMA_DEPTH = 64;

/** The most violations one invalid payload reports; the rest are counted in a last violation. */
export const MAX_PAYLOAD_ERRORS = 20;

/** The longest regular expression (`pattern`, `patternProperties`) a schema may use. */
export const MAX_SCHEMA_PATTERN_LENGTH = 1000;

/**
 * The longest string a `pattern` is run on; a longer one fails the pattern. Backtracking time
 * grows with the subject, and no pattern check can rule out every polynomial blow-up.
 */
export const MAX_PATTERN_SUBJECT_LENGTH = 8192;

/** How many compiled schemas are kept, keyed by the hash of their text. */
const CACHE_SIZE = 500;

/** Which JSON Schema dialect a schema is read as, from its `$schema` (draft-07 when absent). */
export type SchemaDialect = "draft-07" | "2019-09" | "2020-12";

/** A schema that compiled; validating with it is cheap, so it is shared by every Send. */
export interface CompiledPayloadSchema {
  /** SHA-256 of the schema text, hex: the cache key, and a stable name for logs. */
  readonly hash: string;
  readonly dialect: SchemaDialect;
}

interface Validators {
  /** Stops at the first error: the fast path for the (common) valid payload. */
  readonly first: ValidateFunction;
  /** Collects every error; compiled on the first invalid payload only. */
  all: ValidateFunction | undefined;
  readonly build: (allErrors: boolean) => ValidateFunction;
}

/** The outcome of compiling a schema: the schema, or the violation that explains why not. */
export type CompilePayloadSchemaResult =
  | { readonly ok: true; readonly schema: CompiledPayloadSchema }
  | { readonly ok: false; readonly violation: FieldViolation };

const DIALECTS: Record<string, SchemaDialect> = {
  "http://json-schema.org/draft-07/schema": "draft-07",
  "http://json-schema.org/draft-07/schema#": "draft-07",
  "https://json-schema.org/draft/2019-09/schema": "2019-09",
  "https://json-schema.org/draft/2020-12/schema": "2020-12",
};

// Patterns are compiled through here: refused when they can backtrack exponentially, and never
// run on strings past MAX_PATTERN_SUBJECT_LENGTH, which bounds the polynomial cases
// ("^\d+\d+x") the heuristic lets through.
function guardedRegExp(pattern: string, flags: string): { test(s: string): boolean; toString(): string } {
  if (pattern.length > MAX_SCHEMA_PATTERN_LENGTH)
    throw new Error(`pattern must be at most ${MAX_SCHEMA_PATTERN_LENGTH} characters`);
  const risk = backtrackingRisk(pattern);
  if (risk !== undefined)
    throw new Error(`pattern ${JSON.stringify(pattern)} may backtrack catastrophically (${risk})`);
  const rx = new RegExp(pattern, flags);
  return { test: (s) => s.length <= MAX_PATTERN_SUBJECT_LENGTH && rx.test(s), toString: () => rx.toString() };
}
guardedRegExp.code = "new RegExp";

// Strict about the schema itself (an unknown keyword is usually a typo that would silently
// accept everything), lenient about JSON Schema's own leniencies (keywords without "type").
// "format" is an annotation only: no format validators are installed, and none fail.
const OPTIONS = (allErrors: boolean): Options => ({
  allErrors,
  strictSchema: true,
  strictNumbers: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  validateFormats: false,
  ownProperties: true,
  logger: false,
  code: { regExp: guardedRegExp },
});

const cache = new Map<string, CompiledPayloadSchema>();
const validators = new WeakMap<CompiledPayloadSchema, Validators>();

/**
 * Compiles an event type's payload schema, given as JSON text, at save time and (from a cache
 * keyed by the text's SHA-256) on every Send. Refused, as one violation on `field`: text over
 * 64 KiB, invalid JSON, anything but a JSON object, nesting over 64 levels, an unknown
 * `$schema` dialect (draft-07, the default, 2019-09 and 2020-12 are known), and whatever ajv
 * rejects, in ajv's words: unknown keywords, bad keyword values, unresolvable `$ref`s. A `$ref`
 * to anything outside the schema never resolves (no schema is ever fetched), so it is refused.
 * Each schema gets its own ajv instance: schemas of different workspaces may use the same `$id`.
 */
export function compilePayloadSchema(schemaText: string, field: string): CompilePayloadSchemaResult {
  const hash = createHash("sha256").update(schemaText).digest("hex");
  const cached = cache.get(hash);
  if (cached !== undefined) {
    cache.delete(hash);
    cache.set(hash, cached);
    return { ok: true, schema: cached };
  }
  const fail = (description: string): CompilePayloadSchemaResult => ({
    ok: false,
    violation: { field, description: truncate(description) },
  });
  if (schemaText.length > MAX_SCHEMA_LENGTH) return fail(`must be at most ${MAX_SCHEMA_LENGTH} characters`);
  if (jsonDepth(schemaText) > MAX_SCHEMA_DEPTH)
    return fail(`is nested too deeply (at most ${MAX_SCHEMA_DEPTH} levels)`);
  let schema: unknown;
  try {
    schema = JSON.parse(schemaText);
  } catch (e) {
    return fail(`is not valid JSON: ${(e as Error).message}`);
  }
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return fail("must be a JSON object");
  const declared = (schema as { $schema?: unknown }).$schema;
  const dialect = declared === undefined ? "draft-07" : typeof declared === "string" ? DIALECTS[declared] : undefined;
  if (dialect === undefined)
    return fail(`has an unsupported $schema; use one of ${Object.keys(DIALECTS).join(", ")}, or none for draft-07`);
  const build = (allErrors: boolean): ValidateFunction => {
    const opts = OPTIONS(allErrors);
    const ajv = dialect === "2020-12" ? new Ajv2020(opts) : dialect === "2019-09" ? new Ajv2019(opts) : new Ajv(opts);
    return ajv.compile(schema);
  };
  let first: ValidateFunction;
  try {
    first = build(false);
  } catch (e) {
    if (e instanceof RangeError) return fail(`is nested too deeply (at most ${MAX_SCHEMA_DEPTH} levels)`);
    return fail(`is not a valid JSON Schema: ${(e as Error).message}`);
  }
  const compiled: CompiledPayloadSchema = Object.freeze({ hash, dialect });
  validators.set(compiled, { first, all: undefined, build });
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(hash, compiled);
  return { ok: true, schema: compiled };
}

/**
 * Validates a Send's payload (the producer's exact bytes) against its event type's schema.
 * Returns no violations when it is valid; otherwise one violation on `field` per ajv error,
 * described by its JSON pointer ("/items/0/price must be number"; "/" is the whole payload),
 * at most 20 of them plus one counting the rest. A payload that is not UTF-8 JSON, or nested
 * too deeply to validate, is one violation. Numbers are checked as JSON.parse reads them
 * (doubles), which only matters for `maximum`-style bounds beyond 2^53.
 */
export function validatePayload(
  compiled: CompiledPayloadSchema,
  payloadBytes: Uint8Array,
  field: string,
): FieldViolation[] {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payloadBytes));
  } catch {
    return [{ field, description: "is not valid JSON, but its event type has a payload schema" }];
  }
  const v = validators.get(compiled);
  if (v === undefined) throw new Error("validatePayload needs a schema from compilePayloadSchema");
  try {
    if (v.first(value)) return [];
    v.all ??= v.build(true);
    v.all(value);
  } catch (e) {
    if (e instanceof RangeError) return [{ field, description: "is nested too deeply to validate" }];
    throw e;
  }
  const errors = v.all.errors ?? v.first.errors ?? [];
  const violations = errors
    .slice(0, MAX_PAYLOAD_ERRORS)
    .map((err) => ({ field, description: truncate(describe(err)) }));
  if (errors.length > MAX_PAYLOAD_ERRORS)
    violations.push({ field, description: `and ${errors.length - MAX_PAYLOAD_ERRORS} more schema errors` });
  return violations;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function describe(err: ErrorObject): string {
  const where = err.instancePath === "" ? "/" : err.instancePath;
  const params = err.params as Record<string, unknown>;
  if (err.keyword === "additionalProperties" || err.keyword === "unevaluatedProperties") {
    const name = params.additionalProperty ?? params.unevaluatedProperty;
    return `${where} must not have the additional property ${JSON.stringify(name)}`;
  }
  if (err.keyword === "enum" && Array.isArray(params.allowedValues))
    return `${where} must be one of ${JSON.stringify(params.allowedValues)}`;
  return `${where} ${err.message ?? `fails ${err.keyword}`}`;
}

// The deepest [ / { nesting in JSON text, scanning once and skipping strings; used before
// JSON.parse and ajv so a 64 KiB "[[[[…" cannot reach a recursive compiler.
function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

// ajv runs `pattern`s with V8's backtracking engine on every Send, so patterns whose matching
// time can explode are refused at save time: backreferences, and a repeated group that itself
// repeats or alternates ("(a+)+", "(\d*)*", "(a|ab)*", "(x+){9}") — unless every repetition
// must begin with a literal character nothing else in the group can match, which makes the
// split unique ("(-[a-z]+)*", "(\.\d+)*"). A conservative heuristic, not a proof.
function backtrackingRisk(pattern: string): string | undefined {
  if (/\\[1-9]|\\k</.test(pattern)) return "backreference";
  interface Group {
    start: number;
    repeats: boolean;
    alternates: boolean;
  }
  const stack: Group[] = [];
  let group: Group = { start: 0, repeats: false, alternates: false };
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") i++;
    else if (ch === "[") i = classEnd(pattern, i);
    else if (ch === "(") {
      stack.push(group);
      group = { start: i + 1, repeats: false, alternates: false };
    } else if (ch === "|") group.alternates = true;
    else if (ch === ")") {
      const inner = group;
      const outer = stack.pop();
      if (outer === undefined) return undefined; // unbalanced: RegExp itself refuses it
      group = outer;
      const quantified = repeats(pattern, i + 1);
      if (quantified && (inner.repeats || inner.alternates) && !guarded(pattern.slice(inner.start, i)))
        return "nested quantifier";
      if (quantified || inner.repeats) group.repeats = true;
    } else if (repeats(pattern, i)) group.repeats = true;
  }
  return undefined;
}

// Whether a quantifier at `i` repeats its atom more than once: *, +, {n,}, {n,m} or {n} with n, m > 1.
function repeats(pattern: string, i: number): boolean {
  const ch = pattern[i];
  if (ch === "*" || ch === "+") return true;
  if (ch !== "{") return false;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i, i + 24));
  if (!m) return false;
  const max = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Infinity : Number(m[3]);
  return max > 1;
}

function classEnd(pattern: string, i: number): number {
  for (let j = i + 1; j < pattern.length; j++) {
    if (pattern[j] === "\\") j++;
    else if (pattern[j] === "]") return j;
  }
  return pattern.length;
}

// True when the group body starts with a literal character that nothing after it can match.
function guarded(body: string): boolean {
  let rest = body;
  if (rest.startsWith("?:")) rest = rest.slice(2);
  else if (/^\?<[A-Za-z_$]/.test(rest)) rest = rest.slice(rest.indexOf(">") + 1);
  else if (rest.startsWith("?")) return false;
  let lead: string;
  if (rest[0] === "\\" && rest[1] !== undefined && !/[A-Za-z0-9]/.test(rest[1])) {
    lead = rest[1];
    rest = rest.slice(2);
  } else if (rest[0] !== undefined && !"[(.\\^$|?*+{".includes(rest[0])) {
    lead = rest[0];
    rest = rest.slice(1);
  } else return false;
  if (rest[0] !== undefined && "?*+{".includes(rest[0])) return false;
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i]!;
    if (ch === "\\") {
      const e = rest[++i] ?? "";
      if (escapeMatches(e, lead)) return false;
    } else if (ch === "[") {
      const end = classEnd(rest, i);
      if (classMatches(rest.slice(i + 1, end), lead)) return false;
      i = end;
    } else if (ch === "|" || ch === "." || ch === lead) return false;
  }
  return true;
}

function escapeMatches(e: string, c: string): boolean {
  const word = /\w/.test(c);
  const digit = /\d/.test(c);
  const space = /\s/.test(c);
  switch (e) {
    case "d":
      return digit;
    case "D":
      return !digit;
    case "w":
      return word;
    case "W":
      return !word;
    case "s":
      return space;
    case "S":
      return !space;
    case "b":
    case "B":
      return false;
    default:
      return /[A-Za-z0-9]/.test(e) || e === c; // \p{…}, \u…, \x…: assume the worst
  }
}

function classMatches(content: string, c: string): boolean {
  const negated = content.startsWith("^");
  let hit = false;
  for (let i = negated ? 1 : 0; i < content.length && !hit; i++) {
    let ch = content[i]!;
    if (ch === "\\") {
      const e = content[++i] ?? "";
      if (/[A-Za-z0-9]/.test(e)) {
        // An escape we do not model (\p{…}, \u…) in a negated class: assume it lets c through.
        if (negated && !"dDwWsS".includes(e)) return true;
        if (escapeMatches(e, c)) hit = true;
        continue;
      }
      ch = e;
    }
    if (content[i + 1] === "-" && i + 2 < content.length) {
      const hi = content[i + 2] === "\\" ? (content[i + 3] ?? "") : content[i + 2]!;
      if (c >= ch && c <= hi) hit = true;
      i += content[i + 2] === "\\" ? 3 : 2;
    } else if (ch === c) hit = true;
  }
  return negated ? !hit : hit;
}

function truncate(s: string): string {
  return s.length <= 300 ? s : `${s.slice(0, 297)}...`;
}
