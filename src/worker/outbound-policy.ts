// Which IP addresses a delivery may reach (PRODUCT.md §9): everything publicly routable, nothing
// private, loopback, link-local, metadata or reserved unless an operator allow-listed it. Own
// parsing on bigints rather than node:net BlockList, so IPv6 forms that embed an IPv4 address
// (mapped, compatible, NAT64, 6to4) are judged by the IPv4 address they really lead to.
import { isIPv6 } from "node:net";

/** Decides, for one resolved address, whether an outbound request may connect to it. */
export interface OutboundPolicy {
  /** True when `ip` (a literal IPv4 or IPv6 address) may be connected to. */
  isAllowed(ip: string): boolean;
  /** A human-readable reason for the decision, for attempt records and logs. */
  describe(ip: string): string;
}

interface Cidr {
  readonly family: 4 | 6;
  readonly prefix: number;
  readonly network: bigint;
  readonly text: string;
}

interface Range extends Cidr {
  readonly reason: string;
}

interface Address {
  readonly family: 4 | 6;
  readonly value: bigint;
}

type Verdict = { readonly allowed: true; readonly why: string } | { readonly allowed: false; readonly why: string };

/**
 * Builds a policy that refuses non-public addresses except those inside `allowCidrs`
 * (IPv4 or IPv6 CIDRs; a bare address means that one host). Throws on a malformed entry.
 */
export function createOutboundPolicy(allowCidrs: readonly string[]): OutboundPolicy {
  const allow = allowCidrs.map(parseCidr);
  const judge = (ip: string): Verdict => verdict(ip, allow);
  return {
    isAllowed: (ip) => judge(ip).allowed,
    describe: (ip) => judge(ip).why,
  };
}

const V4_BITS = 32;
const V6_BITS = 128;
// Canonical dotted quad only: odd forms (2130706433, 0x7f.1) are normalised by the URL parser first.
const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

function range(cidr: string, reason: string): Range {
  return { ...parseCidr(cidr), reason };
}

// IANA IPv4 special-purpose registry entries that are not globally reachable, plus multicast.
const DENY_V4: readonly Range[] = [
  range("0.0.0.0/8", "unspecified (this network)"),
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "carrier-grade NAT shared space"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local (includes cloud metadata)"),
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "IETF protocol assignments"),
  range("192.0.2.0/24", "documentation (TEST-NET-1)"),
  range("192.88.99.0/24", "deprecated 6to4 relay anycast"),
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation (TEST-NET-2)"),
  range("203.0.113.0/24", "documentation (TEST-NET-3)"),
  range("224.0.0.0/4", "multicast"),
  range("255.255.255.255/32", "broadcast"),
  range("240.0.0.0/4", "reserved"),
];

// Named IPv6 ranges first for precise reasons; anything else outside 2000::/3 (the only
// space IANA allocates as global unicast) is refused as reserved.
const DENY_V6: readonly Range[] = [
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  range("64:ff9b:1::/48", "local-use NAT64"),
  range("100::/64", "discard-only"),
  range("2001::/32", "Teredo tunnelling"),
  range("2001:2::/48", "benchmarking"),
  range("2001:db8::/32", "documentation"),
  range("3fff::/20", "documentation"),
  range("5f00::/16", "SRv6 segment identifiers"),
  range("fc00::/7", "unique local (private)"),
  range("fe80::/10", "link-local"),
  range("fec0::/10", "deprecated site-local"),
  range("ff00::/8", "multicast"),
];
const GLOBAL_UNICAST_V6 = parseCidr("2000::/3");

// IPv6 prefixes whose addresses carry an IPv4 address that is the real destination.
const MAPPED = parseCidr("::ffff:0:0/96");
const COMPATIBLE = parseCidr("::/96");
const NAT64 = parseCidr("64:ff9b::/96");
const SIX_TO_FOUR = parseCidr("2002::/16");
const METADATA_V4 = parseIp("169.254.169.254");

function verdict(ip: string, allow: readonly Cidr[]): Verdict {
  const addr = parseIp(ip);
  if (addr === undefined) return { allowed: false, why: `${JSON.stringify(ip)} is not an IP address` };
  const embedded = embeddedIpv4(addr);
  const candidates = embedded === undefined ? [addr] : [addr, embedded.v4];

  // An operator allow-list wins over every built-in refusal, whichever form the address takes.
  for (const a of candidates) {
    const hit = allow.find((c) => contains(c, a));
    if (hit !== undefined) return { allowed: true, why: `${ip} is allowed by the outbound allow-list (${hit.text})` };
  }
  const refused = refusal(addr);
  if (refused !== undefined) return { allowed: false, why: `${ip} is refused: ${refused}` };
  if (embedded !== undefined) {
    const inner = refusal(embedded.v4);
    if (inner !== undefined) {
      return { allowed: false, why: `${ip} is refused: ${embedded.how} ${formatIpv4(embedded.v4.value)}, ${inner}` };
    }
  }
  return { allowed: true, why: `${ip} is a public address` };
}

function refusal(addr: Address): string | undefined {
  if (addr.family === 4) {
    if (METADATA_V4 !== undefined && addr.value === METADATA_V4.value)
      return "cloud metadata endpoint (169.254.0.0/16, link-local)";
    const r = DENY_V4.find((d) => contains(d, addr));
    return r === undefined ? undefined : `${r.reason} (${r.text})`;
  }
  const r = DENY_V6.find((d) => contains(d, addr));
  if (r !== undefined) return `${r.reason} (${r.text})`;
  // Embedding prefixes sit outside 2000::/3 (except 6to4) and are judged by their IPv4 part.
  if (contains(MAPPED, addr) || contains(COMPATIBLE, addr) || contains(NAT64, addr)) return undefined;
  if (!contains(GLOBAL_UNICAST_V6, addr)) return "reserved IPv6 space outside global unicast 2000::/3";
  return undefined;
}

function embeddedIpv4(addr: Address): { v4: Address; how: string } | undefined {
  if (addr.family !== 6) return undefined;
  const low32 = addr.value & 0xffff_ffffn;
  if (contains(MAPPED, addr)) return { v4: { family: 4, value: low32 }, how: "IPv4-mapped" };
  // :: and ::1 are IPv6's own unspecified and loopback; refusal() names them directly.
  if (contains(COMPATIBLE, addr) && addr.value > 1n) return { v4: { family: 4, value: low32 }, how: "IPv4-compatible" };
  if (contains(NAT64, addr)) return { v4: { family: 4, value: low32 }, how: "NAT64 for" };
  if (contains(SIX_TO_FOUR, addr)) {
    return { v4: { family: 4, value: (addr.value >> 80n) & 0xffff_ffffn }, how: "6to4 for" };
  }
  return undefined;
}

function contains(c: Cidr, a: Address): boolean {
  if (c.family !== a.family) return false;
  const shift = BigInt((a.family === 4 ? V4_BITS : V6_BITS) - c.prefix);
  return a.value >> shift === c.network >> shift;
}

function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const ipPart = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const addr = ipPart.includes("%") ? undefined : parseIp(ipPart);
  if (addr === undefined) {
    throw new RangeError(
      `outbound allow-list: ${JSON.stringify(text)} is not a CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)`,
    );
  }
  const bits = addr.family === 4 ? V4_BITS : V6_BITS;
  let prefix = bits;
  if (slash !== -1) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new RangeError(
        `outbound allow-list: ${JSON.stringify(text)} has an invalid prefix length (0..${bits} for IPv${addr.family})`,
      );
    }
    prefix = Number(p);
  }
  const shift = BigInt(bits - prefix);
  return { family: addr.family, prefix, network: (addr.value >> shift) << shift, text: trimmed };
}

/** Parses a canonical dotted-quad IPv4 or an IPv6 address (brackets and a zone id tolerated). */
function parseIp(raw: string): Address | undefined {
  const m = IPV4.exec(raw);
  if (m !== null) {
    const v = ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]);
    return { family: 4, value: BigInt(v) };
  }
  let s = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw;
  const zone = s.indexOf("%");
  if (zone !== -1) s = s.slice(0, zone);
  if (!isIPv6(s)) return undefined;
  return { family: 6, value: parseIpv6(s) };
}

function parseIpv6(s: string): bigint {
  const groups = (part: string): number[] => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      const v4 = IPV4.exec(g);
      if (v4 === null) {
        out.push(parseInt(g, 16));
      } else {
        out.push(Number(v4[1]) * 256 + Number(v4[2]), Number(v4[3]) * 256 + Number(v4[4]));
      }
    }
    return out;
  };
  const gap = s.indexOf("::");
  let all: number[];
  if (gap === -1) {
    all = groups(s);
  } else {
    const head = groups(s.slice(0, gap));
    const tail = groups(s.slice(gap + 2));
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

function formatIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
}
