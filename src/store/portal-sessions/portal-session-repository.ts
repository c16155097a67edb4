import { LockMode } from "@mikro-orm/core";
import type { PortalExchange, PortalSessionRepository } from "../../domain/portal-sessions.ts";
import type { PortalSessionRecord } from "../../domain/records.ts";
import { Application } from "../applications/application.entity.ts";
import { DETACHED, type StoreContext } from "../store-context.ts";
import { PortalSession } from "./portal-session.entity.ts";

/** PortalSession row → record. */
export function portalSessionRecord(row: PortalSession): PortalSessionRecord {
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    applicationId: row.applicationId,
    codeHash: row.codeHash,
    tokenHash: row.tokenHash ?? null,
    codeExpiresAt: row.codeExpiresAt,
    expiresAt: row.expiresAt,
    exchangedAt: row.exchangedAt ?? null,
    createdAt: row.createdAt,
  };
}

/** The portal session repository, with the authenticator's token lookup. */
export interface PortalSessionStore extends PortalSessionRepository {
  findPortalSessionByTokenHash(tokenHash: string): Promise<PortalSessionRecord | null>;
}

/** Portal sessions on MikroORM (reference implementation, both databases; no hot path). */
export function createPortalSessionRepository(ctx: StoreContext): PortalSessionStore {
  return {
    async createPortalSession(session: PortalSessionRecord): Promise<boolean> {
      // The application row is share-locked, as for an endpoint created under it, so its
      // deletion (which locks it first and deletes its sessions) cannot miss this one.
      return ctx.tx(async (em) => {
        const app = await em.findOne(
          Application,
          { id: session.applicationId, workspaceId: session.workspaceId, deletedAt: null },
          { ...DETACHED, fields: ["id"], lockMode: ctx.lock(LockMode.PESSIMISTIC_READ) },
        );
        if (app === null) return false;
        await em.insert(PortalSession, { ...session });
        return true;
      });
    },

    async exchangePortalCode(codeHash: string, tokenHash: string, at: Date): Promise<PortalExchange> {
      return ctx.run(async (em) => {
        // One conditional UPDATE: whichever exchange's statement runs first sets exchanged_at;
        // every other one then matches no row (PostgreSQL re-checks the condition on the row
        // it waited for; SQLite runs one writer at a time).
        const won = await em.nativeUpdate(
          PortalSession,
          { codeHash, exchangedAt: null, codeExpiresAt: { $gt: at } },
          { tokenHash, exchangedAt: at },
        );
        const row = await em.findOne(PortalSession, { codeHash }, DETACHED);
        if (row === null) return { ok: false, why: "unknown" };
        if (won === 1) return { ok: true, session: portalSessionRecord(row) };
        return { ok: false, why: row.exchangedAt ? "used" : "expired" };
      });
    },

    async findPortalSessionByTokenHash(tokenHash: string): Promise<PortalSessionRecord | null> {
      const row = await ctx.run((em) => em.findOne(PortalSession, { tokenHash }, DETACHED));
      return row === null ? null : portalSessionRecord(row);
    },
  };
}
