import { defaultEnvironmentId } from "../src/domain/environments.ts";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DomainError } from "../src/domain/errors.ts";
import { newId } from "../src/domain/ids.ts";
import { createQuotaMeter } from "../src/domain/quota.ts";
import type {
  ApiKeyRecord,
  AttemptRecord,
  DeliveryRecord,
  DeliveryStatusName,
  EndpointRecord,
  MessageRecord,
  NewOutboxRecord,
} from "../src/domain/records.ts";
import { migrateDatabase, openStore, type OpenedStore } from "../src/store/index.ts";
import { migrationsFor } from "../src/store/orm-options.ts";
import { outboxFor, transitionFor, type BulkOperationRecord } from "../src/domain/recovery.ts";
import { endpointSecretContext } from "../src/domain/endpoints.ts";
import { createSecretBox } from "../src/domain/secret-box.ts";
import { resealEndpointSecrets, type StoredEndpointSecrets } from "../src/domain/secret-resealing.ts";
import { createTestDatabase, testDbKinds, type TestDatabase, type TestDbKind } from "./support/database.ts";

const logger = pino({ level: "silent" });
const T0 = new Date("2030-01-02T03:04:05.678Z");
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

function workspace(store: OpenedStore): Promise<string> {
  const id = newId("workspace");
  return store.workspaces.createWorkspace({ id, name: `ws ${id}`, createdAt: T0 }, `hash-${id}`).then(() => id);
}

function endpointOf(workspaceId: string, overrides: Partial<EndpointRecord> = {}): EndpointRecord {
  return {
    id: newId("endpoint"),
    workspaceId,
    url: "https://example.com/hook",
    description: "an endpoint",
    metadata: { team: "billing", ünïcode: "✓" },
    enabled: true,
    headers: { "x-custom": "1" },
    timeoutMs: 15_000,
    secret: "whsec_AAAA",
    previousSecret: null,
    previousSecretExpiresAt: null,
    createdAt: T0,
    updatedAt: T0,
    asyncAck: false,
    health: null,
    type: "webhook",
    eventTypes: [],
    filter: "",
    publicKey: null,
    previousPublicKey: null,
    clientCertificatePem: null,
    clientKey: null,
    rateLimit: 0,
    rateLimitBurst: 0,
    ordered: false,
    retryPolicy: null,
    applicationId: null,
    environmentId: defaultEnvironmentId(workspaceId),
    ...overrides,
  };
}

function messageOf(workspaceId: string, key = newId("message")): MessageRecord {
  return {
    id: newId("message"),
    workspaceId,
    eventType: "order.paid",
    payload: bytes(0, 1, 2, 127, 128, 254, 255),
    contentType: "application/octet-stream",
    idempotencyKey: key,
    payloadHash: "ab".repeat(32),
    createdAt: at(1),
    payloadDeletedAt: null,
    deliverAt: null,
    headers: null,
    metadata: null,
    retry: null,
    environmentId: defaultEnvironmentId(workspaceId),
  };
}

function deliveryOf(
  msg: MessageRecord,
  endpointId: string,
  status: DeliveryStatusName = "queued",
  nextAttemptAt: Date | null = null,
): DeliveryRecord {
  return {
    id: newId("delivery"),
    workspaceId: msg.workspaceId,
    messageId: msg.id,
    endpointId,
    eventType: msg.eventType,
    status,
    attemptCount: 0,
    nextAttemptAt,
    lastResponseStatus: 0,
    lastError: "",
    createdAt: msg.createdAt,
    updatedAt: msg.createdAt,
  };
}

function jobOf(d: DeliveryRecord, createdAt: Date = d.updatedAt): NewOutboxRecord {
  return {
    stream: "work",
    subject: d.workspaceId,
    workspaceId: d.workspaceId,
    msgId: `${d.id}:${d.attemptCount + 1}`,
    payload: bytes(9, 0, 9),
    createdAt,
  };
}

function statusOf(d: DeliveryRecord): NewOutboxRecord {
  return {
    stream: "status",
    subject: d.workspaceId,
    workspaceId: d.workspaceId,
    msgId: `${d.id}:${d.status}`,
    payload: bytes(1),
    createdAt: d.updatedAt,
  };
}

function attemptOf(d: DeliveryRecord, number: number): AttemptRecord {
  return {
    id: newId("attempt"),
    workspaceId: d.workspaceId,
    deliveryId: d.id,
    number,
    startedAt: at(10 + number),
    latencyMs: 42,
    requestHeaders: { "webhook-id": d.messageId },
    responseStatus: 500,
    responseHeaders: { "content-type": "text/plain" },
    responseBody: "oops",
    errorKind: "http_status",
    errorMessage: "HTTP 500",
    nextRetryAt: at(60_000),
    recordedBy: null,
  };
}

async function seed(
  store: OpenedStore,
  workspaceId: string,
  endpointId: string,
  statuses: DeliveryStatusName[],
  nextAttemptAt: Date | null = null,
): Promise<{ message: MessageRecord; deliveries: DeliveryRecord[] }> {
  const message = messageOf(workspaceId);
  const deliveries = statuses.map((s) => deliveryOf(message, endpointId, s, nextAttemptAt));
  const { outcome } = await store.messages.acceptMessage(message, deliveries, []);
  assert.equal(outcome.created, true);
  return { message, deliveries };
}

async function drainOutbox(store: OpenedStore): Promise<void> {
  const rows = await store.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 100_000);
  await store.outbox.deleteOutbox(rows.map((r) => r.seq));
}

void it("openStore on a PostgreSQL port where nothing listens fails with DomainError unavailable", async () => {
  await assert.rejects(
    openStore({ kind: "postgresql", url: "postgres://postgres@127.0.0.1:9/hookstream" }, { logger }),
    (e: unknown) =>
      e instanceof DomainError &&
      e.kind === "unavailable" &&
      e.reason === "DATABASE_UNAVAILABLE" &&
      e.cause !== undefined,
  );
});

// The conformance suite: every port's contract, run against the MikroORM reference on each database
// and, on PostgreSQL, against the dialect overrides too, so two implementations of a port cannot drift.
const variants = testDbKinds().flatMap((kind): { kind: TestDbKind; overrides: boolean; label: string }[] =>
  kind === "postgresql"
    ? [
        { kind, overrides: true, label: "postgresql (with overrides)" },
        { kind, overrides: false, label: "postgresql (MikroORM reference)" },
      ]
    : [{ kind, overrides: false, label: kind }],
);

for (const { kind, overrides, label } of variants) {
  void describe(`store on ${label}`, () => {
    let db: TestDatabase;
    let store: OpenedStore;

    before(async () => {
      db = await createTestDatabase(kind);
    });

    after(async () => {
      await store?.close();
      await db?.drop();
    });

    void it("refuses to open an unmigrated database, migrates it, and a second migrate is a no-op", async () => {
      await assert.rejects(
        openStore(db.config, { logger }),
        (e: unknown) =>
          e instanceof DomainError && e.reason === "DATABASE_NOT_MIGRATED" && e.message.includes("hookstream migrate"),
      );
      const applied = await migrateDatabase(db.config, { logger });
      assert.equal(applied.length, migrationsFor(db.config).length);
      assert.deepEqual(await migrateDatabase(db.config, { logger }), []);
      store = await openStore(db.config, { logger, overrides });
      await store.ping();
    });

    void it("workspaces and API keys: lookups by hash, newest-first pages, revocation, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      assert.deepEqual(await store.workspaces.findWorkspaceByTokenHash(`hash-${ws}`), {
        id: ws,
        name: `ws ${ws}`,
        createdAt: T0,
        payloadRetentionMs: 0,
      });
      assert.equal(await store.workspaces.findWorkspaceByTokenHash("nope"), null);

      const keys: ApiKeyRecord[] = [];
      for (let i = 0; i < 5; i++) {
        const key: ApiKeyRecord = {
          id: newId("apiKey"),
          workspaceId: ws,
          label: `k${i}`,
          secretPrefix: `sk_${i}`,
          createdAt: at(i),
          revokedAt: null,
          scope: i % 2 === 0 ? "producer" : "management",
          mode: i < 3 ? "live" : "test",
          lastUsedAt: null,
          environmentId: i % 2 === 0 ? defaultEnvironmentId(ws) : null,
        };
        await store.apiKeys.createApiKey(key, `secret-${key.id}`);
        keys.push(key);
      }
      await store.apiKeys.createApiKey(
        {
          id: newId("apiKey"),
          workspaceId: other,
          label: "x",
          secretPrefix: "sk_x",
          createdAt: T0,
          revokedAt: null,
          scope: "producer",
          mode: "live",
          lastUsedAt: null,
          environmentId: defaultEnvironmentId(other),
        },
        "secret-other",
      );
      assert.deepEqual(await store.apiKeys.findApiKeyByHash(`secret-${keys[2]!.id}`), keys[2]);
      assert.equal(await store.apiKeys.findApiKeyByHash("missing"), null);

      const page1 = await store.apiKeys.listApiKeys(ws, { afterId: undefined, limit: 2 });
      assert.deepEqual(
        page1.map((k) => k.label),
        ["k4", "k3"],
      );
      const page2 = await store.apiKeys.listApiKeys(ws, { afterId: page1[1]!.id, limit: 2 });
      assert.deepEqual(
        page2.map((k) => k.label),
        ["k2", "k1"],
      );
      const page3 = await store.apiKeys.listApiKeys(ws, { afterId: page2[1]!.id, limit: 2 });
      assert.deepEqual(
        page3.map((k) => k.label),
        ["k0"],
      );

      assert.equal(await store.apiKeys.revokeApiKey(other, keys[0]!.id, at(100)), null);
      const revoked = await store.apiKeys.revokeApiKey(ws, keys[0]!.id, at(100));
      assert.deepEqual(revoked?.revokedAt, at(100));
      const again = await store.apiKeys.revokeApiKey(ws, keys[0]!.id, at(200));
      assert.deepEqual(again?.revokedAt, at(100), "a second revoke keeps the first time");
      assert.deepEqual((await store.apiKeys.findApiKeyByHash(`secret-${keys[0]!.id}`))?.revokedAt, at(100));
    });

    void it("touchApiKeys moves last-used times forward only, in one call for many keys", async () => {
      const ws = await workspace(store);
      const ids = [newId("apiKey"), newId("apiKey")];
      for (const id of ids) {
        await store.apiKeys.createApiKey(
          {
            id,
            workspaceId: ws,
            label: "",
            secretPrefix: "hsk_live_abcdef",
            createdAt: T0,
            revokedAt: null,
            scope: "producer",
            mode: "live",
            lastUsedAt: null,
            environmentId: defaultEnvironmentId(ws),
          },
          `touch-${id}`,
        );
      }
      await store.apiKeys.touchApiKeys([
        { id: ids[0]!, at: at(500) },
        { id: ids[1]!, at: at(300) },
      ]);
      // An older use (another API server's late flush) never moves the time back.
      await store.apiKeys.touchApiKeys([
        { id: ids[0]!, at: at(400) },
        { id: ids[1]!, at: at(600) },
      ]);
      await store.apiKeys.touchApiKeys([]);
      const listed = await store.apiKeys.listApiKeys(ws, { afterId: undefined, limit: 10 });
      assert.deepEqual(
        listed.map((k) => [k.id, k.lastUsedAt]),
        [
          [ids[1], at(600)],
          [ids[0], at(500)],
        ],
      );
      assert.deepEqual((await store.apiKeys.findApiKeyByHash(`touch-${ids[0]}`))?.lastUsedAt, at(500));
    });

    void it("endpoints: round-trip, pages, patch, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const eps = [];
      for (let i = 0; i < 3; i++) {
        const ep = endpointOf(ws, {
          description: `e${i}`,
          previousSecret: i === 0 ? "whsec_OLD" : null,
          previousSecretExpiresAt: i === 0 ? at(999) : null,
        });
        await store.endpoints.createEndpoint(ep);
        eps.push(ep);
      }
      assert.deepEqual(await store.endpoints.getEndpoint(ws, eps[0]!.id), eps[0]);
      assert.equal(await store.endpoints.getEndpoint(other, eps[0]!.id), null);
      assert.deepEqual(await store.endpoints.listEndpoints(other, { afterId: undefined, limit: 10 }), []);
      const page = await store.endpoints.listEndpoints(ws, { afterId: eps[2]!.id, limit: 10 });
      assert.deepEqual(
        page.map((e) => e.description),
        ["e1", "e0"],
      );

      assert.equal(await store.endpoints.updateEndpoint(other, eps[1]!.id, { url: "https://evil" }, at(5)), null);
      const updated = await store.endpoints.updateEndpoint(
        ws,
        eps[1]!.id,
        { url: "https://new.example", enabled: false, metadata: {} },
        at(5),
      );
      const expected = { ...eps[1]!, url: "https://new.example", enabled: false, metadata: {}, updatedAt: at(5) };
      assert.deepEqual(updated, expected);
      assert.deepEqual(await store.endpoints.getEndpoint(ws, eps[1]!.id), expected);

      // The retry policy (JSON) round-trips, is replaced by a patch and cleared by null.
      const policy = {
        minRetries: 2,
        firstDelayMs: 1_000,
        strategy: "fixed" as const,
        factor: 2,
        maxDelayMs: 86_400_000,
      };
      const withPolicy = endpointOf(ws, { retryPolicy: { ...policy, jitter: 0 } });
      await store.endpoints.createEndpoint(withPolicy);
      assert.deepEqual(await store.endpoints.getEndpoint(ws, withPolicy.id), withPolicy);
      const replaced = await store.endpoints.updateEndpoint(ws, withPolicy.id, { retryPolicy: policy }, at(6));
      assert.deepEqual(replaced?.retryPolicy, policy);
      assert.deepEqual((await store.endpoints.getEndpoint(ws, withPolicy.id))?.retryPolicy, policy);
      const cleared = await store.endpoints.updateEndpoint(ws, withPolicy.id, { retryPolicy: null }, at(7));
      assert.equal(cleared?.retryPolicy, null);
      assert.equal((await store.endpoints.getEndpoint(ws, withPolicy.id))?.retryPolicy, null);
    });

    void it("endpoint secrets: listed across workspaces (deleted too), compare-and-set, resealed under the current key", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const plain = endpointOf(ws, {
        secret: "whsec_plain1",
        previousSecret: "whsec_plain0",
        previousSecretExpiresAt: at(9),
      });
      const foreign = endpointOf(other, { secret: "whsec_plain2" });
      const gone = endpointOf(ws, { secret: "whsec_plain3" });
      for (const ep of [plain, foreign, gone]) await store.endpoints.createEndpoint(ep);
      await store.endpoints.deleteEndpoint(ws, gone.id, at(3), () => []);

      const all: StoredEndpointSecrets[] = [];
      for (let after: string | null = null; ;) {
        const page = await store.endpointSecrets.listEndpointSecrets(after, 2);
        if (page.length === 0) break;
        assert.ok(page.length <= 2);
        all.push(...page);
        after = page[page.length - 1]!.id;
      }
      assert.deepEqual(
        all.map((r) => r.id),
        [...all.map((r) => r.id)].sort(),
      );
      const mine = new Map(all.map((r) => [r.id, r]));
      assert.deepEqual(mine.get(plain.id), {
        id: plain.id,
        secret: "whsec_plain1",
        previousSecret: "whsec_plain0",
        clientKey: null,
      });
      assert.deepEqual(mine.get(foreign.id), {
        id: foreign.id,
        secret: "whsec_plain2",
        previousSecret: null,
        clientKey: null,
      });
      assert.equal(mine.get(gone.id)?.secret, "whsec_plain3", "a deleted endpoint's secret is resealed too");

      // Compare and set: a stale expectation writes nothing.
      const stale = { id: foreign.id, secret: "whsec_changed", previousSecret: null, clientKey: null };
      assert.equal(await store.endpointSecrets.replaceEndpointSecrets(stale, { ...stale, secret: "x" }), false);
      assert.equal((await store.endpoints.getEndpoint(other, foreign.id))?.secret, "whsec_plain2");

      const k1 = { id: "k1", key: randomBytes(32) };
      const k2 = { id: "k2", key: randomBytes(32) };
      const first = await resealEndpointSecrets(store.endpointSecrets, createSecretBox([k1]), "plaintext", 2);
      assert.ok(first.resealed >= 3 && first.visited >= first.resealed);
      const sealed = (await store.endpoints.getEndpoint(ws, plain.id))!;
      assert.match(sealed.secret, /^hsenc:v1:k1:/);
      assert.match(sealed.previousSecret ?? "", /^hsenc:v1:k1:/);
      assert.equal(createSecretBox([k1]).open(sealed.secret, endpointSecretContext(plain.id)), "whsec_plain1");
      assert.equal(createSecretBox([k1]).open(sealed.previousSecret!, endpointSecretContext(plain.id)), "whsec_plain0");
      assert.equal(
        (await resealEndpointSecrets(store.endpointSecrets, createSecretBox([k1]), "plaintext")).resealed,
        0,
      );

      // Key rotation: k2 first; "all" re-encrypts everything sealed with k1, after which k1 can go.
      const rotated = createSecretBox([k2, k1]);
      assert.ok((await resealEndpointSecrets(store.endpointSecrets, rotated, "all", 2)).resealed >= 3);
      const onlyK2 = createSecretBox([k2]);
      const after2 = (await store.endpoints.getEndpoint(other, foreign.id))!;
      assert.match(after2.secret, /^hsenc:v1:k2:/);
      assert.equal(onlyK2.open(after2.secret, endpointSecretContext(foreign.id)), "whsec_plain2");
      assert.equal((await resealEndpointSecrets(store.endpointSecrets, rotated, "all")).resealed, 0);
    });

    void it("acceptMessage writes message, deliveries and outbox; bytes and timestamps round-trip; isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      const ep2 = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(ep2);
      const message = messageOf(ws);
      const deliveries = [deliveryOf(message, ep.id), deliveryOf(message, ep2.id, "scheduled", at(5_000))];
      const res = await store.messages.acceptMessage(
        message,
        deliveries,
        deliveries.map((d) => jobOf(d)),
      );
      assert.deepEqual(res.outcome, { created: true });
      assert.equal(res.outbox.length, 2);
      assert.ok(res.outbox[0]!.seq < res.outbox[1]!.seq, "seqs increase in insertion order");
      assert.deepEqual(
        res.outbox.map(({ seq: _seq, ...rest }) => rest),
        deliveries.map((d) => jobOf(d)),
      );

      const got = await store.messages.getMessage(ws, message.id);
      assert.deepEqual(got, message);
      assert.ok(got?.payload instanceof Uint8Array);
      assert.equal(await store.messages.getMessage(other, message.id), null);
      assert.deepEqual(await store.messages.listDeliveriesOfMessage(ws, message.id), deliveries);
      assert.deepEqual(await store.messages.listDeliveriesOfMessage(other, message.id), []);
      assert.deepEqual(await store.deliveries.getDelivery(ws, deliveries[1]!.id), deliveries[1]);
      assert.equal(await store.deliveries.getDelivery(other, deliveries[1]!.id), null);
      assert.deepEqual(await store.messages.findMessageByIdempotencyKey(ws, message.idempotencyKey), {
        message,
        deliveries,
      });
      assert.equal(await store.messages.findMessageByIdempotencyKey(other, message.idempotencyKey), null);
    });

    void it("acceptMessage with a used idempotency key writes nothing and returns the original", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const first = messageOf(ws, "key-1");
      const firstDeliveries = [deliveryOf(first, ep.id)];
      await store.messages.acceptMessage(
        first,
        firstDeliveries,
        firstDeliveries.map((d) => jobOf(d)),
      );

      const second = messageOf(ws, "key-1");
      const secondDeliveries = [deliveryOf(second, ep.id)];
      const res = await store.messages.acceptMessage(
        second,
        secondDeliveries,
        secondDeliveries.map((d) => jobOf(d)),
      );
      assert.deepEqual(res, { outcome: { created: false, existing: first, deliveries: firstDeliveries }, outbox: [] });
      assert.equal(await store.messages.getMessage(ws, second.id), null);
      assert.equal(await store.deliveries.getDelivery(ws, secondDeliveries[0]!.id), null);
      assert.equal((await store.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 100)).length, 1);

      // The same key in another workspace is a different message.
      const ws2 = await workspace(store);
      const ep2 = endpointOf(ws2);
      await store.endpoints.createEndpoint(ep2);
      const elsewhere = messageOf(ws2, "key-1");
      assert.equal(
        (await store.messages.acceptMessage(elsewhere, [deliveryOf(elsewhere, ep2.id)], [])).outcome.created,
        true,
      );
    });

    void it("20 concurrent acceptMessage calls with one key: exactly one is created", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const results = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const m = messageOf(ws, "race");
          const d = [deliveryOf(m, ep.id)];
          return {
            m,
            res: await store.messages.acceptMessage(
              m,
              d,
              d.map((x) => jobOf(x)),
            ),
          };
        }),
      );
      const winners = results.filter((r) => r.res.outcome.created);
      assert.equal(winners.length, 1);
      const winnerId = winners[0]!.m.id;
      for (const r of results) {
        if (!r.res.outcome.created) {
          assert.equal(r.res.outcome.existing.id, winnerId);
          assert.equal(r.res.outcome.deliveries.length, 1);
          assert.deepEqual(r.res.outbox, []);
        }
      }
    });

    // On PostgreSQL a burst like this goes out as group statements (createGroupCommitter); on SQLite
    // it exercises the ordinary path. Either way every caller must see the single-call contract.
    void it("50 concurrent acceptMessage calls with repeated keys: one created per key, each caller its own outbox rows", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      const ep2 = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(ep2);
      await drainOutbox(store);
      // k0 is taken before the burst; k0..k14 come twice within it, k15..k34 once.
      const earlier = messageOf(ws, "k0");
      const earlierDeliveries = [deliveryOf(earlier, ep.id)];
      await store.messages.acceptMessage(earlier, earlierDeliveries, []);
      const calls = Array.from({ length: 50 }, (_, i) => {
        const m = messageOf(ws, `k${i % 35}`);
        const d = [deliveryOf(m, ep.id), deliveryOf(m, ep2.id)];
        return { m, d, o: [...d.map((x) => jobOf(x)), { ...statusOf(d[0]!), msgId: `${m.id}:accepted` }] };
      });
      const results = await Promise.all(calls.map((c) => store.messages.acceptMessage(c.m, c.d, c.o)));

      const winners = new Map<string, (typeof calls)[number]>();
      results.forEach((r, i) => {
        const c = calls[i]!;
        if (!r.outcome.created) return;
        assert.equal(winners.has(c.m.idempotencyKey), false, `one winner for ${c.m.idempotencyKey}`);
        winners.set(c.m.idempotencyKey, c);
        assert.deepEqual(
          r.outbox.map(({ seq: _seq, ...rest }) => rest),
          c.o,
          "the caller's own rows, in its order",
        );
        for (let j = 1; j < r.outbox.length; j++) assert.ok(r.outbox[j - 1]!.seq < r.outbox[j]!.seq, "seqs increase");
      });
      assert.equal(winners.size, 34, "k1..k34 created once each, k0 not at all");
      assert.equal(winners.has("k0"), false);
      for (const [i, r] of results.entries()) {
        const c = calls[i]!;
        if (r.outcome.created) {
          assert.deepEqual(await store.messages.listDeliveriesOfMessage(ws, c.m.id), c.d);
          continue;
        }
        const winner =
          c.m.idempotencyKey === "k0" ? { m: earlier, d: earlierDeliveries } : winners.get(c.m.idempotencyKey)!;
        assert.deepEqual(r, { outcome: { created: false, existing: winner.m, deliveries: winner.d }, outbox: [] });
        assert.equal(await store.messages.getMessage(ws, c.m.id), null);
        assert.equal(await store.deliveries.getDelivery(ws, c.d[0]!.id), null);
      }
      // Exactly the winners' rows are stored, under the seqs their callers were given.
      const given = results.flatMap((r) => r.outbox).sort((a, b) => a.seq - b.seq);
      assert.equal(given.length, 34 * 3);
      assert.deepEqual(await store.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 1_000), given);
    });

    void it("a poisoned acceptMessage in a burst fails alone; the others are written", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const calls = Array.from({ length: 20 }, () => {
        const m = messageOf(ws);
        const d = [deliveryOf(m, ep.id)];
        return { m, d, o: d.map((x) => jobOf(x)) };
      });
      // A workspace that does not exist: a foreign key violation.
      const orphan = messageOf(newId("workspace"));
      const orphanDeliveries = [deliveryOf(orphan, ep.id)];
      calls[7] = { m: orphan, d: orphanDeliveries, o: orphanDeliveries.map((x) => jobOf(x)) };
      if (kind === "postgresql") {
        // An outbox stream key longer than its column (SQLite does not enforce varchar lengths).
        const c = calls[13]!;
        calls[13] = { ...c, o: [{ ...c.o[0]!, stream: "x".repeat(40) }] };
      }
      const poisoned = new Set(kind === "postgresql" ? [7, 13] : [7]);
      const settled = await Promise.allSettled(calls.map((c) => store.messages.acceptMessage(c.m, c.d, c.o)));
      for (const [i, s] of settled.entries()) {
        const c = calls[i]!;
        if (poisoned.has(i)) {
          assert.equal(s.status, "rejected", `call ${i} fails`);
          assert.equal(await store.messages.getMessage(c.m.workspaceId, c.m.id), null);
          continue;
        }
        assert.equal(s.status, "fulfilled", `call ${i} succeeds`);
        if (s.status === "fulfilled") assert.equal(s.value.outcome.created, true);
        assert.deepEqual(await store.messages.getMessage(ws, c.m.id), c.m);
      }
      assert.equal(
        (await store.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 1_000)).length,
        calls.length - poisoned.size,
      );
    });

    void it("listDeliveries: newest first, keyset pages, filters, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const a = endpointOf(ws);
      const b = endpointOf(ws);
      await store.endpoints.createEndpoint(a);
      await store.endpoints.createEndpoint(b);
      const s1 = await seed(store, ws, a.id, ["queued", "succeeded"]);
      const s2 = await seed(store, ws, b.id, ["failed"]);
      const all = [...s1.deliveries, ...s2.deliveries].reverse();
      assert.deepEqual(await store.deliveries.listDeliveries(ws, {}, { afterId: undefined, limit: 10 }), all);
      const p1 = await store.deliveries.listDeliveries(ws, {}, { afterId: undefined, limit: 2 });
      const p2 = await store.deliveries.listDeliveries(ws, {}, { afterId: p1[1]!.id, limit: 2 });
      assert.deepEqual([...p1, ...p2], all);
      assert.deepEqual(
        await store.deliveries.listDeliveries(ws, { endpointId: b.id }, { afterId: undefined, limit: 10 }),
        s2.deliveries,
      );
      assert.deepEqual(
        (
          await store.deliveries.listDeliveries(ws, { messageId: s1.message.id }, { afterId: undefined, limit: 10 })
        ).map((d) => d.id),
        s1.deliveries.map((d) => d.id).reverse(),
      );
      assert.deepEqual(
        (
          await store.deliveries.listDeliveries(
            ws,
            { statuses: ["succeeded", "failed"] },
            { afterId: undefined, limit: 10 },
          )
        ).map((d) => d.status),
        ["failed", "succeeded"],
      );
      assert.deepEqual(await store.deliveries.listDeliveries(other, {}, { afterId: undefined, limit: 10 }), []);
      assert.deepEqual(
        await store.deliveries.listDeliveries(other, { endpointId: a.id }, { afterId: undefined, limit: 10 }),
        [],
      );
      // Event type and creation time range (every seeded delivery: "order.paid", created at at(1)).
      const ids = async (filter: Parameters<typeof store.deliveries.listDeliveries>[1]): Promise<string[]> =>
        (await store.deliveries.listDeliveries(ws, filter, { afterId: undefined, limit: 10 })).map((d) => d.id);
      const allIds = all.map((d) => d.id);
      assert.deepEqual(await ids({ eventType: "order.paid" }), allIds);
      assert.deepEqual(await ids({ eventType: "order.refunded" }), []);
      assert.deepEqual(await ids({ createdAfter: at(1) }), allIds, "at or after");
      assert.deepEqual(await ids({ createdAfter: at(2) }), []);
      assert.deepEqual(await ids({ createdBefore: at(1) }), [], "strictly before");
      assert.deepEqual(await ids({ createdAfter: at(0), createdBefore: at(2), statuses: ["failed"] }), [
        s2.deliveries[0]!.id,
      ]);
    });

    void it("outbox: pendingOutbox in seq order up to createdBefore, deleteOutbox removes rows", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const message = messageOf(ws);
      const d = deliveryOf(message, ep.id);
      const rows = [jobOf(d, at(0)), statusOf({ ...d, updatedAt: at(10) }), jobOf({ ...d, attemptCount: 1 }, at(20))];
      const { outbox } = await store.messages.acceptMessage(message, [d], rows);
      assert.deepEqual(await store.outbox.pendingOutbox(at(10), 100), outbox.slice(0, 2));
      assert.deepEqual(await store.outbox.pendingOutbox(at(20), 1), outbox.slice(0, 1));
      await store.outbox.deleteOutbox([outbox[0]!.seq]);
      assert.deepEqual(await store.outbox.pendingOutbox(at(20), 100), outbox.slice(1));
      await store.outbox.deleteOutbox([]);
      await store.outbox.deleteOutbox(outbox.map((o) => o.seq));
      assert.deepEqual(await store.outbox.pendingOutbox(at(20), 100), []);
    });

    void it("releaseDue moves only due pending_retry/scheduled rows to queued and writes their outbox rows", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const due = await seed(store, ws, ep.id, ["pending_retry", "scheduled"], at(1_000));
      const later = await seed(store, ws, ep.id, ["pending_retry", "scheduled"], at(9_000));
      const other = await seed(store, ws, ep.id, ["queued", "awaiting_ack", "succeeded"], at(1_000));
      const now = at(1_000);
      const res = await store.deliveries.releaseDue(now, 100, (d) => [jobOf(d)]);
      assert.deepEqual(res.released.map((d) => d.id).sort(), due.deliveries.map((d) => d.id).sort());
      for (const d of res.released) {
        assert.equal(d.status, "queued");
        assert.deepEqual(d.updatedAt, now);
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), d);
      }
      assert.equal(res.outbox.length, 2);
      assert.deepEqual(await store.outbox.pendingOutbox(now, 100), res.outbox);
      for (const d of [...later.deliveries, ...other.deliveries]) {
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), d);
      }
      assert.deepEqual(await store.deliveries.releaseDue(now, 100, (d) => [jobOf(d)]), { released: [], outbox: [] });
      const rest = await store.deliveries.releaseDue(at(9_000), 1, () => []);
      assert.equal(rest.released.length, 1, "limit is honoured");
      await store.deliveries.releaseDue(at(9_000), 10, () => []);
    });

    void it("publish checks: a queued delivery's check is due at its time, until confirmed or moved on", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const message = messageOf(ws);
      const checked = [1, 2, 3].map((n) => ({ ...deliveryOf(message, ep.id), publishCheckAt: at(n * 1_000) }));
      const plain = deliveryOf(message, ep.id);
      await store.messages.acceptMessage(message, [...checked, plain], []);
      const ours = (ds: readonly DeliveryRecord[]): string[] =>
        ds.map((d) => d.id).filter((id) => [...checked, plain].some((c) => c.id === id));
      assert.deepEqual(ours(await store.deliveries.duePublishChecks(at(0), 100)), []);
      const due = await store.deliveries.duePublishChecks(at(2_000), 100);
      assert.deepEqual(ours(due), [checked[0]!.id, checked[1]!.id], "earliest check first; a later one waits");
      const { publishCheckAt: _, ...first } = checked[0]!;
      assert.deepEqual(
        due.find((d) => d.id === first.id),
        first,
        "read back as the record it was written from",
      );
      await store.deliveries.confirmPublished([checked[0]!.id]);
      assert.deepEqual(ours(await store.deliveries.duePublishChecks(at(5_000), 100)), [checked[1]!.id, checked[2]!.id]);
      // The worker moves a delivery on: it leaves the checks (the partial index) without any clearing.
      const moved = await store.deliveries.recordAttempt({
        attempt: attemptOf(checked[1]!, 1),
        delivery: {
          status: "succeeded",
          nextAttemptAt: null,
          lastResponseStatus: 200,
          lastError: "",
          updatedAt: at(100),
        },
        outbox: () => [],
      });
      assert.equal(moved.applied, true);
      assert.deepEqual(ours(await store.deliveries.duePublishChecks(at(5_000), 100)), [checked[2]!.id]);
      assert.equal((await store.deliveries.duePublishChecks(at(5_000), 1)).length, 1, "limit is honoured");
      // Attempted, then queued again by the retry release (whose job goes through the outbox): its
      // stale check must not publish a second job.
      const retried = await store.deliveries.recordAttempt({
        attempt: attemptOf(checked[2]!, 1),
        delivery: {
          status: "pending_retry",
          nextAttemptAt: at(150),
          lastResponseStatus: 500,
          lastError: "HTTP 500",
          updatedAt: at(100),
        },
        outbox: () => [],
      });
      assert.equal(retried.applied, true);
      const released = await store.deliveries.releaseDue(at(200), 100, () => []);
      assert.ok(
        released.released.some((d) => d.id === checked[2]!.id),
        "queued again",
      );
      assert.deepEqual(ours(await store.deliveries.duePublishChecks(at(5_000), 100)), [], "a re-queued delivery");
    });

    if (kind === "postgresql") {
      void it("two concurrent releaseDue callers get disjoint rows", async () => {
        const ws = await workspace(store);
        const ep = endpointOf(ws);
        await store.endpoints.createEndpoint(ep);
        const seeded = await seed(store, ws, ep.id, Array<DeliveryStatusName>(40).fill("pending_retry"), at(0));
        const now = at(1);
        const [a, b] = await Promise.all([
          store.deliveries.releaseDue(now, 25, () => []),
          store.deliveries.releaseDue(now, 25, () => []),
        ]);
        const ids = [...a.released, ...b.released].map((d) => d.id);
        assert.equal(new Set(ids).size, ids.length, "no row released twice");
        assert.ok(a.released.length > 0 && b.released.length > 0, "both callers claimed rows");
        const third = await store.deliveries.releaseDue(now, 100, () => []);
        assert.equal(ids.length + third.released.length, seeded.deliveries.length);
      });
    }

    void it("a message's deliver_at, headers, metadata and retry override round-trip through accept, reads and the worker's context", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const message: MessageRecord = {
        ...messageOf(ws),
        deliverAt: at(90_000),
        headers: { "X-Trace": "abc", "x-ünï": "✓" },
        metadata: { region: "eu", tier: "gold" },
        retry: {
          minRetries: 3,
          firstDelayMs: 2_000,
          strategy: "exponential",
          factor: 1.5,
          maxDelayMs: 60_000,
          jitter: 0,
        },
      };
      const d = deliveryOf(message, ep.id, "scheduled", at(90_000));
      await store.messages.acceptMessage(message, [d], []);
      assert.deepEqual(await store.messages.getMessage(ws, message.id), message);
      const ctx = await store.deliveries.loadAttemptContext(d.id);
      assert.deepEqual(ctx?.message, message);
      const plain = messageOf(ws);
      const pd = deliveryOf(plain, ep.id);
      await store.messages.acceptMessage(plain, [pd], []);
      assert.deepEqual((await store.deliveries.loadAttemptContext(pd.id))?.message, plain, "none given: nulls");
    });

    void it("idempotency keys are held until they expire, then taken over; generated keys hold nothing", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const key = `k-${newId("message")}`;
      const accept = (createdAt: Date, keyExpiresAt: Date | null, k = key) => {
        const message = { ...messageOf(ws, k), createdAt };
        return store.messages
          .acceptMessage(message, [deliveryOf(message, ep.id)], [], keyExpiresAt)
          .then((r) => ({ message, outcome: r.outcome }));
      };
      const first = await accept(at(0), at(100));
      assert.equal(first.outcome.created, true);
      assert.equal((await store.messages.findMessageByIdempotencyKey(ws, key, at(99)))?.message.id, first.message.id);
      assert.equal(await store.messages.findMessageByIdempotencyKey(ws, key, at(100)), null, "expired at expiresAt");
      const live = await accept(at(50), at(500));
      assert.equal(live.outcome.created, false, "a live key is not taken");
      assert.equal(live.outcome.created ? "" : live.outcome.existing.id, first.message.id);
      const second = await accept(at(100), at(1_000));
      assert.equal(second.outcome.created, true, "an expired key is taken over");
      assert.equal((await store.messages.findMessageByIdempotencyKey(ws, key, at(150)))?.message.id, second.message.id);
      assert.deepEqual(await store.messages.getMessage(ws, first.message.id), first.message, "the old message stays");
      const [a, b] = await Promise.all([accept(at(1_000), at(2_000)), accept(at(1_000), at(2_000))]);
      assert.equal([a, b].filter((r) => r.outcome.created).length, 1, "racing takeovers: one wins");
      const auto = `auto_${newId("message")}`;
      assert.equal((await accept(at(0), null, auto)).outcome.created, true);
      assert.equal((await accept(at(0), null, auto)).outcome.created, true, "no key row: nothing to collide with");
      assert.equal(await store.messages.findMessageByIdempotencyKey(ws, auto, at(0)), null);
      await drainOutbox(store);
    });

    void it("listMessages: newest first, keyset pages, event type, time range and delivery status filters, isolation", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const make = async (eventType: string, createdAt: Date, status: DeliveryStatusName) => {
        const message = { ...messageOf(ws), eventType, createdAt };
        await store.messages.acceptMessage(message, [deliveryOf(message, ep.id, status)], []);
        return message;
      };
      const m1 = await make("a.one", at(1_000), "succeeded");
      const m2 = await make("a.two", at(2_000), "failed");
      const m3 = await make("a.one", at(3_000), "queued");
      const m4 = await make("a.one", at(4_000), "failed");
      const ids = (rows: MessageRecord[]) => rows.map((m) => m.id);
      const page = (afterId?: string, limit = 10) => ({ afterId, limit });
      assert.deepEqual(ids(await store.messages.listMessages(ws, {}, page())), ids([m4, m3, m2, m1]));
      assert.deepEqual(await store.messages.listMessages(ws, {}, page(undefined, 1)), [m4]);
      assert.deepEqual(ids(await store.messages.listMessages(ws, {}, page(m3.id))), ids([m2, m1]));
      assert.deepEqual(ids(await store.messages.listMessages(ws, { eventType: "a.one" }, page())), ids([m4, m3, m1]));
      assert.deepEqual(
        ids(await store.messages.listMessages(ws, { createdAfter: at(2_000), createdBefore: at(4_000) }, page())),
        ids([m3, m2]),
        "after is inclusive, before exclusive",
      );
      assert.deepEqual(ids(await store.messages.listMessages(ws, { statuses: ["failed"] }, page())), ids([m4, m2]));
      assert.deepEqual(
        ids(await store.messages.listMessages(ws, { eventType: "a.one", statuses: ["failed", "queued"] }, page(m4.id))),
        ids([m3]),
      );
      assert.deepEqual(await store.messages.listMessages(other, {}, page()), []);
    });

    void it("quota: shared counters per workspace and window; meters of two API servers add up, over the limit is resource_exhausted", async () => {
      const ws = await workspace(store);
      const window = new Date("2030-01-02T00:00:00.000Z");
      assert.equal(await store.quota.getQuotaUsage(ws, window), 0);
      assert.deepEqual(
        await Promise.all([1, 2, 3].map((n) => store.quota.addQuotaUsage(ws, window, n))).then((r) => Math.max(...r)),
        6,
      );
      assert.equal(await store.quota.getQuotaUsage(ws, window), 6);
      assert.equal(await store.quota.getQuotaUsage(ws, new Date("2030-01-03T00:00:00.000Z")), 0, "another window");

      const opts = { limit: 5, windowMs: 86_400_000, flushIntervalMs: 60_000 };
      const a = createQuotaMeter(store.quota, opts);
      const b = createQuotaMeter(store.quota, opts);
      const now = at(0); // 2030-01-02T03:04:05.678Z: window 2030-01-02, where 6 are already used
      const other = await workspace(store);
      await a.check(other, 3, now);
      assert.deepEqual(a.record(other, 3, now), {
        limit: 5,
        used: 3,
        remaining: 2,
        resetAt: new Date("2030-01-03T00:00:00.000Z"),
      });
      await a.flush();
      await b.check(other, 2, now);
      assert.equal(b.record(other, 2, now).used, 5, "b learned a's flushed count");
      await b.flush();
      await a.flush();
      await assert.rejects(a.check(other, 1, at(1)), (err: unknown) => {
        assert.ok(err instanceof DomainError);
        assert.equal(err.kind, "resource_exhausted");
        assert.equal(err.reason, "QUOTA_EXCEEDED");
        assert.ok(err.retryDelayMs! > 0 && err.retryDelayMs! <= 86_400_000);
        return true;
      });
      assert.equal(await store.quota.getQuotaUsage(other, new Date("2030-01-02T00:00:00.000Z")), 5);
      const unlimited = createQuotaMeter(store.quota, { ...opts, limit: 0, limits: new Map([[ws, 7]]) });
      await assert.rejects(unlimited.check(ws, 2, now), /quota of 7/);
      await unlimited.check(other, 100, now);
    });

    void it("acceptMessages writes a batch in one go; a message whose key is live is answered with the holder", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const held = messageOf(ws, `held-${newId("message")}`);
      await store.messages.acceptMessage(held, [deliveryOf(held, ep.id)], [], at(1_000_000));
      const items = [messageOf(ws), { ...messageOf(ws, held.idempotencyKey) }, messageOf(ws)].map((message) => {
        const d = deliveryOf(message, ep.id);
        return { message, deliveries: [d], outbox: [jobOf(d), statusOf(d)], keyExpiresAt: at(1_000_000) };
      });
      const out = await store.messages.acceptMessages(items);
      assert.deepEqual(
        out.map((o) => o.outcome.created),
        [true, false, true],
      );
      assert.equal(out[1]!.outcome.created ? "" : out[1]!.outcome.existing.id, held.id);
      assert.deepEqual(
        out.map((o) => o.outbox.map((r) => r.msgId)),
        [items[0]!.outbox.map((r) => r.msgId), [], items[2]!.outbox.map((r) => r.msgId)],
      );
      for (const i of [0, 2])
        assert.deepEqual(await store.messages.getMessage(ws, items[i]!.message.id), items[i]!.message);
      assert.equal(await store.messages.getMessage(ws, items[1]!.message.id), null);
      await drainOutbox(store);
    });

    void it("changeSchedule cancels or moves only scheduled deliveries of the workspace's message, with outbox rows", async () => {
      const ws = await workspace(store);
      const foreign = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await drainOutbox(store);
      const later = at(60_000);
      const { message, deliveries } = await seed(store, ws, ep.id, ["scheduled", "scheduled"], later);
      const rows = (d: DeliveryRecord) => [statusOf(d)];

      assert.deepEqual(
        await store.messages.changeSchedule(foreign, message.id, { kind: "cancel", reason: "x" }, at(5), rows),
        {
          outcome: "not_found",
        },
      );
      assert.deepEqual(
        await store.messages.changeSchedule(ws, newId("message"), { kind: "cancel", reason: "x" }, at(5), rows),
        { outcome: "not_found" },
      );

      const moved = await store.messages.changeSchedule(
        ws,
        message.id,
        { kind: "reschedule", deliverAt: at(120_000) },
        at(5),
        rows,
      );
      assert.equal(moved.outcome, "changed");
      if (moved.outcome !== "changed") return;
      assert.deepEqual(moved.message.deliverAt, at(120_000));
      assert.deepEqual(await store.messages.getMessage(ws, message.id), moved.message);
      assert.equal(moved.outbox.length, 2);
      for (const d of moved.deliveries) {
        assert.equal(d.status, "scheduled");
        assert.deepEqual(d.nextAttemptAt, at(120_000));
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), d);
      }
      assert.deepEqual(
        (await store.deliveries.releaseDue(later, 10, () => [])).released,
        [],
        "not due at the old time",
      );

      const cancelled = await store.messages.changeSchedule(
        ws,
        message.id,
        { kind: "cancel", reason: "by producer" },
        at(6),
        rows,
      );
      assert.equal(cancelled.outcome, "changed");
      if (cancelled.outcome !== "changed") return;
      for (const d of cancelled.deliveries) {
        assert.equal(d.status, "cancelled");
        assert.equal(d.nextAttemptAt, null);
        assert.equal(d.lastError, "by producer");
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), d);
      }
      const again = await store.messages.changeSchedule(ws, message.id, { kind: "cancel", reason: "x" }, at(7), rows);
      assert.equal(again.outcome, "not_scheduled");
      assert.deepEqual(
        again.outcome === "not_scheduled" ? again.deliveries.map((d) => d.status) : [],
        deliveries.map(() => "cancelled"),
      );

      // Released deliveries are no longer scheduled: nothing changes.
      const sent = await seed(store, ws, ep.id, ["scheduled"], at(1_000));
      await store.deliveries.releaseDue(at(1_000), 10, () => []);
      const late = await store.messages.changeSchedule(
        ws,
        sent.message.id,
        { kind: "reschedule", deliverAt: later },
        at(8),
        rows,
      );
      assert.equal(late.outcome, "not_scheduled");
      assert.equal((await store.deliveries.getDelivery(ws, sent.deliveries[0]!.id))?.status, "queued");
      await drainOutbox(store);
    });

    void it("changeSchedule racing releaseDue: each scheduled delivery is either released or cancelled, never both", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const seeded = await Promise.all(Array.from({ length: 20 }, () => seed(store, ws, ep.id, ["scheduled"], at(0))));
      const [released, ...changes] = await Promise.all([
        store.deliveries.releaseDue(at(1), 100, () => []),
        ...seeded.map((s) =>
          store.messages.changeSchedule(ws, s.message.id, { kind: "cancel", reason: "race" }, at(1), () => []),
        ),
      ]);
      const releasedIds = new Set(released.released.map((d) => d.id));
      for (const [i, s] of seeded.entries()) {
        const id = s.deliveries[0]!.id;
        const change = changes[i]!;
        const row = await store.deliveries.getDelivery(ws, id);
        if (releasedIds.has(id)) {
          assert.equal(change.outcome, "not_scheduled");
          assert.equal(row?.status, "queued");
        } else {
          assert.equal(change.outcome, "changed");
          assert.equal(row?.status, "cancelled");
        }
      }
      await drainOutbox(store);
    });

    void it("recordAttempt applies once; a repeat or a stale number is not applied", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const { deliveries } = await seed(store, ws, ep.id, ["delivering"]);
      const d = deliveries[0]!;
      const attempt1 = attemptOf(d, 1);
      const outcome = {
        attempt: attempt1,
        delivery: {
          status: "pending_retry" as const,
          nextAttemptAt: at(60_000),
          lastResponseStatus: 500,
          lastError: "HTTP 500",
          updatedAt: at(11),
        },
        outbox: (rec: DeliveryRecord) => [statusOf(rec)],
      };
      const first = await store.deliveries.recordAttempt(outcome);
      const expected = { ...d, ...outcome.delivery, attemptCount: 1 };
      assert.equal(first.applied, true);
      assert.deepEqual(first.delivery, expected);
      assert.equal(first.outbox.length, 1);
      assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), expected);

      const repeat = await store.deliveries.recordAttempt({
        ...outcome,
        attempt: { ...attempt1, id: newId("attempt") },
      });
      assert.deepEqual(repeat, { applied: false, delivery: expected, outbox: [] });
      const stale = await store.deliveries.recordAttempt({ ...outcome, attempt: { ...attemptOf(d, 3) } });
      assert.deepEqual(stale, { applied: false, delivery: expected, outbox: [] });

      const attempt2 = {
        ...attemptOf(d, 2),
        errorKind: null,
        errorMessage: "",
        nextRetryAt: null,
        responseStatus: 200,
      };
      const second = await store.deliveries.recordAttempt({
        attempt: attempt2,
        delivery: {
          status: "succeeded",
          nextAttemptAt: null,
          lastResponseStatus: 200,
          lastError: "",
          updatedAt: at(12),
        },
        outbox: () => [],
      });
      assert.equal(second.applied, true);
      assert.equal(second.delivery.attemptCount, 2);
      assert.deepEqual(await store.deliveries.listAttempts(ws, d.id, { afterId: undefined, limit: 10 }), [
        attempt1,
        attempt2,
      ]);
      assert.deepEqual(await store.deliveries.listAttempts(ws, d.id, { afterId: attempt1.id, limit: 10 }), [attempt2]);
      assert.deepEqual(
        await store.deliveries.listAttempts(await workspace(store), d.id, { afterId: undefined, limit: 10 }),
        [],
      );
    });

    void it("recordAttempt with the caller's loaded delivery (expected): applies once, outbox in order, identity checked", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const [d, e] = (await seed(store, ws, ep.id, ["queued", "queued"])).deliveries as [
        DeliveryRecord,
        DeliveryRecord,
      ];
      const change = {
        status: "pending_retry" as const,
        nextAttemptAt: at(60_000),
        lastResponseStatus: 500,
        lastError: "HTTP 500",
        updatedAt: at(11),
      };
      const three = (rec: DeliveryRecord): NewOutboxRecord[] => [
        statusOf(rec),
        jobOf(rec, at(12)),
        { ...statusOf(rec), msgId: `${rec.id}:third` },
      ];
      const first = await store.deliveries.recordAttempt({
        attempt: attemptOf(d, 1),
        delivery: change,
        outbox: three,
        expected: d,
      });
      const expected = { ...d, ...change, attemptCount: 1 };
      assert.equal(first.applied, true);
      assert.deepEqual(first.delivery, expected);
      assert.deepEqual(
        first.outbox.map(({ seq: _seq, ...rest }) => rest),
        three(expected),
      );
      assert.ok(first.outbox[0]!.seq < first.outbox[1]!.seq && first.outbox[1]!.seq < first.outbox[2]!.seq);
      assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), expected);

      // The worker's stale copy again: not applied, the current row comes back, nothing written.
      const repeat = await store.deliveries.recordAttempt({
        attempt: attemptOf(d, 1),
        delivery: change,
        outbox: three,
        expected: d,
      });
      assert.deepEqual(repeat, { applied: false, delivery: expected, outbox: [] });
      assert.equal((await store.deliveries.listAttempts(ws, d.id, { afterId: undefined, limit: 10 })).length, 1);

      // An expected row that is not this delivery's is not trusted: the row is re-read.
      const wrong = { ...e, eventType: "something.else", messageId: d.messageId, createdAt: at(-5) };
      const fixed = await store.deliveries.recordAttempt({
        attempt: attemptOf(e, 1),
        delivery: change,
        outbox: (rec) => [statusOf(rec)],
        expected: wrong,
      });
      const expectedE = { ...e, ...change, attemptCount: 1 };
      assert.equal(fixed.applied, true);
      assert.deepEqual(fixed.delivery, expectedE);
      assert.deepEqual(
        fixed.outbox.map(({ seq: _seq, ...rest }) => rest),
        [statusOf(expectedE)],
      );
      assert.deepEqual(await store.deliveries.getDelivery(ws, e.id), expectedE);

      // Concurrent recorders holding the same loaded copy: exactly one applies.
      const [f] = (await seed(store, ws, ep.id, ["queued"])).deliveries as [DeliveryRecord];
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          store.deliveries.recordAttempt({ attempt: attemptOf(f, 1), delivery: change, outbox: three, expected: f }),
        ),
      );
      assert.equal(results.filter((r) => r.applied).length, 1);
      assert.ok(results.every((r) => r.applied || r.outbox.length === 0));
      assert.equal((await store.deliveries.listAttempts(ws, f.id, { afterId: undefined, limit: 10 })).length, 1);
    });

    void it("concurrent recordAttempt of the same number: exactly one applies", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const d = (await seed(store, ws, ep.id, ["delivering"])).deliveries[0]!;
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          store.deliveries.recordAttempt({
            attempt: attemptOf(d, 1),
            delivery: {
              status: "succeeded",
              nextAttemptAt: null,
              lastResponseStatus: 200,
              lastError: "",
              updatedAt: at(3),
            },
            outbox: () => [],
          }),
        ),
      );
      assert.equal(results.filter((r) => r.applied).length, 1);
      assert.equal((await store.deliveries.listAttempts(ws, d.id, { afterId: undefined, limit: 10 })).length, 1);
    });

    void it("50 concurrent recordAttempt calls on 40 deliveries: each delivery's attempt applies exactly once", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const { deliveries } = await seed(store, ws, ep.id, Array<DeliveryStatusName>(40).fill("queued"));
      await drainOutbox(store);
      const change = {
        status: "pending_retry" as const,
        nextAttemptAt: at(60_000),
        lastResponseStatus: 500,
        lastError: "HTTP 500",
        updatedAt: at(11),
      };
      const two = (rec: DeliveryRecord): NewOutboxRecord[] => [statusOf(rec), jobOf(rec, at(12))];
      // Every delivery once, then ten of them again (a redelivered job), with and without `expected`.
      const calls = [...deliveries, ...deliveries.slice(0, 10)].map((d, i) => ({
        attempt: attemptOf(d, 1),
        delivery: change,
        outbox: two,
        expected: i % 3 === 0 ? undefined : d,
      }));
      const results = await Promise.all(calls.map((c) => store.deliveries.recordAttempt(c)));
      for (const d of deliveries) {
        const expected = { ...d, ...change, attemptCount: 1 };
        const mine = results.map((r, i) => ({ r, c: calls[i]! })).filter((x) => x.c.attempt.deliveryId === d.id);
        const applied = mine.filter((x) => x.r.applied);
        assert.equal(applied.length, 1, `delivery ${d.id} applied once`);
        for (const { r } of mine) {
          assert.deepEqual(r.delivery, expected);
          if (!r.applied) assert.deepEqual(r.outbox, []);
        }
        const winner = applied[0]!;
        assert.deepEqual(
          winner.r.outbox.map(({ seq: _seq, ...rest }) => rest),
          two(expected),
        );
        assert.ok(winner.r.outbox[0]!.seq < winner.r.outbox[1]!.seq, "seqs increase");
        assert.deepEqual(await store.deliveries.listAttempts(ws, d.id, { afterId: undefined, limit: 10 }), [
          winner.c.attempt,
        ]);
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), expected);
      }
      const given = results.flatMap((r) => r.outbox).sort((a, b) => a.seq - b.seq);
      assert.equal(given.length, 80);
      assert.deepEqual(await store.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 1_000), given);
    });

    void it("a poisoned recordAttempt in a burst fails alone and writes nothing; the others apply", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const { deliveries } = await seed(store, ws, ep.id, Array<DeliveryStatusName>(20).fill("queued"));
      const change = {
        status: "succeeded" as const,
        nextAttemptAt: null,
        lastResponseStatus: 200,
        lastError: "",
        updatedAt: at(11),
      };
      const calls = deliveries.map((d) => ({
        attempt: attemptOf(d, 1),
        delivery: change,
        outbox: (rec: DeliveryRecord) => [statusOf(rec)],
        expected: d,
      }));
      // The attempt names a workspace that does not exist: a foreign key violation.
      calls[5] = { ...calls[5]!, attempt: { ...calls[5]!.attempt, workspaceId: newId("workspace") } };
      const settled = await Promise.allSettled(calls.map((c) => store.deliveries.recordAttempt(c)));
      for (const [i, s] of settled.entries()) {
        const d = deliveries[i]!;
        if (i === 5) {
          assert.equal(s.status, "rejected");
          assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), d, "the poisoned call changed nothing");
          assert.deepEqual(await store.deliveries.listAttempts(ws, d.id, { afterId: undefined, limit: 10 }), []);
          continue;
        }
        assert.equal(s.status, "fulfilled", `call ${i} succeeds`);
        if (s.status === "fulfilled") assert.equal(s.value.applied, true);
        assert.deepEqual(await store.deliveries.getDelivery(ws, d.id), { ...d, ...change, attemptCount: 1 });
      }
    });

    void it("deleteEndpoint cancels only non-final deliveries, hides the endpoint, and the worker sees it gone", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      const keep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(keep);
      const { message, deliveries } = await seed(
        store,
        ws,
        ep.id,
        ["queued", "pending_retry", "succeeded", "failed"],
        at(5),
      );
      const untouched = await seed(store, ws, keep.id, ["queued"]);

      assert.equal(await store.endpoints.deleteEndpoint(other, ep.id, at(50), () => []), null);
      const res = await store.endpoints.deleteEndpoint(ws, ep.id, at(50), (c) => [statusOf(c)]);
      assert.ok(res !== null);
      assert.deepEqual(
        res.cancelled.map((d) => d.id).sort(),
        deliveries
          .slice(0, 2)
          .map((d) => d.id)
          .sort(),
      );
      for (const c of res.cancelled) {
        assert.equal(c.status, "cancelled");
        assert.deepEqual(await store.deliveries.getDelivery(ws, c.id), c);
      }
      assert.equal(res.outbox.length, 2);
      assert.deepEqual(await store.deliveries.getDelivery(ws, deliveries[2]!.id), deliveries[2]);
      assert.deepEqual(await store.deliveries.getDelivery(ws, untouched.deliveries[0]!.id), untouched.deliveries[0]);
      assert.equal(await store.endpoints.getEndpoint(ws, ep.id), null);
      assert.deepEqual(
        (await store.endpoints.listEndpoints(ws, { afterId: undefined, limit: 10 })).map((e) => e.id),
        [keep.id],
      );
      assert.equal(await store.endpoints.updateEndpoint(ws, ep.id, { url: "https://x" }, at(60)), null);
      assert.equal(await store.endpoints.deleteEndpoint(ws, ep.id, at(70), () => []), null);

      const ctx = await store.deliveries.loadAttemptContext(deliveries[0]!.id);
      assert.equal(ctx?.endpoint, null);
      assert.deepEqual(ctx?.message, message);
      const live = await store.deliveries.loadAttemptContext(untouched.deliveries[0]!.id);
      assert.deepEqual(live?.endpoint, keep);
      assert.equal(await store.deliveries.loadAttemptContext(newId("delivery")), null);
    });

    void it("earlierOpenDelivery finds an ordered endpoint's head: its earliest earlier delivery without a final outcome, scheduled ones aside", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws, { ordered: true });
      const other = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(other);
      const { deliveries: d } = await seed(
        store,
        ws,
        ep.id,
        ["succeeded", "scheduled", "pending_retry", "queued", "queued"],
        at(5),
      );
      const { deliveries: o } = await seed(store, ws, other.id, ["queued"]);
      assert.equal(await store.deliveries.earlierOpenDelivery(ep.id, d[0]!.id), null);
      // Neither the succeeded nor the scheduled one holds up the pending retry.
      assert.equal(await store.deliveries.earlierOpenDelivery(ep.id, d[2]!.id), null);
      const head = await store.deliveries.earlierOpenDelivery(ep.id, d[4]!.id);
      assert.deepEqual(head, { id: d[2]!.id, status: "pending_retry", nextAttemptAt: at(5) });
      assert.equal((await store.deliveries.earlierOpenDelivery(ep.id, d[3]!.id))?.id, d[2]!.id);
      // Another endpoint's deliveries never count.
      assert.equal(await store.deliveries.earlierOpenDelivery(other.id, o[0]!.id), null);
      assert.equal((await store.deliveries.earlierOpenDelivery(other.id, newId("delivery")))?.id, o[0]!.id);
    });

    void it("concurrent loadAttemptContext calls each get their own delivery's context", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      const gone = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(gone);
      const live = await seed(store, ws, ep.id, ["queued", "queued", "pending_retry"]);
      const dead = await seed(store, ws, gone.id, ["queued"]);
      await store.endpoints.deleteEndpoint(ws, gone.id, at(50), () => []);
      const missing = newId("delivery");
      const ids = [...live.deliveries.map((d) => d.id), dead.deliveries[0]!.id, missing];
      const wanted = [...ids, ...ids, ...ids];
      const got = await Promise.all(wanted.map((id) => store.deliveries.loadAttemptContext(id)));
      got.forEach((ctx, i) => {
        const id = wanted[i]!;
        if (id === missing) return assert.equal(ctx, null);
        const isLive = id !== dead.deliveries[0]!.id;
        assert.equal(ctx?.delivery.id, id);
        assert.deepEqual(ctx?.message, isLive ? live.message : dead.message);
        assert.deepEqual(ctx?.endpoint, isLive ? ep : null);
        if (isLive)
          assert.deepEqual(
            ctx?.delivery,
            live.deliveries.find((d) => d.id === id),
          );
      });
    });

    void it("cancelDelivery cancels a non-final delivery and returns null for a final one", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const { deliveries } = await seed(store, ws, ep.id, ["pending_retry", "succeeded"], at(5));
      const res = await store.deliveries.cancelDelivery(deliveries[0]!.id, "endpoint disabled", at(8), (c) => [
        statusOf(c),
      ]);
      const expected = {
        ...deliveries[0]!,
        status: "cancelled" as const,
        nextAttemptAt: null,
        lastError: "endpoint disabled",
        updatedAt: at(8),
      };
      assert.deepEqual(res?.delivery, expected);
      assert.equal(res?.outbox.length, 1);
      assert.deepEqual(await store.deliveries.getDelivery(ws, deliveries[0]!.id), expected);
      assert.equal(await store.deliveries.cancelDelivery(deliveries[0]!.id, "again", at(9), () => []), null);
      assert.equal(await store.deliveries.cancelDelivery(deliveries[1]!.id, "final", at(9), () => []), null);
      assert.equal(await store.deliveries.cancelDelivery(newId("delivery"), "missing", at(9), () => []), null);
    });

    void it("recovery: transitions apply to eligible rows of the workspace only; bulk batches advance a cursor exactly", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const { deliveries } = await seed(store, ws, ep.id, ["failed", "succeeded", "pending_retry", "queued", "failed"]);
      const replay = transitionFor("replay", at(20));
      const none = await store.recovery.applyToDeliveries(
        other,
        deliveries.map((d) => d.id),
        replay,
        outboxFor(at(20)),
      );
      assert.deepEqual(none, { changed: [], outbox: [] }, "another workspace's ids change nothing");
      const res = await store.recovery.applyToDeliveries(
        ws,
        deliveries.map((d) => d.id),
        replay,
        outboxFor(at(20)),
      );
      assert.deepEqual(
        res.changed.map((d) => d.id),
        [deliveries[0]!.id, deliveries[1]!.id, deliveries[4]!.id].sort(),
      );
      assert.equal(res.outbox.length, 6, "a status event and a job per replayed delivery");
      assert.equal((await store.deliveries.getDelivery(ws, deliveries[2]!.id))?.status, "pending_retry");
      const failedOnly = await store.recovery.selectDeliveries(
        ws,
        { statuses: ["pending_retry"], eventType: "order.paid", createdAfter: at(0), createdBefore: at(2) },
        { afterId: undefined, limit: 10 },
      );
      assert.deepEqual(
        failedOnly.map((d) => d.id),
        [deliveries[2]!.id],
      );
      assert.deepEqual(
        await store.recovery.selectDeliveries(ws, { createdAfter: at(2) }, { afterId: undefined, limit: 10 }),
        [],
      );

      // A bulk cancel by ids, 2 per batch, at most 3 visited: two rounds, exact counts, then finished.
      const { deliveries: more } = await seed(store, ws, ep.id, [
        "pending_retry",
        "pending_retry",
        "pending_retry",
        "queued",
      ]);
      const op: BulkOperationRecord = {
        id: newId("bulkOperation"),
        workspaceId: ws,
        action: "cancel_retry",
        filter: {},
        deliveryIds: more.map((d) => d.id).sort(),
        limit: 3,
        state: "running",
        matched: 0,
        affected: 0,
        cursor: "",
        createdAt: at(30),
        updatedAt: at(30),
        finishedAt: null,
      };
      await drainOutbox(store);
      await store.recovery.createBulkOperation(op);
      assert.equal(await store.recovery.getBulkOperation(other, op.id), null);
      const transitionOf = (o: BulkOperationRecord) => transitionFor(o.action, at(31));
      const first = await store.recovery.runBulkBatch(2, at(31), transitionOf, outboxFor(at(31)));
      assert.equal(first?.operation.matched, 2);
      assert.equal(first?.operation.state, "running");
      const second = await store.recovery.runBulkBatch(2, at(32), transitionOf, outboxFor(at(32)));
      assert.deepEqual(
        { matched: second?.operation.matched, affected: second?.operation.affected, state: second?.operation.state },
        { matched: 3, affected: 3, state: "succeeded" },
      );
      assert.deepEqual(await store.recovery.getBulkOperation(ws, op.id), second?.operation);
      assert.equal(await store.recovery.runBulkBatch(2, at(33), transitionOf, outboxFor(at(33))), null);
      const after = await Promise.all(more.map((d) => store.deliveries.getDelivery(ws, d.id)));
      assert.deepEqual(after.map((d) => d?.status).sort(), ["failed", "failed", "failed", "queued"]);
      assert.equal((await store.outbox.pendingOutbox(at(100), 100)).length, 3, "one status event per cancelled retry");
    });

    void it("retention: expires payloads and attempts of finished messages in scope, in batches", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      const ep2 = endpointOf(other);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(ep2);
      const done1 = await seed(store, ws, ep.id, ["succeeded"]);
      const done2 = await seed(store, ws, ep.id, ["failed", "cancelled"]);
      const busy = await seed(store, ws, ep.id, ["succeeded", "pending_retry"]);
      const foreign = await seed(store, other, ep2.id, ["succeeded"]);
      for (const d of [done1.deliveries[0]!, busy.deliveries[1]!]) {
        await store.deliveries.recordAttempt({
          attempt: attemptOf(d, 1),
          delivery: {
            status: d.status,
            nextAttemptAt: null,
            lastResponseStatus: 500,
            lastError: "x",
            updatedAt: at(12),
          },
          outbox: () => [],
        });
      }
      const cutoff = at(100_000);
      assert.equal(await store.retention.expirePayloads({ only: [ws] }, cutoff, at(200), 1), 1, "one per batch");
      assert.equal(await store.retention.expirePayloads({ only: [ws] }, cutoff, at(200), 10), 1);
      assert.equal(await store.retention.expirePayloads({ only: [ws] }, cutoff, at(200), 10), 0, "busy kept");
      assert.equal(await store.retention.expirePayloads({ only: [] }, cutoff, at(200), 10), 0);
      assert.equal(await store.retention.expirePayloads({ except: [ws, other] }, at(0), at(200), 10), 0);
      for (const m of [done1.message, done2.message]) {
        const got = await store.messages.getMessage(ws, m.id);
        assert.deepEqual(got?.payload, new Uint8Array(0));
        assert.deepEqual(got?.payloadDeletedAt, at(200));
      }
      assert.deepEqual((await store.messages.getMessage(ws, busy.message.id))?.payload, busy.message.payload);
      assert.deepEqual((await store.messages.getMessage(other, foreign.message.id))?.payload, foreign.message.payload);
      assert.equal(
        await store.retention.expirePayloads({ only: [ws] }, at(0), at(200), 10),
        0,
        "nothing older than the cutoff",
      );

      assert.equal(await store.retention.deleteAttempts({ only: [ws] }, cutoff, 10), 1, "only the finished delivery's");
      assert.equal(
        (await store.deliveries.listAttempts(ws, done1.deliveries[0]!.id, { afterId: undefined, limit: 10 })).length,
        0,
      );
      assert.equal(
        (await store.deliveries.listAttempts(ws, busy.deliveries[1]!.id, { afterId: undefined, limit: 10 })).length,
        1,
      );
      const own = await store.retention.workspacesWithOwnRetention();
      assert.ok(!own.some((w) => w.id === ws));
      await store.workspaces.updateWorkspace(ws, { payloadRetentionMs: 7_200_000 });
      assert.ok(
        (await store.retention.workspacesWithOwnRetention()).some(
          (w) => w.id === ws && w.payloadRetentionMs === 7_200_000,
        ),
      );
    });

    void it("recordEndpointHealth counts failures, ends the run on success, and disables once past the policy", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      const policy = { failures: 3, windowMs: 1_000 };
      const fail = { ok: false as const, kind: "timeout" as const, status: 0, message: "no answer" };
      assert.equal(await store.deliveries.recordEndpointHealth(ep.id, fail, at(0), policy), null);
      assert.equal(await store.deliveries.recordEndpointHealth(ep.id, fail, at(500), policy), null);
      const failing = await store.endpoints.getEndpoint(ws, ep.id);
      assert.deepEqual(failing?.health, {
        consecutiveFailures: 2,
        failingSinceMs: at(0).getTime(),
        lastFailureAtMs: at(500).getTime(),
        lastFailureKind: "timeout",
        lastFailure: "no answer",
        disabledReason: "",
        disabledAtMs: null,
      });
      assert.equal(failing?.enabled, true);
      // A success ends the run; the window starts again.
      assert.equal(await store.deliveries.recordEndpointHealth(ep.id, { ok: true }, at(600), policy), null);
      assert.equal((await store.endpoints.getEndpoint(ws, ep.id))?.health?.consecutiveFailures, 0);
      for (const t of [1_000, 1_500, 1_999]) {
        assert.equal(await store.deliveries.recordEndpointHealth(ep.id, fail, at(t), policy), null);
      }
      const reason = await store.deliveries.recordEndpointHealth(ep.id, fail, at(2_000), policy);
      assert.match(reason ?? "", /^4 failed attempts in a row/);
      const disabled = await store.endpoints.getEndpoint(ws, ep.id);
      assert.equal(disabled?.enabled, false);
      assert.equal(disabled?.health?.disabledReason, reason);
      // Already disabled: counted, not disabled again, the reason kept.
      assert.equal(await store.deliveries.recordEndpointHealth(ep.id, fail, at(3_000), policy), null);
      assert.equal((await store.endpoints.getEndpoint(ws, ep.id))?.health?.disabledReason, reason);
      // Enabling gives it a fresh start.
      const enabled = await store.endpoints.updateEndpoint(ws, ep.id, { enabled: true }, at(4_000));
      assert.equal(enabled?.health?.consecutiveFailures, 0);
      assert.equal(enabled?.health?.disabledReason, "");
      assert.deepEqual(await store.endpoints.getEndpoint(ws, ep.id), enabled);
      assert.equal(await store.deliveries.recordEndpointHealth(newId("endpoint"), fail, at(5_000), policy), null);
    });

    void it("holdDelivery holds a queued delivery of a disabled endpoint; enabling it makes held ones due", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws, { enabled: false });
      const live = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(live);
      const { deliveries } = await seed(store, ws, ep.id, ["queued", "queued", "succeeded"]);
      const { deliveries: liveOnes } = await seed(store, ws, live.id, ["queued"]);
      const [a, b, done] = deliveries as [DeliveryRecord, DeliveryRecord, DeliveryRecord];
      const held = await store.deliveries.holdDelivery(a.id, ep.id, at(5), (h) => [statusOf(h)]);
      assert.equal(held.result, "held");
      assert.equal(held.result === "held" && held.outbox.length, 1);
      assert.equal((await store.deliveries.getDelivery(ws, a.id))?.status, "held");
      assert.equal((await store.deliveries.holdDelivery(a.id, ep.id, at(6), () => [])).result, "not_queued");
      assert.equal((await store.deliveries.holdDelivery(done.id, ep.id, at(6), () => [])).result, "not_queued");
      assert.equal((await store.deliveries.holdDelivery(liveOnes[0]!.id, live.id, at(6), () => [])).result, "enabled");
      assert.equal((await store.deliveries.holdDelivery(b.id, newId("endpoint"), at(6), () => [])).result, "gone");
      assert.equal((await store.deliveries.getDelivery(ws, b.id))?.status, "queued");
      await store.endpoints.updateEndpoint(ws, ep.id, { enabled: true }, at(10));
      const released = await store.deliveries.getDelivery(ws, a.id);
      assert.equal(released?.status, "scheduled");
      assert.deepEqual(released?.nextAttemptAt, at(10));
      assert.equal((await store.deliveries.getDelivery(ws, b.id))?.status, "queued");
      await drainOutbox(store);
      const due = await store.deliveries.releaseDue(at(10), 100, (d) => [jobOf(d)]);
      assert.ok(due.released.some((d) => d.id === a.id));
    });

    void it("recentOutcomes counts the latest attempted deliveries of one endpoint", async () => {
      const ws = await workspace(store);
      const ep = endpointOf(ws);
      const other = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      await store.endpoints.createEndpoint(other);
      const message = messageOf(ws);
      const statuses: DeliveryStatusName[] = [
        "succeeded",
        "failed",
        "pending_retry",
        "succeeded",
        "succeeded",
        "queued",
        "cancelled",
      ];
      const deliveries = statuses.map((st) => ({
        ...deliveryOf(message, ep.id, st),
        attemptCount: st === "queued" ? 0 : 1,
      }));
      await store.messages.acceptMessage(message, [...deliveries, deliveryOf(message, other.id, "succeeded")], []);
      assert.deepEqual(await store.endpoints.recentOutcomes(ws, ep.id, 100), { succeeded: 3, total: 5 });
      // The latest two outcomes, by delivery id: the last two succeeded ones.
      assert.deepEqual(await store.endpoints.recentOutcomes(ws, ep.id, 2), { succeeded: 2, total: 2 });
      assert.deepEqual(await store.endpoints.recentOutcomes(await workspace(store), ep.id, 100), {
        succeeded: 0,
        total: 0,
      });
    });

    void it("disableEndpoint disables an enabled endpoint of its workspace once, never another workspace's", async () => {
      const ws = await workspace(store);
      const other = await workspace(store);
      const ep = endpointOf(ws);
      await store.endpoints.createEndpoint(ep);
      assert.equal(await store.deliveries.disableEndpoint(other, ep.id, at(3)), false);
      assert.equal((await store.endpoints.getEndpoint(ws, ep.id))?.enabled, true);
      assert.equal(await store.deliveries.disableEndpoint(ws, ep.id, at(4)), true);
      assert.deepEqual(await store.endpoints.getEndpoint(ws, ep.id), { ...ep, enabled: false, updatedAt: at(4) });
      assert.equal(await store.deliveries.disableEndpoint(ws, ep.id, at(5)), false);
    });
  });
}
