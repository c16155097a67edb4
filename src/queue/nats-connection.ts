/** One NATS connection per process, reconnecting forever, with its status changes logged. */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { DomainError } from "../domain/errors.ts";

/** Options of connectNats. */
export interface ConnectNatsOptions {
  url: string;
  /** Client name shown in the server's monitoring pages (e.g. "hookstream-worker"). */
  name: string;
  logger: Logger;
}

/**
 * Connects to NATS. Once connected the client reconnects forever (a NATS restart must not end
 * a role); a first connection that fails throws DomainError("unavailable", "NATS_UNAVAILABLE")
 * naming the URL, so a misconfigured NATS_URL is obvious at start.
 */
export async function connectNats(opts: ConnectNatsOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: opts.url, name: opts.name, maxReconnectAttempts: -1 });
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new DomainError("unavailable", "NATS_UNAVAILABLE", `cannot connect to NATS at ${opts.url}: ${detail}`, {
      cause,
    });
  }
  opts.logger.info({ url: opts.url, name: opts.name }, "connected to NATS");
  logStatusChanges(nc, opts.logger).catch((err: unknown) => {
    opts.logger.error({ err }, "NATS status monitor failed");
  });
  return nc;
}

/**
 * Logs each disconnect and each reconnect once: the client emits "reconnecting" on every
 * attempt, which would flood the log while a server is down, so that one is left out.
 */
async function logStatusChanges(nc: NatsConnection, logger: Logger): Promise<void> {
  let connected = true;
  for await (const s of nc.status()) {
    switch (s.type) {
      case "disconnect":
        if (connected) logger.warn({ server: s.server }, "NATS disconnected; reconnecting");
        connected = false;
        break;
      case "reconnect":
        if (!connected) logger.info({ server: s.server }, "NATS reconnected");
        connected = true;
        break;
      case "error":
        logger.error({ err: s.error }, "NATS connection error");
        break;
      case "slowConsumer":
        logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, "NATS slow consumer");
        break;
      default:
        break;
    }
  }
}
