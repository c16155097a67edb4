/**
 * Real X.509 material for TLS tests, made with the `openssl` command line: a private CA, a server
 * certificate for localhost / 127.0.0.1 / ::1 signed by it, and client certificates (one signed by
 * the CA, one self-signed that a server requiring CA-signed clients refuses), valid for two days.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A certificate and its key, in PEM. */
export interface CertifiedKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What {@link makeCertificates} produces. */
export interface TestCertificates {
  readonly ca: CertifiedKey;
  readonly server: CertifiedKey;
  /** Signed by the CA, subject CN=hookstream-client. */
  readonly client: CertifiedKey;
  /** Self-signed, CN=stranger. */
  readonly stranger: CertifiedKey;
}

/** Generates a fresh CA, server and client certificates (EC P-256) in a temporary directory. */
export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "hookstream-certs-"));
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  };
  const key = (name: string): void =>
    ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f(name));
  try {
    key("ca.key");
    ssl(
      "req",
      "-x509",
      "-new",
      "-key",
      f("ca.key"),
      "-out",
      f("ca.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=Hookstream Test CA",
    );
    const signed = (name: string, subject: string, ext: string): void => {
      key(`${name}.key`);
      ssl("req", "-new", "-key", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", subject);
      writeFileSync(f(`${name}.ext`), ext);
      const args = ["x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.crt"), "-CAkey", f("ca.key")];
      args.push("-CAcreateserial", "-out", f(`${name}.crt`), "-extfile", f(`${name}.ext`), "-days", "2");
      ssl(...args);
    };
    signed(
      "server",
      "/CN=localhost",
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n",
    );
    signed("client", "/CN=hookstream-client", "extendedKeyUsage=clientAuth\n");
    key("stranger.key");
    ssl(
      "req",
      "-x509",
      "-new",
      "-key",
      f("stranger.key"),
      "-out",
      f("stranger.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=stranger",
    );
    const read = (name: string): CertifiedKey => ({
      certPem: readFileSync(f(`${name}.crt`), "utf8"),
      keyPem: readFileSync(f(`${name}.key`), "utf8"),
    });
    return { ca: read("ca"), server: read("server"), client: read("client"), stranger: read("stranger") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
