import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate, type Duration } from "@bufbuild/protobuf/wkt";
import type { PortalService } from "../../gen/hookstream/v1/portal_service_pb.ts";
import { createPortalSession, exchangePortalCode, type PortalSessionDeps } from "../domain/portal-sessions.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

/** Milliseconds of a Duration; NaN when it is not a valid duration. */
function durationMs(d: Duration): number {
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  return d.nanos < 0 || d.nanos >= 1e9 ? Number.NaN : ms;
}

/**
 * PortalService: a management credential opens a session for an application; its one-time code
 * is exchanged (no credential: the code is the proof) for the session's token.
 */
export function createPortalService(deps: ApiDeps): ServiceImpl<typeof PortalService> {
  const portalDeps: PortalSessionDeps = {
    store: deps.portalSessions,
    applications: deps.applications,
    publicUrl: deps.publicUrl,
  };
  return {
    async createPortalSession(req, ctx) {
      const r = await createPortalSession(portalDeps, workspaceIdOf(ctx), {
        applicationId: req.applicationId,
        ttlMs: req.ttl === undefined ? undefined : durationMs(req.ttl),
      });
      return {
        code: r.code,
        url: r.url,
        codeExpireTime: timestampFromDate(r.session.codeExpiresAt),
        expireTime: timestampFromDate(r.session.expiresAt),
        sessionId: r.session.id,
      };
    },
    async exchangePortalCode(req) {
      const { session, token } = await exchangePortalCode(deps.portalSessions, req.code);
      return {
        token,
        expireTime: timestampFromDate(session.expiresAt),
        workspaceId: session.workspaceId,
        applicationId: session.applicationId,
      };
    },
  };
}
