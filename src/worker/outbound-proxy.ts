// Outbound deliveries through an operator's HTTP(S) CONNECT proxy (PRODUCT.md §9). The SSRF guard
// still decides: the destination's name is resolved and checked here, before the proxy is asked,
// and the proxy is asked to CONNECT to the checked IP address, never to the name, so neither a
// rebinding DNS answer nor the proxy's own resolver can lead a delivery anywhere the policy refused.
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** Where the proxy is and which destinations bypass it. */
export interface ProxySettings {
  /** http://[user:password@]host:port or https://… */
  readonly url: URL;
  /** Destinations reached directly (see {@link createNoProxyMatcher}). */
  readonly noProxy: readonly string[];
}

/** Decides whether a destination bypasses the proxy. */
export interface NoProxyMatcher {
  /** True when `hostname` (or one of its checked `addresses`) is on the no-proxy list. */
  bypasses(hostname: string, addresses: readonly string[]): boolean;
}

/** The proxy refused or failed the tunnel; classified as a connect failure. */
export class ProxyTunnelError extends Error {
  override readonly name = "ProxyTunnelError";
  readonly code = "ERR_HOOKSTREAM_PROXY";
}

const MAX_RESPONSE_HEAD = 16 * 1024;

/**
 * A no-proxy list in the usual NO_PROXY spelling: `*` (everything), a host name (`example.com`
 * matches it and its subdomains; `.example.com` only subdomains), or an IP address or CIDR
 * (matched against the destination's resolved, checked addresses and literal IPs).
 */
export function createNoProxyMatcher(entries: readonly string[]): NoProxyMatcher {
  const names: string[] = [];
  const cidrs: { family: 4 | 6; network: bigint; prefix: number }[] = [];
  let all = false;
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") {
      all = true;
      continue;
    }
    const [ip, bits] = entry.split("/");
    const family = isIP((ip ?? "").replace(/^\[|\]$/g, ""));
    if (family === 4 || family === 6) {
      const width = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? width : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > width)
        throw new RangeError(`no-proxy entry ${raw}: bad prefix`);
      cidrs.push({ family, network: ipValue(ip!.replace(/^\[|\]$/g, "")) >> BigInt(width - prefix), prefix });
      continue;
    }
    if (!/^\.?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(entry))
      throw new RangeError(`no-proxy entry ${JSON.stringify(raw)} is not a host name, IP or CIDR`);
    names.push(entry);
  }
  const inCidr = (address: string): boolean => {
    const family = isIP(address);
    if (family !== 4 && family !== 6) return false;
    const width = family === 4 ? 32 : 128;
    const value = ipValue(address);
    return cidrs.some((c) => c.family === family && value >> BigInt(width - c.prefix) === c.network);
  };
  return {
    bypasses(hostname, addresses) {
      if (all) return true;
      const host = hostname
        .toLowerCase()
        .replace(/^\[|\]$/g, "")
        .replace(/\.$/, "");
      for (const n of names) {
        if (n.startsWith(".") ? host.endsWith(n) : host === n || host.endsWith(`.${n}`)) return true;
      }
      return inCidr(host) || addresses.some(inCidr);
    },
  };
}

/** Options of {@link openTunnel}. */
export interface TunnelOptions {
  /** Trust anchors for an https:// proxy's own certificate (default: Node's). */
  readonly ca?: readonly string[] | undefined;
  /** Gives up on the proxy after this long. */
  readonly timeoutMs: number;
}

/**
 * Opens a CONNECT tunnel through `proxy` to `address:port` (an IP literal the policy allowed) and
 * resolves with the raw socket once the proxy answered 2xx; the caller speaks HTTP or TLS over it.
 */
export function openTunnel(proxy: URL, address: string, port: number, options: TunnelOptions): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const proxyPort = Number(proxy.port) || (proxy.protocol === "https:" ? 443 : 80);
    const proxyHost = proxy.hostname.replace(/^\[|\]$/g, "");
    const socket: Socket =
      proxy.protocol === "https:"
        ? tlsConnect({
            host: proxyHost,
            port: proxyPort,
            servername: isIP(proxyHost) === 0 ? proxyHost : undefined,
            ...(options.ca === undefined ? {} : { ca: [...options.ca] }),
          })
        : netConnect({ host: proxyHost, port: proxyPort });
    const authority = isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
    let head = Buffer.alloc(0);
    let settled = false;
    let timer: NodeJS.Timeout | undefined = undefined;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    timer = setTimeout(
      () => fail(new ProxyTunnelError(`proxy ${proxy.host} did not open a tunnel within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > MAX_RESPONSE_HEAD) fail(new ProxyTunnelError(`proxy ${proxy.host} sent an oversized answer`));
        return;
      }
      socket.off("data", onData);
      clearTimeout(timer);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString("latin1"))?.[1];
      if (status === undefined || !status.startsWith("2")) {
        fail(
          new ProxyTunnelError(
            `proxy ${proxy.host} refused CONNECT ${authority}: HTTP ${status ?? "(malformed answer)"}`,
          ),
        );
        return;
      }
      const rest = head.subarray(end + 4);
      settled = true;
      // Bytes after the proxy's answer already belong to the destination.
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.once(proxy.protocol === "https:" ? "secureConnect" : "connect", () => {
      const auth =
        proxy.username === ""
          ? ""
          : `proxy-authorization: Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")}\r\n`;
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n${auth}\r\n`);
    });
    socket.on("data", onData);
    socket.once("error", (err) =>
      fail(Object.assign(new ProxyTunnelError(`proxy ${proxy.host}: ${err.message}`), { cause: err })),
    );
    socket.once("close", () =>
      fail(new ProxyTunnelError(`proxy ${proxy.host} closed the connection before the tunnel opened`)),
    );
  });
}

function ipValue(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  const [headPart = "", tailPart] = ip.split("::");
  const groups = (s: string): number[] => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const head = groups(headPart);
  const tail = tailPart === undefined ? [] : groups(tailPart);
  const all =
    tailPart === undefined ? head : [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}
