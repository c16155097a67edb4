/**
 * Payload JSON text, exact: `bigint`s are written with every digit, a {@link rawJson} value (or
 * `JSON.rawJSON`) is written as given, so what the producer means is what the receiver gets.
 */
import { ClientInputError } from "./errors.ts";

/** JSON text the SDK sends as it is (the server checks it is one JSON value). */
export class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** Marks pre-serialised JSON text to be sent byte-exact: `send(ep, rawJson('{"n":12345678901234567890}'))`. */
export function rawJson(text: string): RawJson {
  return new RawJson(text);
}

const isRawJSON = (JSON as { isRawJSON?: (v: unknown) => boolean }).isRawJSON;

/** JSON.stringify, but a bigint is its exact digits and a RawJson is its text. */
export function stringifyJson(value: unknown, path = "payload"): string {
  const out = write(value, path);
  if (out === undefined) throw new ClientInputError(path, "is not a JSON value");
  return out;
}

function write(value: unknown, path: string): string | undefined {
  if (value instanceof RawJson) return value.text;
  if (isRawJSON?.(value) === true) return JSON.stringify(value);
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  switch (typeof value) {
    case "bigint":
      return value.toString();
    case "number":
      if (!Number.isFinite(value)) throw new ClientInputError(path, `${value} is not a JSON number`);
      return JSON.stringify(value);
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return `[${value.map((v, i) => write(v, `${path}[${i}]`) ?? "null").join(",")}]`;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const text = write(v, `${path}.${k}`);
    if (text !== undefined) parts.push(`${JSON.stringify(k)}:${text}`);
  }
  return `{${parts.join(",")}}`;
}
