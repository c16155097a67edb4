import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createOutboundPolicy } from "./outbound-policy.ts";

const strict = createOutboundPolicy([]);

void describe("createOutboundPolicy: default refusals", () => {
  const refused: ReadonlyArray<readonly [string, RegExp]> = [
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["10.0.0.1", /private/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["169.254.169.254", /metadata/],
    ["169.254.1.1", /link-local/],
    ["0.0.0.0", /unspecified/],
    ["0.1.2.3", /unspecified/],
    ["100.64.0.1", /carrier-grade/],
    ["100.127.255.255", /carrier-grade/],
    ["192.0.0.8", /IETF/],
    ["192.0.2.10", /documentation/],
    ["198.51.100.7", /documentation/],
    ["203.0.113.200", /documentation/],
    ["198.18.0.1", /benchmarking/],
    ["224.0.0.1", /multicast/],
    ["239.255.255.250", /multicast/],
    ["240.0.0.1", /reserved/],
    ["255.255.255.255", /broadcast/],
    ["::1", /loopback/],
    ["::", /unspecified/],
    ["fc00::1", /unique local/],
    ["fd12:3456::1", /unique local/],
    ["fe80::1", /link-local/],
    ["fe80::1%eth0", /link-local/],
    ["febf::1", /link-local/],
    ["fec0::1", /site-local/],
    ["ff02::1", /multicast/],
    ["2001:db8::1", /documentation/],
    ["3fff::1", /documentation/],
    ["2001:0:4136:e378::1", /Teredo/],
    ["100::1", /discard/],
    ["64:ff9b:1::1", /local-use NAT64/],
    ["4000::1", /reserved IPv6/],
    ["::ffff:127.0.0.1", /IPv4-mapped 127\.0\.0\.1, loopback/],
    ["::ffff:7f00:1", /IPv4-mapped 127\.0\.0\.1/],
    ["::ffff:169.254.169.254", /metadata/],
    ["::ffff:10.1.2.3", /private/],
    ["::127.0.0.1", /IPv4-compatible 127\.0\.0\.1/],
    ["64:ff9b::127.0.0.1", /NAT64 for 127\.0\.0\.1/],
    ["64:ff9b::a9fe:a9fe", /NAT64 for 169\.254\.169\.254/],
    ["2002:7f00:1::1", /6to4 for 127\.0\.0\.1/],
    ["2002:c0a8:0101::", /6to4 for 192\.168\.1\.1/],
    ["[::1]", /loopback/],
  ];
  for (const [ip, why] of refused) {
    void it(`refuses ${ip}`, () => {
      assert.equal(strict.isAllowed(ip), false);
      assert.match(strict.describe(ip), why);
    });
  }

  void it("refuses strings that are not canonical IP addresses", () => {
    for (const s of [
      "",
      "localhost",
      "example.com",
      "2130706433",
      "0x7f.0.0.1",
      "127.1",
      "127.000.000.001",
      "1.2.3.256",
      "::g",
    ]) {
      assert.equal(strict.isAllowed(s), false, s);
      assert.match(strict.describe(s), /not an IP address/);
    }
  });

  void it("stays exact at range edges", () => {
    assert.equal(strict.isAllowed("172.15.255.255"), true);
    assert.equal(strict.isAllowed("172.32.0.0"), true);
    assert.equal(strict.isAllowed("100.63.255.255"), true);
    assert.equal(strict.isAllowed("100.128.0.0"), true);
    assert.equal(strict.isAllowed("11.0.0.0"), true);
    assert.equal(strict.isAllowed("9.255.255.255"), true);
    assert.equal(strict.isAllowed("223.255.255.255"), true);
    assert.equal(strict.isAllowed("128.0.0.0"), true);
    assert.equal(strict.isAllowed("126.255.255.255"), true);
    assert.equal(strict.isAllowed("fbff:ffff::1"), false); // below fc00::/7 but outside 2000::/3
    assert.equal(strict.isAllowed("2001:1::1"), true); // just outside Teredo 2001::/32
  });
});

void describe("createOutboundPolicy: public addresses", () => {
  void it("allows public IPv4, IPv6 and IPv6 forms embedding a public IPv4", () => {
    for (const ip of [
      "1.1.1.1",
      "8.8.8.8",
      "93.184.216.34",
      "2606:4700:4700::1111",
      "2a00:1450:4001:80b::200e",
      "::ffff:8.8.8.8",
      "64:ff9b::8.8.8.8",
      "2002:0808:0808::1",
    ]) {
      assert.equal(strict.isAllowed(ip), true, ip);
      assert.match(strict.describe(ip), /public/);
    }
  });
});

void describe("createOutboundPolicy: allow-list", () => {
  const policy = createOutboundPolicy(["127.0.0.0/8", "::1/128", "10.20.0.0/16", "fd00:1::/32", "192.168.1.5"]);

  void it("allows addresses inside an allowed CIDR and nothing next to it", () => {
    assert.equal(policy.isAllowed("127.0.0.1"), true);
    assert.match(policy.describe("127.0.0.1"), /allow-list \(127\.0\.0\.0\/8\)/);
    assert.equal(policy.isAllowed("::1"), true);
    assert.equal(policy.isAllowed("10.20.255.1"), true);
    assert.equal(policy.isAllowed("10.21.0.1"), false);
    assert.equal(policy.isAllowed("fd00:1:ffff::9"), true);
    assert.equal(policy.isAllowed("fd00:2::9"), false);
    assert.equal(policy.isAllowed("192.168.1.5"), true);
    assert.equal(policy.isAllowed("192.168.1.6"), false);
    assert.equal(policy.isAllowed("169.254.169.254"), false);
  });

  void it("treats an IPv4-mapped address like its IPv4 address", () => {
    assert.equal(policy.isAllowed("::ffff:127.0.0.1"), true);
    assert.equal(policy.isAllowed("::ffff:10.20.0.1"), true);
    assert.equal(policy.isAllowed("::ffff:10.21.0.1"), false);
  });

  void it("masks host bits and accepts /0", () => {
    const everything = createOutboundPolicy(["10.1.2.3/8", "0.0.0.0/0"]);
    assert.equal(everything.isAllowed("10.200.0.1"), true);
    assert.equal(everything.isAllowed("169.254.169.254"), true);
    assert.equal(everything.isAllowed("::1"), false);
  });

  void it("throws a clear error on malformed CIDRs", () => {
    for (const bad of [
      "",
      "10.0.0.0/33",
      "::/129",
      "10.0.0/8",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "fe80::/x",
      "localhost/8",
      "fe80::1%eth0/64",
    ]) {
      assert.throws(
        () => createOutboundPolicy([bad]),
        (e: unknown) => e instanceof RangeError && e.message.includes("outbound allow-list"),
        bad,
      );
    }
  });
});
