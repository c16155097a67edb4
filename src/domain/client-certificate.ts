// mTLS client certificates per endpoint: checked when saved (a parseable PEM chain whose leaf the
// private key belongs to, not expired, key unencrypted), described for the API (fingerprint,
// subject, expiry). Pure: node:crypto only.
import { X509Certificate, createPrivateKey } from "node:crypto";
import type { Violations } from "./errors.ts";

/** A client certificate as a producer gives it. */
export interface ClientCertificateInput {
  certificatePem: string;
  privateKeyPem: string;
}

/** What the API shows of a stored client certificate. */
export interface ClientCertificateDescription {
  fingerprintSha256: string;
  subject: string;
  notAfter: Date;
}

const ENCRYPTED_KEY = "must not be encrypted with a passphrase (Hookstream encrypts it at rest)";
const MAX_CERTIFICATE_PEM = 64 * 1024;
const MAX_KEY_PEM = 16 * 1024;
const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** What a sealed client-certificate key of an endpoint is bound to. */
export function clientKeyContext(endpointId: string): string {
  return `endpoint/${endpointId}/client-key`;
}

/**
 * Checks a client certificate, adding violations under `field`; returns the certificate chain
 * as normalized PEM (one block per certificate) when it is good.
 */
export function checkClientCertificate(
  v: Violations,
  field: string,
  input: ClientCertificateInput,
  now: Date,
): string | undefined {
  const certField = `${field}.certificate_pem`;
  const keyField = `${field}.private_key_pem`;
  if (input.certificatePem.length > MAX_CERTIFICATE_PEM) {
    v.add(certField, `must be at most ${MAX_CERTIFICATE_PEM} characters`);
    return undefined;
  }
  if (input.privateKeyPem.length > MAX_KEY_PEM) {
    v.add(keyField, `must be at most ${MAX_KEY_PEM} characters`);
    return undefined;
  }
  const blocks = input.certificatePem.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) {
    v.add(certField, "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)");
    return undefined;
  }
  let leaf: X509Certificate;
  try {
    const chain = blocks.map((b) => new X509Certificate(b));
    leaf = chain[0]!;
  } catch {
    v.add(certField, "is not a valid X.509 certificate in PEM");
    return undefined;
  }
  if (new Date(leaf.validTo) <= now) v.add(certField, `expired on ${new Date(leaf.validTo).toISOString()}`);
  if (input.privateKeyPem.trim() === "") {
    v.add(keyField, "is required with a certificate");
    return undefined;
  }
  if (/-----BEGIN (ENCRYPTED PRIVATE KEY|[A-Z ]*PRIVATE KEY-----\s*Proc-Type: 4,ENCRYPTED)/.test(input.privateKeyPem)) {
    v.add(keyField, ENCRYPTED_KEY);
    return undefined;
  }
  try {
    const key = createPrivateKey(input.privateKeyPem);
    if (!leaf.checkPrivateKey(key)) v.add(keyField, "does not belong to the certificate");
  } catch (err) {
    const code = (err as { code?: string }).code;
    v.add(
      keyField,
      code === "ERR_MISSING_PASSPHRASE" ? ENCRYPTED_KEY : "is not a private key in PEM (PKCS#8, PKCS#1 or SEC1)",
    );
  }
  return blocks.join("\n") + "\n";
}

/** Fingerprint, subject and expiry of the leaf of a stored certificate chain. */
export function describeClientCertificate(certificatePem: string): ClientCertificateDescription {
  const leaf = new X509Certificate(certificatePem.match(CERTIFICATE_BLOCK)?.[0] ?? certificatePem);
  return {
    fingerprintSha256: leaf.fingerprint256,
    subject: leaf.subject.replace(/\n/g, ", "),
    notAfter: new Date(leaf.validTo),
  };
}
