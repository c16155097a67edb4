import { API_KEY_PREFIX, MANAGEMENT_TOKEN_PREFIX, PORTAL_TOKEN_PREFIX, hashSecret, sameSecret } from "./credentials.ts";
import { DomainError } from "./errors.ts";
import type { ApiKeyRecord, PortalSessionRecord, WorkspaceRecord } from "./records.ts";
import { createTtlCache } from "./ttl-cache.ts";

/** How the authenticator finds the owner of a token: its own narrow port. */
export interface CredentialLookup {
  /** The workspace whose management token has this hash. */
  findWorkspaceByTokenHash(managementTokenHash: string): Promise<WorkspaceRecord | null>;
  /** The key with this secret hash, revoked or not (the caller checks revokedAt). */
  findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | null>;
  /** The exchanged portal session whose token has this hash, expired or not (the caller checks). */
  findPortalSessionByTokenHash(tokenHash: string): Promise<PortalSessionRecord | null>;
}

/**
 * Who is calling: the operator, a management credential of a workspace (its management token,
 * `key` null, or a management-scoped API key), a producer-scoped API key, a portal session
 * (limited to one application of its workspace), or nobody at all (`anonymous`: only RPCs that
 * declare CREDENTIAL_NONE, which authenticate by their request).
 */
export type Principal =
  | { kind: "admin" }
  | { kind: "management"; workspaceId: string; key: ApiKeyRecord | null }
  | { kind: "api_key"; workspaceId: string; key: ApiKeyRecord }
  | { kind: "portal"; workspaceId: string; applicationId: string; sessionId: string; key: null }
  | { kind: "anonymous" };

/** The credential kinds a surface accepts. */
export type PrincipalKind = Principal["kind"];

const KIND_NAMES: Record<PrincipalKind, string> = {
  admin: "the operator token",
  management: "a management token or management-scoped API key",
  api_key: "a producer-scoped API key",
  portal: "a portal session token",
  anonymous: "no credential",
};

/** Resolves `Authorization: Bearer …` headers to principals. */
export interface Authenticator {
  /** The principal of `authorization`, if it is one of `allowed`; unauthenticated / permission_denied otherwise. */
  authenticate(authorization: string | null, allowed: readonly PrincipalKind[]): Promise<Principal>;
  /** The workspace id of a management token or API key (whichever `allowed` names). */
  workspaceOf(authorization: string | null, allowed: readonly ("management" | "api_key")[]): Promise<string>;
  /** Forgets a cached API key at once (after RevokeApiKey on this server). */
  forgetApiKey(id: string): void;
}

function unauthenticated(reason: string, message: string): DomainError {
  return new DomainError("unauthenticated", reason, message);
}

/**
 * Creates the authenticator over the store and the operator token (undefined: no operator).
 * Successful lookups are cached for `cacheTtlMs`, so a revocation reaches other API servers
 * within that time (this server forgets the key at once); unknown tokens are never cached.
 * `onKeyUse` hears of every accepted API key (the usage recorder, which coalesces the writes).
 */
export function createAuthenticator(
  store: CredentialLookup,
  adminToken: string | undefined,
  cacheTtlMs = 0,
  onKeyUse?: (keyId: string) => void,
): Authenticator {
  const workspaces = createTtlCache<WorkspaceRecord>(cacheTtlMs);
  const keys = createTtlCache<ApiKeyRecord>(cacheTtlMs);
  const keyHashes = new Map<string, string>();
  const authenticate = async (authorization: string | null, allowed: readonly PrincipalKind[]): Promise<Principal> => {
    const expected = allowed.map((k) => KIND_NAMES[k]).join(" or ");
    if (authorization === null || authorization.trim() === "") {
      throw unauthenticated("MISSING_CREDENTIALS", `send "Authorization: Bearer <token>" with ${expected}`);
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw unauthenticated("MALFORMED_CREDENTIALS", 'the Authorization header must be "Bearer <token>"');
    const token = m[1]!;
    let principal: Principal;
    if (token.startsWith(MANAGEMENT_TOKEN_PREFIX)) {
      const hash = hashSecret(token);
      const workspace = workspaces.get(hash) ?? (await store.findWorkspaceByTokenHash(hash));
      if (!workspace) throw unauthenticated("INVALID_CREDENTIALS", "unknown management token");
      workspaces.set(hash, workspace);
      principal = { kind: "management", workspaceId: workspace.id, key: null };
    } else if (token.startsWith(API_KEY_PREFIX)) {
      const hash = hashSecret(token);
      const key = keys.get(hash) ?? (await store.findApiKeyByHash(hash));
      if (!key) throw unauthenticated("INVALID_CREDENTIALS", "unknown API key");
      if (key.revokedAt !== null) throw unauthenticated("API_KEY_REVOKED", "this API key was revoked");
      keys.set(hash, key);
      if (keyHashes.size >= 10_000) keyHashes.clear();
      keyHashes.set(key.id, hash);
      // The key's scope decides which kind of credential it is: a management-scoped key is
      // never a producer key, nor the other way round.
      principal =
        key.scope === "management"
          ? { kind: "management", workspaceId: key.workspaceId, key }
          : { kind: "api_key", workspaceId: key.workspaceId, key };
    } else if (token.startsWith(PORTAL_TOKEN_PREFIX)) {
      // Never cached: a session is short-lived and ends with its application.
      const session = await store.findPortalSessionByTokenHash(hashSecret(token));
      if (!session) throw unauthenticated("INVALID_CREDENTIALS", "unknown portal session token");
      if (session.expiresAt.getTime() <= Date.now()) {
        throw unauthenticated("PORTAL_SESSION_EXPIRED", "this portal session has expired; open a new one");
      }
      principal = {
        kind: "portal",
        workspaceId: session.workspaceId,
        applicationId: session.applicationId,
        sessionId: session.id,
        key: null,
      };
    } else if (adminToken !== undefined && sameSecret(token, adminToken)) {
      principal = { kind: "admin" };
    } else {
      throw unauthenticated("INVALID_CREDENTIALS", "unknown token");
    }
    if (!allowed.includes(principal.kind)) {
      throw new DomainError(
        "permission_denied",
        "WRONG_CREDENTIAL_KIND",
        `this call takes ${expected}, not ${KIND_NAMES[principal.kind]}`,
      );
    }
    if ((principal.kind === "management" || principal.kind === "api_key") && principal.key !== null)
      onKeyUse?.(principal.key.id);
    return principal;
  };
  return {
    authenticate,
    async workspaceOf(authorization, allowed) {
      const p = await authenticate(authorization, allowed);
      if (p.kind === "management" || p.kind === "api_key") return p.workspaceId;
      throw new DomainError("permission_denied", "WRONG_CREDENTIAL_KIND", "this call needs a workspace credential");
    },
    forgetApiKey(id) {
      const hash = keyHashes.get(id);
      if (hash !== undefined) keys.delete(hash);
    },
  };
}
