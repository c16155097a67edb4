/**
 * The HTTP webhook destination: signs the message's exact payload bytes per Standard Webhooks
 * (`webhook-id` = the delivery id, a fresh `webhook-timestamp` per attempt, every active secret)
 * and POSTs them through the SSRF-guarded sender. Signing belongs here, not in the pipeline: other
 * destination kinds authenticate in their own way.
 */
import type { AttemptContext } from "../domain/delivery-ledger.ts";
import type { AckSigner } from "../domain/async-ack.ts";
import { webhookHeaders } from "../domain/signing.ts";
import type { Destination, DestinationResult } from "./destination.ts";
import type { HttpSender } from "./http-sender.ts";
import { plaintextSigningKeys, type SigningKeys } from "./signing-keys.ts";

/** Async acknowledgement: who signs the ack URLs and how long the wait lasts. */
export interface AsyncAckOptions {
  signer: AckSigner;
  timeoutMs: number;
}

/**
 * The request headers of one attempt: ours win over the message's custom headers, which win over
 * the endpoint's (names compared case-insensitively). An async_ack
 * endpoint also gets the signed `webhook-ack-url` and `webhook-nack-url` of this attempt.
 */
export function webhookRequestHeaders(
  ctx: AttemptContext,
  at: Date,
  ack?: AsyncAckOptions,
  keys: SigningKeys = plaintextSigningKeys,
): Record<string, string> {
  const { delivery, message, endpoint } = ctx;
  const urls =
    ack !== undefined && endpoint!.asyncAck === true
      ? ack.signer.urls(delivery.id, delivery.attemptCount + 1, new Date(at.getTime() + ack.timeoutMs))
      : undefined;
  return {
    ...customHeaders(endpoint!.headers, message.headers),
    ...(urls === undefined ? {} : { "webhook-ack-url": urls.ack, "webhook-nack-url": urls.nack }),
    "content-type": message.contentType,
    ...webhookHeaders({
      secrets: keys.keysFor(endpoint!, at),
      msgId: delivery.id,
      timestampSeconds: Math.floor(at.getTime() / 1000),
      body: message.payload,
    }),
  };
}

/** The endpoint's custom headers overlaid with the message's (a name set by both: the message's). */
function customHeaders(
  endpoint: Record<string, string>,
  message: Record<string, string> | null | undefined,
): Record<string, string> {
  if (message === null || message === undefined) return endpoint;
  const names = new Set(Object.keys(message).map((k) => k.toLowerCase()));
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(endpoint)) if (!names.has(k.toLowerCase())) out[k] = value;
  return { ...out, ...message };
}

/**
 * Creates the webhook destination over the outbound HTTP sender; `keys` opens the endpoints'
 * sealed signing secrets (once each, then cached).
 */
export function createWebhookDestination(
  sender: HttpSender,
  ack?: AsyncAckOptions,
  keys: SigningKeys = plaintextSigningKeys,
): Destination {
  return {
    async deliver(ctx: AttemptContext, at: Date): Promise<DestinationResult> {
      const requestHeaders = webhookRequestHeaders(ctx, at, ack, keys);
      const outcome = await sender.send({
        url: ctx.endpoint!.url,
        headers: requestHeaders,
        body: ctx.message.payload,
        timeoutMs: ctx.endpoint!.timeoutMs,
        clientCertificate: keys.clientCertificateFor(ctx.endpoint!),
      });
      return { requestHeaders, outcome };
    },
  };
}
