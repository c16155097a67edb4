import { MANAGEMENT_TOKEN_PREFIX, hashSecret, newSecret } from "./credentials.ts";
import { Violations } from "./errors.ts";
import { newId } from "./ids.ts";
import type { WorkspaceRecord } from "./records.ts";

/** Where workspaces are created: the admin surface's port. */
export interface WorkspaceRepository {
  /** Stores a new workspace with the hash of its management token. */
  createWorkspace(ws: WorkspaceRecord, managementTokenHash: string): Promise<void>;
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
