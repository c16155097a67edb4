/**
 * Outbound security through the real sender: an HTTP CONNECT proxy (a real one, test/support)
 * with a no-proxy list and proxy credentials, a TLS receiver trusted through an extra CA bundle,
 * and a receiver that requires client certificates (mTLS), with certificates made by openssl.
 * The SSRF guard still judges the destination: a name resolving to a refused address never reaches
 * the proxy, and the proxy is asked to CONNECT to the checked IP, never to the name.
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { createHttpSender, type HttpSender, type Resolver } from "../src/worker/http-sender.ts";
import { createOutboundPolicy } from "../src/worker/outbound-policy.ts";
import { createNoProxyMatcher } from "../src/worker/outbound-proxy.ts";
import { makeCertificates } from "./support/certificates.ts";
import { startConnectProxy, type ConnectProxy } from "./support/connect-proxy.ts";

const certs = makeCertificates();
const body = new TextEncoder().encode('{"ok":true}');
// Every name resolves to loopback, except evil.test (a private address the policy refuses).
const resolve: Resolver = (hostname, _options, callback) => {
  if (hostname === "evil.test") callback(null, [{ address: "10.1.2.3", family: 4 }]);
  else callback(null, [{ address: "127.0.0.1", family: 4 }]);
};
const policy = createOutboundPolicy(["127.0.0.0/8"]);

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

void describe("outbound proxy, CA bundle and client certificates", () => {
  let plain: Server;
  let tls: Server;
  let mtls: Server;
  let plainPort = 0;
  let tlsPort = 0;
  let mtlsPort = 0;
  const seenClients: string[] = [];
  let proxy: ConnectProxy;
  let authProxy: ConnectProxy;
  const senders: HttpSender[] = [];
  const sender = (o: Partial<Parameters<typeof createHttpSender>[0]> = {}): HttpSender => {
    const s = createHttpSender({ policy, resolve, ...o });
    senders.push(s);
    return s;
  };
  const post = (
    s: HttpSender,
    url: string,
    clientCertificate?: { id: string; certificatePem: string; privateKeyPem: string },
  ) => s.send({ url, headers: { "content-type": "application/json" }, body, timeoutMs: 10_000, clientCertificate });

  before(async () => {
    plain = createHttpServer((_req, res) => res.end("plain"));
    plainPort = await listen(plain);
    tls = createHttpsServer({ cert: certs.server.certPem, key: certs.server.keyPem }, (_req, res) => res.end("tls"));
    tlsPort = await listen(tls);
    mtls = createHttpsServer(
      {
        cert: certs.server.certPem,
        key: certs.server.keyPem,
        ca: certs.ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        seenClients.push(peer.subject.CN as string);
        res.end("mtls");
      },
    );
    mtlsPort = await listen(mtls);
    proxy = await startConnectProxy();
    authProxy = await startConnectProxy({ credentials: "hook:s3cret" });
  });

  after(async () => {
    await Promise.all(senders.map((s) => s.close()));
    for (const s of [plain, tls, mtls]) s.closeAllConnections();
    await Promise.all([plain, tls, mtls].map((s) => new Promise((r) => s.close(r))));
    await proxy.close();
    await authProxy.close();
  });

  void it("tunnels http and https deliveries through the proxy to the checked IP, never the name", async () => {
    const s = sender({ proxy: { url: new URL(proxy.url), noProxy: [] }, ca: [certs.ca.certPem] });
    const before = proxy.connects.length;
    const a = await post(s, `http://receiver.test:${plainPort}/hook`);
    assert.equal(a.status, 200, a.errorMessage);
    assert.equal(a.body, "plain");
    const b = await post(s, `https://localhost:${tlsPort}/hook`);
    assert.equal(b.status, 200, b.errorMessage);
    assert.equal(b.body, "tls");
    assert.deepEqual(
      proxy.connects.slice(before).map((c) => c.target),
      [`127.0.0.1:${plainPort}`, `127.0.0.1:${tlsPort}`],
    );
  });

  void it("the SSRF guard refuses a destination before the proxy is asked, whatever its spelling", async () => {
    const s = sender({ proxy: { url: new URL(proxy.url), noProxy: [] } });
    const before = proxy.connects.length;
    const byName = await post(s, "http://evil.test/hook");
    assert.equal(byName.errorKind, "refused_by_policy");
    assert.match(byName.errorMessage, /10\.1\.2\.3/);
    const literal = await post(s, "http://169.254.169.254/latest/meta-data");
    assert.equal(literal.errorKind, "refused_by_policy");
    const mapped = await post(s, "http://[::ffff:10.0.0.1]/");
    assert.equal(mapped.errorKind, "refused_by_policy");
    assert.equal(proxy.connects.length, before, "the proxy never saw a refused destination");
  });

  void it("the no-proxy list sends matching destinations directly", async () => {
    const s = sender({ proxy: { url: new URL(proxy.url), noProxy: ["direct.test", "10.0.0.0/8"] } });
    const before = proxy.connects.length;
    const direct = await post(s, `http://api.direct.test:${plainPort}/`);
    assert.equal(direct.status, 200, direct.errorMessage);
    assert.equal(proxy.connects.length, before);
    const proxied = await post(s, `http://other.test:${plainPort}/`);
    assert.equal(proxied.status, 200, proxied.errorMessage);
    assert.equal(proxy.connects.length, before + 1);
    const m = createNoProxyMatcher(["example.com", ".internal", "192.168.0.0/16", "::1"]);
    assert.ok(m.bypasses("example.com", []) && m.bypasses("a.example.com", []) && !m.bypasses("badexample.com", []));
    assert.ok(m.bypasses("x.internal", []) && !m.bypasses("internal", []));
    assert.ok(
      m.bypasses("anything", ["192.168.4.4"]) && m.bypasses("[::1]", []) && !m.bypasses("anything", ["10.0.0.1"]),
    );
    assert.ok(createNoProxyMatcher(["*"]).bypasses("x", []));
    assert.throws(() => createNoProxyMatcher(["bad name!"]), RangeError);
  });

  void it("proxy credentials are sent as Basic auth; a refusing proxy is a connect failure", async () => {
    const url = new URL(authProxy.url);
    url.username = "hook";
    url.password = "s3cret";
    const ok = await post(sender({ proxy: { url, noProxy: [] } }), `http://receiver.test:${plainPort}/`);
    assert.equal(ok.status, 200, ok.errorMessage);
    assert.equal(authProxy.connects.at(-1)?.authorization, `Basic ${Buffer.from("hook:s3cret").toString("base64")}`);
    const refused = await post(
      sender({ proxy: { url: new URL(authProxy.url), noProxy: [] } }),
      `http://receiver.test:${plainPort}/`,
    );
    assert.equal(refused.errorKind, "connect");
    assert.match(refused.errorMessage, /refused CONNECT 127\.0\.0\.1:\d+: HTTP 407/);
  });

  void it("a private CA is trusted only when its bundle is configured", async () => {
    const without = await post(sender(), `https://localhost:${tlsPort}/`);
    assert.equal(without.errorKind, "tls");
    const withCa = await post(sender({ ca: [certs.ca.certPem] }), `https://localhost:${tlsPort}/`);
    assert.equal(withCa.status, 200, withCa.errorMessage);
  });

  void it("mTLS: the endpoint's client certificate is presented, pooled per certificate, also through the proxy", async () => {
    const s = sender({ ca: [certs.ca.certPem] });
    const url = `https://localhost:${mtlsPort}/`;
    const none = await post(s, url);
    assert.notEqual(none.status, 200);
    assert.ok(none.errorKind === "tls" || none.errorKind === "connect", `${none.errorKind}: ${none.errorMessage}`);
    const client = { id: "ep_a/1", certificatePem: certs.client.certPem, privateKeyPem: certs.client.keyPem };
    const ok = await post(s, url, client);
    assert.equal(ok.status, 200, ok.errorMessage);
    const stranger = { id: "ep_b/2", certificatePem: certs.stranger.certPem, privateKeyPem: certs.stranger.keyPem };
    const refused = await post(s, url, stranger);
    assert.notEqual(refused.status, 200, "a certificate the server's CA did not sign is refused");
    // The pooled connection of ep_a is not reused for the anonymous request or another certificate.
    assert.notEqual((await post(s, url)).status, 200);
    const proxied = sender({ ca: [certs.ca.certPem], proxy: { url: new URL(proxy.url), noProxy: [] } });
    assert.equal((await post(proxied, url, client)).status, 200);
    assert.deepEqual(seenClients, ["hookstream-client", "hookstream-client"]);
  });
});
