/**
 * The producer's exact JSON text for Connect JSON unary requests.
 *
 * connect-node reads a unary request body, then JSON.parse's it, so by the time a handler runs
 * the text is gone: numbers are doubles, escapes decoded, spelling lost. For the procedures
 * that want it (Send: the payload must be delivered byte-exact), the HTTP server hands connect
 * a pass-through copy of the body stream that also keeps the chunks it passes on (bounded by
 * the request size limit; connect rejects more anyway), and puts a `RawJsonBody` in the call's
 * context values. connect consumes the stream exactly as before (request gate first, its own
 * size limit, decompression and errors), so nothing changes for any client; a handler then asks
 * `rawJsonMembers(ctx, "payload")` for the exact bytes of a member.
 *
 * Only Connect unary JSON POSTs are captured (Content-Type application/json); gRPC, gRPC-Web,
 * Connect binary and streams have no raw JSON text, and handlers fall back to the message.
 */
import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { findJsonMembers } from "./json-spans.ts";

/** The complete request body of a Connect JSON unary call, as it arrived. */
export interface RawJsonBody {
  /**
   * The decoded (decompressed) body bytes, once connect has read all of it; undefined when the
   * body is not (yet) complete, was over the size limit or has an unknown encoding.
   */
  bytes(): Promise<Uint8Array | undefined>;
}

/** Context value carrying the raw body of a captured call (undefined for every other call). */
export const rawJsonBodyKey = createContextKey<RawJsonBody | undefined>(undefined, {
  description: "raw Connect JSON request body",
});

// Connect unary JSON: application/json, optionally with a UTF-8 charset (as connect accepts it).
const connectUnaryJson = /^application\/json(?:; ?charset=utf-?8)?$/i;

/** True when a request with these headers is a Connect unary JSON POST. */
export function isConnectUnaryJson(method: string | undefined, contentType: string | undefined): boolean {
  return method === "POST" && contentType !== undefined && connectUnaryJson.test(contentType);
}

/**
 * A pass-through copy of `body` that remembers its chunks, and the context values that expose
 * them to the handler. `contentEncoding` is the request's Content-Encoding header.
 */
export function captureRawJsonBody(
  body: AsyncIterable<Uint8Array>,
  contentEncoding: string | undefined,
  readMaxBytes: number,
  compressions: readonly Compression[],
): { body: AsyncIterable<Uint8Array>; contextValues: ContextValues } {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let complete = false;
  let overflow = false;
  async function* tee(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > readMaxBytes) {
        overflow = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
      yield chunk;
    }
    complete = true;
  }
  const encoding = (contentEncoding ?? "identity").trim().toLowerCase();
  const compression = compressions.find((c) => c.name === encoding);
  const raw: RawJsonBody = {
    async bytes() {
      if (!complete || overflow) return undefined;
      const joined = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (encoding === "identity") return joined;
      if (compression === undefined) return undefined;
      return compression.decompress(joined, readMaxBytes);
    },
  };
  const contextValues = createContextValues().set(rawJsonBodyKey, raw);
  return { body: tee(), contextValues };
}

/**
 * The exact bytes of the members at `path` ("payload", "items[].payload") of the call's raw
 * Connect JSON body, in document order; undefined when the call has no captured body (gRPC,
 * binary, …). connect has already parsed the same bytes as JSON, so they are well-formed.
 */
export async function rawJsonMembers(ctx: HandlerContext, path: string): Promise<Uint8Array[] | undefined> {
  const raw = ctx.values.get(rawJsonBodyKey);
  if (raw === undefined) return undefined;
  const bytes = await raw.bytes();
  if (bytes === undefined) return undefined;
  return findJsonMembers(bytes, path).map((s) => bytes.subarray(s.start, s.end));
}
