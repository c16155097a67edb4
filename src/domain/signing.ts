// Standard Webhooks signing (https://www.standardwebhooks.com) over `${msgId}.${timestamp}.${body}`:
// symmetric `v1,` HMAC-SHA256 with a `whsec_` secret, or asymmetric `v1a,` ed25519 with a `whsk_`
// secret key whose `whpk_` public key receivers verify with. Pure: node:crypto only.
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  type KeyObject,
} from "node:crypto";

const SECRET_PREFIX = "whsec_";
const ED25519_SECRET_PREFIX = "whsk_";
const ED25519_PUBLIC_PREFIX = "whpk_";
const ED25519_SEED_BYTES = 32;
// DER of a PKCS#8 ed25519 private key up to the 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
// The spec asks for keys of 24 to 64 bytes; we generate 32.
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
const GENERATED_KEY_BYTES = 32;
// Standard (not URL-safe) base64 with correct padding, as receivers' libraries decode it.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Creates a fresh endpoint signing secret: "whsec_" + base64 of 32 random bytes. */
export function generateSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(GENERATED_KEY_BYTES).toString("base64");
}

/** Whether `s` is a well-formed `whsec_` secret whose key is 24 to 64 bytes, so it can be accepted from users. */
export function isValidSigningSecret(s: string): boolean {
  return decodeKey(s) !== undefined;
}

/** A decoded signing key, ready to sign with (workers keep these cached per endpoint). */
export type SigningKey =
  { readonly version: "v1"; readonly key: KeyObject } | { readonly version: "v1a"; readonly key: KeyObject };

/**
 * Creates a fresh ed25519 key pair: `whsk_` + base64 of the 64-byte secret key (the 32-byte seed
 * then the public key, as libsodium and Go's crypto/ed25519 hold it) and `whpk_` + base64 of the
 * 32-byte public key.
 */
export function generateEd25519SigningKey(): { secretKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  const pub = rawPublicKey(publicKey);
  return {
    secretKey: ED25519_SECRET_PREFIX + Buffer.concat([seed, pub]).toString("base64"),
    publicKey: ED25519_PUBLIC_PREFIX + pub.toString("base64"),
  };
}

/** The `whpk_` public key of a `whsk_` secret key; undefined when `secretKey` is not one. */
export function ed25519PublicKeyOf(secretKey: string): string | undefined {
  const key = decodeEd25519(secretKey);
  return key === undefined ? undefined : ED25519_PUBLIC_PREFIX + rawPublicKey(createPublicKey(key)).toString("base64");
}

/** Decodes a `whsec_` secret or `whsk_` secret key; throws RangeError for anything else. */
export function decodeSigningKey(secret: string): SigningKey {
  if (secret.startsWith(ED25519_SECRET_PREFIX)) {
    const key = decodeEd25519(secret);
    if (key === undefined) throw new RangeError("not a valid whsk_ ed25519 secret key");
    return { version: "v1a", key };
  }
  const hmacKey = decodeKey(secret);
  if (hmacKey === undefined) throw new RangeError("not a valid whsec_ secret");
  return { version: "v1", key: createSecretKey(hmacKey) };
}

/**
 * The `webhook-signature` value: one `v1,<base64>` (HMAC) or `v1a,<base64>` (ed25519) per key,
 * space-separated, so receivers holding either the old or the new key during rotation can verify.
 */
export function signatureHeader(
  secrets: readonly (string | SigningKey)[],
  msgId: string,
  timestampSeconds: number,
  body: Uint8Array,
): string {
  if (secrets.length === 0) throw new RangeError("signatureHeader: at least one signing secret is required");
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new RangeError(
      `signatureHeader: timestamp must be a non-negative integer of seconds, got ${timestampSeconds}`,
    );
  }
  // Signed over the raw bytes: decoding and re-encoding could change what the receiver hashes.
  const prefix = `${msgId}.${timestampSeconds}.`;
  return secrets
    .map((secret, i) => {
      let key: SigningKey;
      try {
        key = typeof secret === "string" ? decodeSigningKey(secret) : secret;
      } catch {
        throw new RangeError(`signatureHeader: secret #${i} is not a valid whsec_ secret or whsk_ key`);
      }
      if (key.version === "v1a") {
        // ed25519 signs the message itself (no pre-hash), so the signed content is assembled once.
        const signed = Buffer.concat([Buffer.from(prefix, "utf8"), body]);
        return `v1a,${cryptoSign(null, signed, key.key).toString("base64")}`;
      }
      return `v1,${createHmac("sha256", key.key).update(prefix, "utf8").update(body).digest("base64")}`;
    })
    .join(" ");
}

/** The three Standard Webhooks headers for one delivery attempt. */
export function webhookHeaders(opts: {
  secrets: readonly (string | SigningKey)[];
  msgId: string;
  timestampSeconds: number;
  body: Uint8Array;
}): Record<string, string> {
  return {
    "webhook-id": opts.msgId,
    "webhook-timestamp": String(opts.timestampSeconds),
    "webhook-signature": signatureHeader(opts.secrets, opts.msgId, opts.timestampSeconds, opts.body),
  };
}

function decodeKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return undefined;
  const key = Buffer.from(encoded, "base64");
  return key.length >= MIN_KEY_BYTES && key.length <= MAX_KEY_BYTES ? key : undefined;
}

function decodeEd25519(secret: string): KeyObject | undefined {
  if (!secret.startsWith(ED25519_SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(ED25519_SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return undefined;
  const raw = Buffer.from(encoded, "base64");
  // The 64-byte form carries the public key too: it must be the seed's, or the key is corrupt.
  if (raw.length !== ED25519_SEED_BYTES && raw.length !== 2 * ED25519_SEED_BYTES) return undefined;
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, raw.subarray(0, ED25519_SEED_BYTES)]),
    format: "der",
    type: "pkcs8",
  });
  if (raw.length === 2 * ED25519_SEED_BYTES && !rawPublicKey(createPublicKey(key)).equals(raw.subarray(32))) {
    return undefined;
  }
  return key;
}

function rawPublicKey(publicKey: KeyObject): Buffer {
  return Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
}
