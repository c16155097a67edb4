import type { ServiceImpl } from "@connectrpc/connect";
import type { Environment } from "../../gen/hookstream/v1/environment_pb.ts";
import type { EnvironmentService } from "../../gen/hookstream/v1/environment_service_pb.ts";
import {
  createEnvironment,
  deleteEnvironment,
  getEnvironment,
  listEnvironments,
  updateEnvironment,
  type EnvironmentInput,
} from "../domain/environments.ts";
import { environmentView } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

function environmentInput(e: Environment | undefined): EnvironmentInput | undefined {
  if (!e) return undefined;
  return { id: e.id, name: e.name, slug: e.slug, unpublishedEventTypes: e.unpublishedEventTypes };
}

/** EnvironmentService: environment CRUD (management credential). */
export function createEnvironmentService(deps: ApiDeps): ServiceImpl<typeof EnvironmentService> {
  return {
    async createEnvironment(req, ctx) {
      const env = await createEnvironment(deps.environments, workspaceIdOf(ctx), environmentInput(req.environment));
      return { environment: environmentView(env) };
    },
    async getEnvironment(req, ctx) {
      return { environment: environmentView(await getEnvironment(deps.environments, workspaceIdOf(ctx), req)) };
    },
    async listEnvironments(req, ctx) {
      const page = await listEnvironments(deps.environments, workspaceIdOf(ctx), req);
      return { environments: page.items.map(environmentView), nextPageToken: page.nextPageToken };
    },
    async updateEnvironment(req, ctx) {
      const env = await updateEnvironment(
        deps.environments,
        workspaceIdOf(ctx),
        environmentInput(req.environment),
        req.updateMask?.paths ?? [],
      );
      deps.environmentCache?.delete(env.id);
      return { environment: environmentView(env) };
    },
    async deleteEnvironment(req, ctx) {
      await deleteEnvironment(deps.environments, workspaceIdOf(ctx), req.id);
      deps.environmentCache?.delete(req.id);
      return {};
    },
  };
}
