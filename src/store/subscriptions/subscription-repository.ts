import { LockMode } from "@mikro-orm/core";
import type { SubscriptionRecord, PageQuery } from "../../domain/records.ts";
import type { SubscriptionPatch, SubscriptionRepository } from "../../domain/subscriptions.ts";
import type { TriggerScope, TriggerTarget, TriggerTargets } from "../../domain/triggers.ts";
import { Endpoint } from "../endpoints/endpoint.entity.ts";
import { endpointRecord } from "../record-mappers.ts";
import { DETACHED, inEnvironment, keyset, limitOf, type Em, type StoreContext } from "../store-context.ts";
import { Subscription } from "./subscription.entity.ts";

/** Subscription row → record. */
export function subscriptionRecord(row: Subscription): SubscriptionRecord {
  const types: unknown = typeof row.eventTypes === "string" ? JSON.parse(row.eventTypes) : row.eventTypes;
  return {
    id: row.id,
    workspaceId: row.workspaceId,
    endpointId: row.endpointId,
    eventTypes: Array.isArray(types) ? types.filter((t): t is string => typeof t === "string") : [],
    enabled: Boolean(row.enabled),
    filter: row.filter,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/**
 * Trigger's targets read on `em` (the caller's transaction): two keyed reads, the scope's live
 * endpoints on the (workspace_id, id) index, then their subscriptions on (workspace_id,
 * endpoint_id). Disabled endpoints are targets too: their deliveries are held by the worker until
 * they are enabled again, so nothing is silently dropped while an endpoint is paused.
 */
export async function triggerTargetsIn(em: Em, scope: TriggerScope): Promise<TriggerTarget[]> {
  const endpoints = await em.find(
    Endpoint,
    {
      workspaceId: scope.workspaceId,
      deletedAt: null,
      ...(scope.applicationId === null || scope.applicationId === undefined
        ? {}
        : { applicationId: scope.applicationId }),
      ...inEnvironment(scope.workspaceId, scope.environmentId),
    },
    { ...DETACHED, orderBy: { id: "asc" } },
  );
  const routed = endpoints
    .map(endpointRecord)
    .filter((e) => (e.eventTypes ?? []).length === 0 || (e.eventTypes ?? []).includes(scope.eventType));
  if (routed.length === 0) return [];
  const subscriptions = await em.find(
    Subscription,
    { workspaceId: scope.workspaceId, endpointId: { $in: routed.map((e) => e.id) } },
    { ...DETACHED, orderBy: { id: "asc" } },
  );
  const byEndpoint = new Map<string, SubscriptionRecord[]>();
  for (const s of subscriptions.map(subscriptionRecord)) {
    byEndpoint.set(s.endpointId, [...(byEndpoint.get(s.endpointId) ?? []), s]);
  }
  return routed.map((endpoint) => ({ endpoint, subscriptions: byEndpoint.get(endpoint.id) ?? [] }));
}

/** Subscriptions on MikroORM (reference implementation, both databases). */
export interface SubscriptionStore extends SubscriptionRepository, TriggerTargets {}

/**
 * Creates the subscription repository and Trigger's target lookup. Deleting an endpoint deletes
 * its subscriptions in the same transaction (endpoint-repository.ts), so none is left dangling.
 */
export function createSubscriptionRepository(ctx: StoreContext): SubscriptionStore {
  return {
    async createSubscription(s: SubscriptionRecord): Promise<void> {
      await ctx.run((em) => em.insert(Subscription, { ...s }));
    },

    async getSubscription(workspaceId: string, id: string): Promise<SubscriptionRecord | null> {
      const row = await ctx.run((em) => em.findOne(Subscription, { id, workspaceId }, DETACHED));
      return row === null ? null : subscriptionRecord(row);
    },

    async listSubscriptions(
      workspaceId: string,
      endpointId: string | undefined,
      page: PageQuery,
    ): Promise<SubscriptionRecord[]> {
      const rows = await ctx.run((em) =>
        em.find(
          Subscription,
          {
            workspaceId,
            ...(endpointId === undefined ? {} : { endpointId }),
            ...keyset("desc", page.afterId),
          },
          { ...DETACHED, orderBy: { id: "desc" }, limit: limitOf(page) },
        ),
      );
      return rows.map(subscriptionRecord);
    },

    async updateSubscription(
      workspaceId: string,
      id: string,
      patch: SubscriptionPatch,
      at: Date,
    ): Promise<SubscriptionRecord | null> {
      return ctx.tx(async (em) => {
        const row = await em.findOne(
          Subscription,
          { id, workspaceId },
          { ...DETACHED, lockMode: ctx.lock(LockMode.PESSIMISTIC_WRITE) },
        );
        if (row === null) return null;
        const changes: SubscriptionPatch & { updatedAt: Date } = { updatedAt: at };
        if (patch.eventTypes !== undefined) changes.eventTypes = patch.eventTypes;
        if (patch.enabled !== undefined) changes.enabled = patch.enabled;
        if (patch.filter !== undefined) changes.filter = patch.filter;
        await em.nativeUpdate(Subscription, { id, workspaceId }, changes);
        return { ...subscriptionRecord(row), ...changes };
      });
    },

    async deleteSubscription(workspaceId: string, id: string): Promise<boolean> {
      return (await ctx.run((em) => em.nativeDelete(Subscription, { id, workspaceId }))) > 0;
    },

    async findTriggerTargets(scope: TriggerScope): Promise<TriggerTarget[]> {
      // One snapshot for both reads.
      return ctx.tx((em) => triggerTargetsIn(em, scope));
    },
  };
}
