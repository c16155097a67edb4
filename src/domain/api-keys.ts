import { API_KEY_PREFIX, hashSecret, newSecret, secretPrefix } from "./credentials.ts";
import { Violations, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { ApiKeyRecord, PageQuery } from "./records.ts";
import { checkId, checkLength } from "./validation.ts";

/** The API key use cases' port. */
export interface ApiKeyRepository {
  /** Stores a new key with the hash of its secret. */
  createApiKey(key: ApiKeyRecord, secretHash: string): Promise<void>;
  /** Newest first. */
  listApiKeys(workspaceId: string, page: PageQuery): Promise<ApiKeyRecord[]>;
  /** Sets revokedAt if unset; returns the key, or null when not in the workspace. */
  revokeApiKey(workspaceId: string, id: string, at: Date): Promise<ApiKeyRecord | null>;
}

/** Issues a producer key; the secret is returned once and stored hashed. */
export async function createApiKey(
  store: ApiKeyRepository,
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
  store: ApiKeyRepository,
  workspaceId: string,
  req: { pageSize: number; pageToken: string },
): Promise<{ items: ApiKeyRecord[]; nextPageToken: string }> {
  const limit = pageSize(req.pageSize);
  const afterId = decodePageToken(req.pageToken, "api_keys", null);
  const rows = await store.listApiKeys(workspaceId, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "api_keys", null);
}

/** Revokes a key; revoking twice keeps the first revocation time. */
export async function revokeApiKey(store: ApiKeyRepository, workspaceId: string, id: string): Promise<ApiKeyRecord> {
  const v = new Violations();
  checkId(v, "id", "apiKey", id);
  v.throwIfAny();
  const key = await store.revokeApiKey(workspaceId, id, new Date());
  if (!key) throw notFound("api_key", id);
  return key;
}
