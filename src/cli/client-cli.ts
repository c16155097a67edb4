/**
 * The user verbs of the `hookstream` binary (send, deliveries, endpoints, tail, listen, …), over
 * the SDK in src/client only: nothing here touches the server's code. Exit codes: 0 success,
 * 1 any other failure, 2 usage, 3 authentication or permission, 4 not found, 5 invalid input,
 * 6 conflict, 7 unavailable (network, timeout, rate limit).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  AttemptErrorKind,
  BulkOperationState,
  Code,
  DeliveryAction,
  DeliveryStatus,
  Hookstream,
  HookstreamError,
  HookstreamManagement,
  PayloadStatus,
  parseDuration,
  rawJson,
  verifyWebhook,
  type BulkOperation,
  type DeliveryEvent,
} from "../client/index.ts";

/** The verbs this module handles (main.ts routes them here). */
export const USER_VERBS = [
  "send",
  "trigger",
  "messages",
  "deliveries",
  "attempts",
  "replay",
  "retry",
  "dead-letters",
  "bulk",
  "endpoints",
  "applications",
  "environments",
  "subscriptions",
  "event-types",
  "keys",
  "tail",
  "listen",
  "login",
] as const;

export const USER_USAGE = `User commands (they call a Hookstream API; see \`hookstream <command> --help\`):
  send          send one message to an endpoint (API key)
  trigger       send one message by event type to every subscribed endpoint (API key)
  messages      messages get ID (API key)
  deliveries    deliveries ls|get (management token)
  attempts      attempts ls DELIVERY_ID
  replay        replay DELIVERY_ID, or --message MESSAGE_ID
  retry         retry DELIVERY_ID now (a pending retry)
  dead-letters  dead-letters ls|get|redrive (failed deliveries)
  bulk          bulk replay|retry|cancel-retry by ids or filter, bulk get|watch BULK_ID
  endpoints     endpoints ls|get|create|update|rm|rotate-secret|test
  applications  applications ls|get|create|update|rm (your customers; endpoints belong to one)
  environments  environments ls|get|create|update|rm (production, staging, …: keys and endpoints live in one)
  subscriptions subscriptions ls|get|create|update|rm (event-type routing to an endpoint)
  event-types   the event type catalog
  keys          keys ls|create|revoke (API keys)
  tail          the live delivery stream, one line per status change and attempt
  listen        forward deliveries to a local server: listen --forward-to http://localhost:3000/webhooks
  login         save the URL and credentials in a profile (mode 0600)

Credentials: --url, --api-key, --token (management) flags, else HOOKSTREAM_URL,
HOOKSTREAM_API_KEY, HOOKSTREAM_MANAGEMENT_TOKEN, else the profile written by \`hookstream login\`
(--profile NAME, default "default"; file: HOOKSTREAM_CONFIG or ~/.config/hookstream/config.json).
Output: --output table (default) or json. Exit codes: 0 ok, 1 failure, 2 usage, 3 auth,
4 not found, 5 invalid input, 6 conflict, 7 unavailable (network, timeout, rate limit).
`;

class UsageError extends Error {}

type Out = "table" | "json";

interface Io {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

const COMMON = {
  url: { type: "string" },
  "api-key": { type: "string" },
  token: { type: "string" },
  profile: { type: "string" },
  output: { type: "string", short: "o" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

type Options = NonNullable<ParseArgsConfig["options"]>;

interface Parsed {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
}

function parse(args: string[], options: Options): Parsed {
  try {
    const r = parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

const str = (p: Parsed, name: string): string | undefined => p.values[name] as string | undefined;

// ---- profiles ---------------------------------------------------------------------------------

interface Profile {
  url?: string;
  apiKey?: string;
  managementToken?: string;
}

function configFile(env: NodeJS.ProcessEnv): string {
  return env["HOOKSTREAM_CONFIG"] ?? join(homedir(), ".config", "hookstream", "config.json");
}

function readProfiles(env: NodeJS.ProcessEnv): Record<string, Profile> {
  const file = configFile(env);
  if (!existsSync(file)) return {};
  const parsed = JSON.parse(readFileSync(file, "utf8")) as { profiles?: Record<string, Profile> };
  return parsed.profiles ?? {};
}

interface Creds {
  readonly url: string | undefined;
  readonly apiKey: string | undefined;
  readonly token: string | undefined;
}

function credentials(p: Parsed, env: NodeJS.ProcessEnv): Creds {
  const profile = readProfiles(env)[str(p, "profile") ?? env["HOOKSTREAM_PROFILE"] ?? "default"] ?? {};
  return {
    url: str(p, "url") ?? env["HOOKSTREAM_URL"] ?? profile.url,
    apiKey: str(p, "api-key") ?? env["HOOKSTREAM_API_KEY"] ?? profile.apiKey,
    token: str(p, "token") ?? env["HOOKSTREAM_MANAGEMENT_TOKEN"] ?? profile.managementToken,
  };
}

function producerOf(c: Creds): Hookstream {
  if (c.apiKey === undefined)
    throw new UsageError("an API key is needed: --api-key, HOOKSTREAM_API_KEY or `hookstream login`");
  return new Hookstream({ apiKey: c.apiKey, ...(c.url === undefined ? {} : { baseUrl: c.url }) });
}

function managementOf(c: Creds): HookstreamManagement {
  if (c.token === undefined) {
    throw new UsageError("a management token is needed: --token, HOOKSTREAM_MANAGEMENT_TOKEN or `hookstream login`");
  }
  return new HookstreamManagement({ managementToken: c.token, ...(c.url === undefined ? {} : { baseUrl: c.url }) });
}

// ---- output -----------------------------------------------------------------------------------

const ENUMS: Record<string, Record<number, string>> = {
  status: names(DeliveryStatus, "DELIVERY_STATUS_"),
  statuses: names(DeliveryStatus, "DELIVERY_STATUS_"),
  errorKind: names(AttemptErrorKind, "ATTEMPT_ERROR_KIND_"),
  failureClass: names(AttemptErrorKind, "ATTEMPT_ERROR_KIND_"),
  action: names(DeliveryAction, "DELIVERY_ACTION_"),
  state: names(BulkOperationState, "BULK_OPERATION_STATE_"),
};

function names(e: Record<string, string | number>, _prefix: string): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [k, v] of Object.entries(e)) if (typeof v === "number") out[v] = k.toLowerCase();
  return out;
}

/** JSON for people and scripts: Dates ISO, bigints as numbers' digits, enums by name, bytes base64. */
function jsonText(value: unknown): string {
  return JSON.stringify(
    value,
    (key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
      const table = ENUMS[key];
      if (table !== undefined) {
        if (typeof v === "number") return table[v] ?? v;
        if (Array.isArray(v)) return v.map((x: unknown) => (typeof x === "number" ? (table[x] ?? x) : x));
      }
      return v;
    },
    2,
  );
}

function cell(key: string, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (v instanceof Date) return v.toISOString();
  const table = ENUMS[key];
  if (table !== undefined && typeof v === "number") return table[v] ?? String(v);
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint")
    return String(v);
  return JSON.stringify(JSON.parse(jsonText(v)));
}

function printRows(io: Io, out: Out, rows: readonly Record<string, unknown>[], columns: readonly string[]): void {
  if (out === "json") {
    io.stdout.write(jsonText(rows) + "\n");
    return;
  }
  const cells = rows.map((r) => columns.map((c) => cell(c, r[c])));
  const header = columns.map((c) => c.replace(/[A-Z]/g, (x) => `_${x}`).toUpperCase());
  const widths = columns.map((_, i) => Math.max(header[i]!.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((x, i) => x.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  io.stdout.write([line(header), ...cells.map(line)].join("\n") + "\n");
}

function printObject(io: Io, out: Out, obj: Record<string, unknown>): void {
  if (out === "json") {
    io.stdout.write(jsonText(obj) + "\n");
    return;
  }
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined && obj[k] !== "");
  const width = Math.max(...keys.map((k) => k.length));
  io.stdout.write(keys.map((k) => `${k.padEnd(width)}  ${cell(k, obj[k])}`).join("\n") + "\n");
}

function outputOf(p: Parsed): Out {
  if (p.values["json"] === true) return "json";
  const o = str(p, "output") ?? "table";
  if (o !== "table" && o !== "json") throw new UsageError(`--output must be table or json, not ${o}`);
  return o;
}

// ---- colours ----------------------------------------------------------------------------------

function painter(io: Io): (colour: number, text: string) => string {
  const on = io.stdout.isTTY === true && io.env["NO_COLOR"] === undefined && io.env["TERM"] !== "dumb";
  return (colour, text) => (on ? `\u001b[${colour}m${text}\u001b[0m` : text);
}

const STATUS_COLOUR: Record<string, number> = {
  succeeded: 32,
  failed: 31,
  cancelled: 90,
  pending_retry: 33,
  awaiting_ack: 35,
  queued: 36,
  scheduled: 34,
  delivering: 36,
};

// ---- helpers ----------------------------------------------------------------------------------

function keyValues(list: string[] | undefined, flag: string): Record<string, string> | undefined {
  if (list === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new UsageError(`--${flag} takes KEY=VALUE, not ${JSON.stringify(kv)}`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function statusesOf(p: Parsed): string[] | undefined {
  const s = p.values["status"] as string[] | undefined;
  return s?.flatMap((x) => x.split(",")).filter((x) => x !== "");
}

function needPositional(p: Parsed, index: number, what: string): string {
  const v = p.positionals[index];
  if (v === undefined) throw new UsageError(`missing ${what}`);
  return v;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function payloadOf(p: Parsed): Promise<ReturnType<typeof rawJson>> {
  const data = str(p, "data");
  const file = str(p, "data-file");
  if (data !== undefined && file !== undefined) throw new UsageError("--data and --data-file are exclusive");
  const text = data ?? (file === undefined ? undefined : file === "-" ? await readStdin() : readFileSync(file, "utf8"));
  if (text === undefined) throw new UsageError("the payload is missing: --data JSON or --data-file FILE (- for stdin)");
  return rawJson(text);
}

const SEND_FLAGS = {
  endpoint: { type: "string", short: "e" },
  "event-type": { type: "string", short: "t" },
  data: { type: "string", short: "d" },
  "data-file": { type: "string" },
  "idempotency-key": { type: "string" },
  "deliver-in": { type: "string" },
  "deliver-at": { type: "string" },
  "deliver-at-local": { type: "string" },
  "time-zone": { type: "string" },
} as const;

function scheduleFlags(p: Parsed): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [flag, opt] of [
    ["deliver-in", "deliverIn"],
    ["deliver-at", "deliverAt"],
    ["deliver-at-local", "deliverAtLocal"],
    ["time-zone", "timeZone"],
  ] as const) {
    const v = str(p, flag);
    if (v !== undefined) out[opt] = v;
  }
  return out;
}

// ---- delivery selections (dead letters and bulk operations) -----------------------------------

type DeliveryFilterInput = NonNullable<Parameters<HookstreamManagement["deadLetters"]["listAll"]>[0]>;
type BulkRequest = Parameters<HookstreamManagement["bulk"]["start"]>[0];

const FILTER_FLAGS = {
  endpoint: { type: "string", short: "e" },
  "event-type": { type: "string", short: "t" },
  message: { type: "string", short: "m" },
  since: { type: "string" },
  until: { type: "string" },
} as const;

const FILTER_HELP = `  --endpoint EP  --event-type T  --message MSG   only deliveries of that endpoint, type, message
  --since T  --until T     created at or after / before T: an ISO time or a duration ago (2h, 7d)`;

/** `--since` / `--until`: an ISO time, or a duration before now (`2h`, `7d`, `1h30m`). */
function timeFlag(p: Parsed, flag: string): Date | undefined {
  const v = str(p, flag);
  if (v === undefined) return undefined;
  if (/^\d+(\.\d+)?(ms|s|m|h|d)/.test(v)) {
    try {
      return new Date(Date.now() - parseDuration(v, `--${flag}`));
    } catch {
      // not a duration after all: read as a time below
    }
  }
  const t = new Date(v);
  if (Number.isNaN(t.getTime())) {
    throw new UsageError(`--${flag} takes an ISO time (2026-03-14T09:30:00Z) or a duration ago (2h, 7d), not ${v}`);
  }
  return t;
}

/** The delivery filter of the FILTER_FLAGS (and --status when `withStatus`); empty when none is given. */
function filterOf(p: Parsed, withStatus: boolean): DeliveryFilterInput {
  const f: Record<string, unknown> = {};
  const endpointId = str(p, "endpoint");
  if (endpointId !== undefined) f["endpointId"] = endpointId;
  const eventType = str(p, "event-type");
  if (eventType !== undefined) f["eventType"] = eventType;
  const messageId = str(p, "message");
  if (messageId !== undefined) f["messageId"] = messageId;
  const after = timeFlag(p, "since");
  if (after !== undefined) f["createTimeAfter"] = after;
  const before = timeFlag(p, "until");
  if (before !== undefined) f["createTimeBefore"] = before;
  const statuses = withStatus ? statusesOf(p) : undefined;
  if (statuses !== undefined) f["statuses"] = statuses;
  return f;
}

/**
 * The request of a bulk operation: the delivery ids given as positionals, or the filter flags
 * (at most --limit deliveries); a selection of everything needs --all, so that a forgotten flag
 * never acts on the whole workspace.
 */
function bulkRequestOf(p: Parsed, action: DeliveryAction, fixed: DeliveryFilterInput = {}): BulkRequest {
  const ids = p.positionals;
  const filter = filterOf(p, !("statuses" in fixed));
  const hasFilter = Object.keys(filter).length > 0;
  const limit = limitOf(p, 0);
  if (ids.length > 0) {
    if (hasFilter || p.values["all"] === true) {
      throw new UsageError("give delivery ids or filter flags (or --all), not both");
    }
    if (str(p, "limit") !== undefined) throw new UsageError("--limit applies to a filter, not to delivery ids");
    return { action, deliveryIds: ids };
  }
  if (!hasFilter && p.values["all"] !== true) {
    throw new UsageError("select deliveries: ids, filter flags, or --all for every matching delivery");
  }
  return { action, filter: { ...filter, ...fixed }, limit };
}

function bulkLine(op: BulkOperation, paint: (c: number, t: string) => string): string {
  const state = ENUMS["state"]![op.state] ?? String(op.state);
  const done = op.state === BulkOperationState.SUCCEEDED;
  const took =
    done && op.finishTime !== undefined && op.createTime !== undefined
      ? `  in ${((op.finishTime.getTime() - op.createTime.getTime()) / 1000).toFixed(1)}s`
      : "";
  return `${op.id}  ${paint(done ? 32 : 36, state.toUpperCase().padEnd(9))}  matched ${op.matched}  affected ${op.affected}${took}`;
}

/**
 * Follows a bulk operation's watch stream until it finishes: one line per change (one JSON
 * object per line with --output json). Exit 0 once it succeeded, 1 when the stream ended first.
 */
async function followBulk(m: HookstreamManagement, io: Io, out: Out, id: string): Promise<number> {
  const paint = painter(io);
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  let last: BulkOperation | undefined;
  try {
    for await (const op of m.bulk.watch(id, { signal: controller.signal })) {
      last = op;
      io.stdout.write((out === "json" ? JSON.stringify(JSON.parse(jsonText(op))) : bulkLine(op, paint)) + "\n");
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return last?.state === BulkOperationState.SUCCEEDED ? 0 : 1;
}

/** Starts a bulk operation and prints it, or follows it to the end with --follow. */
async function startBulk(p: Parsed, io: Io, request: BulkRequest): Promise<number> {
  await using m = managementOf(credentials(p, io.env));
  const op = await m.bulk.start(request);
  const out = outputOf(p);
  if (p.values["follow"] !== true) {
    printObject(io, out, op);
    return 0;
  }
  if (out !== "json")
    io.stderr.write(painter(io)(90, `started ${op.id}; following it (Ctrl-C stops following, not the operation)\n`));
  return await followBulk(m, io, out, op.id);
}

const BULK_FLAGS = {
  ...FILTER_FLAGS,
  all: { type: "boolean" },
  limit: { type: "string", short: "n" },
  follow: { type: "boolean", short: "f" },
} as const;

function bulkActionVerb(name: string, action: DeliveryAction, what: string, statuses: string): Verb {
  return {
    help: `hookstream bulk ${name} [DELIVERY_ID...] [filter flags] [--status S,S] [--all] [--limit N] [--follow]
  ${what}, in the background, for the deliveries named by id (up to 1000) or matching the
  filter (default statuses: ${statuses}); --all selects every matching delivery.
${FILTER_HELP}
  --status S,S             only deliveries in these statuses
  --limit N                at most N deliveries are visited
  --follow                 follow the operation until it finishes (exit 0 once it succeeded)`,
    options: { ...BULK_FLAGS, status: { type: "string", multiple: true, short: "s" } },
    run: (p, io) => startBulk(p, io, bulkRequestOf(p, action)),
  };
}

// ---- verbs ------------------------------------------------------------------------------------

interface Verb {
  readonly help: string;
  readonly options?: Options;
  run(p: Parsed, io: Io): Promise<number>;
}

/** `--limit N`: a positive integer, `fallback` when absent (Infinity: no limit). */
function limitOf(p: Parsed, fallback: number): number {
  const raw = str(p, "limit");
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError("--limit takes a positive integer");
  return n;
}

/**
 * A list verb over the management API: pages through `items` (asked for pages of at most
 * `pageSize`) until `--limit` rows, then prints them as a table of `columns` or as JSON.
 */
function listVerb<T extends object>(spec: {
  readonly help: string;
  readonly options?: Options;
  readonly columns: readonly string[];
  /** Rows printed when --limit is absent (default: every row). */
  readonly defaultLimit?: number;
  items(m: HookstreamManagement, p: Parsed, pageSize: number): AsyncIterable<T>;
}): Verb {
  return {
    help: spec.help,
    options: { ...spec.options, limit: { type: "string", short: "n" } },
    async run(p, io) {
      const limit = limitOf(p, spec.defaultLimit ?? Infinity);
      await using m = managementOf(credentials(p, io.env));
      const rows: T[] = [];
      if (limit > 0) {
        for await (const row of spec.items(m, p, Math.min(limit, 100))) {
          rows.push(row);
          if (rows.length >= limit) break;
        }
      }
      printRows(io, outputOf(p), rows as Record<string, unknown>[], spec.columns);
      return 0;
    },
  };
}

/**
 * A verb that takes one id (its first positional, named `arg` in messages), makes one call and
 * prints the object it answers (or prints it by `print`). `connect` picks the client: the
 * management client unless given.
 */
function getVerb<C extends AsyncDisposable, T extends object>(spec: {
  readonly help: string;
  readonly arg: string;
  readonly options?: Options;
  readonly connect: (c: Creds) => C;
  call(client: C, id: string, p: Parsed): Promise<T>;
  print?(io: Io, out: Out, value: T): void;
}): Verb {
  return {
    help: spec.help,
    ...(spec.options === undefined ? {} : { options: spec.options }),
    async run(p, io) {
      const id = needPositional(p, 0, spec.arg);
      await using client = spec.connect(credentials(p, io.env));
      const value = await spec.call(client, id, p);
      const out = outputOf(p);
      if (spec.print !== undefined) spec.print(io, out, value);
      else printObject(io, out, value as Record<string, unknown>);
      return 0;
    },
  };
}

/**
 * An update verb: the id (first positional, named `arg`) and the fields its flags give; flags
 * that only create sets (`fixed`) are usage errors, and so is naming no field at all.
 */
function updateVerb(spec: {
  readonly help: string;
  readonly arg: string;
  readonly options: Options;
  readonly fixed?: readonly (readonly [flag: string, message: string])[];
  fields(p: Parsed): Record<string, unknown>;
  call(m: HookstreamManagement, id: string, fields: Record<string, unknown>): Promise<object>;
}): Verb {
  return {
    help: spec.help,
    options: spec.options,
    async run(p, io) {
      const id = needPositional(p, 0, spec.arg);
      for (const [flag, message] of spec.fixed ?? []) if (str(p, flag) !== undefined) throw new UsageError(message);
      const fields = spec.fields(p);
      if (Object.keys(fields).length === 0) throw new UsageError("nothing to update: pass at least one field flag");
      await using m = managementOf(credentials(p, io.env));
      printObject(io, outputOf(p), (await spec.call(m, id, fields)) as Record<string, unknown>);
      return 0;
    },
  };
}

/** A delete verb: prints `deleted ID` (or `{deleted}` as JSON), with what the call answered when it answers something. */
function removeVerb(spec: {
  readonly help: string;
  readonly arg: string;
  call(m: HookstreamManagement, id: string): Promise<object | void>;
}): Verb {
  return {
    help: spec.help,
    async run(p, io) {
      const id = needPositional(p, 0, spec.arg);
      await using m = managementOf(credentials(p, io.env));
      const answer = await spec.call(m, id);
      if (answer !== undefined) printObject(io, outputOf(p), { deleted: id, ...answer });
      else if (outputOf(p) === "json") io.stdout.write(jsonText({ deleted: id }) + "\n");
      else io.stdout.write(`deleted ${id}\n`);
      return 0;
    },
  };
}

const ENDPOINT_FLAGS = {
  url: { type: "string" },
  description: { type: "string" },
  metadata: { type: "string", multiple: true },
  header: { type: "string", multiple: true },
  timeout: { type: "string" },
  "async-ack": { type: "boolean" },
  "event-type": { type: "string", multiple: true },
  disabled: { type: "boolean" },
  enabled: { type: "string" },
  application: { type: "string" },
  environment: { type: "string" },
} as const;

function endpointFields(p: Parsed, endpointUrl: string | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (endpointUrl !== undefined) fields["url"] = endpointUrl;
  for (const [flag, field] of [
    ["application", "applicationId"],
    ["environment", "environmentId"],
  ] as const) {
    const value = str(p, flag);
    if (value === undefined) continue;
    if (endpointUrl === undefined) throw new UsageError(`--${flag} is set on create and cannot change`);
    fields[field] = value;
  }
  const description = str(p, "description");
  if (description !== undefined) fields["description"] = description;
  const metadata = keyValues(p.values["metadata"] as string[] | undefined, "metadata");
  if (metadata !== undefined) fields["metadata"] = metadata;
  const headers = keyValues(p.values["header"] as string[] | undefined, "header");
  if (headers !== undefined) fields["headers"] = headers;
  const timeout = str(p, "timeout");
  if (timeout !== undefined) fields["timeout"] = timeout;
  if (p.values["async-ack"] === true) fields["asyncAck"] = true;
  const eventTypes = p.values["event-type"] as string[] | undefined;
  if (eventTypes !== undefined) fields["eventTypes"] = eventTypes.flatMap((t) => t.split(",")).filter((t) => t !== "");
  if (p.values["disabled"] === true) fields["enabled"] = false;
  const enabled = str(p, "enabled");
  if (enabled !== undefined) {
    if (enabled !== "true" && enabled !== "false") throw new UsageError("--enabled takes true or false");
    fields["enabled"] = enabled === "true";
  }
  return fields;
}

const SUBSCRIPTION_FLAGS = {
  endpoint: { type: "string", short: "e" },
  "event-type": { type: "string", multiple: true, short: "t" },
  filter: { type: "string" },
  disabled: { type: "boolean" },
  enabled: { type: "string" },
} as const;

function subscriptionFields(p: Parsed): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const eventTypes = p.values["event-type"] as string[] | undefined;
  if (eventTypes !== undefined) fields["eventTypes"] = eventTypes.flatMap((t) => t.split(",")).filter((t) => t !== "");
  const filter = str(p, "filter");
  if (filter !== undefined) fields["filter"] = filter;
  if (p.values["disabled"] === true) fields["enabled"] = false;
  const enabled = str(p, "enabled");
  if (enabled !== undefined) {
    if (enabled !== "true" && enabled !== "false") throw new UsageError("--enabled takes true or false");
    fields["enabled"] = enabled === "true";
  }
  return fields;
}

const APPLICATION_FLAGS = {
  name: { type: "string" },
  uid: { type: "string" },
  metadata: { type: "string", multiple: true },
  environment: { type: "string" },
} as const;

function applicationFields(p: Parsed): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const name = str(p, "name");
  if (name !== undefined) fields["name"] = name;
  const uid = str(p, "uid");
  if (uid !== undefined) fields["uid"] = uid;
  const metadata = keyValues(p.values["metadata"] as string[] | undefined, "metadata");
  if (metadata !== undefined) fields["metadata"] = metadata;
  return fields;
}

const ENVIRONMENT_FLAGS = {
  name: { type: "string" },
  slug: { type: "string" },
  unpublished: { type: "string", multiple: true },
} as const;

function environmentFields(p: Parsed): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const name = str(p, "name");
  if (name !== undefined) fields["name"] = name;
  const unpublished = p.values["unpublished"] as string[] | undefined;
  if (unpublished !== undefined)
    fields["unpublishedEventTypes"] = unpublished.flatMap((t) => t.split(",")).filter((t) => t !== "");
  return fields;
}

/** The list filters `--application` and `--environment`, where a verb takes them. */
function scopeFilter(p: Parsed): { applicationId?: string; environmentId?: string } {
  const applicationId = str(p, "application");
  const environmentId = str(p, "environment");
  return {
    ...(applicationId === undefined ? {} : { applicationId }),
    ...(environmentId === undefined ? {} : { environmentId }),
  };
}

/** The positional id, or `{ [flag]: value }` when the flag names the resource instead (exactly one of them). */
function idOr<K extends string>(p: Parsed, flag: K, arg: string): string | Record<K, string> {
  const id = p.positionals[0];
  const other = str(p, flag);
  if ((id === undefined) === (other === undefined)) throw new UsageError(`pass either ${arg} or --${flag}`);
  return other === undefined ? id! : ({ [flag]: other } as Record<K, string>);
}

const ENDPOINT_COLUMNS = ["id", "url", "enabled", "description", "createTime"];
const SUBSCRIPTION_COLUMNS = ["id", "endpointId", "eventTypes", "enabled", "filter", "createTime"];
const DEAD_LETTER_COLUMNS = [
  "id",
  "eventType",
  "endpointId",
  "messageId",
  "attemptCount",
  "lastResponseStatus",
  "lastError",
  "createTime",
];
const ATTEMPT_COLUMNS = [
  "number",
  "id",
  "startTime",
  "responseStatus",
  "latency",
  "errorKind",
  "errorMessage",
  "nextRetryTime",
];
const DELIVERY_COLUMNS = [
  "id",
  "status",
  "eventType",
  "endpointId",
  "messageId",
  "attemptCount",
  "lastResponseStatus",
  "createTime",
];

/** The URL of a `listen` endpoint: the endpoint to this machine's local receiver. */
function listenDescription(forwardTo: string): string {
  return `hookstream listen → ${forwardTo}`;
}

const VERBS: Record<string, Record<string, Verb> | Verb> = {
  send: {
    help: `hookstream send --endpoint EP --event-type TYPE (--data JSON | --data-file FILE|-) [options]
  Sends one message to one endpoint; the payload's bytes are sent exactly as given.
  --idempotency-key KEY            safe to repeat: the same key returns the first message
  --deliver-in 5m | --deliver-at ISO | --deliver-at-local 2027-03-14T09:30:00 --time-zone Europe/Paris`,
    options: SEND_FLAGS,
    async run(p, io) {
      const endpoint = str(p, "endpoint") ?? p.positionals[0];
      if (endpoint === undefined) throw new UsageError("missing --endpoint");
      const eventType = str(p, "event-type");
      if (eventType === undefined) throw new UsageError("missing --event-type");
      await using producer = producerOf(credentials(p, io.env));
      const key = str(p, "idempotency-key");
      const sent = await producer.send(endpoint, await payloadOf(p), {
        eventType,
        ...(key === undefined ? {} : { idempotencyKey: key }),
        ...scheduleFlags(p),
      });
      printObject(io, outputOf(p), sent);
      return 0;
    },
  },
  trigger: {
    help: `hookstream trigger --event-type TYPE (--data JSON | --data-file FILE|-) [--idempotency-key KEY] [--metadata K=V]...
  Sends one message to every endpoint that receives the event type (its eventTypes, filter and
  subscriptions decide); prints every delivery.`,
    options: {
      "event-type": { type: "string", short: "t" },
      data: { type: "string", short: "d" },
      "data-file": { type: "string" },
      "idempotency-key": { type: "string" },
      metadata: { type: "string", multiple: true },
    },
    async run(p, io) {
      const eventType = str(p, "event-type") ?? p.positionals[0];
      if (eventType === undefined) throw new UsageError("missing --event-type");
      await using producer = producerOf(credentials(p, io.env));
      const key = str(p, "idempotency-key");
      const metadata = keyValues(p.values["metadata"] as string[] | undefined, "metadata");
      const out = await producer.trigger(eventType, await payloadOf(p), {
        ...(key === undefined ? {} : { idempotencyKey: key }),
        ...(metadata === undefined ? {} : { metadata }),
      });
      if (outputOf(p) === "json") printObject(io, "json", out);
      else {
        io.stdout.write(`message ${out.messageId}${out.replayed ? " (replayed)" : ""}\n`);
        printRows(io, "table", out.deliveries, ["deliveryId", "endpointId"]);
      }
      return 0;
    },
  },
  messages: {
    get: getVerb({
      help: "hookstream messages get MESSAGE_ID\n  A message (its exact payload) and its deliveries (API key).",
      arg: "MESSAGE_ID",
      connect: producerOf,
      call: (producer, id) => producer.messages.get(id),
      print(io, out, res) {
        if (out === "json") {
          printObject(io, "json", res);
          return;
        }
        const m = res.message!;
        printObject(io, "table", {
          id: m.id,
          eventType: m.eventType,
          createTime: m.createTime,
          idempotencyKey: m.idempotencyKey,
          contentType: m.contentType,
          payload: m.payloadJson,
        });
        io.stdout.write("\n");
        printRows(io, "table", res.deliveries, DELIVERY_COLUMNS);
      },
    }),
  },
  deliveries: {
    ls: listVerb({
      help: `hookstream deliveries ls [--endpoint EP] [--message MSG] [--status failed,pending_retry] [--limit N]
  Deliveries, newest first (management token); 50 unless --limit.`,
      options: {
        endpoint: { type: "string", short: "e" },
        message: { type: "string", short: "m" },
        status: { type: "string", multiple: true, short: "s" },
      },
      columns: DELIVERY_COLUMNS,
      defaultLimit: 50,
      items(m, p, pageSize) {
        const endpointId = str(p, "endpoint");
        const messageId = str(p, "message");
        const statuses = statusesOf(p);
        return m.deliveries.listAll({
          ...(endpointId === undefined ? {} : { endpointId }),
          ...(messageId === undefined ? {} : { messageId }),
          ...(statuses === undefined ? {} : { statuses }),
          pageSize,
        });
      },
    }),
    get: getVerb({
      help: "hookstream deliveries get DELIVERY_ID [--payload]\n  One delivery, with its payload when --payload.",
      arg: "DELIVERY_ID",
      options: { payload: { type: "boolean" } },
      connect: managementOf,
      call: (m, id, p) => m.deliveries.get(id, { includePayload: p.values["payload"] === true }),
      print(io, out, res) {
        if (out === "json") {
          printObject(io, "json", res);
          return;
        }
        printObject(io, "table", res.delivery ?? {});
        if (res.payload !== undefined) {
          const status = Object.entries(PayloadStatus).find(([, v]) => v === res.payload!.status)?.[0] ?? "";
          io.stdout.write(`payload (${status.toLowerCase()}): ${res.payload.payloadJson}\n`);
        }
      },
    }),
  },
  attempts: {
    ls: listVerb({
      help: "hookstream attempts ls DELIVERY_ID [--limit N]\n  Every attempt of a delivery: status, latency, error.",
      columns: ATTEMPT_COLUMNS,
      items: (m, p, pageSize) => m.deliveries.listAllAttempts(needPositional(p, 0, "DELIVERY_ID"), { pageSize }),
    }),
  },
  replay: {
    help: "hookstream replay DELIVERY_ID | --message MESSAGE_ID\n  One more attempt of a final delivery (same webhook-id), or of every final delivery of a message.",
    options: { message: { type: "string", short: "m" } },
    async run(p, io) {
      await using m = managementOf(credentials(p, io.env));
      const message = str(p, "message");
      if (message !== undefined) {
        const res = await m.messages.replay(message);
        printRows(io, outputOf(p), res.replayed, DELIVERY_COLUMNS);
        if (res.skippedDeliveryIds.length > 0)
          io.stderr.write(`skipped (not final): ${res.skippedDeliveryIds.join(" ")}\n`);
        return 0;
      }
      printObject(io, outputOf(p), await m.deliveries.replay(needPositional(p, 0, "DELIVERY_ID")));
      return 0;
    },
  },
  retry: getVerb({
    help: "hookstream retry DELIVERY_ID [--cancel]\n  Attempts a pending retry now (or, with --cancel, gives up on it).",
    arg: "DELIVERY_ID",
    options: { cancel: { type: "boolean" } },
    connect: managementOf,
    call: (m, id, p) => (p.values["cancel"] === true ? m.deliveries.cancelRetry(id) : m.deliveries.retry(id)),
  }),
  "dead-letters": {
    ls: listVerb({
      help: `hookstream dead-letters ls [filter flags] [--limit N]
  Failed deliveries (every attempt used, or refused for good), newest first; 50 unless --limit.
${FILTER_HELP}`,
      options: FILTER_FLAGS,
      columns: DEAD_LETTER_COLUMNS,
      defaultLimit: 50,
      items: (m, p) => m.deadLetters.listAll(filterOf(p, false)),
    }),
    get: getVerb({
      help: "hookstream dead-letters get DELIVERY_ID\n  A dead letter and every attempt it made (why it failed).",
      arg: "DELIVERY_ID",
      connect: managementOf,
      call: async (m, id) => {
        const { delivery } = await m.deliveries.get(id);
        const attempts = [];
        for await (const a of m.deliveries.listAllAttempts(id, { pageSize: 100 })) attempts.push(a);
        return { delivery, attempts };
      },
      print(io, out, res) {
        if (out === "json") {
          printObject(io, "json", res);
          return;
        }
        printObject(io, "table", res.delivery ?? {});
        io.stdout.write("\n");
        printRows(io, "table", res.attempts, ATTEMPT_COLUMNS);
      },
    }),
    redrive: {
      help: `hookstream dead-letters redrive (DELIVERY_ID... | filter flags | --all) [--limit N] [--follow]
  Queues dead letters for one more attempt each (same webhook-id; retried by their policy after).
  One id is replayed at once and printed; several ids or a filter start a bulk replay of the
  deliveries they select (see \`hookstream bulk\`), printed or followed with --follow.
${FILTER_HELP}
  --all                    every dead letter (the filter flags narrow it)
  --limit N                at most N deliveries are visited`,
      options: BULK_FLAGS,
      async run(p, io) {
        const request = bulkRequestOf(p, DeliveryAction.REPLAY, { statuses: ["failed"] });
        if (request.deliveryIds?.length === 1 && p.values["follow"] !== true) {
          await using m = managementOf(credentials(p, io.env));
          printObject(io, outputOf(p), await m.deliveries.replay(request.deliveryIds[0]!));
          return 0;
        }
        return await startBulk(p, io, request);
      },
    },
  },
  bulk: {
    replay: bulkActionVerb(
      "replay",
      DeliveryAction.REPLAY,
      "One more attempt of each final delivery (same webhook-id)",
      "failed",
    ),
    retry: bulkActionVerb("retry", DeliveryAction.RETRY_NOW, "Attempts each pending retry now", "pending_retry"),
    "cancel-retry": bulkActionVerb(
      "cancel-retry",
      DeliveryAction.CANCEL_RETRY,
      "Gives up on each pending retry (the delivery is dead-lettered)",
      "pending_retry",
    ),
    get: getVerb({
      help: "hookstream bulk get BULK_ID\n  Where a bulk operation stands: state, deliveries matched and affected.",
      arg: "BULK_ID",
      connect: managementOf,
      call: (m, id) => m.bulk.get(id),
    }),
    watch: {
      help: `hookstream bulk watch BULK_ID
  Follows a bulk operation until it finishes: one line per change (--output json: one JSON
  object per line); exit 0 once it succeeded.`,
      async run(p, io) {
        const id = needPositional(p, 0, "BULK_ID");
        await using m = managementOf(credentials(p, io.env));
        return await followBulk(m, io, outputOf(p), id);
      },
    },
  },
  endpoints: {
    ls: listVerb({
      help: "hookstream endpoints ls [--application APP] [--environment ENV] [--limit N]\n  The workspace's endpoints (of one application or environment when given).",
      options: { application: { type: "string" }, environment: { type: "string" } },
      columns: ENDPOINT_COLUMNS,
      items: (m, p, pageSize) => m.endpoints.listAll({ ...scopeFilter(p), pageSize }),
    }),
    get: getVerb({
      help: "hookstream endpoints get ENDPOINT_ID",
      arg: "ENDPOINT_ID",
      connect: managementOf,
      call: (m, id) => m.endpoints.get(id),
    }),
    create: {
      help: `hookstream endpoints create URL [--event-type T]... [--description D] [--metadata K=V]... [--header K=V]... [--timeout 10s] [--async-ack] [--disabled] [--application APP] [--environment ENV]
  Creates an endpoint and prints its signing secret (shown only now); under an application and
  in an environment when given (the default environment otherwise).`,
      options: ENDPOINT_FLAGS,
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const target = p.positionals[0] ?? str(p, "url");
        if (target === undefined) throw new UsageError("missing URL");
        const res = await m.endpoints.create(endpointFields(p, target));
        printObject(io, outputOf(p), { ...res.endpoint, signingSecret: res.signingSecret });
        return 0;
      },
    },
    update: {
      help: "hookstream endpoints update ENDPOINT_ID [--url U] [--description D] [--metadata K=V]... [--header K=V]... [--timeout T] [--enabled true|false]",
      options: ENDPOINT_FLAGS,
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const fields = endpointFields(p, undefined);
        if (Object.keys(fields).length === 0) throw new UsageError("nothing to update: pass at least one field flag");
        printObject(io, outputOf(p), await m.endpoints.update(needPositional(p, 0, "ENDPOINT_ID"), fields));
        return 0;
      },
    },
    rm: removeVerb({
      help: "hookstream endpoints rm ENDPOINT_ID\n  Deletes an endpoint; its queued deliveries end cancelled.",
      arg: "ENDPOINT_ID",
      call: async (m, id) => void (await m.endpoints.delete(id)),
    }),
    "rotate-secret": getVerb({
      help: "hookstream endpoints rotate-secret ENDPOINT_ID\n  A new signing secret; the old one keeps verifying for the grace period.",
      arg: "ENDPOINT_ID",
      connect: managementOf,
      call: async (m, id) => {
        const res = await m.endpoints.rotateSecret(id);
        return {
          id: res.endpoint?.id,
          signingSecret: res.signingSecret,
          previousSecretExpireTime: res.previousSecretExpireTime,
        };
      },
    }),
    test: {
      help: `hookstream endpoints test ENDPOINT_ID
  Sends one signed ping to the endpoint now and shows the answer: success, status code,
  latency and the failure class; exit 0 when the endpoint answered 2xx.`,
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const res = await m.endpoints.test(needPositional(p, 0, "ENDPOINT_ID"));
        printObject(io, outputOf(p), res);
        return res.success ? 0 : 1;
      },
    },
  },
  subscriptions: {
    ls: listVerb({
      help: "hookstream subscriptions ls [--endpoint EP] [--limit N]\n  The workspace's subscriptions (of one endpoint with --endpoint), newest first.",
      options: { endpoint: { type: "string", short: "e" } },
      columns: SUBSCRIPTION_COLUMNS,
      items(m, p, pageSize) {
        const endpointId = str(p, "endpoint");
        return m.subscriptions.listAll({ ...(endpointId === undefined ? {} : { endpointId }), pageSize });
      },
    }),
    get: getVerb({
      help: "hookstream subscriptions get SUBSCRIPTION_ID",
      arg: "SUBSCRIPTION_ID",
      connect: managementOf,
      call: (m, id) => m.subscriptions.get(id),
    }),
    create: {
      help: `hookstream subscriptions create --endpoint EP --event-type T[,T]... [--filter CEL] [--disabled]
  Routes triggered messages of these event types to the endpoint, only those matching the CEL
  filter over payload, metadata and event_type when given (checked now: a bad one is refused).`,
      options: SUBSCRIPTION_FLAGS,
      async run(p, io) {
        const endpointId = str(p, "endpoint") ?? p.positionals[0];
        if (endpointId === undefined) throw new UsageError("missing --endpoint");
        await using m = managementOf(credentials(p, io.env));
        printObject(io, outputOf(p), await m.subscriptions.create({ endpointId, ...subscriptionFields(p) }));
        return 0;
      },
    },
    update: updateVerb({
      help: "hookstream subscriptions update SUBSCRIPTION_ID [--event-type T]... [--filter CEL] [--enabled true|false]\n  Changes the fields given (--filter '' removes the filter).",
      arg: "SUBSCRIPTION_ID",
      options: SUBSCRIPTION_FLAGS,
      fixed: [["endpoint", "--endpoint cannot change: create another subscription"]],
      fields: subscriptionFields,
      call: (m, id, fields) => m.subscriptions.update(id, fields),
    }),
    rm: removeVerb({
      help: "hookstream subscriptions rm SUBSCRIPTION_ID\n  Deletes a subscription; deliveries it already caused are kept.",
      arg: "SUBSCRIPTION_ID",
      call: async (m, id) => void (await m.subscriptions.delete(id)),
    }),
  },
  "event-types": {
    ls: listVerb({
      help: "hookstream event-types ls [--archived] [--limit N]\n  The event type catalog (with --archived, archived ones too).",
      options: { archived: { type: "boolean" } },
      columns: ["name", "description", "archived", "createTime"],
      items: (m, p, pageSize) => m.eventTypes.listAll({ includeArchived: p.values["archived"] === true, pageSize }),
    }),
    get: getVerb({
      help: "hookstream event-types get NAME",
      arg: "NAME",
      connect: managementOf,
      call: (m, name) => m.eventTypes.get(name),
    }),
    create: {
      help: `hookstream event-types create NAME [--description D] [--schema-file FILE.json]
  Adds an event type; with a JSON Schema, Send refuses payloads that do not match it.`,
      options: { description: { type: "string" }, "schema-file": { type: "string" } },
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const file = str(p, "schema-file");
        const description = str(p, "description");
        const created = await m.eventTypes.create({
          name: needPositional(p, 0, "NAME"),
          ...(description === undefined ? {} : { description }),
          ...(file === undefined ? {} : { schema: JSON.parse(readFileSync(file, "utf8")) as Record<string, never> }),
        });
        printObject(io, outputOf(p), created);
        return 0;
      },
    },
    update: {
      help: "hookstream event-types update NAME [--description D] [--schema-file FILE.json] [--archived true|false]",
      options: { description: { type: "string" }, "schema-file": { type: "string" }, archived: { type: "string" } },
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const patch: Record<string, unknown> = {};
        const description = str(p, "description");
        if (description !== undefined) patch["description"] = description;
        const file = str(p, "schema-file");
        if (file !== undefined) patch["schema"] = JSON.parse(readFileSync(file, "utf8")) as unknown;
        const archived = str(p, "archived");
        if (archived !== undefined) {
          if (archived !== "true" && archived !== "false") throw new UsageError("--archived takes true or false");
          patch["archived"] = archived === "true";
        }
        if (Object.keys(patch).length === 0) throw new UsageError("nothing to update: pass at least one field flag");
        printObject(io, outputOf(p), await m.eventTypes.update(needPositional(p, 0, "NAME"), patch));
        return 0;
      },
    },
    rm: {
      help: "hookstream event-types rm NAME\n  Deletes an event type; its pending deliveries are cancelled.",
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const name = needPositional(p, 0, "NAME");
        const res = await m.eventTypes.delete(name);
        printObject(io, outputOf(p), { deleted: name, cancelledDeliveries: res.cancelledDeliveries });
        return 0;
      },
    },
  },
  applications: {
    ls: listVerb({
      help: "hookstream applications ls [--environment ENV] [--limit N]\n  The workspace's applications (of one environment when given).",
      options: { environment: { type: "string" } },
      columns: ["id", "name", "uid", "environmentId", "createTime"],
      items: (m, p, pageSize) => m.applications.listAll({ ...scopeFilter(p), pageSize }),
    }),
    get: {
      help: "hookstream applications get APPLICATION_ID|--uid UID",
      options: { uid: { type: "string" } },
      async run(p, io) {
        const which = idOr(p, "uid", "APPLICATION_ID");
        await using m = managementOf(credentials(p, io.env));
        printObject(io, outputOf(p), await m.applications.get(which));
        return 0;
      },
    },
    create: {
      help: `hookstream applications create NAME [--uid UID] [--metadata K=V]... [--environment ENV]
  Registers an application (one of your customers), under your own UID when given.`,
      options: APPLICATION_FLAGS,
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const environmentId = str(p, "environment");
        printObject(
          io,
          outputOf(p),
          await m.applications.create({
            name: needPositional(p, 0, "NAME"),
            ...applicationFields(p),
            ...(environmentId === undefined ? {} : { environmentId }),
          }),
        );
        return 0;
      },
    },
    update: updateVerb({
      help: "hookstream applications update APPLICATION_ID [--name N] [--uid UID] [--metadata K=V]...\n  Changes the fields given (--metadata replaces the whole map).",
      arg: "APPLICATION_ID",
      options: APPLICATION_FLAGS,
      fixed: [["environment", "--environment is set on create and cannot change"]],
      fields: applicationFields,
      call: (m, id, fields) => m.applications.update(id, fields),
    }),
    rm: removeVerb({
      help: "hookstream applications rm APPLICATION_ID\n  Deletes an application with its endpoints; their pending deliveries are cancelled.",
      arg: "APPLICATION_ID",
      call: (m, id) => m.applications.delete(id),
    }),
  },
  environments: {
    ls: listVerb({
      help: "hookstream environments ls [--limit N]\n  The workspace's environments, the default one included.",
      columns: ["id", "slug", "name", "default", "unpublishedEventTypes", "createTime"],
      items: (m, _p, pageSize) => m.environments.listAll({ pageSize }),
    }),
    get: {
      help: "hookstream environments get ENVIRONMENT_ID|--slug SLUG",
      options: { slug: { type: "string" } },
      async run(p, io) {
        const which = idOr(p, "slug", "ENVIRONMENT_ID");
        await using m = managementOf(credentials(p, io.env));
        printObject(io, outputOf(p), await m.environments.get(which));
        return 0;
      },
    },
    create: {
      help: `hookstream environments create NAME --slug SLUG [--unpublished T[,T]...]
  Adds an environment; Trigger refuses the --unpublished event types in it.`,
      options: ENVIRONMENT_FLAGS,
      async run(p, io) {
        const slug = str(p, "slug");
        if (slug === undefined) throw new UsageError("missing --slug");
        await using m = managementOf(credentials(p, io.env));
        printObject(
          io,
          outputOf(p),
          await m.environments.create({ name: needPositional(p, 0, "NAME"), slug, ...environmentFields(p) }),
        );
        return 0;
      },
    },
    update: updateVerb({
      help: "hookstream environments update ENVIRONMENT_ID [--name N] [--unpublished T[,T]...]\n  Changes the fields given (--unpublished '' publishes every event type again).",
      arg: "ENVIRONMENT_ID",
      options: ENVIRONMENT_FLAGS,
      fixed: [["slug", "--slug is set on create and cannot change"]],
      fields: environmentFields,
      call: (m, id, fields) => m.environments.update(id, fields),
    }),
    rm: removeVerb({
      help: "hookstream environments rm ENVIRONMENT_ID\n  Deletes an environment that holds no keys, endpoints or applications (never the default one).",
      arg: "ENVIRONMENT_ID",
      call: async (m, id) => void (await m.environments.delete(id)),
    }),
  },
  keys: {
    ls: listVerb({
      help: "hookstream keys ls [--environment ENV] [--limit N]\n  The workspace's API keys (prefixes only; of one environment when given).",
      options: { environment: { type: "string" } },
      columns: ["id", "label", "secretPrefix", "environmentId", "createTime", "revokeTime"],
      items: (m, p, pageSize) => m.apiKeys.listAll({ ...scopeFilter(p), pageSize }),
    }),
    create: {
      help: "hookstream keys create LABEL [--environment ENV]\n  A new API key, bound to the environment when given; the secret is shown only now.",
      options: { environment: { type: "string" } },
      async run(p, io) {
        await using m = managementOf(credentials(p, io.env));
        const environmentId = str(p, "environment");
        const res = await m.apiKeys.create(
          needPositional(p, 0, "LABEL"),
          environmentId === undefined ? {} : { environmentId },
        );
        printObject(io, outputOf(p), { ...res.apiKey, secret: res.secret });
        return 0;
      },
    },
    revoke: getVerb({
      help: "hookstream keys revoke API_KEY_ID",
      arg: "API_KEY_ID",
      connect: managementOf,
      call: (m, id) => m.apiKeys.revoke(id),
    }),
  },
  tail: {
    help: `hookstream tail [--endpoint EP] [--message MSG] [--event-type T] [--status S,S] [--json] [--count N]
  The live delivery stream: one line per status change and attempt, resuming across reconnects.
  --json prints one JSON object per line. --count stops after N lines. Uses the management token
  (or the API key when no token is set).`,
    options: {
      endpoint: { type: "string", short: "e" },
      message: { type: "string", short: "m" },
      "event-type": { type: "string", short: "t" },
      status: { type: "string", multiple: true, short: "s" },
      count: { type: "string", short: "n" },
      "resume-token": { type: "string" },
    },
    async run(p, io) {
      const creds = credentials(p, io.env);
      await using client = creds.token !== undefined ? managementOf(creds) : producerOf(creds);
      const count = str(p, "count") === undefined ? Infinity : Number(str(p, "count"));
      const json = outputOf(p) === "json";
      const paint = painter(io);
      const eventType = str(p, "event-type");
      const statuses = statusesOf(p);
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      const endpointId = str(p, "endpoint");
      const messageId = str(p, "message");
      const resumeToken = str(p, "resume-token");
      if (!json) io.stderr.write(paint(90, `tailing deliveries of ${client.baseUrl} (Ctrl-C to stop)\n`));
      let lines = 0;
      try {
        for await (const e of client.watchDeliveries(
          {
            ...(endpointId === undefined ? {} : { endpointId }),
            ...(messageId === undefined ? {} : { messageId }),
            ...(statuses === undefined ? {} : { statuses }),
            ...(resumeToken === undefined ? {} : { resumeToken }),
          },
          { signal: controller.signal },
        )) {
          const d = e.delivery;
          if (d === undefined || (eventType !== undefined && d.eventType !== eventType)) continue;
          if (json) io.stdout.write(JSON.stringify(JSON.parse(jsonText(e))) + "\n");
          else io.stdout.write(tailLine(e, paint) + "\n");
          if (++lines >= count) break;
        }
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
      return 0;
    },
  },
  listen: {
    help: `hookstream listen --forward-to URL [--port N] [--host 127.0.0.1] [--public-url URL] [--event-type T]
  Runs a local receiver, points an endpoint at it (created, or reused when one already points
  there), verifies each delivery's signature, prints it and forwards it to URL; the answer of
  your server is what Hookstream sees (so its retries apply). Ctrl-C to stop.`,
    options: {
      "forward-to": { type: "string", short: "f" },
      port: { type: "string", short: "p" },
      host: { type: "string" },
      "public-url": { type: "string" },
      count: { type: "string", short: "n" },
    },
    async run(p, io) {
      const forwardTo = str(p, "forward-to");
      if (forwardTo === undefined || !/^https?:\/\//.test(forwardTo))
        throw new UsageError("--forward-to takes an http(s) URL");
      await using m = managementOf(credentials(p, io.env));
      return await listen(m, io, forwardTo, p);
    },
  },
  login: {
    help: `hookstream login [--url URL] [--api-key KEY] [--token MANAGEMENT_TOKEN] [--profile NAME]
  Checks the credentials against the API and saves them in the profile file (mode 0600).`,
    async run(p, io) {
      const url = str(p, "url") ?? io.env["HOOKSTREAM_URL"];
      const apiKey = str(p, "api-key") ?? io.env["HOOKSTREAM_API_KEY"];
      const token = str(p, "token") ?? io.env["HOOKSTREAM_MANAGEMENT_TOKEN"];
      if (apiKey === undefined && token === undefined) throw new UsageError("pass --api-key and/or --token");
      const base = url === undefined ? {} : { baseUrl: url };
      let workspace = "";
      if (token !== undefined) {
        await using m = new HookstreamManagement({ ...base, managementToken: token });
        const ws = await m.workspace.get();
        workspace = `${ws.name} (${ws.id})`;
      }
      if (apiKey !== undefined) {
        await using producer = new Hookstream({ ...base, apiKey });
        // Any answer but an authentication error proves the key (the id does not exist).
        await producer.messages.get("msg_00000000000000000000000000").catch((err: unknown) => {
          if (!(err instanceof HookstreamError) || err.isAuthError() || err.code === Code.Unavailable) throw err;
        });
      }
      const file = configFile(io.env);
      const name = str(p, "profile") ?? "default";
      const existing = existsSync(file)
        ? (JSON.parse(readFileSync(file, "utf8")) as { profiles?: Record<string, Profile> })
        : {};
      const profiles = {
        ...existing.profiles,
        [name]: {
          ...(url === undefined ? {} : { url }),
          ...(apiKey === undefined ? {} : { apiKey }),
          ...(token === undefined ? {} : { managementToken: token }),
        },
      };
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, JSON.stringify({ ...existing, profiles }, null, 2) + "\n", { mode: 0o600 });
      chmodSync(file, 0o600);
      io.stdout.write(
        `saved profile ${JSON.stringify(name)} in ${file}${workspace === "" ? "" : ` (workspace ${workspace})`}\n`,
      );
      return 0;
    },
  },
};

function tailLine(e: DeliveryEvent, paint: (c: number, t: string) => string): string {
  const d = e.delivery!;
  const status = ENUMS["status"]![d.status] ?? String(d.status);
  const time = (e.eventTime ?? new Date()).toISOString().slice(11, 23);
  const parts = [
    paint(90, time),
    paint(STATUS_COLOUR[status] ?? 0, status.toUpperCase().padEnd(13)),
    d.id,
    d.endpointId,
    d.eventType,
  ];
  const a = e.attempt;
  if (a !== undefined) {
    const latency = a.latency === undefined ? "" : ` ${Math.round(a.latency)}ms`;
    const outcome = a.responseStatus > 0 ? `${a.responseStatus}` : (ENUMS["errorKind"]![a.errorKind] ?? "error");
    parts.push(`attempt #${a.number} ${outcome}${latency}${a.errorMessage === "" ? "" : ` ${a.errorMessage}`}`);
  } else if (d.nextAttemptTime !== undefined && d.status === DeliveryStatus.PENDING_RETRY) {
    parts.push(`next attempt ${d.nextAttemptTime.toISOString()}`);
  }
  return parts.join("  ");
}

async function listen(m: HookstreamManagement, io: Io, forwardTo: string, p: Parsed): Promise<number> {
  const paint = painter(io);
  const host = str(p, "host") ?? "127.0.0.1";
  const count = str(p, "count") === undefined ? Infinity : Number(str(p, "count"));
  let secrets: string[] = [];
  let handled = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const server = createServer((req, res) => void forward(req, res));
  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers = req.headers as Record<string, string>;
    const time = new Date().toISOString().slice(11, 23);
    try {
      await verifyWebhook(body, headers, secrets);
    } catch (err) {
      io.stdout.write(
        `${paint(90, time)}  ${paint(31, "REJECTED")}  ${headers["webhook-id"] ?? "-"}  ${(err as Error).message}\n`,
      );
      res.writeHead(401).end();
      return;
    }
    const forwardHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) {
      if (!["host", "connection", "content-length", "transfer-encoding"].includes(k) && typeof v === "string")
        forwardHeaders[k] = v;
    }
    const started = performance.now();
    let status = 502;
    let answer: Uint8Array = new Uint8Array();
    try {
      const out = await fetch(forwardTo, { method: "POST", headers: forwardHeaders, body });
      status = out.status;
      answer = new Uint8Array(await out.arrayBuffer());
    } catch (err) {
      answer = new TextEncoder().encode(`hookstream listen: ${forwardTo}: ${(err as Error).message}`);
    }
    const ms = Math.round(performance.now() - started);
    const colour = status < 300 ? 32 : status < 500 ? 33 : 31;
    io.stdout.write(
      `${paint(90, time)}  ${headers["webhook-id"]}  ${body.length} bytes  → ${forwardTo}  ${paint(colour, String(status))} ${ms}ms\n`,
    );
    res.writeHead(status, { "content-type": "text/plain" }).end(answer);
    if (++handled >= count) finish();
  };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(str(p, "port") ?? "0"), host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const publicUrl = str(p, "public-url") ?? `http://${host}:${port}/`;
  const description = listenDescription(forwardTo);
  let endpointId = "";
  for await (const e of m.endpoints.listAll({ pageSize: 100 })) {
    if (e.url === publicUrl) {
      endpointId = e.id;
      break;
    }
  }
  if (endpointId === "") {
    const created = await m.endpoints.create({ url: publicUrl, description });
    endpointId = created.endpoint!.id;
    secrets = [created.signingSecret];
  } else {
    // Reused: a fresh secret that this process knows (the previous one stays valid for its grace period).
    const rotated = await m.endpoints.rotateSecret(endpointId);
    secrets = [rotated.signingSecret];
  }
  io.stdout.write(`Ready: endpoint ${endpointId} (${publicUrl}) → forwarding to ${forwardTo} (Ctrl-C to stop)\n`);
  const stop = (): void => finish();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await finished;
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return 0;
}

function exitCodeOf(err: HookstreamError): number {
  if (err.isAuthError()) return 3;
  if (err.isNotFound()) return 4;
  if (err.isValidation()) return 5;
  if (err.isConflict()) return 6;
  if (err.isRetryable()) return 7;
  return 1;
}

function verbHelp(name: string, verb: Record<string, Verb> | Verb): string {
  if (typeof (verb as Verb).run === "function") return (verb as Verb).help + "\n";
  return `hookstream ${name} <${Object.keys(verb).join("|")}>\n\n${Object.values(verb as Record<string, Verb>)
    .map((v) => v.help)
    .join("\n\n")}\n`;
}

/** Runs one user command; resolves to the exit code. Never throws. */
export async function runUserCommand(
  argv: readonly string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const [name, ...rest] = argv;
  const entry = name === undefined ? undefined : VERBS[name];
  if (name === undefined || entry === undefined) {
    io.stderr.write(`hookstream: unknown command ${JSON.stringify(name)}\n\n${USER_USAGE}`);
    return 2;
  }
  let verb: Verb;
  let args = rest;
  let label = name;
  if (typeof (entry as Verb).run === "function") verb = entry as Verb;
  else {
    const sub = rest[0];
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      io[sub === undefined ? "stderr" : "stdout"].write(verbHelp(name, entry));
      return sub === undefined ? 2 : 0;
    }
    const found = (entry as Record<string, Verb>)[sub];
    if (found === undefined) {
      io.stderr.write(`hookstream ${name}: unknown subcommand ${JSON.stringify(sub)}\n\n${verbHelp(name, entry)}`);
      return 2;
    }
    verb = found;
    args = rest.slice(1);
    label = `${name} ${sub}`;
  }
  try {
    const parsed = parse(args, verb.options ?? {});
    if (parsed.values["help"] === true) {
      io.stdout.write(verb.help + "\n");
      return 0;
    }
    return await verb.run(parsed, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`hookstream ${label}: ${err.message}\n\n${verb.help}\n`);
      return 2;
    }
    if (err instanceof HookstreamError) {
      io.stderr.write(`hookstream ${label}: ${err.describe()}\n`);
      return exitCodeOf(err);
    }
    io.stderr.write(`hookstream ${label}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
