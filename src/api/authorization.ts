/**
 * Authorization, declared once per RPC and enforced once: each method of the schema names the
 * credentials it accepts (`option (hookstream.v1.auth)` in `proto/hookstream/v1/auth.proto`);
 * the interceptor authenticates the `Authorization` header against that policy before the
 * handler runs (before the first message of a stream) and hands the principal to the handler
 * through a context value. A method without a policy is refused to everyone: fail closed.
 */
import { getOption, hasOption, type DescMethod } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { auth, Credential } from "../../gen/hookstream/v1/auth_pb.ts";
import type { Authenticator, Principal, PrincipalKind } from "../domain/auth.ts";
import { defaultEnvironmentId } from "../domain/environments.ts";
import { DomainError } from "../domain/errors.ts";
import { workspaceScope, type Scope } from "../domain/scope.ts";

// What each credential of the schema is to the Authenticator; undefined: not served yet.
const kindOfCredential: Readonly<Record<Credential, PrincipalKind | undefined>> = {
  [Credential.UNSPECIFIED]: undefined,
  [Credential.OPERATOR]: "admin",
  [Credential.MANAGEMENT]: "management",
  [Credential.API_KEY]: "api_key",
  [Credential.PORTAL_SESSION]: "portal",
  [Credential.NONE]: "anonymous",
};

const principalKey = createContextKey<Principal | undefined>(undefined, { description: "hookstream principal" });

/**
 * The principal kinds `method` accepts, from its declared `AuthPolicy`; undefined when it
 * declares none (or only credentials this server cannot check), which means nobody may call it.
 */
export function acceptedKinds(method: DescMethod): readonly PrincipalKind[] | undefined {
  if (!hasOption(method, auth)) return undefined;
  const kinds = [...new Set(getOption(method, auth).accepts.map((c) => kindOfCredential[c]))].filter(
    (k): k is PrincipalKind => k !== undefined,
  );
  return kinds.length > 0 ? kinds : undefined;
}

/**
 * Creates the interceptor that authorizes every call by its method's declared policy and puts
 * the principal in the call's context values. Place it inside the error interceptor, so its
 * DomainErrors (MISSING_CREDENTIALS, WRONG_CREDENTIAL_KIND, NO_AUTH_POLICY, …) get mapped.
 */
export function createAuthorizationInterceptor(authenticator: Authenticator): Interceptor {
  // getOption decodes the option on every read; a method's policy never changes.
  const policies = new WeakMap<DescMethod, readonly PrincipalKind[] | undefined>();
  const policyOf = (method: DescMethod): readonly PrincipalKind[] | undefined => {
    if (!policies.has(method)) policies.set(method, acceptedKinds(method));
    return policies.get(method);
  };
  return (next) => async (req) => {
    const accepted = policyOf(req.method);
    if (accepted === undefined) {
      throw new DomainError(
        "permission_denied",
        "NO_AUTH_POLICY",
        `${req.method.parent.typeName}/${req.method.name} declares no authorization policy, so nobody may call it`,
      );
    }
    // A public RPC (CREDENTIAL_NONE) authenticates by its request; any header is ignored.
    const principal: Principal = accepted.includes("anonymous")
      ? { kind: "anonymous" }
      : await authenticator.authenticate(req.header.get("authorization"), accepted);
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

/** The authenticated caller of this RPC, as the authorization interceptor resolved it. */
export function principalOf(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  // Only a server built without the authorization interceptor gets here: refuse, never guess.
  if (principal === undefined) throw new DomainError("internal", "NO_PRINCIPAL", "the call was not authorized");
  return principal;
}

/**
 * The workspace of this RPC's caller: the only source of a workspace id for workspace RPCs.
 * Only for workspace credentials: a portal session's reach is its scope (`scopeOf`), never the
 * whole workspace, so it is refused here (fail closed).
 */
export function workspaceIdOf(ctx: HandlerContext): string {
  const principal = principalOf(ctx);
  if (principal.kind === "management" || principal.kind === "api_key") return principal.workspaceId;
  throw new DomainError("permission_denied", "WRONG_CREDENTIAL_KIND", "this call needs a workspace credential");
}

/**
 * What this RPC's caller may reach: its whole workspace for a management credential, its own
 * environment for a producer API key, one application for a portal session. The use cases
 * apply it (src/domain/scope.ts); handlers only pass it on.
 */
export function scopeOf(ctx: HandlerContext): Scope {
  const principal = principalOf(ctx);
  if (principal.kind === "portal")
    return { workspaceId: principal.workspaceId, applicationId: principal.applicationId, environmentId: null };
  if (principal.kind === "api_key")
    return {
      workspaceId: principal.workspaceId,
      applicationId: null,
      environmentId: principal.key.environmentId ?? defaultEnvironmentId(principal.workspaceId),
    };
  return workspaceScope(workspaceIdOf(ctx));
}
