// Standard Webhooks signing (https://www.standardwebhooks.com): symmetric `v1,` HMAC-SHA256
// over `${msgId}.${timestamp}.${body}` with a `whsec_` secret. Pure: node:crypto only.
import { createHmac, randomBytes } from "node:crypto";

const SECRET_PREFIX = "whsec_";
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

/**
 * The `webhook-signature` value: one `v1,<base64>` per secret, space-separated, so receivers
 * holding either the old or the new secret during rotation can verify.
 */
export function signatureHeader(
  secrets: readonly string[],
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
      const key = decodeKey(secret);
      if (key === undefined) throw new RangeError(`signatureHeader: secret #${i} is not a valid whsec_ secret`);
      const mac = createHmac("sha256", key).update(prefix, "utf8").update(body).digest("base64");
      return `v1,${mac}`;
    })
    .join(" ");
}

/** The three Standard Webhooks headers for one delivery attempt. */
export function webhookHeaders(opts: {
  secrets: readonly string[];
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
