import type { ServiceImpl } from "@connectrpc/connect";
import type { EventType } from "../../gen/hookstream/v1/event_type_pb.ts";
import type { EventTypeService } from "../../gen/hookstream/v1/event_type_service_pb.ts";
import {
  createEventType,
  deleteEventType,
  getEventType,
  listEventTypes,
  updateEventType,
  type EventTypeDeps,
  type EventTypeInput,
} from "../domain/event-types.ts";
import { eventTypeView } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

function eventTypeInput(e: EventType | undefined): EventTypeInput | undefined {
  if (!e) return undefined;
  return {
    name: e.name,
    description: e.description,
    schema: e.schema === undefined ? null : JSON.stringify(e.schema),
    archived: e.archived,
  };
}

/** EventTypeService: event type CRUD (management token). */
export function createEventTypeService(deps: ApiDeps): ServiceImpl<typeof EventTypeService> {
  const eventTypeDeps: EventTypeDeps = { store: deps.eventTypes, relay: deps.relay, cache: deps.eventTypeCache };
  return {
    async createEventType(req, ctx) {
      const et = await createEventType(eventTypeDeps, workspaceIdOf(ctx), eventTypeInput(req.eventType));
      return { eventType: eventTypeView(et) };
    },
    async getEventType(req, ctx) {
      return { eventType: eventTypeView(await getEventType(deps.eventTypes, workspaceIdOf(ctx), req.name)) };
    },
    async listEventTypes(req, ctx) {
      const page = await listEventTypes(deps.eventTypes, workspaceIdOf(ctx), req);
      return { eventTypes: page.items.map(eventTypeView), nextPageToken: page.nextPageToken };
    },
    async updateEventType(req, ctx) {
      const et = await updateEventType(
        eventTypeDeps,
        workspaceIdOf(ctx),
        eventTypeInput(req.eventType),
        req.updateMask?.paths ?? [],
      );
      return { eventType: eventTypeView(et) };
    },
    async deleteEventType(req, ctx) {
      return { cancelledDeliveries: await deleteEventType(eventTypeDeps, workspaceIdOf(ctx), req.name) };
    },
  };
}
