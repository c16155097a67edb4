import assert from "node:assert/strict";
import { test } from "node:test";
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
});

// The authenticator's whole port: the two lookups.
function fakeStore(revoked: boolean): CredentialLookup {
  return {
    findWorkspaceByTokenHash: async (h: string) => (h === hashSecret("hsm_good") ? ws : null),
    findApiKeyByHash: async (h: string) => (h === hashSecret("hsk_good") ? key(revoked ? new Date() : null) : null),
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
