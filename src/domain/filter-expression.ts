import { CelScalar, celEnv, celFunc, celType, isCelError, mapType, parse, plan, type CelInput } from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import type { FieldViolation } from "./errors.ts";

/** The longest filter accepted: room for any sensible rule, too short to be a program. */
export const MAX_FILTER_LENGTH = 4096;

/**
 * The deepest expression tree accepted. The parser, the planner and the evaluator all recurse
 * per level, so a hostile "!!!!…true" must be refused at save time, not overflow the stack of
 * the dispatcher on every message.
 */
export const MAX_FILTER_DEPTH = 64;

/**
 * Loop iterations (of exists/all/map/filter…) one evaluation may run. CEL has no unbounded
 * loops, but nested macros over a large payload are quadratic; past this budget the
 * evaluation fails (no match, with the reason) instead of stalling a dispatcher.
 */
export const FILTER_ITERATION_BUDGET = 100_000;

/** How many compiled filters are kept in memory, so the hot path does not reparse per message. */
const CACHE_SIZE = 1000;

type ParsedExpr = ReturnType<typeof parse>;
type Expr = ParsedExpr["expr"];

/** A filter that passed every save-time check and is ready to evaluate on each message. */
export interface CompiledFilter {
  /** The expression text, as saved. */
  readonly source: string;
  /** The planned expression; call it through evaluateFilter, which arms the iteration budget. */
  readonly run: ReturnType<typeof plan<FilterVariables>>;
}

/** The outcome of compiling a filter: the filter, or the one violation that explains why not. */
export type CompileFilterResult =
  { readonly ok: true; readonly filter: CompiledFilter } | { readonly ok: false; readonly violation: FieldViolation };

/**
 * A filter's verdict on one message. A failed evaluation is no match, with the reason kept for
 * the caller's log line, because one endpoint's broken filter must not fail the Send.
 */
export interface FilterResult {
  readonly matched: boolean;
  readonly error?: string;
}

/** What a message offers its filters; parsed once per message, shared by every endpoint's filter. */
export interface FilterInput {
  readonly bindings: () => FilterBindings;
}

const VARIABLES = {
  payload: CelScalar.DYN,
  metadata: mapType(CelScalar.STRING, CelScalar.STRING),
  event_type: CelScalar.STRING,
} as const;
type FilterVariables = typeof VARIABLES;
type FilterBindings = { payload: CelInput; metadata: ReadonlyMap<string, string>; event_type: string };

// The budget is global state, but evaluation is synchronous: evaluateFilter resets it and nothing
// else can run until it returns. The function's name starts with "@", which no expression can
// spell, so only the loop conditions compileFilter rewrites can call it.
let iterationsLeft = 0;
const BUDGET_FUNCTION = "@hookstream_budget";
const budget = celFunc(BUDGET_FUNCTION, [CelScalar.DYN], CelScalar.DYN, (condition) => {
  if (--iterationsLeft < 0) throw new Error(`exceeded the budget of ${FILTER_ITERATION_BUDGET} loop iterations`);
  return condition;
});
const ENV = celEnv({ variables: VARIABLES, funcs: [...strings, budget] });

// Identifiers that name types rather than variables (`type(x) == int`).
const TYPE_NAMES = new Set([
  "int",
  "uint",
  "double",
  "bool",
  "string",
  "bytes",
  "list",
  "map",
  "null_type",
  "type",
  "dyn",
]);
// Calls whose result is certainly not a bool: refused as the whole expression at save time.
const NON_BOOL_CALLS = new Set([
  "_+_",
  "_-_",
  "_*_",
  "_/_",
  "_%_",
  "-_",
  "size",
  "int",
  "uint",
  "double",
  "string",
  "bytes",
  "timestamp",
  "duration",
  "type",
  "charAt",
  "indexOf",
  "lastIndexOf",
  "lowerAscii",
  "upperAscii",
  "replace",
  "split",
  "substring",
  "trim",
  "join",
  "quote",
  "format",
]);

const cache = new Map<string, CompiledFilter>();

/**
 * Compiles a CEL filter at save time (endpoints, subscriptions) and again, from a cache, on the
 * hot path. Checks, each reported as one violation on `field` with the position "line:column"
 * where the parser or checker points: length (at most 4096), syntax, nesting depth, variables
 * (only `payload`, `metadata`, `event_type` and macro variables exist), function names, and
 * that the expression can be a bool (`payload.a + 1` cannot; `payload.a` can, and if it turns
 * out not to be one at evaluation time the message does not match). The text is not trimmed:
 * the caller decides whether "" means "no filter" before calling.
 */
export function compileFilter(expr: string, field: string): CompileFilterResult {
  const cached = cache.get(expr);
  if (cached !== undefined) {
    cache.delete(expr);
    cache.set(expr, cached);
    return { ok: true, filter: cached };
  }
  const fail = (description: string): CompileFilterResult => ({ ok: false, violation: { field, description } });
  if (expr.trim() === "") return fail("must not be empty");
  if (expr.length > MAX_FILTER_LENGTH) return fail(`must be at most ${MAX_FILTER_LENGTH} characters`);
  let parsed: ParsedExpr;
  try {
    parsed = parse(expr);
  } catch (e) {
    if (e instanceof RangeError) return fail(`is nested too deeply (at most ${MAX_FILTER_DEPTH} levels)`);
    const err = e as { rawMessage?: unknown; location?: { start?: { line: number; column: number } } };
    const at = err.location?.start;
    const what = typeof err.rawMessage === "string" ? err.rawMessage : String((e as Error).message);
    return fail(truncate(`syntax error at ${at ? `${at.line}:${at.column}` : "?"}: ${what}`));
  }
  const position = (id: bigint): string => {
    const offset = parsed.sourceInfo?.positions[id.toString()];
    if (offset === undefined) return "?";
    const before = expr.slice(0, offset);
    const line = before.split("\n").length;
    return `${line}:${offset - before.lastIndexOf("\n")}`;
  };
  const problem = checkExpr(parsed.expr, new Set(["payload", "metadata", "event_type"]), 1, position);
  if (problem !== undefined) return fail(truncate(problem));
  if (certainlyNotBool(parsed.expr)) return fail(`must evaluate to a bool (at ${position(parsed.expr.id)})`);
  let run: CompiledFilter["run"];
  try {
    run = plan(ENV, parsed);
  } catch (e) {
    return fail(truncate(`is not a valid filter: ${(e as Error).message}`));
  }
  const filter: CompiledFilter = { source: expr, run };
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(expr, filter);
  return { ok: true, filter };
}

/**
 * Prepares one message for its filters. The payload is parsed lazily (a message whose
 * endpoints have no filters never pays for it) and at most once. `payload` is the producer's
 * bytes: JSON objects become CEL maps, arrays lists, strings/bools/null themselves; a number
 * with an integral value up to 2^53 (1, 1.0, 1e3) and an integer literal that fits in 64 bits
 * become CEL ints (bigint), so `payload.id == 9007199254740993` is exact; every other number
 * is a double (CEL compares ints and doubles across types, but `payload.count + 1.5` needs
 * `double(payload.count)`).
 * A payload that is not UTF-8 JSON (raw bytes), or is nested too deeply to revive (a couple of
 * thousand levels, the engine's stack decides), is `null`:
 * such messages are filtered on `event_type` and `metadata`.
 */
export function createFilterInput(
  payload: Uint8Array,
  metadata: Readonly<Record<string, string>>,
  eventType: string,
): FilterInput {
  let bindings: FilterBindings | undefined;
  return {
    bindings() {
      bindings ??= {
        payload: parsePayload(payload),
        metadata: new Map(Object.entries(metadata)),
        event_type: eventType,
      };
      return bindings;
    },
  };
}

/**
 * Runs a compiled filter on one message. Never throws: an evaluation error (missing field,
 * wrong type, budget exceeded) and a result that is not a bool are both "no match", with the
 * reason in `error` for the caller's log.
 */
export function evaluateFilter(filter: CompiledFilter, input: FilterInput): FilterResult {
  iterationsLeft = FILTER_ITERATION_BUDGET;
  let result: unknown;
  try {
    result = filter.run(input.bindings());
  } catch (e) {
    return {
      matched: false,
      error: e instanceof RangeError ? "payload is nested too deeply" : String((e as Error).message),
    };
  }
  if (isCelError(result)) return { matched: false, error: result.message };
  if (typeof result !== "boolean") {
    return { matched: false, error: `evaluated to ${celType(result as never).name}, not bool` };
  }
  return { matched: result };
}

const INTEGER = /^-?\d+$/;
const LONG_DIGITS = /\d{16}/;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function parsePayload(bytes: Uint8Array): CelInput {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return null;
  }
  try {
    // A run of 16 digits is the only way to write an integer a double cannot hold exactly; without
    // one, a plain parse and a walk give the same result as the reviver, several times faster.
    return (LONG_DIGITS.test(text) ? JSON.parse(text, reviveForCel) : toCel(JSON.parse(text))) as CelInput;
  } catch {
    return null; // not JSON, or too deep to convert
  }
}

function toCel(value: unknown): unknown {
  if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = toCel(value[i]);
    return value;
  }
  const map = new Map<string, unknown>();
  for (const key of Object.keys(value)) map.set(key, toCel((value as Record<string, unknown>)[key]));
  return map;
}

// Node 24's JSON.parse passes the number's source text, so big integers keep every digit.
function reviveForCel(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number") {
    if (Number.isSafeInteger(value)) return BigInt(value);
    const source = context?.source;
    if (source !== undefined && INTEGER.test(source)) {
      const n = BigInt(source);
      if (n >= MIN_INT64 && n <= MAX_INT64) return n;
    }
    return value;
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return new Map(Object.entries(value));
  return value;
}

// Walks the tree once: depth, variables in scope, known functions, no message literals; and
// rewrites every macro's loop condition through the iteration budget.
function checkExpr(
  e: Expr,
  scope: ReadonlySet<string>,
  depth: number,
  position: (id: bigint) => string,
): string | undefined {
  if (depth > MAX_FILTER_DEPTH) return `is nested too deeply (at most ${MAX_FILTER_DEPTH} levels) at ${position(e.id)}`;
  const k = e.exprKind;
  const sub = (x: Expr | undefined, s = scope) => (x === undefined ? undefined : checkExpr(x, s, depth + 1, position));
  switch (k.case) {
    case "constExpr":
      return undefined;
    case "identExpr":
      if (scope.has(k.value.name) || TYPE_NAMES.has(k.value.name)) return undefined;
      return `unknown variable "${k.value.name}" at ${position(e.id)} (known: payload, metadata, event_type)`;
    case "selectExpr":
      return sub(k.value.operand);
    case "callExpr": {
      const name = k.value.function;
      if (/^[A-Za-z_]\w*$/.test(name) && ENV.funcs.find(name) === undefined)
        return `unknown function "${name}" at ${position(e.id)}`;
      const t = sub(k.value.target);
      if (t !== undefined) return t;
      for (const a of k.value.args) {
        const p = sub(a);
        if (p !== undefined) return p;
      }
      return undefined;
    }
    case "listExpr":
      for (const x of k.value.elements) {
        const p = sub(x);
        if (p !== undefined) return p;
      }
      return undefined;
    case "structExpr": {
      if (k.value.messageName !== "") return `message construction is not supported at ${position(e.id)}`;
      for (const entry of k.value.entries) {
        const p = (entry.keyKind.case === "mapKey" ? sub(entry.keyKind.value) : undefined) ?? sub(entry.value);
        if (p !== undefined) return p;
      }
      return undefined;
    }
    case "comprehensionExpr": {
      const c = k.value;
      const inner = new Set(scope);
      inner.add(c.accuVar);
      const withIter = new Set(inner);
      withIter.add(c.iterVar);
      if (c.iterVar2 !== "") withIter.add(c.iterVar2);
      const p =
        sub(c.iterRange) ??
        sub(c.accuInit) ??
        sub(c.loopCondition, withIter) ??
        sub(c.loopStep, withIter) ??
        sub(c.result, inner);
      if (p !== undefined) return p;
      if (c.loopCondition !== undefined) c.loopCondition = budgeted(c.loopCondition);
      return undefined;
    }
    default:
      return `is not a valid filter at ${position(e.id)}`;
  }
}

function budgeted(condition: Expr): Expr {
  return {
    $typeName: "cel.expr.Expr",
    id: condition.id,
    exprKind: {
      case: "callExpr",
      value: { $typeName: "cel.expr.Expr.Call", function: BUDGET_FUNCTION, args: [condition] },
    },
  };
}

// True only when the expression's value cannot be a bool whatever the input; dyn passes.
function certainlyNotBool(e: Expr): boolean {
  const k = e.exprKind;
  switch (k.case) {
    case "constExpr":
      return k.value.constantKind.case !== "boolValue";
    case "listExpr":
    case "structExpr":
      return true;
    case "callExpr":
      if (k.value.function === "_?_:_") return k.value.args.slice(1).every(certainlyNotBool);
      return NON_BOOL_CALLS.has(k.value.function);
    case "comprehensionExpr": {
      const c = k.value;
      const result = c.result;
      if (result === undefined) return false;
      if (result.exprKind.case === "identExpr" && result.exprKind.value.name === c.accuVar)
        return c.accuInit !== undefined && certainlyNotBool(c.accuInit);
      return certainlyNotBool(result);
    }
    default:
      return false;
  }
}

function truncate(s: string): string {
  return s.length <= 300 ? s : `${s.slice(0, 297)}...`;
}
