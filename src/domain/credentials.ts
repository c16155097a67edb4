import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Prefix of management tokens. */
export const MANAGEMENT_TOKEN_PREFIX = "hsm_";
/** Prefix of a portal session's one-time code. */
export const PORTAL_CODE_PREFIX = "hspc_";
/** Prefix of a portal session's bearer token. */
export const PORTAL_TOKEN_PREFIX = "hsp_";
/** Prefix of every API key secret (producer or management scope, old or new). */
export const API_KEY_PREFIX = "hsk_";

/** Prefix of a new API key secret of a mode: the mode is visible in the key ("hsk_live_…", "hsk_test_…"). */
export function apiKeyPrefix(mode: "live" | "test"): string {
  return `${API_KEY_PREFIX}${mode}_`;
}

/** A new high-entropy secret with the given prefix (32 random bytes, base64url). */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString("base64url");
}

/**
 * The stored form of a secret. Secrets are 256-bit random, so a plain SHA-256 is enough: no
 * dictionary to guard against, and lookups stay one indexed query.
 */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** The first characters of a secret (its prefix and 6 random characters), shown in lists so keys can be told apart. */
export function secretPrefix(secret: string, prefix: string = API_KEY_PREFIX): string {
  return secret.slice(0, prefix.length + 6);
}

/** Constant-time string comparison for the operator token. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}
