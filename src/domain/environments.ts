import { DomainError, Violations, notFound } from "./errors.ts";
import { ID_PREFIX, newId } from "./ids.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type { EnvironmentRecord, PageQuery } from "./records.ts";
import { checkEventType, checkId, snakeCase } from "./validation.ts";

/**
 * Environments split a workspace into isolated parts ("production", "staging"): applications,
 * endpoints and messages live in exactly one, and a producer API key is bound to one, so it
 * reaches nothing outside it. Every workspace has a default environment whose id is derived
 * from the workspace id (`defaultEnvironmentId`), so the resources of a workspace created
 * before environments existed, and any request that names none, land there without a lookup.
 */

/** What deleting an environment found in it (nothing deleted unless all are zero). */
export interface EnvironmentContents {
  applications: number;
  endpoints: number;
  apiKeys: number;
}

/** The environment use cases' port. */
export interface EnvironmentRepository {
  /** Stores a new environment; false (nothing written) when the workspace already has its slug. */
  createEnvironment(env: EnvironmentRecord): Promise<boolean>;
  /** Null when missing or in another workspace. */
  getEnvironment(workspaceId: string, id: string): Promise<EnvironmentRecord | null>;
  /** By slug; null when none. */
  getEnvironmentBySlug(workspaceId: string, slug: string): Promise<EnvironmentRecord | null>;
  /** Oldest first (ascending id; the default environment of a workspace sorts with its creation). */
  listEnvironments(workspaceId: string, page: PageQuery): Promise<EnvironmentRecord[]>;
  /** Applies the patch and sets updatedAt; null when not found. */
  updateEnvironment(
    workspaceId: string,
    id: string,
    patch: EnvironmentPatch,
    at: Date,
  ): Promise<EnvironmentRecord | null>;
  /**
   * Deletes the environment if it holds no live application, endpoint or unrevoked API key
   * (counted in the deleting transaction, under a lock on the environment row); null when not
   * found, otherwise what it holds (all zero: deleted). Creating a resource does not lock the
   * row, so one created in the same instant as the deletion can end up naming the deleted
   * environment: it stays isolated (nothing else is in it), and new resources can no longer be
   * created there.
   */
  deleteEnvironment(workspaceId: string, id: string): Promise<EnvironmentContents | null>;
}

/** What resources that live in an environment need: resolving the one a request names. */
export type EnvironmentLookup = Pick<EnvironmentRepository, "getEnvironment">;

/** Partial update of an environment. */
export type EnvironmentPatch = Partial<Pick<EnvironmentRecord, "name" | "unpublishedEventTypes">>;

/** The slug of every workspace's default environment. */
export const DEFAULT_ENVIRONMENT_SLUG = "default";

/** The longest environment name. */
export const MAX_ENVIRONMENT_NAME = 256;

/** At most this many unpublished event types per environment. */
export const MAX_UNPUBLISHED_EVENT_TYPES = 500;

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** The id of a workspace's default environment: "env_" + the workspace id's own 26 characters. */
export function defaultEnvironmentId(workspaceId: string): string {
  return `${ID_PREFIX.environment}_${workspaceId.slice(ID_PREFIX.workspace.length + 1)}`;
}

/** The default environment a new workspace is created with (in the same transaction). */
export function defaultEnvironment(workspaceId: string, at: Date): EnvironmentRecord {
  return {
    id: defaultEnvironmentId(workspaceId),
    workspaceId,
    name: "Default",
    slug: DEFAULT_ENVIRONMENT_SLUG,
    unpublishedEventTypes: [],
    createdAt: at,
    updatedAt: at,
  };
}

/** Whether `env` is its workspace's default environment. */
export function isDefaultEnvironment(env: Pick<EnvironmentRecord, "id" | "workspaceId">): boolean {
  return env.id === defaultEnvironmentId(env.workspaceId);
}

/** Environment fields a producer sets. */
export interface EnvironmentInput {
  id: string;
  name: string;
  slug: string;
  unpublishedEventTypes: readonly string[];
}

/** The fields UpdateEnvironment's mask may name. */
export const UPDATABLE_ENVIRONMENT_FIELDS = ["name", "unpublished_event_types"] as const;
type UpdatableField = (typeof UPDATABLE_ENVIRONMENT_FIELDS)[number];

function checkSlug(v: Violations, field: string, slug: string): void {
  if (slug === "") v.add(field, "is required");
  else if (!SLUG.test(slug))
    v.add(field, 'must be 1 to 64 lower-case letters, digits and "-", starting with a letter or digit');
}

function checkFields(v: Violations, input: EnvironmentInput, fields: ReadonlySet<UpdatableField>): void {
  if (fields.has("name")) {
    if (input.name.trim() === "") v.add("environment.name", "is required");
    else if (input.name.length > MAX_ENVIRONMENT_NAME)
      v.add("environment.name", `must be at most ${MAX_ENVIRONMENT_NAME} characters`);
  }
  if (fields.has("unpublished_event_types")) {
    const types = input.unpublishedEventTypes;
    if (types.length > MAX_UNPUBLISHED_EVENT_TYPES)
      v.add("environment.unpublished_event_types", `must have at most ${MAX_UNPUBLISHED_EVENT_TYPES} entries`);
    else {
      const seen = new Set<string>();
      types.forEach((t, i) => {
        const field = `environment.unpublished_event_types[${i}]`;
        checkEventType(v, field, t);
        if (seen.has(t)) v.add(field, `repeats ${JSON.stringify(t)}`);
        seen.add(t);
      });
    }
  }
}

function slugTaken(slug: string): DomainError {
  return new DomainError(
    "already_exists",
    "ENVIRONMENT_SLUG_EXISTS",
    `environment slug ${JSON.stringify(slug)} exists`,
    { violations: [{ field: "environment.slug", description: "is already the slug of another environment" }] },
  );
}

/** Adds an environment; a slug already used in the workspace is already_exists. */
export async function createEnvironment(
  store: Pick<EnvironmentRepository, "createEnvironment">,
  workspaceId: string,
  input: EnvironmentInput | undefined,
): Promise<EnvironmentRecord> {
  const v = new Violations();
  if (!input) v.add("environment", "is required");
  else {
    checkFields(v, input, new Set(UPDATABLE_ENVIRONMENT_FIELDS));
    checkSlug(v, "environment.slug", input.slug);
  }
  v.throwIfAny();
  const given = input!;
  const now = new Date();
  const env: EnvironmentRecord = {
    id: newId("environment"),
    workspaceId,
    name: given.name,
    slug: given.slug,
    unpublishedEventTypes: [...given.unpublishedEventTypes],
    createdAt: now,
    updatedAt: now,
  };
  if (!(await store.createEnvironment(env))) throw slugTaken(given.slug);
  return env;
}

/** Returns an environment of the workspace by id, or by slug: exactly one of them. */
export async function getEnvironment(
  store: Pick<EnvironmentRepository, "getEnvironment" | "getEnvironmentBySlug">,
  workspaceId: string,
  req: { id: string; slug: string },
): Promise<EnvironmentRecord> {
  const v = new Violations();
  if (req.id === "" && req.slug === "") v.add("id", "is required (or slug)");
  else if (req.id !== "" && req.slug !== "") v.add("slug", "must be empty when id is given: name the environment once");
  else if (req.id !== "") checkId(v, "id", "environment", req.id);
  else checkSlug(v, "slug", req.slug);
  v.throwIfAny();
  const env =
    req.id !== ""
      ? await store.getEnvironment(workspaceId, req.id)
      : await store.getEnvironmentBySlug(workspaceId, req.slug);
  if (!env) throw notFound("environment", req.id || req.slug);
  return env;
}

/**
 * The environment a request names in `field` ("" for the workspace's default one): it must be
 * well formed and an environment of the workspace (not_found ENVIRONMENT_NOT_FOUND, with the
 * field, otherwise). Returns its id.
 */
export async function resolveEnvironmentId(
  lookup: EnvironmentLookup,
  workspaceId: string,
  id: string,
  field: string,
): Promise<string> {
  if (id === "") return defaultEnvironmentId(workspaceId);
  const v = new Violations();
  checkId(v, field, "environment", id);
  v.throwIfAny();
  if (id === defaultEnvironmentId(workspaceId)) return id;
  const env = await lookup.getEnvironment(workspaceId, id);
  if (!env) {
    throw new DomainError("not_found", "ENVIRONMENT_NOT_FOUND", `environment ${JSON.stringify(id)} not found`, {
      violations: [{ field, description: "is not an environment of this workspace" }],
    });
  }
  return env.id;
}

/** Checks an environment filter of a list request ("" for none). */
export function checkEnvironmentFilter(v: Violations, field: string, id: string): void {
  if (id !== "") checkId(v, field, "environment", id);
}

/** Lists environments, oldest first. */
export async function listEnvironments(
  store: Pick<EnvironmentRepository, "listEnvironments">,
  workspaceId: string,
  req: { pageSize: number; pageToken: string },
): Promise<{ items: EnvironmentRecord[]; nextPageToken: string }> {
  const limit = pageSize(req.pageSize);
  const afterId = decodePageToken(req.pageToken, "environments", null);
  const rows = await store.listEnvironments(workspaceId, { afterId, limit: limit + 1 });
  return pageOf(rows, limit, "environments", null);
}

/** Changes the fields named in `maskPaths` (all updatable fields when empty). */
export async function updateEnvironment(
  store: Pick<EnvironmentRepository, "updateEnvironment">,
  workspaceId: string,
  input: EnvironmentInput | undefined,
  maskPaths: readonly string[],
): Promise<EnvironmentRecord> {
  const v = new Violations();
  if (!input) v.add("environment", "is required");
  else checkId(v, "environment.id", "environment", input.id);
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths.map(snakeCase)) {
    if ((UPDATABLE_ENVIRONMENT_FIELDS as readonly string[]).includes(path)) fields.add(path as UpdatableField);
    else
      v.add(
        "update_mask",
        `${JSON.stringify(path)} is not an updatable field (${UPDATABLE_ENVIRONMENT_FIELDS.join(", ")})`,
      );
  }
  if (maskPaths.length === 0) for (const f of UPDATABLE_ENVIRONMENT_FIELDS) fields.add(f);
  if (input) checkFields(v, input, fields);
  v.throwIfAny();
  const given = input!;
  const patch: EnvironmentPatch = {};
  if (fields.has("name")) patch.name = given.name;
  if (fields.has("unpublished_event_types")) patch.unpublishedEventTypes = [...given.unpublishedEventTypes];
  const env = await store.updateEnvironment(workspaceId, given.id, patch, new Date());
  if (!env) throw notFound("environment", given.id);
  return env;
}

/** Deletes an empty environment other than the default one. */
export async function deleteEnvironment(
  store: Pick<EnvironmentRepository, "deleteEnvironment">,
  workspaceId: string,
  id: string,
): Promise<void> {
  const v = new Violations();
  checkId(v, "id", "environment", id);
  v.throwIfAny();
  if (id === defaultEnvironmentId(workspaceId)) {
    throw new DomainError(
      "failed_precondition",
      "DEFAULT_ENVIRONMENT",
      "the workspace's default environment cannot be deleted",
    );
  }
  const contents = await store.deleteEnvironment(workspaceId, id);
  if (!contents) throw notFound("environment", id);
  const held = Object.entries(contents).filter(([, n]) => n > 0);
  if (held.length > 0) {
    const what = held.map(([k, n]) => `${n} ${k === "apiKeys" ? "API key" : k.replace(/s$/, "")}${n === 1 ? "" : "s"}`);
    throw new DomainError(
      "failed_precondition",
      "ENVIRONMENT_NOT_EMPTY",
      `environment ${JSON.stringify(id)} still holds ${what.join(", ")}: delete them (or revoke the keys) first`,
    );
  }
}

/**
 * Refuses an event type the environment has not published (Trigger, TriggerBatch):
 * failed_precondition EVENT_TYPE_UNPUBLISHED on `field`.
 */
export function checkPublished(env: EnvironmentRecord | null, eventType: string, field: string): void {
  if (env === null || !env.unpublishedEventTypes.includes(eventType)) return;
  throw new DomainError(
    "failed_precondition",
    "EVENT_TYPE_UNPUBLISHED",
    `event type ${JSON.stringify(eventType)} is not published in environment ${JSON.stringify(env.slug)}`,
    { violations: [{ field, description: `is not published in environment ${JSON.stringify(env.slug)}` }] },
  );
}
