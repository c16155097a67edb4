/**
 * Asynchronous acknowledgement. An endpoint with async_ack may answer 202: the delivery then waits
 * in awaiting_ack until the receiver calls the signed ack or nack URL it got in the delivery's
 * `webhook-ack-url` / `webhook-nack-url` headers, or until the wait expires. The URLs carry the
 * delivery id, the attempt number and an expiry, signed with HMAC-SHA256 under the installation's
 * ack secret, so any API server can check them without a lookup. An ack makes the delivery
 * succeeded; a nack or an expired wait count as a failed attempt and retry by the delivery's
 * policy (the message's override, else the endpoint's retry policy, else the installation's), or
 * dead-letter it. Calling a URL again is harmless: `applied` is false the second time.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import type { DeliveryRecord, NewOutboxRecord, OutboxRecord } from "./records.ts";
import { nextRetryDelayMs, resolveRetryPolicy, type RetryPolicy, type RetrySources } from "./retry-policy.ts";

/** What the receiver says. */
export type AckVerb = "ack" | "nack";

/** Signs and checks ack URLs. */
export interface AckSigner {
  /** The ack and nack URLs of attempt `attempt` of a delivery, valid until `expiresAt`. */
  urls(deliveryId: string, attempt: number, expiresAt: Date): { ack: string; nack: string };
  /** Whether `token` is the signature of (verb, delivery, attempt, expiry). */
  verify(verb: AckVerb, deliveryId: string, attempt: number, expiresAtSeconds: number, token: string): boolean;
}

/** Creates the signer for URLs under `publicUrl` (the API's address as receivers reach it). */
export function createAckSigner(publicUrl: string, secret: string): AckSigner {
  const base = publicUrl.replace(/\/+$/, "");
  const sign = (verb: AckVerb, id: string, attempt: number, exp: number): string =>
    createHmac("sha256", secret).update(`${verb}\0${id}\0${attempt}\0${exp}`).digest("base64url");
  const url = (verb: AckVerb, id: string, attempt: number, exp: number): string =>
    `${base}/v1/deliveries/${encodeURIComponent(id)}/${verb}?attempt=${attempt}&expires=${exp}&token=${sign(verb, id, attempt, exp)}`;
  return {
    urls(deliveryId, attempt, expiresAt) {
      const exp = Math.floor(expiresAt.getTime() / 1000);
      return { ack: url("ack", deliveryId, attempt, exp), nack: url("nack", deliveryId, attempt, exp) };
    },
    verify(verb, deliveryId, attempt, expiresAtSeconds, token) {
      const want = Buffer.from(sign(verb, deliveryId, attempt, expiresAtSeconds));
      const got = Buffer.from(token);
      return got.length === want.length && timingSafeEqual(got, want);
    },
  };
}

/**
 * How an acknowledgement changes a delivery: the new state, or null to leave it alone. `retry` is
 * where the delivery's retry schedule comes from (its message's override, its endpoint's policy),
 * loaded by the ledger with the locked row.
 */
export type AckTransition = (d: DeliveryRecord, retry: RetrySources) => DeliveryRecord | null;

/** The store side of acknowledgements. */
export interface AckLedger {
  /**
   * In one transaction: applies `transition` to the delivery when it is awaiting_ack for exactly
   * `attempt` (row locked), with its message's retry override and its endpoint's retry policy,
   * writing the outbox rows `outbox` builds. `changed` is null when nothing applied; `current` is
   * the delivery as it is (null when it does not exist).
   */
  settleAck(
    deliveryId: string,
    attempt: number,
    transition: AckTransition,
    outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ changed: DeliveryRecord | null; current: DeliveryRecord | null; outbox: OutboxRecord[] }>;
  /**
   * Applies `transition` (with each delivery's retry sources, as settleAck) to up to `limit`
   * awaiting_ack deliveries whose wait ended by `now`.
   */
  expireAcks(
    now: Date,
    limit: number,
    transition: AckTransition,
    outbox: (changed: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ changed: DeliveryRecord[]; outbox: OutboxRecord[] }>;
}

/** Why an acknowledgement wait ended without success, as the delivery's last_error. */
export const NACKED = "the receiver nacked the delivery";
/** Why an acknowledgement wait ended without success, as the delivery's last_error. */
export const ACK_EXPIRED = "no acknowledgement before the wait expired";

/**
 * The transition of an ack, a nack or an expired wait at `at`. A nack or an expired wait retries
 * by the delivery's policy: its message's override, else its endpoint's policy, else `policy`
 * (the installation's), as the worker's decide stage does after a failed attempt.
 */
export function ackTransition(verb: AckVerb | "expire", policy: RetryPolicy, at: Date): AckTransition {
  return (d, retry) => {
    if (d.status !== "awaiting_ack") return null;
    if (verb === "ack") return { ...d, status: "succeeded", nextAttemptAt: null, lastError: "", updatedAt: at };
    const delay = nextRetryDelayMs(
      resolveRetryPolicy(policy, retry),
      d.attemptCount,
      verb === "nack"
        ? { errorKind: "http_status", status: 503, retryAfterMs: undefined }
        : { errorKind: "timeout", status: 0, retryAfterMs: undefined },
    );
    return {
      ...d,
      status: delay === null ? "failed" : "pending_retry",
      nextAttemptAt: delay === null ? null : new Date(at.getTime() + delay),
      lastError: verb === "nack" ? NACKED : ACK_EXPIRED,
      updatedAt: at,
    };
  };
}

/** The outbox rows announcing a settled wait: its status event. */
export function ackOutbox(at: Date): (d: DeliveryRecord) => NewOutboxRecord[] {
  return (d) => [statusRow(d, null, at)];
}

/** How a call of an ack URL ends: the HTTP status and the JSON body. */
export interface AckAnswer {
  status: number;
  body: { applied: boolean; status?: string; error?: string };
}

/** What the ack routes need. */
export interface AckDeps {
  ledger: Pick<AckLedger, "settleAck">;
  relay: OutboxRelay;
  signer: AckSigner;
  retry: RetryPolicy;
}

/**
 * Handles a call of an ack or nack URL: 401 for a bad or missing signature, 410 once the URL
 * expired, 404 for a delivery that does not exist, else 200 with `applied` (false when the wait
 * was already settled, by this URL or another).
 */
export async function settleAckUrl(
  deps: AckDeps,
  verb: AckVerb,
  deliveryId: string,
  query: URLSearchParams,
  now = new Date(),
): Promise<AckAnswer> {
  const attempt = Number(query.get("attempt"));
  const expires = Number(query.get("expires"));
  const token = query.get("token") ?? "";
  if (!Number.isInteger(attempt) || attempt < 1 || !Number.isInteger(expires) || token === "") {
    return { status: 401, body: { applied: false, error: "missing or malformed attempt, expires or token" } };
  }
  if (!deps.signer.verify(verb, deliveryId, attempt, expires, token)) {
    return { status: 401, body: { applied: false, error: "bad signature" } };
  }
  if (now.getTime() >= expires * 1000) return { status: 410, body: { applied: false, error: "expired" } };
  const { changed, current, outbox } = await deps.ledger.settleAck(
    deliveryId,
    attempt,
    ackTransition(verb, deps.retry, now),
    ackOutbox(now),
  );
  if (current === null) return { status: 404, body: { applied: false, error: "no such delivery" } };
  if (changed !== null) void deps.relay.publishNow(outbox);
  return { status: 200, body: { applied: changed !== null, status: (changed ?? current).status } };
}
