import { DomainError, Violations, invalidArgument, notFound, type FieldViolation } from "./errors.ts";
import { newId } from "./ids.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.ts";
import { compilePayloadSchema, validatePayload } from "./payload-schema.ts";
import type { DeliveryRecord, EventTypeRecord, NewOutboxRecord, OutboxRecord } from "./records.ts";
import type { TtlCache } from "./ttl-cache.ts";
import { checkLength, snakeCase } from "./validation.ts";

/** Partial update of an event type (only the present keys change). */
export type EventTypePatch = Partial<Pick<EventTypeRecord, "description" | "schema" | "archived">>;

/** A page of event types: names strictly after `afterName`, ascending. */
export interface EventTypePageQuery {
  afterName: string | undefined;
  limit: number;
  includeArchived: boolean;
}

/** The event type use cases' port. */
export interface EventTypeRepository {
  /** Stores a new event type; false (nothing written) when the workspace already has the name. */
  createEventType(et: EventTypeRecord): Promise<boolean>;
  /** Null when missing or in another workspace. */
  getEventType(workspaceId: string, name: string): Promise<EventTypeRecord | null>;
  /** By name, ascending. */
  listEventTypes(workspaceId: string, page: EventTypePageQuery): Promise<EventTypeRecord[]>;
  /** Applies the patch and sets updatedAt; null when not found. */
  updateEventType(workspaceId: string, name: string, patch: EventTypePatch, at: Date): Promise<EventTypeRecord | null>;
  /**
   * Deletes the event type and cancels the workspace's non-final deliveries of that type (with
   * `reason`), writing the outbox rows `outbox` builds for each, in one transaction; null when
   * not found.
   */
  deleteEventType(
    workspaceId: string,
    name: string,
    at: Date,
    reason: string,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null>;
}

/** What Send and Trigger need of the event types. */
export type EventTypeLookup = Pick<EventTypeRepository, "getEventType">;

/** Why deliveries of a deleted event type were cancelled (their last_error). */
export const EVENT_TYPE_DELETED = "event type deleted";

/** The longest event type name. */
export const MAX_EVENT_TYPE_NAME = 128;

const NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * The operational event types (operational-events.ts): known in every workspace without being
 * created, so endpoints and subscriptions may name them; reserved, so no producer can create,
 * send or trigger one (only Hookstream produces them).
 */
export const OPERATIONAL_EVENT_TYPES = ["endpoint.disabled", "endpoint.enabled", "message.attempt.exhausted"] as const;

/** One of the operational event types. */
export type OperationalEventType = (typeof OPERATIONAL_EVENT_TYPES)[number];

/** Whether `name` is reserved for an operational event. */
export function isOperationalEventType(name: string): name is OperationalEventType {
  return (OPERATIONAL_EVENT_TYPES as readonly string[]).includes(name);
}

/** The violation of a producer naming a reserved type where only its own types may go. */
const RESERVED =
  "is reserved for Hookstream's operational events (endpoint.disabled, endpoint.enabled, message.attempt.exhausted)";

/** Event type fields a producer sets. `schema` is the JSON Schema as JSON text, or null for none. */
export interface EventTypeInput {
  name: string;
  description: string;
  schema: string | null;
  archived: boolean;
}

/** The fields UpdateEventType's mask may name. */
export const UPDATABLE_EVENT_TYPE_FIELDS = ["description", "schema", "archived"] as const;
type UpdatableField = (typeof UPDATABLE_EVENT_TYPE_FIELDS)[number];

/** What the event type use cases need. */
export interface EventTypeDeps {
  store: EventTypeRepository;
  relay: OutboxRelay;
  /** Event types by workspace + name as Send reads them (null: known not to exist). */
  cache?: TtlCache<EventTypeRecord | null> | undefined;
}

/** Cache key of an event type. */
export function eventTypeCacheKey(workspaceId: string, name: string): string {
  return `${workspaceId}/${name}`;
}

/** Checks an event type name: dot-separated segments of letters, digits, "_" and "-". */
export function checkEventTypeName(v: Violations, field: string, name: string): void {
  if (name === "") v.add(field, "is required");
  else if (name.length > MAX_EVENT_TYPE_NAME || !NAME.test(name))
    v.add(
      field,
      `must be at most ${MAX_EVENT_TYPE_NAME} characters: dot-separated segments of letters, digits, "_" and "-" (e.g. "order.paid")`,
    );
}

function checkSchema(v: Violations, field: string, schema: string | null): void {
  if (schema === null) return;
  const compiled = compilePayloadSchema(schema, field);
  if (!compiled.ok) v.add(compiled.violation.field, compiled.violation.description);
}

/** Registers an event type; its schema (if any) is compiled first, so a bad one is refused. */
export async function createEventType(
  deps: EventTypeDeps,
  workspaceId: string,
  input: EventTypeInput | undefined,
): Promise<EventTypeRecord> {
  if (!input) throw invalidArgument([{ field: "event_type", description: "is required" }]);
  const v = new Violations();
  checkEventTypeName(v, "event_type.name", input.name);
  if (isOperationalEventType(input.name)) v.add("event_type.name", RESERVED);
  checkLength(v, "event_type.description", input.description, 1000);
  checkSchema(v, "event_type.schema", input.schema);
  v.throwIfAny();
  const now = new Date();
  const record: EventTypeRecord = {
    id: newId("eventType"),
    workspaceId,
    name: input.name,
    description: input.description,
    schema: input.schema,
    archived: input.archived,
    createdAt: now,
    updatedAt: now,
  };
  if (!(await deps.store.createEventType(record))) {
    throw new DomainError("already_exists", "EVENT_TYPE_EXISTS", `event type ${JSON.stringify(input.name)} exists`, {
      violations: [{ field: "event_type.name", description: "is already an event type of this workspace" }],
    });
  }
  deps.cache?.delete(eventTypeCacheKey(workspaceId, input.name));
  return record;
}

/** Returns an event type of the workspace. */
export async function getEventType(
  store: EventTypeLookup,
  workspaceId: string,
  name: string,
  field = "name",
): Promise<EventTypeRecord> {
  const v = new Violations();
  checkEventTypeName(v, field, name);
  v.throwIfAny();
  const et = await store.getEventType(workspaceId, name);
  if (!et) throw notFound("event_type", name);
  return et;
}

/** Lists event types by name; archived ones only when asked for. */
export async function listEventTypes(
  store: Pick<EventTypeRepository, "listEventTypes">,
  workspaceId: string,
  req: { pageSize: number; pageToken: string; includeArchived: boolean },
): Promise<{ items: EventTypeRecord[]; nextPageToken: string }> {
  const limit = pageSize(req.pageSize);
  const filters = { includeArchived: req.includeArchived };
  const afterName = decodePageToken(req.pageToken, "event_types", filters);
  const rows = await store.listEventTypes(workspaceId, {
    afterName,
    limit: limit + 1,
    includeArchived: req.includeArchived,
  });
  if (rows.length <= limit) return { items: rows, nextPageToken: "" };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: encodePageToken("event_types", filters, items[items.length - 1]!.name) };
}

/** Changes the fields named in `maskPaths` (all updatable fields when empty). */
export async function updateEventType(
  deps: EventTypeDeps,
  workspaceId: string,
  input: EventTypeInput | undefined,
  maskPaths: readonly string[],
): Promise<EventTypeRecord> {
  const v = new Violations();
  if (!input) v.add("event_type", "is required");
  else checkEventTypeName(v, "event_type.name", input.name);
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths.map(snakeCase)) {
    if ((UPDATABLE_EVENT_TYPE_FIELDS as readonly string[]).includes(path)) fields.add(path as UpdatableField);
    else
      v.add(
        "update_mask",
        `${JSON.stringify(path)} is not an updatable field (${UPDATABLE_EVENT_TYPE_FIELDS.join(", ")})`,
      );
  }
  if (maskPaths.length === 0) for (const f of UPDATABLE_EVENT_TYPE_FIELDS) fields.add(f);
  if (input) {
    if (fields.has("description")) checkLength(v, "event_type.description", input.description, 1000);
    if (fields.has("schema")) checkSchema(v, "event_type.schema", input.schema);
  }
  v.throwIfAny();
  const given = input!;
  const patch: EventTypePatch = {};
  if (fields.has("description")) patch.description = given.description;
  if (fields.has("schema")) patch.schema = given.schema;
  if (fields.has("archived")) patch.archived = given.archived;
  deps.cache?.delete(eventTypeCacheKey(workspaceId, given.name));
  const et = await deps.store.updateEventType(workspaceId, given.name, patch, new Date());
  if (!et) throw notFound("event_type", given.name);
  return et;
}

/**
 * Deletes an event type; its pending deliveries are cancelled (announced on the status stream),
 * in the same transaction. Returns how many were cancelled.
 */
export async function deleteEventType(deps: EventTypeDeps, workspaceId: string, name: string): Promise<number> {
  const v = new Violations();
  checkEventTypeName(v, "name", name);
  v.throwIfAny();
  deps.cache?.delete(eventTypeCacheKey(workspaceId, name));
  const now = new Date();
  const result = await deps.store.deleteEventType(workspaceId, name, now, EVENT_TYPE_DELETED, (d) => [
    statusRow(d, null, now),
  ]);
  if (!result) throw notFound("event_type", name);
  await deps.relay.publishNow(result.outbox);
  return result.cancelled.length;
}

/** How a new message's event type is checked. */
export interface MessageEventTypeCheck {
  lookup: EventTypeLookup;
  cache?: TtlCache<EventTypeRecord | null> | undefined;
  /** Refuse a name that is not an event type of the workspace (Trigger) instead of allowing it (Send). */
  requireKnown: boolean;
  /** Request field of the event type name, for violations. */
  field: string;
}

/**
 * The event type rules of a new message, after its own fields passed validation: an archived
 * type is refused (failed_precondition, EVENT_TYPE_ARCHIVED); an unknown one is refused only
 * when `requireKnown` (not_found, EVENT_TYPE_NOT_FOUND); a payload of a type with a schema must
 * be JSON that matches it (invalid_argument, one violation per schema error naming its JSON
 * pointer, on `body.field`). Resolves to the type (null when unknown and allowed).
 */
export async function checkMessageEventType(
  check: MessageEventTypeCheck,
  workspaceId: string,
  name: string,
  body: { json: boolean; bytes: Uint8Array; field: string },
): Promise<EventTypeRecord | null> {
  if (isOperationalEventType(name)) throw invalidArgument([{ field: check.field, description: RESERVED }]);
  const key = eventTypeCacheKey(workspaceId, name);
  let et = check.cache?.get(key);
  if (et === undefined) {
    et = await check.lookup.getEventType(workspaceId, name);
    check.cache?.set(key, et);
  }
  if (et === null) {
    if (!check.requireKnown) return null;
    throw new DomainError("not_found", "EVENT_TYPE_NOT_FOUND", `event type ${JSON.stringify(name)} not found`, {
      violations: [
        { field: check.field, description: "is not an event type of this workspace; create it with CreateEventType" },
      ],
    });
  }
  if (et.archived) {
    throw new DomainError(
      "failed_precondition",
      "EVENT_TYPE_ARCHIVED",
      `event type ${JSON.stringify(name)} is archived; unarchive it to send messages of this type`,
      { violations: [{ field: check.field, description: "is archived" }] },
    );
  }
  if (et.schema !== null) {
    let violations: FieldViolation[];
    if (!body.json) {
      violations = [{ field: body.field, description: "must be JSON: its event type has a payload schema" }];
    } else {
      const compiled = compilePayloadSchema(et.schema, "schema");
      // It compiled when it was saved; failing now would be a bug, not the producer's fault.
      if (!compiled.ok) throw new Error(`stored schema of event type ${name} does not compile`);
      violations = validatePayload(compiled.schema, body.bytes, body.field);
    }
    if (violations.length > 0) {
      throw new DomainError(
        "invalid_argument",
        "PAYLOAD_SCHEMA_MISMATCH",
        `payload does not match the schema of event type ${JSON.stringify(name)}: ${violations
          .map((x) => x.description)
          .join("; ")}`,
        { violations },
      );
    }
  }
  return et;
}
