/**
 * The worker's signing keys per endpoint: each stored (sealed) secret is opened and decoded once,
 * then kept, so the delivery hot path never decrypts (AES-GCM) or parses a key per attempt. A
 * rotation stores a new ciphertext, which is a new entry; entries are dropped least recently used.
 */
import { endpointSecretContext, signingSecretsOf } from "../domain/endpoints.ts";
import type { EndpointRecord } from "../domain/records.ts";
import { clientKeyContext, describeClientCertificate } from "../domain/client-certificate.ts";
import { createSecretBox, type SecretBox } from "../domain/secret-box.ts";
import { decodeSigningKey, type SigningKey } from "../domain/signing.ts";
import type { OutboundClientCertificate } from "./http-sender.ts";

/** Decoded signing keys of an endpoint, as of an instant. */
export interface SigningKeys {
  /** The keys that sign an attempt made at `at`: the current one, and the previous in its grace period. */
  keysFor(endpoint: EndpointRecord, at: Date): SigningKey[];
  /** The endpoint's mTLS client certificate with its key decrypted (once, then cached); undefined when none. */
  clientCertificateFor(endpoint: EndpointRecord): OutboundClientCertificate | undefined;
}

/** Options of {@link createSigningKeys}. */
export interface SigningKeysOptions {
  /** Entries kept (one per stored secret); default 10,000. */
  maxEntries?: number;
  /** Counts decryptions, for tests and metrics. */
  onOpen?: () => void;
}

/** Creates the cache over the box that opens sealed secrets. */
export function createSigningKeys(box: Pick<SecretBox, "open">, options: SigningKeysOptions = {}): SigningKeys {
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, SigningKey>();
  const keyOf = (endpointId: string, stored: string): SigningKey => {
    // The endpoint id is part of the entry: a ciphertext opens only for the endpoint it was sealed for.
    const entry = `${endpointId}\0${stored}`;
    const hit = cache.get(entry);
    if (hit !== undefined) {
      cache.delete(entry);
      cache.set(entry, hit);
      return hit;
    }
    options.onOpen?.();
    const key = decodeSigningKey(box.open(stored, endpointSecretContext(endpointId)));
    cache.set(entry, key);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    return key;
  };
  const certificates = new Map<string, OutboundClientCertificate>();
  const certificateOf = (endpointId: string, certificatePem: string, sealedKey: string): OutboundClientCertificate => {
    const entry = `${endpointId}\0${sealedKey}\0${certificatePem}`;
    const hit = certificates.get(entry);
    if (hit !== undefined) return hit;
    options.onOpen?.();
    const made: OutboundClientCertificate = {
      id: `${endpointId}/${describeClientCertificate(certificatePem).fingerprintSha256}`,
      certificatePem,
      privateKeyPem: box.open(sealedKey, clientKeyContext(endpointId)),
    };
    certificates.set(entry, made);
    if (certificates.size > maxEntries) certificates.delete(certificates.keys().next().value!);
    return made;
  };
  return {
    keysFor: (endpoint, at) => signingSecretsOf(endpoint, at).map((stored) => keyOf(endpoint.id, stored)),
    clientCertificateFor: (endpoint) =>
      endpoint.clientCertificatePem === null ||
      endpoint.clientCertificatePem === undefined ||
      endpoint.clientKey === null ||
      endpoint.clientKey === undefined
        ? undefined
        : certificateOf(endpoint.id, endpoint.clientCertificatePem, endpoint.clientKey),
  };
}

/** Keys from plaintext secrets only (tests and tools without encryption keys). */
export const plaintextSigningKeys: SigningKeys = createSigningKeys(createSecretBox([]));
