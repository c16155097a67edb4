/**
 * Tenancy on the real stack (api, dispatcher and worker as processes, a second api process on the
 * same database, real NATS, both databases): API key scopes and modes, coalesced last-used times,
 * and a revocation that reaches every API server within the cache TTL.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ApiKeyMode, ApiKeyScope } from "../gen/hookstream/v1/api_key_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";

const CACHE_TTL_MS = 1000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The error of a call that must fail with `code` (and `reason`, when given). */
async function failure(call: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    const ce = ConnectError.from(error);
    assert.equal(ce.code, code, `expected ${Code[code]}, got ${Code[ce.code]}: ${ce.rawMessage}`);
    if (reason !== undefined) assert.equal(ce.findDetails(ErrorDetailSchema)[0]?.reason, reason, ce.rawMessage);
    return ce;
  }
  return assert.fail(`expected ${Code[code]}, but the call succeeded`);
}

/** The fields named by an invalid_argument error's violations. */
function violatedFields(error: ConnectError): string[] {
  return (error.findDetails(ErrorDetailSchema)[0]?.fieldViolations ?? []).map((v) => v.field).sort();
}

for (const kind of testDbKinds()) {
  void describe(`tenancy on ${kind}`, { timeout: 300_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let second: Stack | undefined;
    let management: Clients;
    let endpointId: string;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      const env = { HOOKSTREAM_CACHE_TTL: `${CACHE_TTL_MS}ms`, HOOKSTREAM_API_KEY_USAGE_FLUSH_INTERVAL: "100ms" };
      stack = await startStack({ databaseUrl: database.url, natsUrl: nats.url, env });
      // A second API server on the same database: its own credential cache.
      second = await startStack({ databaseUrl: database.url, natsUrl: nats.url, env, roles: ["api"], migrate: false });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "tenancy" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver.url}/hook` } });
      endpointId = ep.endpoint!.id;
    });

    after(async () => {
      second?.destroy();
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    void it("issues producer and management keys, live and test, the mode visible in the secret", async () => {
      const producer = await management.apiKeys.createApiKey({ label: "billing" });
      assert.match(producer.secret, /^hsk_live_[A-Za-z0-9_-]{43}$/);
      assert.equal(producer.apiKey?.scope, ApiKeyScope.PRODUCER);
      assert.equal(producer.apiKey?.mode, ApiKeyMode.LIVE);
      assert.equal(producer.apiKey?.secretPrefix, producer.secret.slice(0, "hsk_live_".length + 6));
      assert.equal(producer.apiKey?.lastUsedTime, undefined);
      const test = await management.apiKeys.createApiKey({ label: "ci", mode: ApiKeyMode.TEST });
      assert.match(test.secret, /^hsk_test_/);
      assert.equal(test.apiKey?.mode, ApiKeyMode.TEST);
      const admin = await management.apiKeys.createApiKey({ label: "ops", scope: ApiKeyScope.MANAGEMENT });
      assert.equal(admin.apiKey?.scope, ApiKeyScope.MANAGEMENT);
      const listed = await management.apiKeys.listApiKeys({});
      assert.deepEqual(
        listed.apiKeys.slice(0, 3).map((k) => [k.label, k.scope, k.mode]),
        [
          ["ops", ApiKeyScope.MANAGEMENT, ApiKeyMode.LIVE],
          ["ci", ApiKeyScope.PRODUCER, ApiKeyMode.TEST],
          ["billing", ApiKeyScope.PRODUCER, ApiKeyMode.LIVE],
        ],
      );
    });

    void it("refuses bad input field by field and creates nothing", async () => {
      const before = (await management.apiKeys.listApiKeys({ pageSize: 200 })).apiKeys.length;
      const error = await failure(
        management.apiKeys.createApiKey({ label: "x".repeat(201), scope: 7 as ApiKeyScope, mode: 9 as ApiKeyMode }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
      );
      assert.deepEqual(violatedFields(error), ["label", "mode", "scope"]);
      assert.equal((await management.apiKeys.listApiKeys({ pageSize: 200 })).apiKeys.length, before);
    });

    void it("a management key calls management RPCs only; a producer key producer RPCs only", async () => {
      const mk = await management.apiKeys.createApiKey({ label: "m", scope: ApiKeyScope.MANAGEMENT });
      const pk = await management.apiKeys.createApiKey({ label: "p" });
      const asManagementKey = createClients(stack!.apiUrl, mk.secret);
      const asProducerKey = createClients(stack!.apiUrl, pk.secret);
      const ep = await asManagementKey.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/m` } });
      assert.match(ep.endpoint!.id, /^ep_/);
      assert.ok((await asManagementKey.apiKeys.listApiKeys({})).apiKeys.some((k) => k.id === mk.apiKey!.id));
      await failure(
        asManagementKey.messages.send({
          endpointId,
          eventType: "order.paid",
          body: { case: "payloadJson", value: "{}" },
        }),
        Code.PermissionDenied,
        "WRONG_CREDENTIAL_KIND",
      );
      const sent = await asProducerKey.messages.send({
        endpointId,
        eventType: "order.paid",
        body: { case: "payloadJson", value: '{"n":1}' },
      });
      assert.match(sent.messageId, /^msg_/);
      await failure(
        asProducerKey.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/p` } }),
        Code.PermissionDenied,
        "WRONG_CREDENTIAL_KIND",
      );
      await failure(asProducerKey.apiKeys.listApiKeys({}), Code.PermissionDenied, "WRONG_CREDENTIAL_KIND");
      await failure(
        asManagementKey.admin.createWorkspace({ name: "no" }),
        Code.PermissionDenied,
        "WRONG_CREDENTIAL_KIND",
      );
    });

    void it("records when a key was last used, coalesced rather than written per request", async () => {
      const pk = await management.apiKeys.createApiKey({ label: "usage" });
      const unused = await management.apiKeys.createApiKey({ label: "unused" });
      const producer = createClients(stack!.apiUrl, pk.secret);
      const startedAt = Date.now();
      for (let i = 0; i < 20; i++)
        await failure(producer.messages.getMessage({ id: "msg_" + "0".repeat(26) }), Code.NotFound);
      let lastUsed: Date | undefined;
      while (lastUsed === undefined) {
        await sleep(50);
        const keys = (await management.apiKeys.listApiKeys({ pageSize: 200 })).apiKeys;
        const t = keys.find((k) => k.id === pk.apiKey!.id)?.lastUsedTime;
        if (t !== undefined) lastUsed = new Date(Number(t.seconds) * 1000 + t.nanos / 1e6);
        assert.equal(keys.find((k) => k.id === unused.apiKey!.id)?.lastUsedTime, undefined);
      }
      assert.ok(lastUsed.getTime() >= startedAt - 1000, `${lastUsed.toISOString()} is the time of a recent use`);
      assert.ok(lastUsed.getTime() <= Date.now());
    });

    void it("a revoked key is refused at once by the server that revoked it and by the other within the cache TTL", async () => {
      const pk = await management.apiKeys.createApiKey({ label: "revoke me" });
      const onFirst = createClients(stack!.apiUrl, pk.secret);
      const onSecond = createClients(second!.apiUrl, pk.secret);
      const probe = (c: Clients) => c.messages.getMessage({ id: "msg_" + "0".repeat(26) });
      // Both servers have the key in their caches now.
      await failure(probe(onFirst), Code.NotFound);
      await failure(probe(onSecond), Code.NotFound);
      const revoked = await management.apiKeys.revokeApiKey({ id: pk.apiKey!.id });
      assert.ok(revoked.apiKey?.revokeTime !== undefined);
      await failure(probe(onFirst), Code.Unauthenticated, "API_KEY_REVOKED");
      await sleep(CACHE_TTL_MS + 200);
      await failure(probe(onSecond), Code.Unauthenticated, "API_KEY_REVOKED");
      const again = await management.apiKeys.revokeApiKey({ id: pk.apiKey!.id });
      assert.deepEqual(again.apiKey?.revokeTime, revoked.apiKey?.revokeTime, "a second revoke changes nothing");
    });
  });
}
