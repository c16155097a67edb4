import { defaultEnvironmentId } from "./environments.ts";
import type { EndpointRecord } from "./records.ts";

/**
 * What a caller may reach inside its workspace: the whole workspace (management token and
 * management-scoped keys), one environment (a producer key) or one application's share of it
 * (a portal session). The use cases that read or change endpoints, messages, deliveries and
 * attempts take a Scope and apply it themselves, so access is decided in one place rather than
 * by each handler; whatever lies outside the scope is not_found, never "forbidden", so its
 * existence is not revealed.
 */
export interface Scope {
  readonly workspaceId: string;
  /** Only this application's endpoints (and their deliveries); null: the whole workspace. */
  readonly applicationId: string | null;
  /**
   * Only this environment's endpoints and messages (a producer key's environment); null: every
   * environment of the workspace.
   */
  readonly environmentId: string | null;
}

/** The scope of a workspace credential: everything in the workspace. */
export function workspaceScope(workspaceId: string): Scope {
  return { workspaceId, applicationId: null, environmentId: null };
}

/** The environment a resource of the workspace lives in (rows older than environments: the default one). */
export function environmentOf(r: { workspaceId: string; environmentId?: string | null | undefined }): string {
  return r.environmentId ?? defaultEnvironmentId(r.workspaceId);
}

/** Whether a message (or anything else that lives in an environment) lies within the scope's environment. */
export function inScopeEnvironment(
  scope: Scope,
  r: { workspaceId: string; environmentId?: string | null | undefined },
): boolean {
  return (
    r.workspaceId === scope.workspaceId && (scope.environmentId === null || environmentOf(r) === scope.environmentId)
  );
}

/** Whether an endpoint of the scope's workspace lies within the scope. */
export function endpointInScope(scope: Scope, ep: EndpointRecord): boolean {
  return inScopeEnvironment(scope, ep) && (scope.applicationId === null || ep.applicationId === scope.applicationId);
}

/**
 * The environment a list is limited to: the request's filter ("" for none) within the scope.
 * Undefined: no environment filter; null: nothing can match (a filter naming another
 * environment than the scope's).
 */
export function environmentFilterOf(scope: Scope, requested: string): string | undefined | null {
  if (scope.environmentId === null) return requested === "" ? undefined : requested;
  return requested === "" || requested === scope.environmentId ? scope.environmentId : null;
}

/**
 * The application a list is limited to: the request's filter ("" for none) within the scope.
 * Undefined: no application filter; null: nothing can match (a filter naming another
 * application than the scope's).
 */
export function applicationFilterOf(scope: Scope, requested: string): string | undefined | null {
  if (scope.applicationId === null) return requested === "" ? undefined : requested;
  return requested === "" || requested === scope.applicationId ? scope.applicationId : null;
}
