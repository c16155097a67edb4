/**
 * A tiny real HTTP CONNECT proxy for tests: it records every CONNECT target (as the client wrote
 * it) and its Proxy-Authorization, can require credentials (407) or refuse targets (403), and
 * otherwise opens a TCP connection to the target and pipes bytes both ways.
 */
import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/** One CONNECT request as the proxy saw it. */
export interface ProxiedConnect {
  /** The request target, e.g. `127.0.0.1:8443`. */
  readonly target: string;
  /** The proxy-authorization header, or "" when absent. */
  readonly authorization: string;
  /** The status the proxy answered. */
  readonly status: number;
}

/** A running proxy. */
export interface ConnectProxy {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly connects: readonly ProxiedConnect[];
  close(): Promise<void>;
}

/** Options of {@link startConnectProxy}. */
export interface ConnectProxyOptions {
  /** `user:password` the client must present with Basic auth; any (or none) when unset. */
  readonly credentials?: string;
  /** Answer 403 to targets this refuses. */
  readonly allow?: (target: string) => boolean;
}

/** Starts the proxy on 127.0.0.1 with an ephemeral port. */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const connects: ProxiedConnect[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) return;
      client.off("data", onData);
      const lines = head.subarray(0, end).toString("latin1").split("\r\n");
      const [method = "", target = ""] = (lines[0] ?? "").split(" ");
      const header = (name: string): string =>
        lines
          .slice(1)
          .find((l) => l.toLowerCase().startsWith(`${name}:`))
          ?.slice(name.length + 1)
          .trim() ?? "";
      const authorization = header("proxy-authorization");
      const answer = (status: number, text: string): void => {
        connects.push({ target, authorization, status });
        client.end(`HTTP/1.1 ${status} ${text}\r\ncontent-length: 0\r\n\r\n`);
      };
      if (method !== "CONNECT") return answer(405, "Method Not Allowed");
      if (
        options.credentials !== undefined &&
        authorization !== `Basic ${Buffer.from(options.credentials).toString("base64")}`
      ) {
        return answer(407, "Proxy Authentication Required");
      }
      if (options.allow !== undefined && !options.allow(target)) return answer(403, "Forbidden");
      const colon = target.lastIndexOf(":");
      const host = target.slice(0, colon).replace(/^\[|\]$/g, "");
      const upstream = connect({ host, port: Number(target.slice(colon + 1)) });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.once("connect", () => {
        connects.push({ target, authorization, status: 200 });
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        const rest = head.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.on("error", () => {
        if (!client.destroyed) answer(502, "Bad Gateway");
        upstream.destroy();
      });
      client.on("close", () => upstream.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
