/** The kinds of failure the domain distinguishes; the API edge alone maps each to a Connect code. */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unauthenticated"
  | "permission_denied"
  | "unavailable"
  | "internal";

/** One bad field of a request: its proto path and what is wrong with it. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** A typed domain failure with a stable UPPER_SNAKE reason; the cause is kept for logs only. */
export class DomainError extends Error {
  override readonly name = "DomainError";
  readonly kind: ErrorKind;
  readonly reason: string;
  readonly violations: readonly FieldViolation[];
  readonly retryDelayMs: number | undefined;

  constructor(
    kind: ErrorKind,
    reason: string,
    message: string,
    opts: { violations?: readonly FieldViolation[]; retryDelayMs?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.reason = reason;
    this.violations = opts.violations ?? [];
    this.retryDelayMs = opts.retryDelayMs;
  }
}

/** Invalid input: every bad field listed, nothing changed. */
export function invalidArgument(violations: readonly FieldViolation[]): DomainError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new DomainError("invalid_argument", "INVALID_ARGUMENT", summary, { violations });
}

/** A resource that does not exist in the caller's workspace (foreign ids look the same). */
export function notFound(resource: string, id: string): DomainError {
  return new DomainError(
    "not_found",
    `${resource.toUpperCase()}_NOT_FOUND`,
    `${resource} ${JSON.stringify(id)} not found`,
  );
}

/** Collects field violations so a request reports every bad field at once. */
export class Violations {
  readonly list: FieldViolation[] = [];

  /** Records a violation for `field`. */
  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  /** Throws an invalid-argument error when anything was recorded. */
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}
