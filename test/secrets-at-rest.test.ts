/**
 * Signing secrets at rest, on the real stack and both databases: every secret the api stores is
 * sealed (AES-256-GCM, key id kept with it) and the worker signs with it; a plaintext secret from
 * before encryption is still delivered (the lazy path) until `hookstream migrate` seals it; after a
 * key rotation `hookstream reencrypt` moves every secret to the new key, so a worker holding only
 * the new key keeps signing; and a rotated-out signing secret keeps signing beside the new one.
 */
import assert from "node:assert/strict";
import { createPublicKey, randomBytes, verify } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignatureScheme } from "../gen/hookstream/v1/endpoint_security_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Webhook } from "standardwebhooks";
import { openStore, type OpenedStore } from "../src/store/index.ts";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificates } from "./support/certificates.ts";
import { startConnectProxy, type ConnectProxy } from "./support/connect-proxy.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, runRoleOnce, startStack, type Clients, type Stack } from "./support/stack.ts";

const K1 = `k1:${randomBytes(32).toString("base64")}`;
const K2 = `k2:${randomBytes(32).toString("base64")}`;

for (const kind of testDbKinds()) {
  void describe(`signing secrets at rest on ${kind}`, { timeout: 180_000 }, () => {
    let nats: TestNats | undefined;
    let db: TestDatabase | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let worker2: Stack | undefined;
    let store: OpenedStore | undefined;
    let management: Clients;
    let producer: Clients;
    const certs = makeCertificates();
    let proxy: ConnectProxy | undefined;

    before(async () => {
      // Every delivery of this stack goes through a real CONNECT proxy; a private CA is trusted.
      proxy = await startConnectProxy();
      const caFile = join(mkdtempSync(join(tmpdir(), "hookstream-ca-")), "ca.pem");
      writeFileSync(caFile, certs.ca.certPem);
      receiver = await startReceiver();
      nats = await startNatsServer();
      db = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: db.url,
        natsUrl: nats.url,
        env: {
          HOOKSTREAM_ENCRYPTION_KEYS: K1,
          HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "200ms",
          HOOKSTREAM_SECRET_GRACE_PERIOD: "1h",
          HOOKSTREAM_OUTBOUND_PROXY: proxy.url,
          HOOKSTREAM_OUTBOUND_CA_FILE: caFile,
        },
      });
      store = await openStore(db.config, { logger: pino({ level: "silent" }) });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "secrets" });
      management = createClients(stack.apiUrl, ws.managementToken);
      producer = createClients(stack.apiUrl, (await management.apiKeys.createApiKey({ label: "p" })).secret);
    });

    after(async () => {
      worker2?.destroy();
      stack?.destroy();
      await store?.close();
      await receiver?.close();
      await proxy?.close();
      await nats?.stop();
      await db?.drop();
    });

    /** Sends one message to the endpoint and returns the request the receiver got. */
    const deliverOne = async (endpointId: string, payload: string) => {
      const sent = await producer.messages.send({
        endpointId,
        eventType: "secret.test",
        body: { case: "payloadJson", value: payload },
      });
      await receiver!.waitFor(
        (r) => r.some((x) => x.webhookId === sent.deliveryId),
        30_000,
        `delivery ${sent.deliveryId}`,
      );
      return receiver!.byId(sent.deliveryId)[0]!;
    };
    const verifies = (secret: string, req: { body: Buffer; headers: Readonly<Record<string, string>> }): boolean => {
      try {
        new Webhook(secret).verify(req.body.toString("utf8"), req.headers);
        return true;
      } catch {
        return false;
      }
    };
    const verifiesV1a = (
      publicKey: string,
      req: { body: Buffer; headers: Readonly<Record<string, string>> },
    ): boolean => {
      const key = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey.slice(5), "base64").toString("base64url") },
        format: "jwk",
      });
      const signed = Buffer.concat([
        Buffer.from(`${req.headers["webhook-id"]}.${req.headers["webhook-timestamp"]}.`),
        req.body,
      ]);
      return (req.headers["webhook-signature"] ?? "")
        .split(" ")
        .filter((s) => s.startsWith("v1a,"))
        .some((s) => verify(null, signed, key, Buffer.from(s.slice(4), "base64")));
    };
    const storedSecret = async (id: string): Promise<string> => {
      const rows = await store!.endpointSecrets.listEndpointSecrets(null, 1000);
      return rows.find((r) => r.id === id)!.secret;
    };

    void it("stores every signing secret sealed under the configured key; the worker signs with it", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/a` } });
      const stored = await storedSecret(created.endpoint!.id);
      assert.match(stored, /^hsenc:v1:k1:/);
      assert.ok(!stored.includes(created.signingSecret.slice(6)), "no plaintext in the database");
      const req = await deliverOne(created.endpoint!.id, '{"n":1}');
      assert.ok(verifies(created.signingSecret, req));
    });

    void it("a plaintext secret from before encryption is delivered (lazy path) and migrate seals it", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/b` } });
      const id = created.endpoint!.id;
      const legacy = "whsec_" + randomBytes(32).toString("base64");
      const sealed = await storedSecret(id);
      assert.ok(
        await store!.endpointSecrets.replaceEndpointSecrets(
          { id, secret: sealed, previousSecret: null, clientKey: null },
          { id, secret: legacy, previousSecret: null, clientKey: null },
        ),
      );
      assert.ok(verifies(legacy, await deliverOne(id, '{"n":2}')));

      const run = await runRoleOnce("migrate", { DATABASE_URL: db!.url, HOOKSTREAM_ENCRYPTION_KEYS: K1 });
      assert.equal(run.code, 0, run.output);
      assert.match(run.output, /endpoint secrets encrypted with the current key/);
      assert.match(await storedSecret(id), /^hsenc:v1:k1:/);
      assert.ok(verifies(legacy, await deliverOne(id, '{"n":3}')));
    });

    void it("rotating the signing secret keeps the old one signing beside the new one (both in webhook-signature)", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/r` } });
      const id = created.endpoint!.id;
      const rotated = await management.endpoints.rotateEndpointSecret({ id });
      assert.notEqual(rotated.signingSecret, created.signingSecret);
      const req = await deliverOne(id, '{"n":4}');
      assert.equal(req.headers["webhook-signature"]?.split(" ").length, 2);
      assert.ok(verifies(created.signingSecret, req), "the old secret still verifies during the grace period");
      assert.ok(verifies(rotated.signingSecret, req), "the new secret verifies");
      assert.ok(!verifies("whsec_" + randomBytes(32).toString("base64"), req));
    });

    void it("two rotations at once chain: the second keeps the first's new secret signing, none is lost", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/race` } });
      const id = created.endpoint!.id;
      // Each round races two rotations; whichever commits second must keep the other's secret as
      // its previous one (a read outside the row lock kept the original instead and dropped one).
      for (let round = 0; round < 5; round++) {
        const [a, b] = await Promise.all([
          management.endpoints.rotateEndpointSecret({ id }),
          management.endpoints.rotateEndpointSecret({ id }),
        ]);
        assert.notEqual(a.signingSecret, b.signingSecret);
        const req = await deliverOne(id, `{"race":${round}}`);
        assert.equal(req.headers["webhook-signature"]?.split(" ").length, 2, "current and previous sign");
        assert.ok(verifies(a.signingSecret, req), `round ${round}: the first rotation's secret verifies`);
        assert.ok(verifies(b.signingSecret, req), `round ${round}: the second rotation's secret verifies`);
      }
    });

    void it("ed25519 endpoints: v1a signatures verified with crypto.verify and the whpk_ key; rotation switches schemes", async () => {
      const created = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver!.url}/ed`, signatureScheme: SignatureScheme.ED25519 },
      });
      const ep = created.endpoint!;
      assert.equal(created.signingSecret, "", "the whsk_ secret key never leaves Hookstream");
      assert.equal(ep.signatureScheme, SignatureScheme.ED25519);
      assert.match(ep.publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);
      assert.match(await storedSecret(ep.id), /^hsenc:v1:k1:/);
      const first = await deliverOne(ep.id, '{"n":"ed"}');
      assert.match(first.headers["webhook-signature"] ?? "", /^v1a,[A-Za-z0-9+/]{86}==$/);
      assert.ok(verifiesV1a(ep.publicKey, first));
      assert.equal((await management.endpoints.getEndpoint({ id: ep.id })).endpoint?.publicKey, ep.publicKey);

      // To HMAC with a one-hour grace: both signatures, the old public key still shown.
      const toHmac = await management.endpoints.rotateEndpointSecret({
        id: ep.id,
        signatureScheme: SignatureScheme.HMAC_SHA256,
        gracePeriod: { seconds: 3600n, nanos: 0 },
      });
      assert.match(toHmac.signingSecret, /^whsec_/);
      assert.equal(toHmac.publicKey, "");
      assert.equal(toHmac.endpoint?.signatureScheme, SignatureScheme.HMAC_SHA256);
      assert.equal(toHmac.endpoint?.previousPublicKey, ep.publicKey);
      assert.ok(toHmac.endpoint?.previousSecretExpireTime !== undefined);
      const both = await deliverOne(ep.id, '{"n":"both"}');
      assert.deepEqual(
        both.headers["webhook-signature"]?.split(" ").map((p) => p.split(",")[0]),
        ["v1", "v1a"],
      );
      assert.ok(verifiesV1a(ep.publicKey, both));
      assert.ok(verifies(toHmac.signingSecret, both));

      // Back to ed25519 (the current scheme is kept when none is named), retiring the old key at once.
      const toEd = await management.endpoints.rotateEndpointSecret({
        id: ep.id,
        signatureScheme: SignatureScheme.ED25519,
        gracePeriod: { seconds: 0n, nanos: 0 },
      });
      assert.match(toEd.publicKey, /^whpk_/);
      assert.equal(toEd.endpoint?.previousPublicKey, "");
      const only = await deliverOne(ep.id, '{"n":"only"}');
      assert.equal(only.headers["webhook-signature"]?.split(" ").length, 1);
      assert.ok(verifiesV1a(toEd.publicKey, only));
      assert.ok(!verifiesV1a(ep.publicKey, only));
      const again = await management.endpoints.rotateEndpointSecret({
        id: ep.id,
        gracePeriod: { seconds: 0n, nanos: 0 },
      });
      assert.equal(again.endpoint?.signatureScheme, SignatureScheme.ED25519);
    });

    void it("bad rotation and scheme inputs are invalid_argument naming the field, and change nothing", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/bad` } });
      const id = created.endpoint!.id;
      const before = await storedSecret(id);
      const violation = async (p: Promise<unknown>, field: string): Promise<void> => {
        await assert.rejects(p, (err: unknown) => {
          assert.ok(err instanceof ConnectError);
          assert.equal(err.code, Code.InvalidArgument);
          const detail = err.findDetails(ErrorDetailSchema)[0];
          assert.ok(
            detail?.fieldViolations.some((v) => v.field === field),
            JSON.stringify(detail),
          );
          return true;
        });
      };
      await violation(
        management.endpoints.rotateEndpointSecret({ id, gracePeriod: { seconds: BigInt(31 * 86400), nanos: 0 } }),
        "grace_period",
      );
      await violation(
        management.endpoints.rotateEndpointSecret({ id, signatureScheme: 7 as SignatureScheme }),
        "signature_scheme",
      );
      await violation(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/x`, signatureScheme: 9 as SignatureScheme },
        }),
        "endpoint.signature_scheme",
      );
      assert.equal(await storedSecret(id), before);
    });

    void it("every delivery of this stack went through the CONNECT proxy, to the receiver's checked IP", () => {
      const port = new URL(receiver!.url).port;
      assert.ok(proxy!.connects.length > 0);
      assert.ok(proxy!.connects.every((c) => c.target === `127.0.0.1:${port}` && c.status === 200));
    });

    void it("key rotation: reencrypt moves every secret to the new key; a worker with only the new key signs", async () => {
      const created = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/c` } });
      const id = created.endpoint!.id;
      const run = await runRoleOnce("reencrypt", { DATABASE_URL: db!.url, HOOKSTREAM_ENCRYPTION_KEYS: `${K2},${K1}` });
      assert.equal(run.code, 0, run.output);
      const rows = await store!.endpointSecrets.listEndpointSecrets(null, 1000);
      for (const row of rows) {
        assert.match(row.secret, /^hsenc:v1:k2:/);
        if (row.previousSecret !== null) assert.match(row.previousSecret, /^hsenc:v1:k2:/);
        if (row.clientKey !== null) assert.match(row.clientKey, /^hsenc:v1:k2:/);
      }
      // The old worker holds k1 only; replace it by one that holds k2 only.
      await stack!.kill("worker", "SIGTERM");
      worker2 = await startStack({
        databaseUrl: db!.url,
        natsUrl: nats!.url,
        roles: ["worker"],
        migrate: false,
        env: { HOOKSTREAM_ENCRYPTION_KEYS: K2, HOOKSTREAM_STREAM_PREFIX: stack!.streamPrefix },
      });
      assert.ok(verifies(created.signingSecret, await deliverOne(id, '{"n":5}')));
    });

    void it("api and worker refuse to start without an encryption key", async () => {
      const run = await runRoleOnce("reencrypt", { DATABASE_URL: db!.url });
      assert.equal(run.code, 2);
      assert.match(run.output, /HOOKSTREAM_ENCRYPTION_KEYS is required by the reencrypt role/);
    });
  });
}
