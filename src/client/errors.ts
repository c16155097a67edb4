/**
 * The SDK's errors: every failed call throws a HookstreamError (or one of its subclasses) carrying
 * the Connect code, the server's stable `reason`, its field violations and its retry delay, with
 * predicates for the decisions callers make (retry? re-authenticate? show the form errors?).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/hookstream/v1/error_pb.ts";

/** One bad field of a request, as the server (or the SDK's own input check) named it. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** Options of {@link HookstreamError}. */
export interface HookstreamErrorInit {
  readonly code: Code;
  readonly reason: string;
  readonly message: string;
  readonly fieldViolations?: readonly FieldViolation[];
  /** Milliseconds the server asked to wait before retrying. */
  readonly retryAfter?: number | undefined;
  readonly cause?: unknown;
  /** The RPC that failed, `hookstream.v1.MessageService/Send`. */
  readonly procedure?: string | undefined;
}

/** A failed Hookstream call. */
export class HookstreamError extends Error {
  override name = "HookstreamError";
  /** The Connect code (`Code.NotFound` = 5 …). */
  readonly code: Code;
  /** The server's stable reason (`ENDPOINT_NOT_FOUND`, `RATE_LIMITED`, …), or the SDK's own. */
  readonly reason: string;
  readonly fieldViolations: readonly FieldViolation[];
  /** Milliseconds to wait before retrying, when the server said so (`retry_delay` / `Retry-After`). */
  readonly retryAfter: number | undefined;
  /** The RPC that failed, when known. */
  readonly procedure: string | undefined;

  constructor(init: HookstreamErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.reason = init.reason;
    this.fieldViolations = init.fieldViolations ?? [];
    this.retryAfter = init.retryAfter;
    this.procedure = init.procedure;
  }

  /** The code's name: `not_found`, `invalid_argument`, … */
  get codeName(): string {
    return codeName(this.code);
  }

  /** Whether the same call may succeed if tried again later (overload, outage, network, timeout). */
  isRetryable(): boolean {
    return (
      this.code === Code.Unavailable ||
      this.code === Code.ResourceExhausted ||
      this.code === Code.DeadlineExceeded ||
      this.code === Code.Aborted
    );
  }
  /** Missing, bad or revoked credential, or the wrong kind of credential for this RPC. */
  isAuthError(): boolean {
    return this.code === Code.Unauthenticated || this.code === Code.PermissionDenied;
  }
  isNotFound(): boolean {
    return this.code === Code.NotFound;
  }
  isRateLimited(): boolean {
    return this.code === Code.ResourceExhausted;
  }
  /** Bad input: see {@link fieldViolations}. */
  isValidation(): boolean {
    return this.code === Code.InvalidArgument;
  }
  /** The resource's state forbids it (an idempotency key reused, a delivery in the wrong status). */
  isConflict(): boolean {
    return this.code === Code.AlreadyExists || this.code === Code.FailedPrecondition || this.code === Code.Aborted;
  }

  /** The message with every field violation, one per line (what the CLI prints). */
  describe(): string {
    const lines = [`${this.reason}: ${this.message}`];
    for (const v of this.fieldViolations) lines.push(`  ${v.field}: ${v.description}`);
    return lines.join("\n");
  }
}

/** The request never got an answer: connection refused or reset, DNS, TLS, CORS. `cause` is the original error. */
export class NetworkError extends HookstreamError {
  override name = "NetworkError";
  constructor(message: string, cause: unknown, procedure?: string) {
    super({ code: Code.Unavailable, reason: "NETWORK_ERROR", message, cause, procedure });
  }
}

/** The call did not finish within its timeout (or the stream went quiet). `cause` is the original error. */
export class TimeoutError extends HookstreamError {
  override name = "TimeoutError";
  constructor(message: string, cause: unknown, procedure?: string) {
    super({ code: Code.DeadlineExceeded, reason: "TIMEOUT", message, cause, procedure });
  }
}

/** An input the SDK refused before sending anything (a bad duration, an unknown field). */
export class ClientInputError extends HookstreamError {
  override name = "ClientInputError";
  constructor(field: string, description: string) {
    super({
      code: Code.InvalidArgument,
      reason: "INVALID_ARGUMENT",
      message: `${field}: ${description}`,
      fieldViolations: [{ field, description }],
    });
  }
}

/** Whether `err` is a HookstreamError (any subclass), also across copies of the package. */
export function isHookstreamError(err: unknown): err is HookstreamError {
  return err instanceof HookstreamError;
}

export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i: number) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
}

/** The SDK error for anything a call threw. */
export function toHookstreamError(err: unknown, procedure?: string): HookstreamError {
  if (err instanceof HookstreamError) return err;
  if (!(err instanceof ConnectError)) {
    if (err instanceof Error && err.name === "AbortError") {
      return new HookstreamError({
        code: Code.Canceled,
        reason: "CANCELLED",
        message: err.message,
        cause: err,
        procedure,
      });
    }
    return new NetworkError(err instanceof Error ? err.message : String(err), err, procedure);
  }
  const details = err.findDetails(ErrorDetailSchema);
  const detail = details[0];
  if (detail === undefined) {
    // No ErrorDetail: the answer did not come from Hookstream's handlers. A transport failure
    // (fetch or the socket threw) keeps its cause; a deadline is the SDK's own timeout.
    if (err.code === Code.DeadlineExceeded) return new TimeoutError(err.rawMessage, err, procedure);
    const cause = err.cause;
    if (err.code === Code.Canceled) {
      return new HookstreamError({
        code: err.code,
        reason: "CANCELLED",
        message: err.rawMessage,
        cause: err,
        procedure,
      });
    }
    if (
      cause !== undefined &&
      !(cause instanceof ConnectError) &&
      (err.code === Code.Unknown || err.code === Code.Unavailable || err.code === Code.Internal)
    ) {
      return new NetworkError(err.rawMessage, cause, procedure);
    }
  }
  const retryHeader = err.metadata.get("retry-after");
  const retryAfter =
    detail?.retryDelay !== undefined
      ? Number(detail.retryDelay.seconds) * 1000 + detail.retryDelay.nanos / 1e6
      : retryHeader !== null && /^\d+$/.test(retryHeader)
        ? Number(retryHeader) * 1000
        : undefined;
  return new HookstreamError({
    code: err.code,
    reason: detail?.reason || codeName(err.code).toUpperCase(),
    message: err.rawMessage,
    fieldViolations: details.flatMap((d) =>
      d.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    ),
    retryAfter,
    cause: err,
    procedure,
  });
}
