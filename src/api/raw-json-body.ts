/**
 * The producer's exact JSON text for members of Connect JSON unary requests.
 *
 * connect-node reads a unary request body and JSON.parse's it, so by the time a handler runs
 * the text is gone: numbers are doubles, escapes decoded, spelling lost; and a
 * google.protobuf.Value refuses nesting beyond 100 levels and numbers beyond the double range.
 * For the procedures and members that want the text (Send's `payload`), the HTTP server hands
 * connect its own body stream instead (see `captureRawJson`). That stream reads the whole body
 * (within the request size limit), decompresses it, finds the members with the strict scanner
 * of json-spans.ts, keeps their exact bytes for the handler, and gives connect the same JSON
 * with each captured member replaced by `null`. The handler reads the bytes with
 * `rawJsonMembers(ctx, "payload")`; the message connect built only says that a payload is there.
 *
 * connect still runs the request gate before reading, still enforces the size limit and still
 * reports malformed JSON (a body the scanner rejects is passed on untouched). Only Connect unary
 * JSON POSTs are captured (Content-Type application/json); gRPC, gRPC-Web, Connect binary and
 * streams are not, and their handlers fall back to the decoded message.
 */
import { Code, ConnectError, createContextKey, createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Compression, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { findJsonMembers, JsonSyntaxError, type JsonSpan } from "./json-spans.ts";

/** The captured members of one call: path → exact bytes of each member, in document order. */
export interface RawJsonMembers {
  /** Undefined until connect has read the body, or when it was not captured (not JSON). */
  get(path: string): Uint8Array[] | undefined;
}

/** Context value of a captured call (undefined for every call that is not captured). */
export const rawJsonMembersKey = createContextKey<RawJsonMembers | undefined>(undefined, {
  description: "exact JSON text of request members",
});

// Connect unary JSON: application/json, optionally with a UTF-8 charset (as connect accepts it).
const connectUnaryJson = /^application\/json(?:; ?charset=utf-?8)?$/i;
const placeholder = Buffer.from("null", "latin1");

/**
 * The request connect should handle: for a Connect unary JSON POST, one whose body stream
 * captures the members at `paths` ("payload", "items[].payload") as described above; any other
 * request is returned as it is.
 */
export function captureRawJson(
  req: UniversalServerRequest,
  paths: readonly string[],
  readMaxBytes: number,
  compressions: readonly Compression[],
): UniversalServerRequest {
  const contentType = req.header.get("content-type");
  if (req.method !== "POST" || contentType === null || !connectUnaryJson.test(contentType)) return req;
  const body = req.body;
  if (typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return req;
  const encoding = (req.header.get("content-encoding") ?? "identity").trim().toLowerCase();
  const compression = compressions.find((c) => c.name === encoding);
  // Unknown encodings and announced oversizes: connect's own answer, as without capture.
  if (encoding !== "identity" && compression === undefined) return req;
  const length = req.header.get("content-length");
  const announced = length === null ? undefined : Number(length);
  if (announced !== undefined && !(Number.isSafeInteger(announced) && announced <= readMaxBytes)) return req;

  const captured = new Map<string, Uint8Array[]>();
  async function* decodedBody(): AsyncGenerator<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > readMaxBytes) {
        throw new ConnectError(
          `message size is larger than configured readMaxBytes ${readMaxBytes}`,
          Code.ResourceExhausted,
        );
      }
      chunks.push(chunk);
    }
    // As connect checks a Content-Length it is given (the header is dropped below).
    if (announced !== undefined && size !== announced) {
      throw new ConnectError(`protocol error: promised ${announced} bytes, received ${size}`, Code.InvalidArgument);
    }
    let bytes: Uint8Array = Buffer.concat(chunks);
    if (compression !== undefined) bytes = await compression.decompress(bytes, readMaxBytes);
    yield replaceMembers(bytes, paths, captured);
  }
  const header = new Headers(req.header);
  // The stream is decoded here, and its length changes.
  header.delete("content-encoding");
  header.delete("content-length");
  const members: RawJsonMembers = { get: (path) => captured.get(path) };
  const contextValues = req.contextValues ?? createContextValues();
  contextValues.set(rawJsonMembersKey, members);
  return { ...req, header, body: decodedBody(), contextValues };
}

/**
 * Records the exact bytes of the members at `paths` in `captured` and returns the JSON with
 * each of them replaced by `null`; malformed JSON comes back untouched for connect to reject.
 */
export function replaceMembers(
  bytes: Uint8Array,
  paths: readonly string[],
  captured: Map<string, Uint8Array[]>,
): Uint8Array {
  const spans: JsonSpan[] = [];
  try {
    for (const path of paths) {
      const found = findJsonMembers(bytes, path);
      captured.set(
        path,
        found.map((s) => bytes.slice(s.start, s.end)),
      );
      spans.push(...found);
    }
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    captured.clear();
    return bytes;
  }
  if (spans.length === 0) return bytes;
  spans.sort((a, b) => a.start - b.start);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const span of spans) {
    if (span.start < at) continue; // nested in a member already replaced
    parts.push(bytes.subarray(at, span.start), placeholder);
    at = span.end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}

/**
 * The exact bytes of the members at `path` of the call's Connect JSON body, in document order;
 * undefined when the call was not captured (gRPC, binary, …) or `path` was not asked for.
 */
export function rawJsonMembers(ctx: HandlerContext, path: string): Uint8Array[] | undefined {
  return ctx.values.get(rawJsonMembersKey)?.get(path);
}
