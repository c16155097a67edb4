/**
 * The plain HTTP routes receivers call to acknowledge an async delivery:
 * `POST /v1/deliveries/{id}/ack` and `…/nack` (GET works too, for receivers that can only follow
 * a link), with the attempt, expiry and signature in the query string exactly as the delivery's
 * `webhook-ack-url` / `webhook-nack-url` headers gave them. Answers JSON `{applied, status}`.
 */
import { settleAckUrl, type AckDeps, type AckVerb } from "../domain/async-ack.ts";
import type { PlainRoute } from "./plain-routes.ts";

const ACK_PATH = /^\/v1\/deliveries\/(dlv_[0-9a-z]{1,64})\/(ack|nack)$/;

/** The ack and nack routes over the acknowledgement use case. */
export function createAckRoutes(deps: AckDeps): PlainRoute[] {
  return [
    {
      methods: ["POST", "GET"],
      path: ACK_PATH,
      async handle(req) {
        const [, id, verb] = req.match;
        const answer = await settleAckUrl(deps, verb as AckVerb, id!, req.url.searchParams);
        return { status: answer.status, body: answer.body };
      },
    },
  ];
}
