import assert from "node:assert/strict";
import { test } from "node:test";
import { createApiKeyUsageRecorder } from "./api-keys.ts";
import { createAuthenticator, type CredentialLookup } from "./auth.ts";
import { hashSecret } from "./credentials.ts";
import { DomainError } from "./errors.ts";
import type { ApiKeyRecord, WorkspaceRecord } from "./records.ts";

const ws: WorkspaceRecord = { id: "ws_a", name: "a", createdAt: new Date() };
const key = (revokedAt: Date | null): ApiKeyRecord => ({
  id: "key_a",
  workspaceId: "ws_a",
  label: "",
  secretPrefix: "hsk_xx",
  createdAt: new Date(),
  revokedAt,
  scope: "producer",
  mode: "live",
  lastUsedAt: null,
  environmentId: null,
});

// The authenticator's whole port: the two lookups.
function fakeStore(revoked: boolean): CredentialLookup {
  return {
    findWorkspaceByTokenHash: async (h: string) => (h === hashSecret("hsm_good") ? ws : null),
    findApiKeyByHash: async (h: string) => (h === hashSecret("hsk_good") ? key(revoked ? new Date() : null) : null),
    findPortalSessionByTokenHash: async () => null,
  };
}

const fails = (kind: string, reason: string) => (err: unknown) =>
  err instanceof DomainError && err.kind === kind && err.reason === reason;

test("each credential kind resolves to its principal", async () => {
  const auth = createAuthenticator(fakeStore(false), "operator-secret");
  assert.deepEqual(await auth.authenticate("Bearer operator-secret", ["admin"]), { kind: "admin" });
  assert.equal(await auth.workspaceOf("Bearer hsm_good", ["management"]), "ws_a");
  assert.equal(await auth.workspaceOf("bearer   hsk_good", ["api_key"]), "ws_a");
});

test("missing, malformed, unknown, revoked and wrong-kind credentials are refused precisely", async () => {
  const auth = createAuthenticator(fakeStore(true), "operator-secret");
  await assert.rejects(auth.authenticate(null, ["admin"]), fails("unauthenticated", "MISSING_CREDENTIALS"));
  await assert.rejects(auth.authenticate("Basic abc", ["admin"]), fails("unauthenticated", "MALFORMED_CREDENTIALS"));
  await assert.rejects(
    auth.authenticate("Bearer hsm_bad", ["management"]),
    fails("unauthenticated", "INVALID_CREDENTIALS"),
  );
  await assert.rejects(auth.authenticate("Bearer guess", ["admin"]), fails("unauthenticated", "INVALID_CREDENTIALS"));
  await assert.rejects(auth.authenticate("Bearer hsk_good", ["api_key"]), fails("unauthenticated", "API_KEY_REVOKED"));
  await assert.rejects(
    auth.authenticate("Bearer hsm_good", ["api_key"]),
    fails("permission_denied", "WRONG_CREDENTIAL_KIND"),
  );
});

test("without an operator token configured, nothing is the operator", async () => {
  const auth = createAuthenticator(fakeStore(false), undefined);
  await assert.rejects(
    auth.authenticate("Bearer anything", ["admin"]),
    fails("unauthenticated", "INVALID_CREDENTIALS"),
  );
});

test("credentials are cached for the TTL, and a revoked key is forgotten at once on this server", async () => {
  let lookups = 0;
  let revoked: Date | null = null;
  const store: CredentialLookup = {
    findWorkspaceByTokenHash: async () => null,
    findApiKeyByHash: async (h: string) => {
      lookups++;
      return h === hashSecret("hsk_good") ? key(revoked) : null;
    },
    findPortalSessionByTokenHash: async () => null,
  };
  const auth = createAuthenticator(store, undefined, 60_000);
  await auth.workspaceOf("Bearer hsk_good", ["api_key"]);
  await auth.workspaceOf("Bearer hsk_good", ["api_key"]);
  assert.equal(lookups, 1);
  await assert.rejects(auth.workspaceOf("Bearer hsk_nope", ["api_key"]));
  await assert.rejects(auth.workspaceOf("Bearer hsk_nope", ["api_key"]));
  assert.equal(lookups, 3, "unknown keys are looked up every time");
  revoked = new Date();
  auth.forgetApiKey("key_a");
  await assert.rejects(auth.workspaceOf("Bearer hsk_good", ["api_key"]), fails("unauthenticated", "API_KEY_REVOKED"));
});

test("a key's scope decides its kind: management keys call management RPCs only, producer keys producer RPCs only", async () => {
  const management: ApiKeyRecord = { ...key(null), id: "key_m", scope: "management" };
  const producer: ApiKeyRecord = { ...key(null), id: "key_p", scope: "producer", mode: "test" };
  const used: string[] = [];
  const store: CredentialLookup = {
    findWorkspaceByTokenHash: async (h: string) => (h === hashSecret("hsm_good") ? ws : null),
    findApiKeyByHash: async (h: string) =>
      h === hashSecret("hsk_live_m") ? management : h === hashSecret("hsk_test_p") ? producer : null,
    findPortalSessionByTokenHash: async () => null,
  };
  const auth = createAuthenticator(store, "operator-secret", 0, (id) => used.push(id));
  assert.deepEqual(await auth.authenticate("Bearer hsk_live_m", ["management"]), {
    kind: "management",
    workspaceId: "ws_a",
    key: management,
  });
  assert.deepEqual(await auth.authenticate("Bearer hsk_test_p", ["api_key"]), {
    kind: "api_key",
    workspaceId: "ws_a",
    key: producer,
  });
  assert.deepEqual(await auth.authenticate("Bearer hsm_good", ["management", "api_key"]), {
    kind: "management",
    workspaceId: "ws_a",
    key: null,
  });
  await assert.rejects(
    auth.authenticate("Bearer hsk_live_m", ["api_key"]),
    fails("permission_denied", "WRONG_CREDENTIAL_KIND"),
  );
  await assert.rejects(
    auth.authenticate("Bearer hsk_test_p", ["management"]),
    fails("permission_denied", "WRONG_CREDENTIAL_KIND"),
  );
  await assert.rejects(
    auth.authenticate("Bearer hsk_test_p", ["admin"]),
    fails("permission_denied", "WRONG_CREDENTIAL_KIND"),
  );
  // Only accepted key uses are reported (to the coalescing usage recorder); management tokens are not keys.
  assert.deepEqual(used, ["key_m", "key_p"]);
});

test("the usage recorder coalesces any number of uses into one write per key and keeps them when a write fails", async () => {
  const writes: { id: string; at: Date }[][] = [];
  let failNext = false;
  let clock = 0;
  const recorder = createApiKeyUsageRecorder(
    {
      touchApiKeys: async (uses) => {
        if (failNext) {
          failNext = false;
          throw new Error("database down");
        }
        writes.push([...uses]);
      },
    },
    0,
    () => {},
    () => new Date(++clock),
  );
  for (let i = 0; i < 1000; i++) recorder.used(i % 2 === 0 ? "key_a" : "key_b");
  await recorder.flush();
  assert.deepEqual(writes, [
    [
      { id: "key_a", at: new Date(999) },
      { id: "key_b", at: new Date(1000) },
    ],
  ]);
  await recorder.flush();
  assert.equal(writes.length, 1, "nothing new, nothing written");
  recorder.used("key_a");
  failNext = true;
  await recorder.flush();
  assert.equal(writes.length, 1);
  await recorder.stop();
  assert.deepEqual(writes[1], [{ id: "key_a", at: new Date(1001) }], "a failed write is retried at the next flush");
});
