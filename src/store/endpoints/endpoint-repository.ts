import { LockMode, type EntityData } from "@mikro-orm/core";
import type { EndpointPatch, EndpointRepository } from "../../domain/endpoints.ts";
import type {
  DeliveryRecord,
  EndpointHealthState,
  EndpointRecord,
  RecentOutcomes,
  NewOutboxRecord,
  OutboxRecord,
  PageQuery,
} from "../../domain/records.ts";
import type { EndpointSecretStore, StoredEndpointSecrets } from "../../domain/secret-resealing.ts";
import { Delivery } from "../deliveries/delivery.entity.ts";
import { NON_FINAL, cancelledDelivery } from "../deliveries/delivery-states.ts";
import { deliveryRecord, endpointRecord } from "../record-mappers.ts";
import { DETACHED, keyset, limitOf, type Em, type StoreContext } from "../store-context.ts";
import { Application } from "../applications/application.entity.ts";
import { unitOfWork } from "../unit-of-work.ts";
import { endpointDisabledEvent, endpointEnabledEvent } from "../../domain/operational-events.ts";
import { writeOperationalEvent } from "../operational/operational-event-writer.ts";
import { Subscription } from "../subscriptions/subscription.entity.ts";
import { Endpoint } from "./endpoint.entity.ts";

const ENDPOINT_DELETED = "endpoint deleted";

/** The reason endpoint.disabled gives for an UpdateEndpoint that disabled the endpoint. */
export const MANUAL_DISABLE = "disabled by UpdateEndpoint";

/**
 * Inside a transaction: marks the workspace's live endpoints `ids` deleted, removes their
 * subscriptions and cancels their non-final deliveries (with `reason`); returns the cancelled
 * deliveries. What DeleteEndpoint and DeleteApplication share.
 */
export async function deleteEndpointsIn(
  ctx: StoreContext,
  em: Em,
  workspaceId: string,
  ids: readonly string[],
  at: Date,
  reason: string,
): Promise<DeliveryRecord[]> {
  if (ids.length === 0) return [];
  await em.nativeUpdate(
    Endpoint,
    { id: { $in: [...ids] }, workspaceId, deletedAt: null },
    { deletedAt: at, updatedAt: at },
  );
  // Their subscriptions go with them: they could only ever route to a deleted endpoint.
  await em.nativeDelete(Subscription, { workspaceId, endpointId: { $in: [...ids] } });
  // Locked so a worker recording an attempt cannot finalise a row we are about to cancel.
  const open = await em.find(
    Delivery,
    { workspaceId, endpointId: { $in: [...ids] }, status: { $in: NON_FINAL } },
    { ...DETACHED, orderBy: { id: "asc" }, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
  );
  const cancelled = open.map((row) => cancelledDelivery(deliveryRecord(row), reason, at));
  if (cancelled.length > 0) {
    await em.nativeUpdate(
      Delivery,
      { id: { $in: cancelled.map((d) => d.id) } },
      { status: "cancelled", nextAttemptAt: null, lastError: reason, updatedAt: at },
    );
  }
  return cancelled;
}

/**
 * Endpoints on MikroORM (reference implementation, both databases; Send reads them through the
 * API server's endpoint cache, so no dialect override is needed).
 */
export function createEndpointRepository(ctx: StoreContext): EndpointRepository & EndpointSecretStore {
  return {
    async listEndpointSecrets(afterId: string | null, limit: number): Promise<StoredEndpointSecrets[]> {
      const rows = await ctx.run((em) =>
        em.find(Endpoint, afterId === null ? {} : { id: { $gt: afterId } }, {
          ...DETACHED,
          orderBy: { id: "asc" },
          limit,
          fields: ["id", "secret", "previousSecret", "clientKey"],
        }),
      );
      return rows.map((r) => ({
        id: r.id,
        secret: r.secret,
        previousSecret: r.previousSecret ?? null,
        clientKey: r.clientKey ?? null,
      }));
    },

    async replaceEndpointSecrets(expected: StoredEndpointSecrets, next: StoredEndpointSecrets): Promise<boolean> {
      const changed = await ctx.run((em) =>
        em.nativeUpdate(
          Endpoint,
          {
            id: expected.id,
            secret: expected.secret,
            previousSecret: expected.previousSecret,
            clientKey: expected.clientKey,
          },
          { secret: next.secret, previousSecret: next.previousSecret, clientKey: next.clientKey },
        ),
      );
      return changed === 1;
    },

    async createEndpoint(ep: EndpointRecord): Promise<boolean> {
      const applicationId = ep.applicationId ?? null;
      const insert = (em: Em): Promise<unknown> =>
        em.insert(Endpoint, {
          ...ep,
          asyncAck: ep.asyncAck ?? false,
          ordered: ep.ordered ?? false,
          retryPolicy: ep.retryPolicy ?? null,
          health: ep.health ?? null,
          type: ep.type ?? "webhook",
          eventTypes: [...(ep.eventTypes ?? [])],
          filter: ep.filter ?? "",
          publicKey: ep.publicKey ?? null,
          previousPublicKey: ep.previousPublicKey ?? null,
          clientCertificatePem: ep.clientCertificatePem ?? null,
          clientKey: ep.clientKey ?? null,
          rateLimit: ep.rateLimit ?? 0,
          rateLimitBurst: ep.rateLimitBurst ?? 0,
          applicationId,
          deletedAt: null,
        });
      if (applicationId === null) {
        await ctx.run(insert);
        return true;
      }
      // The application row is share-locked (PostgreSQL; SQLite runs one writer at a time), so
      // its deletion, which locks it first, cannot miss this endpoint.
      return ctx.tx(async (em) => {
        const app = await em.findOne(
          Application,
          { id: applicationId, workspaceId: ep.workspaceId, deletedAt: null },
          { ...DETACHED, fields: ["id"], lockMode: ctx.lock(LockMode.PESSIMISTIC_READ) },
        );
        if (app === null) return false;
        await insert(em);
        return true;
      });
    },

    async getEndpoint(workspaceId: string, id: string): Promise<EndpointRecord | null> {
      const row = await ctx.run((em) => em.findOne(Endpoint, { id, workspaceId, deletedAt: null }, DETACHED));
      return row === null ? null : endpointRecord(row);
    },

    async recentOutcomes(workspaceId: string, id: string, limit: number): Promise<RecentOutcomes> {
      // The endpoint's latest deliveries that have an attempt outcome, on the
      // (workspace_id, endpoint_id, id) index.
      const rows = await ctx.run((em) =>
        em.find(
          Delivery,
          {
            workspaceId,
            endpointId: id,
            attemptCount: { $gt: 0 },
            status: { $in: ["succeeded", "failed", "pending_retry"] },
          },
          { ...DETACHED, fields: ["id", "status"], orderBy: { id: "desc" }, limit },
        ),
      );
      return { succeeded: rows.filter((r) => r.status === "succeeded").length, total: rows.length };
    },

    async listEndpoints(
      workspaceId: string,
      page: PageQuery,
      applicationId?: string,
      environmentId?: string,
    ): Promise<EndpointRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Endpoint,
          {
            workspaceId,
            deletedAt: null,
            ...(applicationId === undefined ? {} : { applicationId }),
            ...(environmentId === undefined ? {} : { environmentId }),
            ...keyset("desc", page.afterId),
          },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(endpointRecord);
    },

    async updateEndpoint(
      workspaceId: string,
      id: string,
      update: EndpointPatch | ((current: EndpointRecord) => EndpointPatch),
      at: Date,
      emitted?: DeliveryRecord[],
    ): Promise<EndpointRecord | null> {
      const done = await ctx.tx(async (em) => {
        const where = { id, workspaceId, deletedAt: null };
        const row = await em.findOne(Endpoint, where, { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) });
        if (row === null) return null;
        const patch = typeof update === "function" ? update(endpointRecord(row)) : update;
        const changes: EndpointPatch & { updatedAt: Date; health?: EndpointHealthState } = { updatedAt: at };
        // Enabling a disabled endpoint gives it a fresh start: the run of failures that
        // disabled it no longer counts towards disabling it again.
        if (patch.enabled === true && !row.enabled && row.health) {
          changes.health = {
            ...row.health,
            consecutiveFailures: 0,
            failingSinceMs: null,
            disabledReason: "",
            disabledAtMs: null,
          };
        }
        for (const [key, value] of Object.entries(patch) as [keyof EndpointPatch, unknown][]) {
          if (value !== undefined) Object.assign(changes, { [key]: value });
        }
        // Only defined values are in `changes` (see the loop), which EntityData cannot express.
        await em.nativeUpdate(Endpoint, where, changes as EntityData<Endpoint>);
        // Enabled again: its held deliveries become due now (the dispatcher queues them). The
        // endpoint row stays locked until commit, so no worker can hold another one meanwhile.
        if (patch.enabled === true && !row.enabled) {
          await em.nativeUpdate(
            Delivery,
            { workspaceId, endpointId: id, status: "held" },
            { status: "scheduled", nextAttemptAt: at, lastError: "", updatedAt: at },
          );
        }
        // A manual enable or disable announces itself in the same transaction.
        const toggled = patch.enabled !== undefined && patch.enabled !== Boolean(row.enabled);
        const announced = !toggled
          ? null
          : patch.enabled === true
            ? endpointEnabledEvent({ id, workspaceId }, at)
            : endpointDisabledEvent({ id, workspaceId }, "manual", MANUAL_DISABLE, null, at);
        const operational = announced === null ? [] : await writeOperationalEvent(em, announced);
        return { endpoint: { ...endpointRecord(row), ...changes }, operational };
      });
      if (done === null) return null;
      emitted?.push(...done.operational);
      return done.endpoint;
    },

    async deleteEndpoint(
      workspaceId: string,
      id: string,
      at: Date,
      outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
    ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null> {
      const done = await unitOfWork(ctx, async (em) => {
        const deleted = await em.nativeUpdate(
          Endpoint,
          { id, workspaceId, deletedAt: null },
          { deletedAt: at, updatedAt: at },
        );
        if (deleted === 0) return null;
        const cancelled = await deleteEndpointsIn(ctx, em, workspaceId, [id], at, ENDPOINT_DELETED);
        return { value: cancelled, outbox: cancelled.flatMap(outbox) };
      });
      return done === null ? null : { cancelled: done.value, outbox: done.outbox };
    },
  };
}
