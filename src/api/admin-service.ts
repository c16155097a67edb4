import type { ServiceImpl } from "@connectrpc/connect";
import type { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { createWorkspace } from "../domain/workspaces.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceView } from "../domain/proto-views.ts";

/** AdminService: the operator's surface (operator token). */
export function createAdminService(deps: ApiDeps): ServiceImpl<typeof AdminService> {
  return {
    async createWorkspace(req) {
      const { workspace, managementToken } = await createWorkspace(deps.workspaces, req.name);
      return { workspace: workspaceView(workspace), managementToken };
    },
  };
}
