import type { ServiceImpl } from "@connectrpc/connect";
import type { Application } from "../../gen/hookstream/v1/application_pb.ts";
import type { ApplicationService } from "../../gen/hookstream/v1/application_service_pb.ts";
import {
  createApplication,
  deleteApplication,
  getApplication,
  listApplications,
  updateApplication,
  type ApplicationDeps,
  type ApplicationInput,
} from "../domain/applications.ts";
import { applicationView } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

function applicationInput(a: Application | undefined): ApplicationInput | undefined {
  if (!a) return undefined;
  return { id: a.id, name: a.name, uid: a.uid, metadata: a.metadata, environmentId: a.environmentId };
}

/** ApplicationService: application CRUD (management token). */
export function createApplicationService(deps: ApiDeps): ServiceImpl<typeof ApplicationService> {
  const applicationDeps: ApplicationDeps = {
    store: deps.applications,
    environments: deps.environments,
    relay: deps.relay,
    endpointCache: deps.endpointCache,
  };
  return {
    async createApplication(req, ctx) {
      const app = await createApplication(applicationDeps, workspaceIdOf(ctx), applicationInput(req.application));
      return { application: applicationView(app) };
    },
    async getApplication(req, ctx) {
      return { application: applicationView(await getApplication(deps.applications, workspaceIdOf(ctx), req)) };
    },
    async listApplications(req, ctx) {
      const page = await listApplications(deps.applications, workspaceIdOf(ctx), req);
      return { applications: page.items.map(applicationView), nextPageToken: page.nextPageToken };
    },
    async updateApplication(req, ctx) {
      const app = await updateApplication(
        applicationDeps,
        workspaceIdOf(ctx),
        applicationInput(req.application),
        req.updateMask?.paths ?? [],
      );
      return { application: applicationView(app) };
    },
    async deleteApplication(req, ctx) {
      return await deleteApplication(applicationDeps, workspaceIdOf(ctx), req.id);
    },
  };
}
