import { requireApplication, type ApplicationLookup } from "./applications.ts";
import { PORTAL_CODE_PREFIX, PORTAL_TOKEN_PREFIX, hashSecret, newSecret } from "./credentials.ts";
import { DomainError, Violations } from "./errors.ts";
import { newId } from "./ids.ts";
import type { PortalSessionRecord } from "./records.ts";

/** What an exchange of a one-time code found. */
export type PortalExchange =
  { ok: true; session: PortalSessionRecord } | { ok: false; why: "unknown" | "used" | "expired" };

/** The portal session use cases' port. */
export interface PortalSessionRepository {
  /**
   * Stores a new session; false (nothing written) when its application is gone (checked in
   * the same transaction, so it cannot race the application's deletion).
   */
  createPortalSession(session: PortalSessionRecord): Promise<boolean>;
  /**
   * Exchanges a code, atomically: of any number of concurrent exchanges of one code, exactly
   * one sets the token hash (and exchangedAt) and gets the session; the others find it used.
   * A code past its expiry is not exchanged.
   */
  exchangePortalCode(codeHash: string, tokenHash: string, at: Date): Promise<PortalExchange>;
}

/** Default, least and greatest session lifetime. */
export const DEFAULT_PORTAL_TTL_MS = 3_600_000;
export const MIN_PORTAL_TTL_MS = 60_000;
export const MAX_PORTAL_TTL_MS = 86_400_000;
/** The longest a one-time code stays exchangeable. */
export const PORTAL_CODE_TTL_MS = 600_000;

/** What the portal session use cases need. */
export interface PortalSessionDeps {
  store: PortalSessionRepository;
  applications: ApplicationLookup;
  /** The installation's public base URL (HOOKSTREAM_PUBLIC_URL), without a trailing slash. */
  publicUrl: string;
}

/** A new session's one-time code, shown once. */
export interface CreatedPortalSession {
  session: PortalSessionRecord;
  code: string;
  url: string;
}

/**
 * Opens a portal session for an application of the workspace: a one-time code (only its hash
 * is stored) and the portal URL carrying it. `ttlMs` undefined: the default; NaN: malformed.
 */
export async function createPortalSession(
  deps: PortalSessionDeps,
  workspaceId: string,
  req: { applicationId: string; ttlMs: number | undefined },
): Promise<CreatedPortalSession> {
  const v = new Violations();
  const ttl = req.ttlMs ?? DEFAULT_PORTAL_TTL_MS;
  if (!Number.isFinite(ttl) || ttl < MIN_PORTAL_TTL_MS || ttl > MAX_PORTAL_TTL_MS) {
    v.add("ttl", "must be between 1m and 24h");
  }
  if (req.applicationId === "") v.add("application_id", "is required");
  v.throwIfAny();
  await requireApplication(deps.applications, workspaceId, req.applicationId, "application_id");
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttl);
  const code = newSecret(PORTAL_CODE_PREFIX);
  const session: PortalSessionRecord = {
    id: newId("portalSession"),
    workspaceId,
    applicationId: req.applicationId,
    codeHash: hashSecret(code),
    tokenHash: null,
    codeExpiresAt: new Date(Math.min(expiresAt.getTime(), now.getTime() + PORTAL_CODE_TTL_MS)),
    expiresAt,
    exchangedAt: null,
    createdAt: now,
  };
  if (!(await deps.store.createPortalSession(session))) {
    throw new DomainError(
      "not_found",
      "APPLICATION_NOT_FOUND",
      `application ${JSON.stringify(req.applicationId)} not found`,
      {
        violations: [{ field: "application_id", description: "is not an application of this workspace" }],
      },
    );
  }
  return { session, code, url: `${deps.publicUrl}/portal?code=${encodeURIComponent(code)}` };
}

/**
 * Trades a one-time code for the session's bearer token (only its hash is stored); a code
 * works once and only until its expiry.
 */
export async function exchangePortalCode(
  store: PortalSessionRepository,
  code: string,
): Promise<{ session: PortalSessionRecord; token: string }> {
  const v = new Violations();
  if (code === "") v.add("code", "is required");
  else if (!code.startsWith(PORTAL_CODE_PREFIX) || code.length > 256) v.add("code", "is not a portal session code");
  v.throwIfAny();
  const token = newSecret(PORTAL_TOKEN_PREFIX);
  const result = await store.exchangePortalCode(hashSecret(code), hashSecret(token), new Date());
  if (result.ok) return { session: result.session, token };
  switch (result.why) {
    case "used":
      throw new DomainError(
        "failed_precondition",
        "PORTAL_CODE_USED",
        "this portal code was already exchanged; a code works once: create a new session",
        { violations: [{ field: "code", description: "was already exchanged" }] },
      );
    case "expired":
      throw new DomainError("failed_precondition", "PORTAL_CODE_EXPIRED", "this portal code has expired", {
        violations: [{ field: "code", description: "has expired" }],
      });
    case "unknown":
      throw new DomainError("permission_denied", "PORTAL_CODE_INVALID", "unknown portal code", {
        violations: [{ field: "code", description: "is not a code of any portal session" }],
      });
  }
}
