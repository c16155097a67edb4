import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { WorkspaceService } from "../../gen/hookstream/v1/workspace_service_pb.ts";
import { WorkspaceSchema } from "../../gen/hookstream/v1/workspace_pb.ts";
import { durationFromMs, workspaceView } from "../domain/proto-views.ts";
import { getWorkspace, updateWorkspace } from "../domain/workspaces.ts";
import type { WorkspaceRecord } from "../domain/records.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

/** The workspace as WorkspaceService shows it: with its retention when it has its own. */
function view(ws: WorkspaceRecord): ReturnType<typeof workspaceView> {
  const base = workspaceView(ws);
  const ms = ws.payloadRetentionMs ?? 0;
  return create(WorkspaceSchema, { ...base, payloadRetention: ms > 0 ? durationFromMs(ms) : undefined });
}

/** WorkspaceService: the caller's own workspace (management token). */
export function createWorkspaceService(deps: ApiDeps): ServiceImpl<typeof WorkspaceService> {
  return {
    async getWorkspace(_req, ctx) {
      return { workspace: view(await getWorkspace(deps.workspaces, workspaceIdOf(ctx))) };
    },
    async updateWorkspace(req, ctx) {
      const d = req.workspace?.payloadRetention;
      const ms = d === undefined ? 0 : Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
      const ws = await updateWorkspace(
        deps.workspaces,
        workspaceIdOf(ctx),
        { name: req.workspace?.name ?? "", payloadRetentionMs: ms },
        req.updateMask?.paths ?? [],
      );
      return { workspace: view(ws) };
    },
  };
}
