/**
 * The Slack destination: an endpoint of type "slack" has a Slack incoming-webhook URL, and each
 * delivery is the event rendered as a Slack message (a `text` fallback plus blocks: the event
 * type and message id, then the payload in a code block), POSTed through the same SSRF-guarded
 * sender as webhooks. Slack authenticates by the secret URL, so nothing is signed.
 */
import type { AttemptContext } from "../domain/delivery-ledger.ts";
import type { Destination, DestinationResult } from "./destination.ts";
import type { HttpSender } from "./http-sender.ts";

/** Characters of payload shown; a Slack section's text may hold 3000. */
export const SLACK_PAYLOAD_CHARS = 2800;

const utf8 = new TextDecoder("utf-8", { fatal: true });

// Slack's mrkdwn needs only these three escaped.
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The payload as shown: its exact text when it is UTF-8, cut at SLACK_PAYLOAD_CHARS; a summary otherwise. */
function payloadText(ctx: AttemptContext): string {
  const { payload, contentType } = ctx.message;
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return `(${payload.byteLength} bytes of ${contentType})`;
  }
  return text.length > SLACK_PAYLOAD_CHARS ? `${text.slice(0, SLACK_PAYLOAD_CHARS)}…` : text;
}

/** The Slack message body of a delivery. */
export function slackMessage(ctx: AttemptContext): Uint8Array {
  const { message, delivery } = ctx;
  const title = `*${escapeMrkdwn(message.eventType)}*  ·  \`${escapeMrkdwn(delivery.id)}\``;
  const shown = payloadText(ctx).replace(/```/g, "` ` `");
  const body = {
    text: `${message.eventType}: ${shown}`.slice(0, SLACK_PAYLOAD_CHARS + 200),
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: title } },
      { type: "section", text: { type: "mrkdwn", text: `\`\`\`${escapeMrkdwn(shown)}\`\`\`` } },
    ],
  };
  return new TextEncoder().encode(JSON.stringify(body));
}

/** Creates the Slack destination over the outbound HTTP sender. */
export function createSlackDestination(sender: HttpSender): Destination {
  return {
    async deliver(ctx: AttemptContext): Promise<DestinationResult> {
      const requestHeaders = { ...ctx.endpoint!.headers, "content-type": "application/json" };
      const outcome = await sender.send({
        url: ctx.endpoint!.url,
        headers: requestHeaders,
        body: slackMessage(ctx),
        timeoutMs: ctx.endpoint!.timeoutMs,
      });
      return { requestHeaders, outcome };
    },
  };
}
