import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfig, parseDuration } from "./config.ts";

// api and worker refuse to start without an encryption key; these tests are about other settings.
const KEYS = { HOOKSTREAM_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString("base64")}` };

test("defaults: SQLite under ./.hookstream, dev allows loopback delivery and starts its own NATS", () => {
  const dev = loadConfig("dev", {});
  assert.deepEqual(dev.database, { kind: "sqlite", path: "./.hookstream/hookstream.db" });
  assert.equal(dev.natsUrl, undefined);
  assert.deepEqual(dev.outboundAllow, ["127.0.0.0/8", "::1/128"]);
  const api = loadConfig("api", KEYS);
  assert.equal(api.natsUrl, "nats://127.0.0.1:4222");
  assert.deepEqual(api.outboundAllow, []);
  assert.equal(api.maxPayloadBytes, 262_144);
});

test("PostgreSQL and SQLite URLs", () => {
  assert.deepEqual(loadConfig("api", { ...KEYS, DATABASE_URL: "postgres://u@h/db" }).database, {
    kind: "postgresql",
    url: "postgres://u@h/db",
  });
  assert.deepEqual(loadConfig("api", { ...KEYS, DATABASE_URL: "sqlite:/tmp/x.db" }).database, {
    kind: "sqlite",
    path: "/tmp/x.db",
  });
});

test("every bad setting is reported at once", () => {
  assert.throws(
    () =>
      loadConfig("api", {
        PORT: "http",
        HOOKSTREAM_JOB_ACK_WAIT: "soon",
        DATABASE_URL: "mysql://x",
        LOG_LEVEL: "loud",
      }),
    (err: unknown) =>
      err instanceof ConfigError &&
      ["PORT", "HOOKSTREAM_JOB_ACK_WAIT", "DATABASE_URL", "LOG_LEVEL"].every((n) => err.message.includes(n)),
  );
});

test("encryption keys: required by api, worker and reencrypt; parsed in order; bad entries reported", () => {
  for (const role of ["api", "worker", "reencrypt"] as const) {
    assert.throws(
      () => loadConfig(role, {}),
      (err: unknown) => err instanceof ConfigError && err.message.includes("HOOKSTREAM_ENCRYPTION_KEYS is required"),
    );
  }
  assert.deepEqual(loadConfig("dispatcher", {}).encryptionKeys, []);
  assert.deepEqual(loadConfig("dev", {}).encryptionKeys, []);
  const k2 = Buffer.alloc(32, 2);
  const two = loadConfig("worker", {
    HOOKSTREAM_ENCRYPTION_KEYS: `k2:${k2.toString("base64url")}, ${KEYS.HOOKSTREAM_ENCRYPTION_KEYS}`,
  });
  assert.deepEqual(
    two.encryptionKeys.map((k) => [k.id, k.key.toString("hex")]),
    [
      ["k2", k2.toString("hex")],
      ["k1", Buffer.alloc(32, 1).toString("hex")],
    ],
  );
  assert.throws(
    () =>
      loadConfig("api", {
        HOOKSTREAM_ENCRYPTION_KEYS: `nokey,k1:${Buffer.alloc(16).toString("base64")},k2:***,${KEYS.HOOKSTREAM_ENCRYPTION_KEYS},${KEYS.HOOKSTREAM_ENCRYPTION_KEYS}`,
      }),
    (err: unknown) =>
      err instanceof ConfigError &&
      ["key #1", "expected 32 bytes (AES-256), got 16", "k2: the key is not base64", "k1: the id appears twice"].every(
        (m) => err.message.includes(m),
      ),
  );
});

test("durations", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("5"), undefined);
});

test("the README documents every configuration variable", async () => {
  const { readFile } = await import("node:fs/promises");
  const { CONFIG_DOCS } = await import("./config.ts");
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  for (const d of CONFIG_DOCS) assert.ok(readme.includes(`\`${d.env}\``), `${d.env} missing from README.md`);
});
