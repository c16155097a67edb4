import type { ServiceImpl } from "@connectrpc/connect";
import type { Subscription } from "../../gen/hookstream/v1/subscription_pb.ts";
import type { SubscriptionService } from "../../gen/hookstream/v1/subscription_service_pb.ts";
import { subscriptionView } from "../domain/proto-views.ts";
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  updateSubscription,
  type SubscriptionDeps,
  type SubscriptionInput,
} from "../domain/subscriptions.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

function subscriptionInput(s: Subscription | undefined): SubscriptionInput | undefined {
  if (!s) return undefined;
  return { id: s.id, endpointId: s.endpointId, eventTypes: s.eventTypes, enabled: s.enabled, filter: s.filter };
}

/** SubscriptionService: which event types reach which endpoints through Trigger (management token). */
export function createSubscriptionService(deps: ApiDeps): ServiceImpl<typeof SubscriptionService> {
  const subscriptionDeps: SubscriptionDeps = {
    store: deps.subscriptions,
    endpoints: deps.endpoints,
    eventTypes: deps.eventTypes,
  };
  return {
    async createSubscription(req, ctx) {
      const s = await createSubscription(subscriptionDeps, workspaceIdOf(ctx), subscriptionInput(req.subscription));
      return { subscription: subscriptionView(s) };
    },
    async getSubscription(req, ctx) {
      return { subscription: subscriptionView(await getSubscription(deps.subscriptions, workspaceIdOf(ctx), req.id)) };
    },
    async listSubscriptions(req, ctx) {
      const page = await listSubscriptions(deps.subscriptions, workspaceIdOf(ctx), req);
      return { subscriptions: page.items.map(subscriptionView), nextPageToken: page.nextPageToken };
    },
    async updateSubscription(req, ctx) {
      const s = await updateSubscription(
        subscriptionDeps,
        workspaceIdOf(ctx),
        subscriptionInput(req.subscription),
        req.updateMask?.paths ?? [],
      );
      return { subscription: subscriptionView(s) };
    },
    async deleteSubscription(req, ctx) {
      await deleteSubscription(deps.subscriptions, workspaceIdOf(ctx), req.id);
      return {};
    },
  };
}
