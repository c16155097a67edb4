// Encryption at rest of the secrets a worker must read back to use them (endpoint signing keys,
// client-certificate keys): AES-256-GCM under keys from configuration, each ciphertext naming the
// key that sealed it, so a new key can seal while old keys still open. Pure: node:crypto only.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/** One configured encryption key. */
export interface EncryptionKey {
  /** Short name stored with every ciphertext it seals (letters, digits, _ and -). */
  readonly id: string;
  /** 32 bytes of AES-256 key. */
  readonly key: Buffer;
}

/** Seals and opens secrets; the first key seals, every key opens. */
export interface SecretBox {
  /** Id of the key that seals, or undefined when the box has no key (it then opens plaintext only). */
  readonly primaryKeyId: string | undefined;
  /** The stored form of `plaintext`, bound to `context` (e.g. the endpoint id). */
  seal(plaintext: string, context: string): string;
  /**
   * The plaintext of a stored value sealed for `context`. A value that is not sealed (a secret
   * written before encryption was configured) is returned as it is: the lazy path until
   * `hookstream migrate` or `hookstream reencrypt` seals it. Throws SecretBoxError when the key is
   * unknown or the ciphertext was tampered with or belongs to another context.
   */
  open(stored: string, context: string): string;
  /** Whether a stored value is sealed under the primary key (nothing to re-encrypt). */
  isCurrent(stored: string): boolean;
}

/** A stored secret could not be opened. */
export class SecretBoxError extends Error {
  override readonly name = "SecretBoxError";
}

// hsenc:v1:<key id>:<base64url of 12-byte IV, ciphertext, 16-byte tag>
const SEALED_PREFIX = "hsenc:v1:";
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Whether a stored value is sealed (as opposed to a plaintext secret from before encryption). */
export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED_PREFIX);
}

/** Creates a fresh key in the configuration syntax: `id:base64 of 32 random bytes`. */
export function generateEncryptionKey(id: string): string {
  if (!KEY_ID.test(id)) throw new RangeError(`encryption key id ${JSON.stringify(id)}: letters, digits, _ and -`);
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}

/**
 * Parses HOOKSTREAM_ENCRYPTION_KEYS: comma-separated `id:base64` entries (32-byte keys, standard
 * or URL-safe base64), the first one sealing. Returns the keys or the problems found.
 */
export function parseEncryptionKeys(text: string): { keys: EncryptionKey[]; problems: string[] } {
  const keys: EncryptionKey[] = [];
  const problems: string[] = [];
  const entries = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const [i, entry] of entries.entries()) {
    const colon = entry.indexOf(":");
    const id = colon === -1 ? "" : entry.slice(0, colon);
    const encoded = colon === -1 ? "" : entry.slice(colon + 1);
    if (!KEY_ID.test(id)) {
      problems.push(`key #${i + 1}: expected id:base64 with an id of 1 to 32 letters, digits, _ or -`);
      continue;
    }
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) {
      problems.push(`key ${id}: the key is not base64`);
      continue;
    }
    const key = Buffer.from(encoded, encoded.includes("-") || encoded.includes("_") ? "base64url" : "base64");
    if (key.length !== KEY_BYTES) {
      problems.push(`key ${id}: expected ${KEY_BYTES} bytes (AES-256), got ${key.length}`);
      continue;
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`key ${id}: the id appears twice`);
      continue;
    }
    keys.push({ id, key });
  }
  return { keys, problems };
}

/** Creates a box over `keys` (the first seals); with no keys it opens plaintext only and cannot seal. */
export function createSecretBox(keys: readonly EncryptionKey[]): SecretBox {
  const byId = new Map(keys.map((k) => [k.id, k.key]));
  const primary = keys[0];
  // The key id is authenticated too, so a ciphertext cannot be relabelled to another key.
  const aad = (keyId: string, context: string): Buffer => Buffer.from(`hookstream-secret\0${keyId}\0${context}`);
  return {
    primaryKeyId: primary?.id,
    seal(plaintext, context) {
      if (primary === undefined) throw new SecretBoxError("no encryption key is configured to seal with");
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", primary.key, iv);
      cipher.setAAD(aad(primary.id, context));
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return `${SEALED_PREFIX}${primary.id}:${Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url")}`;
    },
    open(stored, context) {
      if (!isSealed(stored)) return stored;
      const rest = stored.slice(SEALED_PREFIX.length);
      const colon = rest.indexOf(":");
      const keyId = colon === -1 ? "" : rest.slice(0, colon);
      const key = byId.get(keyId);
      if (key === undefined) {
        throw new SecretBoxError(
          `secret sealed with encryption key ${JSON.stringify(keyId)}, which is not in HOOKSTREAM_ENCRYPTION_KEYS`,
        );
      }
      const raw = Buffer.from(rest.slice(colon + 1), "base64url");
      if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError("sealed secret is truncated");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES));
        decipher.setAAD(aad(keyId, context));
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        return Buffer.concat([
          decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
          decipher.final(),
        ]).toString("utf8");
      } catch (err) {
        throw new SecretBoxError(
          `sealed secret does not open with key ${JSON.stringify(keyId)} (altered or misplaced)`,
          {
            cause: err,
          },
        );
      }
    },
    isCurrent(stored) {
      return primary !== undefined && stored.startsWith(`${SEALED_PREFIX}${primary.id}:`);
    },
  };
}
