import { API_KEY_PREFIX, hashSecret, newSecret, secretPrefix } from "./credentials.ts";
import { Violations, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { Store } from "./ports.ts";
import type { ApiKeyRecord } from "./records.ts";
import { checkId, checkLength } from "./validation.ts";

/** Issues a producer key; the secret is returned once and stored hashed. */
export async function createApiKey(
  store: Store,
  workspaceId: string,
  label: string,
): Promise<{ apiKey: ApiKeyRecord; secret: string }> {
  const v = new Violations();
  checkLength(v, "label", label, 200);
  v.throwIfAny();
  const secret = newSecret(API_KEY_PREFIX);
  const apiKey: ApiKeyRecord = {
    id: newId("apiKey"),
    workspaceId,
    label,
    secretPrefix: secretPrefix(secret),
    createdAt: new Date(),
    revokedAt: null,
  };
  await store.createApiKey(apiKey, hashSecret(secret));
  return { apiKey, secret };
}

/** Lists the workspace's keys, newest first. */
export async function listApiKeys(
  store: Store,
  workspaceId: string,
  req: { pageSize: number; pageToken: string },
): Promise<{ items: ApiKeyRecord[]; nextPageToken: string }> {
  const limit = pageSize(req.pageSize);
  const afterId = decodePageToken(req.pageToken, "api_keys", null);
  const rows = await store.listApiKeys(workspaceId, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "api_keys", null);
}

/** Revokes a key; revoking twice keeps the first revocation time. */
export async function revokeApiKey(store: Store, workspaceId: string, id: string): Promise<ApiKeyRecord> {
  const v = new Violations();
  checkId(v, "id", "apiKey", id);
  v.throwIfAny();
  const key = await store.revokeApiKey(workspaceId, id, new Date());
  if (!key) throw notFound("api_key", id);
  return key;
}
