/**
 * Plain objects in, plain objects out: the SDK's calls take and return ordinary objects instead of
 * protobuf messages. The conversion walks the schema's descriptors, so every RPC of the schema
 * (including ones added later) converts the same way:
 *
 * - `google.protobuf.Timestamp` ⇄ `Date` (input also takes an ISO string or epoch milliseconds);
 * - `google.protobuf.Duration` ⇄ milliseconds (input also takes `"30s"`, `"5m"`, `"1h30m"`);
 * - `google.protobuf.FieldMask` ⇄ `string[]` of field names (input also a comma-separated string);
 * - `google.protobuf.Value` / `Struct` ⇄ JSON values;
 * - enums are the generated enums; input also takes their names (`"SUCCEEDED"`,
 *   `"DELIVERY_STATUS_SUCCEEDED"`, `"succeeded"`);
 * - 64-bit integers are `bigint`; input also takes a safe integer `number` or a decimal string.
 *
 * Outputs drop protobuf's `$typeName`; nothing else changes shape.
 */
import {
  create,
  fromJson,
  toJson,
  ScalarType,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import {
  timestampDate,
  timestampFromDate,
  type Duration,
  type FieldMask,
  type ListValue,
  type Struct,
  type Timestamp,
  type Value,
} from "@bufbuild/protobuf/wkt";
import { durationMs, parseDuration } from "./duration.ts";
import { ClientInputError } from "./errors.ts";

type OmitProto<T> = { [K in keyof T as K extends "$typeName" | "$unknown" ? never : K]: T[K] };

/** A generated message type as a plain object (see the module comment for the mappings). */
export type Plain<T> = T extends string | number | boolean | bigint | null | undefined
  ? T
  : T extends Timestamp
    ? Date
    : T extends Duration
      ? number
      : T extends FieldMask
        ? string[]
        : T extends Value | Struct | ListValue
          ? JsonValue
          : T extends Uint8Array
            ? Uint8Array
            : T extends readonly (infer U)[]
              ? Plain<U>[]
              : T extends Message
                ? { [K in keyof OmitProto<T>]: Plain<OmitProto<T>[K]> }
                : T extends object
                  ? { [K in keyof T]: Plain<T[K]> }
                  : T;

/** What an SDK call accepts where the schema has message type T: every field optional. */
export type Input<T> = T extends Timestamp
  ? Date | string | number
  : T extends Duration
    ? number | string
    : T extends FieldMask
      ? string[] | string
      : T extends Value | Struct | ListValue
        ? JsonValue
        : T extends Uint8Array
          ? Uint8Array
          : T extends bigint
            ? bigint | number | string
            : T extends number
              ? number extends T
                ? number
                : T | string
              : T extends readonly (infer U)[]
                ? Input<U>[]
                : T extends Message
                  ? { [K in keyof OmitProto<T>]?: Input<OmitProto<T>[K]> | undefined }
                  : T extends object
                    ? { [K in keyof T]?: Input<T[K]> | undefined }
                    : T;

const WKT = "google.protobuf.";

/** Builds the protobuf message of `schema` from a plain input object; throws ClientInputError on bad input. */
export function toMessage<D extends DescMessage>(schema: D, input: unknown, path = ""): Message {
  return create(schema, toInit(schema, input, path) as never);
}

function toInit(schema: DescMessage, input: unknown, path: string): Record<string, unknown> {
  if (input === undefined || input === null) return {};
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new ClientInputError(path || schema.name, `expected an object for ${schema.typeName}`);
  }
  const src = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const member of schema.members) {
    known.add(member.localName);
    const value = src[member.localName];
    if (value === undefined) continue;
    if (member.kind === "oneof") {
      const { case: c, value: v } = value as { case?: string; value?: unknown };
      if (c === undefined) continue;
      const field = member.fields.find((f) => f.localName === c);
      if (field === undefined) throw new ClientInputError(join(path, member.localName), `unknown case ${c}`);
      out[member.localName] = { case: c, value: fieldValue(field, v, join(path, c)) };
    } else {
      out[member.localName] = fieldValue(member, value, join(path, member.localName));
    }
  }
  for (const key of Object.keys(src)) {
    if (!known.has(key) && src[key] !== undefined) {
      throw new ClientInputError(join(path, key), `${schema.typeName} has no field ${key}`);
    }
  }
  return out;
}

const join = (path: string, name: string): string => (path === "" ? name : `${path}.${name}`);

function fieldValue(field: DescField, value: unknown, path: string): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return scalarIn(field.scalar, value, path);
    case "enum":
      return enumIn(field.enum, value, path);
    case "message":
      // protobuf-es represents a singular google.protobuf.Struct field as a plain JSON object.
      if (field.message.typeName === `${WKT}Struct`) {
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          throw new ClientInputError(path, "expected a JSON object");
        }
        return value;
      }
      return messageIn(field.message, value, path);
    case "list": {
      if (!Array.isArray(value)) throw new ClientInputError(path, "expected an array");
      return value.map((v: unknown, i) => {
        const p = `${path}[${i}]`;
        if (field.listKind === "scalar") return scalarIn(field.scalar, v, p);
        if (field.listKind === "enum") return enumIn(field.enum, v, p);
        return messageIn(field.message, v, p);
      });
    }
    case "map": {
      if (typeof value !== "object" || value === null) throw new ClientInputError(path, "expected an object");
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const p = `${path}.${k}`;
        if (field.mapKind === "scalar") out[k] = scalarIn(field.scalar, v, p);
        else if (field.mapKind === "enum") out[k] = enumIn(field.enum, v, p);
        else out[k] = messageIn(field.message, v, p);
      }
      return out;
    }
  }
}

function messageIn(schema: DescMessage, value: unknown, path: string): unknown {
  switch (schema.typeName) {
    case `${WKT}Timestamp`:
      return timestampIn(value, path);
    case `${WKT}Duration`: {
      const ms = typeof value === "string" ? parseDuration(value, path) : value;
      if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
        throw new ClientInputError(path, "expected a duration: milliseconds or a string such as 30s, 5m, 1h30m");
      }
      const seconds = Math.floor(ms / 1000);
      return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
    }
    case `${WKT}FieldMask`: {
      const paths = typeof value === "string" ? value.split(",").filter((p) => p !== "") : value;
      if (!Array.isArray(paths)) throw new ClientInputError(path, "expected a list of field names");
      return { paths: paths.map((p) => camelToSnake(String(p))) };
    }
    case `${WKT}Value`:
    case `${WKT}Struct`:
    case `${WKT}ListValue`:
      return fromJson(schema, value as JsonValue);
    default:
      return toInit(schema, value, path);
  }
}

function timestampIn(value: unknown, path: string): Timestamp {
  const date =
    value instanceof Date
      ? value
      : typeof value === "string" || typeof value === "number"
        ? new Date(value)
        : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new ClientInputError(path, "expected a Date, an ISO 8601 string or epoch milliseconds");
  }
  return timestampFromDate(date);
}

function scalarIn(type: ScalarType, value: unknown, path: string): unknown {
  switch (type) {
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      if (typeof value === "bigint") return value;
      if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
      if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
      throw new ClientInputError(path, "expected an integer (bigint, safe integer or decimal string)");
    case ScalarType.STRING:
      if (typeof value !== "string") throw new ClientInputError(path, "expected a string");
      return value;
    case ScalarType.BOOL:
      if (typeof value !== "boolean") throw new ClientInputError(path, "expected a boolean");
      return value;
    case ScalarType.BYTES:
      if (typeof value === "string") return new TextEncoder().encode(value);
      if (!(value instanceof Uint8Array)) throw new ClientInputError(path, "expected a Uint8Array");
      return value;
    default:
      if (typeof value !== "number" || !Number.isFinite(value)) throw new ClientInputError(path, "expected a number");
      return value;
  }
}

function enumIn(desc: DescEnum, value: unknown, path: string): number {
  if (typeof value === "number" && desc.values.some((v) => v.number === value)) return value;
  if (typeof value === "string") {
    const wanted = value.toUpperCase().replace(/-/g, "_");
    const found = desc.values.find(
      (v) => v.name === wanted || v.localName === wanted || v.name === `${enumPrefix(desc)}${wanted}`,
    );
    if (found !== undefined && found.number !== 0) return found.number;
  }
  const names = desc.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase());
  throw new ClientInputError(path, `expected one of ${names.join(", ")}`);
}

/** `DELIVERY_STATUS_` for hookstream.v1.DeliveryStatus. */
function enumPrefix(desc: DescEnum): string {
  return desc.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() + "_";
}

/** The short lower-case name of an enum value: `succeeded` for DELIVERY_STATUS_SUCCEEDED. */
export function enumName(desc: DescEnum, value: number): string {
  const v = desc.values.find((x) => x.number === value);
  return v === undefined ? String(value) : v.localName.toLowerCase();
}

function camelToSnake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The plain object of a protobuf message: `$typeName` dropped, well-known types converted. */
export function toPlain<T extends Message>(schema: DescMessage, message: T): Plain<T> {
  return plainMessage(schema, message) as Plain<T>;
}

function plainMessage(schema: DescMessage, message: Message): unknown {
  switch (schema.typeName) {
    case `${WKT}Timestamp`:
      return timestampDate(message as Timestamp);
    case `${WKT}Duration`:
      return durationMs(message as Duration);
    case `${WKT}FieldMask`:
      return (message as FieldMask).paths.slice();
    case `${WKT}Value`:
    case `${WKT}Struct`:
    case `${WKT}ListValue`:
      return toJson(schema, message);
  }
  const src = message as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const member of schema.members) {
    const value = src[member.localName];
    if (member.kind === "oneof") {
      const { case: c, value: v } = value as { case?: string; value?: unknown };
      const field = member.fields.find((f) => f.localName === c);
      out[member.localName] = field === undefined ? { case: undefined } : { case: c, value: plainField(field, v) };
    } else {
      out[member.localName] = plainField(member, value);
    }
  }
  return out;
}

function plainField(field: DescField, value: unknown): unknown {
  if (value === undefined) return undefined;
  switch (field.fieldKind) {
    case "message":
      if (field.message.typeName === `${WKT}Struct`) return value; // already a JSON object
      return plainMessage(field.message, value as Message);
    case "list":
      return field.listKind === "message"
        ? (value as Message[]).map((v) => plainMessage(field.message, v))
        : (value as unknown[]).slice();
    case "map":
      if (field.mapKind !== "message") return { ...(value as Record<string, unknown>) };
      return Object.fromEntries(
        Object.entries(value as Record<string, Message>).map(([k, v]) => [k, plainMessage(field.message, v)]),
      );
    default:
      return value;
  }
}
