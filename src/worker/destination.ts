/**
 * Where a delivery goes. Each destination kind (the HTTP webhook first; queues and brokers later)
 * is a provider behind this one interface, so the pipeline's prepare, gate, decide and record
 * stages never change when a kind is added. A destination never throws for a failed delivery: it
 * classifies the failure in its result, and the decide stage alone turns that into a retry or a
 * dead letter.
 */
import type { AttemptContext } from "../domain/delivery-ledger.ts";
import type { OutboundResult } from "./http-sender.ts";

/** What one delivery attempt sent and how it went. */
export interface DestinationResult {
  /** The request headers as sent (signature included), recorded with the attempt. */
  requestHeaders: Record<string, string>;
  /** The classified outcome. */
  outcome: OutboundResult;
}

/** One destination kind. */
export interface Destination {
  /** Performs one attempt of the delivery in `ctx` (its endpoint is live), signed as of `at`. */
  deliver(ctx: AttemptContext, at: Date): Promise<DestinationResult>;
}

/** Destinations by endpoint type; "webhook" is always present. */
export type Destinations = Readonly<Record<string, Destination>> & { readonly webhook: Destination };
