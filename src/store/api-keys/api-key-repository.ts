import type { ApiKeyRepository, ApiKeyUsageStore } from "../../domain/api-keys.ts";
import type { CredentialLookup } from "../../domain/auth.ts";
import type { ApiKeyRecord, PageQuery } from "../../domain/records.ts";
import { apiKeyRecord } from "../record-mappers.ts";
import { DETACHED, keyset, limitOf, type StoreContext } from "../store-context.ts";
import { ApiKey } from "./api-key.entity.ts";

/** API keys on MikroORM: management, and the API-key half of credential lookup. */
export interface ApiKeyStore extends ApiKeyRepository, ApiKeyUsageStore, Pick<CredentialLookup, "findApiKeyByHash"> {}

/** Creates the API key repository (reference implementation; lookups are cached by the authenticator). */
export function createApiKeyRepository(ctx: StoreContext): ApiKeyStore {
  return {
    async createApiKey(key: ApiKeyRecord, secretHash: string): Promise<void> {
      await ctx.run((em) => em.insert(ApiKey, { ...key, secretHash }));
    },
    async findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | null> {
      const row = await ctx.run((em) => em.findOne(ApiKey, { secretHash }, DETACHED));
      return row === null ? null : apiKeyRecord(row);
    },
    async listApiKeys(workspaceId: string, page: PageQuery, environmentId?: string): Promise<ApiKeyRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          ApiKey,
          { workspaceId, ...(environmentId === undefined ? {} : { environmentId }), ...keyset("desc", page.afterId) },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(apiKeyRecord);
    },
    async touchApiKeys(uses: readonly { id: string; at: Date }[]): Promise<void> {
      if (uses.length === 0) return;
      await ctx.tx(async (em) => {
        for (const { id, at } of uses) {
          // Only forward: another API server may have written a later use already.
          await em.nativeUpdate(
            ApiKey,
            { id, $or: [{ lastUsedAt: null }, { lastUsedAt: { $lt: at } }] },
            { lastUsedAt: at },
          );
        }
      });
    },
    async revokeApiKey(workspaceId: string, id: string, at: Date): Promise<ApiKeyRecord | null> {
      return ctx.tx(async (em) => {
        const row = await em.findOne(ApiKey, { id, workspaceId }, DETACHED);
        if (row === null) return null;
        const key = apiKeyRecord(row);
        if (key.revokedAt !== null) return key;
        const changed = await em.nativeUpdate(ApiKey, { id, workspaceId, revokedAt: null }, { revokedAt: at });
        if (changed === 0) {
          const again = await em.findOne(ApiKey, { id, workspaceId }, DETACHED);
          return again === null ? null : apiKeyRecord(again);
        }
        return { ...key, revokedAt: at };
      });
    },
  };
}
