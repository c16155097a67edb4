/**
 * The one place where failures become Connect errors: domain errors keep their stable reason
 * and get the Connect code of their kind plus an `ErrorDetail`; unknown errors become
 * `internal` with the cause logged and never shown.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { ErrorDetailSchema, type ErrorDetail } from "../../gen/hookstream/v1/error_pb.ts";
import { DomainError, type ErrorKind } from "../domain/errors.ts";
import { isUndecodableRequestError, undecodableRequestToInvalidArgument } from "./undecodable-request.ts";

const codeOfKind: Readonly<Record<ErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

// Codes that, raised by connect or a library rather than by us, point at a bug worth a log line.
const suspiciousCodes: ReadonlySet<Code> = new Set([Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * Maps any thrown value to the ConnectError the client sees. `procedure` (e.g.
 * "/hookstream.v1.AdminService/CreateWorkspace") only labels the log line of a hidden cause.
 */
export function toConnectError(err: unknown, logger: Logger, procedure?: string): ConnectError {
  if (err instanceof DomainError) return fromDomainError(err, logger, procedure);
  if (err instanceof ConnectError) {
    if (isUndecodableRequestError(err)) return undecodableRequestToInvalidArgument(err);
    // One with our detail was mapped (and, if need be, logged) already, e.g. by an inner
    // interceptor: pass it on silently.
    if (hasErrorDetail(err)) return err;
    if (suspiciousCodes.has(err.code)) logger.error({ err, procedure }, "rpc failed with %s", codeToString(err.code));
    const copy = new ConnectError(err.rawMessage, err.code, err.metadata, undefined, err.cause);
    copy.details = [...err.details];
    return withDetail(copy, reasonOfCode(err.code));
  }
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) {
    // A handler gave up because its signal fired (client gone, deadline, shutdown): no bug.
    logger.debug({ err, procedure }, "rpc aborted");
    return withDetail(
      new ConnectError(err.message, Code.Canceled, undefined, undefined, err),
      reasonOfCode(Code.Canceled),
    );
  }
  logger.error({ err, procedure }, "rpc failed with an unexpected error");
  return withDetail(new ConnectError("internal error", Code.Internal, undefined, undefined, err), "INTERNAL");
}

/**
 * Interceptor that routes every failure of a call through `toConnectError`: errors of unary
 * calls, errors thrown before a stream starts, and errors thrown in the middle of a stream.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mapStreamErrors(res.message, logger, req.method.parent.typeName, req.method.name) };
    } catch (err) {
      throw toConnectError(err, logger, procedureName(req.method.parent.typeName, req.method.name));
    }
  };
}

/** The `ErrorDetail` a Hookstream error carries, for clients and tests; undefined if none. */
export function errorDetailOf(err: ConnectError): ErrorDetail | undefined {
  return err.findDetails(ErrorDetailSchema)[0];
}

function fromDomainError(err: DomainError, logger: Logger, procedure: string | undefined): ConnectError {
  const code = codeOfKind[err.kind];
  const detail = create(ErrorDetailSchema, {
    reason: err.reason,
    fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description })),
  });
  const metadata = new Headers();
  if (err.retryDelayMs !== undefined) {
    detail.retryDelay = durationFromMs(err.retryDelayMs);
    // Plain HTTP clients (curl, fetch) understand Retry-After without decoding the detail.
    metadata.set("retry-after", String(Math.max(1, Math.ceil(err.retryDelayMs / 1000))));
  }
  let message = err.message;
  if (err.kind === "internal") {
    logger.error({ err, procedure, reason: err.reason }, "rpc failed with an internal domain error");
    message = "internal error";
  } else if (err.kind === "unavailable") {
    // The dependency outage is the operator's business; the client only learns to retry.
    logger.warn({ err, procedure, reason: err.reason }, "rpc failed: dependency unavailable");
  }
  return new ConnectError(message, code, metadata, [{ desc: ErrorDetailSchema, value: detail }], err);
}

function withDetail(err: ConnectError, reason: string): ConnectError {
  err.details.push({ desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason }) });
  return err;
}

function hasErrorDetail(err: ConnectError): boolean {
  return err.details.some((d) => ("desc" in d ? d.desc.typeName : d.type) === ErrorDetailSchema.typeName);
}

function reasonOfCode(code: Code): string {
  return codeToString(code).toUpperCase();
}

function procedureName(service: string, method: string): string {
  return `/${service}/${method}`;
}

async function* mapStreamErrors<T>(
  stream: AsyncIterable<T>,
  logger: Logger,
  service: string,
  method: string,
): AsyncGenerator<T, void, undefined> {
  try {
    yield* stream;
  } catch (err) {
    throw toConnectError(err, logger, procedureName(service, method));
  }
}
