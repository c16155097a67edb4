/**
 * Client certificates (mTLS) are checked when saved, with real certificates made by openssl: a
 * CA-signed chain and its key pass and are described (fingerprint, subject, expiry); a key of
 * another certificate, an encrypted key, garbage, a missing key and an expired certificate are
 * each a field violation.
 */
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { test } from "node:test";
import { checkClientCertificate, describeClientCertificate } from "../src/domain/client-certificate.ts";
import { Violations } from "../src/domain/errors.ts";
import { makeCertificates } from "./support/certificates.ts";

const certs = makeCertificates();
const now = new Date();

function violations(certificatePem: string, privateKeyPem: string, at = now): string[] {
  const v = new Violations();
  checkClientCertificate(v, "endpoint.client_certificate", { certificatePem, privateKeyPem }, at);
  return v.list.map((x) => `${x.field}: ${x.description}`);
}

test("a CA-signed certificate chain with its key passes, normalized, and is described", () => {
  const v = new Violations();
  const chain = `junk before\n${certs.client.certPem}\n${certs.ca.certPem}`;
  const pem = checkClientCertificate(v, "f", { certificatePem: chain, privateKeyPem: certs.client.keyPem }, now);
  assert.deepEqual(v.list, []);
  assert.equal(pem?.match(/BEGIN CERTIFICATE/g)?.length, 2);
  assert.ok(!pem?.includes("junk"));
  const d = describeClientCertificate(pem);
  const leaf = new X509Certificate(certs.client.certPem);
  assert.equal(d.fingerprintSha256, leaf.fingerprint256);
  assert.equal(d.subject, "CN=hookstream-client");
  assert.deepEqual(d.notAfter, new Date(leaf.validTo));
});

test("every bad certificate or key is a violation on its own field", () => {
  assert.deepEqual(violations(certs.client.certPem, certs.stranger.keyPem), [
    "endpoint.client_certificate.private_key_pem: does not belong to the certificate",
  ]);
  const encrypted = createPrivateKey(certs.client.keyPem)
    .export({ format: "pem", type: "pkcs8", cipher: "aes-256-cbc", passphrase: "pw" })
    .toString();
  assert.deepEqual(violations(certs.client.certPem, encrypted), [
    "endpoint.client_certificate.private_key_pem: must not be encrypted with a passphrase (Hookstream encrypts it at rest)",
  ]);
  assert.deepEqual(violations(certs.client.certPem, "not a key"), [
    "endpoint.client_certificate.private_key_pem: is not a private key in PEM (PKCS#8, PKCS#1 or SEC1)",
  ]);
  assert.deepEqual(violations(certs.client.certPem, ""), [
    "endpoint.client_certificate.private_key_pem: is required with a certificate",
  ]);
  assert.deepEqual(violations("no pem here", certs.client.keyPem), [
    "endpoint.client_certificate.certificate_pem: must hold a PEM certificate (-----BEGIN CERTIFICATE-----)",
  ]);
  assert.deepEqual(violations("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", certs.client.keyPem), [
    "endpoint.client_certificate.certificate_pem: is not a valid X.509 certificate in PEM",
  ]);
  const later = new Date(now.getTime() + 3 * 86_400_000);
  const expired = violations(certs.client.certPem, certs.client.keyPem, later);
  assert.equal(expired.length, 1);
  assert.match(expired[0]!, /^endpoint\.client_certificate\.certificate_pem: expired on 20\d\d-/);
  assert.match(violations("x".repeat(70_000), certs.client.keyPem)[0]!, /at most 65536 characters/);
});
