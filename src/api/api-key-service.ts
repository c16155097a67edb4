import type { ServiceImpl } from "@connectrpc/connect";
import type { ApiKeyService } from "../../gen/hookstream/v1/api_key_service_pb.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "../domain/api-keys.ts";
import { apiKeyModeFromProto, apiKeyScopeFromProto, apiKeyView } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

/** ApiKeyService: producer and management keys (management credential). */
export function createApiKeyService(deps: ApiDeps): ServiceImpl<typeof ApiKeyService> {
  return {
    async createApiKey(req, ctx) {
      const { apiKey, secret } = await createApiKey(deps.apiKeys, deps.environments, workspaceIdOf(ctx), {
        label: req.label,
        scope: apiKeyScopeFromProto(req.scope),
        mode: apiKeyModeFromProto(req.mode),
        environmentId: req.environmentId,
      });
      return { apiKey: apiKeyView(apiKey), secret };
    },
    async listApiKeys(req, ctx) {
      const page = await listApiKeys(deps.apiKeys, workspaceIdOf(ctx), req);
      return { apiKeys: page.items.map(apiKeyView), nextPageToken: page.nextPageToken };
    },
    async revokeApiKey(req, ctx) {
      const key = await revokeApiKey(deps.apiKeys, workspaceIdOf(ctx), req.id);
      deps.auth.forgetApiKey(key.id);
      return { apiKey: apiKeyView(key) };
    },
  };
}
