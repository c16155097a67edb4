/**
 * connect-es v2 raises some failures to decode a client's request body as `internal` (a garbage
 * or truncated binary protobuf: "parse binary: …" from `createBinarySerialization`; a truncated
 * gzip body; a compressed envelope without an encoding). They are the client's fault, so the
 * API answers them with `invalid_argument`, like connect-es already does for broken JSON and
 * broken envelopes.
 *
 * For unary RPCs connect decodes the body before any interceptor runs (and gRPC/gRPC-Web unary
 * even before the implementation is invoked), so an interceptor cannot see these errors. What
 * every protocol handler does see is the request gate, which receives the call's
 * `HandlerContext` before the body is read; and every handler calls `context.abort(error)`
 * synchronously before it serializes an error. The gate below listens for that abort and
 * reclassifies the error object in place, before it reaches the wire.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/hookstream/v1/error_pb.ts";

// Messages connect-es (2.2) and connect-node use for undecodable input raised with Code.Internal.
const undecodablePrefixes = [
  "parse binary: ",
  "decompression failed",
  "received compressed envelope, but do not know how to decompress",
];

/** True for a connect-raised `internal` error that really means "the request body is malformed". */
export function isUndecodableRequestError(err: unknown): boolean {
  if (!(err instanceof ConnectError) || err.code !== Code.Internal) return false;
  const raw = err.rawMessage;
  return undecodablePrefixes.some((prefix) => raw.startsWith(prefix));
}

/** A fresh `invalid_argument` error for an undecodable request body, keeping connect's message. */
export function undecodableRequestToInvalidArgument(err: ConnectError): ConnectError {
  const mapped = new ConnectError(err.rawMessage, Code.InvalidArgument, err.metadata, undefined, err);
  mapped.details = [...err.details, invalidArgumentDetail()];
  return mapped;
}

/**
 * Request gate part that makes every protocol answer an undecodable request body with
 * `invalid_argument` (see the module comment); cheap: one abort listener per call.
 */
export function watchUndecodableRequest(context: HandlerContext): void {
  const signal = context.signal;
  if (signal.aborted) return;
  signal.addEventListener(
    "abort",
    () => {
      const reason: unknown = signal.reason;
      if (!(reason instanceof ConnectError)) return;
      if (isUndecodableRequestError(reason)) reclassifyInPlace(reason);
      // Errors connect raises itself (broken JSON, oversized body, unsupported encoding) never
      // pass our interceptor; they get the same machine-readable detail as every other error.
      else if (!hasErrorDetail(reason)) reason.details.push(detailFor(reason.code));
    },
    { once: true },
  );
}

// The handler already holds this error object and serializes it right after abort() returns,
// so it must be changed in place; ConnectError's fields are readonly in its types only.
function reclassifyInPlace(err: ConnectError): void {
  (err as { code: Code }).code = Code.InvalidArgument;
  err.message = `[invalid_argument] ${err.rawMessage}`;
  err.details.push(invalidArgumentDetail());
}

function invalidArgumentDetail(): ConnectError["details"][number] {
  return detailFor(Code.InvalidArgument);
}

/** An ErrorDetail whose reason is the code's name in UPPER_SNAKE ("RESOURCE_EXHAUSTED"). */
function detailFor(code: Code): ConnectError["details"][number] {
  const reason = Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  return { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason }) };
}

function hasErrorDetail(err: ConnectError): boolean {
  return err.details.some((d) => ("desc" in d ? d.desc.typeName : d.type) === ErrorDetailSchema.typeName);
}
