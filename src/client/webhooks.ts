/**
 * Receiver helpers: verify a Standard Webhooks signature over the raw body, parse a delivery,
 * and acknowledge it asynchronously. WebCrypto only, so they run in Node, Deno, Bun, workers and
 * browsers alike.
 */
import { HookstreamError } from "./errors.ts";

/** Request headers as frameworks hand them over: a Headers object or a plain record (Node's IncomingHttpHeaders). */
export type WebhookHeaders =
  { get(name: string): string | null } | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and now, in seconds (default 300). */
  readonly tolerance?: number;
  /** "Now", for tests (default: the clock). */
  readonly now?: Date;
}

/** Why a webhook was refused. */
export class WebhookVerificationError extends HookstreamError {
  override name = "WebhookVerificationError";
  constructor(reason: string, message: string) {
    super({ code: 16, reason, message });
  }
}

/** A verified webhook. */
export interface VerifiedWebhook {
  /** `webhook-id`: the delivery id, the same on every retry (deduplicate on it). */
  readonly id: string;
  /** `webhook-timestamp` of this attempt. */
  readonly timestamp: Date;
  /** The raw body bytes that were signed. */
  readonly body: Uint8Array;
}

const encoder = new TextEncoder();

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  const v = record[name] ?? Object.entries(record).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v.join(", ") : (v as string | undefined);
}

function base64Decode(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function base64Encode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The bytes of a body: a string is its UTF-8 (pass the raw body: a re-serialised object does not verify). */
function bodyBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === "string") return encoder.encode(body);
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

interface Key {
  readonly version: "v1" | "v1a";
  readonly key: Awaited<ReturnType<typeof crypto.subtle.importKey>>;
}

async function importSecret(secret: string): Promise<Key> {
  if (secret.startsWith("whpk_")) {
    const raw = base64Decode(secret.slice(5));
    if (raw?.length !== 32) throw new WebhookVerificationError("BAD_SECRET", "a whpk_ key is base64 of 32 bytes");
    return { version: "v1a", key: await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]) };
  }
  const raw = base64Decode(secret.startsWith("whsec_") ? secret.slice(6) : secret);
  if (raw === undefined || raw.length === 0) {
    throw new WebhookVerificationError("BAD_SECRET", "a signing secret is whsec_ followed by base64");
  }
  return {
    version: "v1",
    key: await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]),
  };
}

/**
 * Verifies a webhook per Standard Webhooks: the `webhook-signature` must hold a `v1` (HMAC-SHA256
 * with a `whsec_` secret) or `v1a` (Ed25519 with a `whpk_` public key) signature of
 * `id.timestamp.body` by one of `secrets` (pass the old and the new one during a rotation), and
 * `webhook-timestamp` must be within `tolerance` seconds of now. `body` is the raw request body.
 * Throws {@link WebhookVerificationError}.
 */
export async function verifyWebhook(
  body: string | Uint8Array | ArrayBuffer,
  headers: WebhookHeaders,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): Promise<VerifiedWebhook> {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const signature = header(headers, "webhook-signature");
  if (id === undefined || ts === undefined || signature === undefined) {
    throw new WebhookVerificationError(
      "MISSING_HEADERS",
      "webhook-id, webhook-timestamp and webhook-signature are required",
    );
  }
  if (!/^\d+$/.test(ts))
    throw new WebhookVerificationError("BAD_TIMESTAMP", "webhook-timestamp is not a number of seconds");
  const seconds = Number(ts);
  const now = (options.now ?? new Date()).getTime() / 1000;
  const tolerance = options.tolerance ?? 300;
  if (Math.abs(now - seconds) > tolerance) {
    throw new WebhookVerificationError(
      "TIMESTAMP_OUT_OF_TOLERANCE",
      `webhook-timestamp is more than ${tolerance} s from now`,
    );
  }
  const bytes = bodyBytes(body);
  const prefix = encoder.encode(`${id}.${ts}.`);
  const signed = new Uint8Array(prefix.length + bytes.length);
  signed.set(prefix);
  signed.set(bytes, prefix.length);
  const offered = signature
    .split(" ")
    .map((s) => s.split(","))
    .filter((p): p is [string, string] => p.length === 2);
  for (const secret of typeof secrets === "string" ? [secrets] : secrets) {
    const { version, key } = await importSecret(secret);
    if (version === "v1") {
      const mac = base64Encode(new Uint8Array(await crypto.subtle.sign("HMAC", key, signed)));
      if (offered.some(([v, s]) => v === "v1" && constantTimeEqual(s, mac))) {
        return { id, timestamp: new Date(seconds * 1000), body: bytes };
      }
    } else {
      for (const [v, s] of offered) {
        const sig = v === "v1a" ? base64Decode(s) : undefined;
        if (sig !== undefined && (await crypto.subtle.verify({ name: "Ed25519" }, key, sig, signed))) {
          return { id, timestamp: new Date(seconds * 1000), body: bytes };
        }
      }
    }
  }
  throw new WebhookVerificationError("BAD_SIGNATURE", "no signature matches any of the secrets");
}

/** What an ack or nack URL answered. */
export interface AckResult {
  /** false when the delivery had already been acknowledged (calling again is harmless). */
  readonly applied: boolean;
  /** The delivery's status afterwards (`succeeded`, `pending_retry`, `failed`, …). */
  readonly status: string;
}

/** A parsed delivery. */
export interface WebhookDelivery<T = unknown> {
  /** `webhook-id`: the delivery id, stable across retries. */
  readonly id: string;
  readonly timestamp: Date;
  /** The event type, when the request names it (`webhook-event-type`) or a JSON body has a string `type`. */
  readonly eventType: string | undefined;
  readonly contentType: string;
  /** The raw body. */
  readonly body: Uint8Array;
  /** The body parsed as JSON when it is JSON (`undefined` otherwise). */
  readonly data: T;
  /** Present when the endpoint acknowledges asynchronously (answer 202, then call one of these). */
  readonly ackUrl: string | undefined;
  readonly nackUrl: string | undefined;
  /** POSTs the ack URL: the delivery succeeds. Throws when the delivery carried none. */
  ack(options?: { fetch?: typeof globalThis.fetch }): Promise<AckResult>;
  /** POSTs the nack URL: the attempt counts as failed and is retried by the endpoint's policy. */
  nack(options?: { fetch?: typeof globalThis.fetch }): Promise<AckResult>;
}

/**
 * Parses a delivery's request (verify it first with {@link verifyWebhook}, or pass `secrets` and
 * this does both).
 */
export async function parseDelivery<T = unknown>(
  body: string | Uint8Array | ArrayBuffer,
  headers: WebhookHeaders,
  secrets?: string | readonly string[],
  options?: VerifyOptions,
): Promise<WebhookDelivery<T>> {
  const bytes = bodyBytes(body);
  if (secrets !== undefined) await verifyWebhook(bytes, headers, secrets, options);
  const id = header(headers, "webhook-id") ?? "";
  const ts = Number(header(headers, "webhook-timestamp") ?? "NaN");
  const contentType = header(headers, "content-type") ?? "application/octet-stream";
  let data: unknown = undefined;
  if (/json/i.test(contentType)) {
    try {
      data = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      data = undefined;
    }
  }
  const typeFromBody =
    typeof data === "object" && data !== null && typeof (data as { type?: unknown }).type === "string"
      ? (data as { type: string }).type
      : undefined;
  const ackUrl = header(headers, "webhook-ack-url");
  const nackUrl = header(headers, "webhook-nack-url");
  const call = async (url: string | undefined, what: string, f?: typeof globalThis.fetch): Promise<AckResult> => {
    if (url === undefined) {
      throw new HookstreamError({
        code: 9,
        reason: "NO_ACK_URL",
        message: `this delivery carries no ${what} URL (the endpoint is not async_ack)`,
      });
    }
    const res = await (f ?? globalThis.fetch)(url, { method: "POST" });
    const text = await res.text();
    if (!res.ok) {
      throw new HookstreamError({
        code: res.status === 410 ? 4 : 16,
        reason: res.status === 410 ? "ACK_EXPIRED" : "ACK_REFUSED",
        message: `${what} answered ${res.status}: ${text}`,
      });
    }
    const out = JSON.parse(text) as { applied?: boolean; status?: string };
    return { applied: out.applied === true, status: out.status ?? "" };
  };
  return {
    id,
    timestamp: new Date(ts * 1000),
    eventType: header(headers, "webhook-event-type") ?? typeFromBody,
    contentType,
    body: bytes,
    data: data as T,
    ackUrl,
    nackUrl,
    ack: (o) => call(ackUrl, "ack", o?.fetch),
    nack: (o) => call(nackUrl, "nack", o?.fetch),
  };
}
