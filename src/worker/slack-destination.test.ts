import assert from "node:assert/strict";
import { it } from "node:test";
import type { AttemptContext } from "../domain/delivery-ledger.ts";
import { SLACK_PAYLOAD_CHARS, slackMessage } from "./slack-destination.ts";

function contextOf(payload: Uint8Array, contentType = "application/json"): AttemptContext {
  const at = new Date(0);
  return {
    delivery: {
      id: "dlv_1",
      workspaceId: "ws_1",
      messageId: "msg_1",
      endpointId: "ep_1",
      eventType: "order.paid",
      status: "queued",
      attemptCount: 0,
      nextAttemptAt: null,
      lastResponseStatus: 0,
      lastError: "",
      createdAt: at,
      updatedAt: at,
    },
    message: {
      id: "msg_1",
      workspaceId: "ws_1",
      eventType: "order.paid",
      payload,
      contentType,
      idempotencyKey: "k",
      payloadHash: "",
      createdAt: at,
    },
    endpoint: null,
  };
}

type Rendered = { text: string; blocks: { text: { text: string } }[] };
const render = (ctx: AttemptContext): Rendered => JSON.parse(new TextDecoder().decode(slackMessage(ctx))) as Rendered;

void it("renders the exact payload text in a code block, escaped for mrkdwn, fences defused", () => {
  const out = render(contextOf(new TextEncoder().encode('{"a":1.0,"s":"```<x>"}')));
  assert.equal(out.text, 'order.paid: {"a":1.0,"s":"` ` `<x>"}');
  assert.equal(out.blocks[0]!.text.text, "*order.paid*  ·  `dlv_1`");
  assert.equal(out.blocks[1]!.text.text, '```{"a":1.0,"s":"` ` `&lt;x&gt;"}```');
});

void it("cuts long payloads and summarises bytes that are not UTF-8", () => {
  const long = render(contextOf(new TextEncoder().encode(`"${"x".repeat(5000)}"`)));
  assert.equal(long.blocks[1]!.text.text.length, SLACK_PAYLOAD_CHARS + 1 + 6);
  assert.ok(long.blocks[1]!.text.text.endsWith("…```"));
  const raw = render(contextOf(new Uint8Array([0xff, 0xfe, 0x00]), "application/octet-stream"));
  assert.equal(raw.blocks[1]!.text.text, "```(3 bytes of application/octet-stream)```");
});
