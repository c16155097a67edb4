import { apiKeyPrefix, hashSecret, newSecret, secretPrefix } from "./credentials.ts";
import { Violations, notFound } from "./errors.ts";
import { checkEnvironmentFilter, resolveEnvironmentId, type EnvironmentLookup } from "./environments.ts";
import { newId } from "./ids.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { ApiKeyModeName, ApiKeyRecord, ApiKeyScopeName, PageQuery } from "./records.ts";
import { checkId, checkLength } from "./validation.ts";

/** The API key use cases' port. */
export interface ApiKeyRepository {
  /** Stores a new key with the hash of its secret. */
  createApiKey(key: ApiKeyRecord, secretHash: string): Promise<void>;
  /** Newest first; only the keys bound to `environmentId` when given. */
  listApiKeys(workspaceId: string, page: PageQuery, environmentId?: string): Promise<ApiKeyRecord[]>;
  /** Sets revokedAt if unset; returns the key, or null when not in the workspace. */
  revokeApiKey(workspaceId: string, id: string, at: Date): Promise<ApiKeyRecord | null>;
}

/** Where coalesced key uses are written: the usage recorder's port. */
export interface ApiKeyUsageStore {
  /** Moves each key's lastUsedAt forward to `at` (never backwards), in one transaction. */
  touchApiKeys(uses: readonly { id: string; at: Date }[]): Promise<void>;
}

/** What CreateApiKey is asked for; undefined scope/mode take the defaults (producer, live). */
export interface ApiKeyInput {
  label: string;
  /** Undefined: producer; null: a value the schema does not know (invalid). */
  scope: ApiKeyScopeName | null | undefined;
  /** Undefined: live; null: a value the schema does not know (invalid). */
  mode: ApiKeyModeName | null | undefined;
  /** A producer key's environment; "": the workspace's default one. Must be "" for a management key. */
  environmentId: string;
}

/** Issues a key; the secret ("hsk_live_…" / "hsk_test_…") is returned once and stored hashed. */
export async function createApiKey(
  store: ApiKeyRepository,
  environments: EnvironmentLookup,
  workspaceId: string,
  input: ApiKeyInput,
): Promise<{ apiKey: ApiKeyRecord; secret: string }> {
  const v = new Violations();
  checkLength(v, "label", input.label, 200);
  if (input.scope === null) v.add("scope", "must be API_KEY_SCOPE_PRODUCER or API_KEY_SCOPE_MANAGEMENT");
  if (input.mode === null) v.add("mode", "must be API_KEY_MODE_LIVE or API_KEY_MODE_TEST");
  const management = input.scope === "management";
  if (management && input.environmentId !== "")
    v.add("environment_id", "must be empty for a management-scoped key: it reaches the whole workspace");
  v.throwIfAny();
  const environmentId = management
    ? null
    : await resolveEnvironmentId(environments, workspaceId, input.environmentId, "environment_id");
  const mode = input.mode ?? "live";
  const prefix = apiKeyPrefix(mode);
  const secret = newSecret(prefix);
  const apiKey: ApiKeyRecord = {
    id: newId("apiKey"),
    workspaceId,
    label: input.label,
    secretPrefix: secretPrefix(secret, prefix),
    createdAt: new Date(),
    revokedAt: null,
    scope: input.scope ?? "producer",
    mode,
    lastUsedAt: null,
    environmentId,
  };
  await store.createApiKey(apiKey, hashSecret(secret));
  return { apiKey, secret };
}

/** Lists the workspace's keys, newest first. */
export async function listApiKeys(
  store: ApiKeyRepository,
  workspaceId: string,
  req: { pageSize: number; pageToken: string; environmentId?: string },
): Promise<{ items: ApiKeyRecord[]; nextPageToken: string }> {
  const v = new Violations();
  checkEnvironmentFilter(v, "environment_id", req.environmentId ?? "");
  v.throwIfAny();
  const limit = pageSize(req.pageSize);
  const filter = req.environmentId || null;
  const afterId = decodePageToken(req.pageToken, "api_keys", filter);
  const rows = await store.listApiKeys(workspaceId, { afterId, limit: limit + 1 }, filter ?? undefined);
  return pageOf(rows, limit, "api_keys", filter);
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

/** Remembers key uses in memory and writes them in batches, so a request never waits on a write. */
export interface ApiKeyUsageRecorder {
  /** Notes that the key was used now (no I/O). */
  used(id: string): void;
  /** Writes what was noted since the last flush (one transaction); a failure keeps the uses for the next one. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left. */
  stop(): Promise<void>;
}

/**
 * Creates the usage recorder: each key's latest use is kept and written every `intervalMs`
 * (`touchApiKeys`, one statement per key, only moving lastUsedAt forward), so any number of
 * requests costs one write per key per interval per API server.
 */
export function createApiKeyUsageRecorder(
  store: ApiKeyUsageStore,
  intervalMs: number,
  onError: (error: unknown) => void,
  now: () => Date = () => new Date(),
): ApiKeyUsageRecorder {
  let pending = new Map<string, Date>();
  let flushing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    flushing = flushing.then(async () => {
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      try {
        await store.touchApiKeys([...batch].map(([id, at]) => ({ id, at })));
      } catch (error) {
        // Keep the uses (unless a later one arrived meanwhile) for the next round.
        for (const [id, at] of batch) if (!pending.has(id)) pending.set(id, at);
        onError(error);
      }
    });
    return flushing;
  };
  const timer = intervalMs > 0 ? setInterval(() => void flush(), intervalMs) : undefined;
  timer?.unref();
  return {
    used(id) {
      if (!pending.has(id) && pending.size >= 100_000) return; // bounded: never grows without limit while the database is down
      pending.set(id, now());
    },
    flush,
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await flush();
    },
  };
}
