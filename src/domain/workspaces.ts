import { MANAGEMENT_TOKEN_PREFIX, hashSecret, newSecret } from "./credentials.ts";
import { Violations, notFound } from "./errors.ts";
import { MAX_RETENTION_MS, MIN_RETENTION_MS } from "./retention.ts";
import { newId } from "./ids.ts";
import type { WorkspaceRecord } from "./records.ts";

/** Where workspaces are created, read and changed: the admin and workspace surfaces' port. */
export interface WorkspaceRepository {
  /** Stores a new workspace with the hash of its management token. */
  createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void>;
  /** Null when it does not exist. */
  getWorkspace(id: string): Promise<WorkspaceRecord | null>;
  /** Applies the present keys of the patch; null when it does not exist. */
  updateWorkspace(
    id: string,
    patch: Partial<Pick<WorkspaceRecord, "name" | "payloadRetentionMs">>,
  ): Promise<WorkspaceRecord | null>;
}

/** Creates a workspace and its management token (returned once, stored hashed). */
export async function createWorkspace(
  store: WorkspaceRepository,
  name: string,
): Promise<{ workspace: WorkspaceRecord; managementToken: string }> {
  const v = new Violations();
  if (name.trim() === "") v.add("name", "is required");
  else if (name.length > 200) v.add("name", "must be at most 200 characters");
  v.throwIfAny();
  const workspace: WorkspaceRecord = { id: newId("workspace"), name, createdAt: new Date() };
  const managementToken = newSecret(MANAGEMENT_TOKEN_PREFIX);
  await store.createWorkspace(workspace, hashSecret(managementToken));
  return { workspace, managementToken };
}

/** The fields UpdateWorkspace's mask may name. */
export const UPDATABLE_WORKSPACE_FIELDS = ["name", "payload_retention"] as const;

/** The caller's workspace. */
export async function getWorkspace(
  store: Pick<WorkspaceRepository, "getWorkspace">,
  id: string,
): Promise<WorkspaceRecord> {
  const ws = await store.getWorkspace(id);
  if (ws === null) throw notFound("workspace", id);
  return ws;
}

/**
 * Changes the workspace's name and/or payload retention (0: the installation's default), as
 * `maskPaths` names them (every updatable field when empty). Every bad field is reported at once.
 */
export async function updateWorkspace(
  store: Pick<WorkspaceRepository, "updateWorkspace">,
  id: string,
  input: { name: string; payloadRetentionMs: number },
  maskPaths: readonly string[],
): Promise<WorkspaceRecord> {
  const v = new Violations();
  const fields = new Set(maskPaths.length === 0 ? UPDATABLE_WORKSPACE_FIELDS : maskPaths);
  for (const f of fields) {
    if (!(UPDATABLE_WORKSPACE_FIELDS as readonly string[]).includes(f)) {
      v.add("update_mask", `${f} is not an updatable field (${UPDATABLE_WORKSPACE_FIELDS.join(", ")})`);
    }
  }
  const patch: Partial<Pick<WorkspaceRecord, "name" | "payloadRetentionMs">> = {};
  if (fields.has("name")) {
    if (input.name.trim() === "") v.add("workspace.name", "is required");
    else if (input.name.length > 200) v.add("workspace.name", "must be at most 200 characters");
    patch.name = input.name;
  }
  if (fields.has("payload_retention")) {
    const ms = input.payloadRetentionMs;
    if (!Number.isFinite(ms) || (ms !== 0 && (ms < MIN_RETENTION_MS || ms > MAX_RETENTION_MS))) {
      v.add("workspace.payload_retention", "must be unset (the default) or between 1h and 400d");
    }
    patch.payloadRetentionMs = ms;
  }
  v.throwIfAny();
  const ws = await store.updateWorkspace(id, patch);
  if (ws === null) throw notFound("workspace", id);
  return ws;
}
