import { DomainError, Violations, invalidArgument, notFound } from "./errors.ts";
import { checkEnvironmentFilter, resolveEnvironmentId, type EnvironmentLookup } from "./environments.ts";
import { newId } from "./ids.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type {
  ApplicationRecord,
  DeliveryRecord,
  EndpointRecord,
  NewOutboxRecord,
  OutboxRecord,
  PageQuery,
} from "./records.ts";
import { endpointCacheKey } from "./endpoints.ts";
import type { TtlCache } from "./ttl-cache.ts";
import { checkId, checkStringMap, snakeCase } from "./validation.ts";

/** Partial update of an application (only the present keys change). */
export type ApplicationPatch = Partial<Pick<ApplicationRecord, "name" | "uid" | "metadata">>;

/** What deleting an application did, in its one transaction. */
export interface DeletedApplication {
  /** Ids of the endpoints deleted with it. */
  endpointIds: string[];
  cancelled: DeliveryRecord[];
  outbox: OutboxRecord[];
}

/** The application use cases' port. */
export interface ApplicationRepository {
  /** Stores a new application; false (nothing written) when the workspace already has its uid. */
  createApplication(app: ApplicationRecord): Promise<boolean>;
  /** Null when missing, deleted, or in another workspace. */
  getApplication(workspaceId: string, id: string): Promise<ApplicationRecord | null>;
  /** By external id; null when none (or in another workspace). */
  getApplicationByUid(workspaceId: string, uid: string): Promise<ApplicationRecord | null>;
  /** Newest first, deleted ones excluded; only the environment's when `environmentId` is given. */
  listApplications(workspaceId: string, page: PageQuery, environmentId?: string): Promise<ApplicationRecord[]>;
  /**
   * Applies the patch and sets updatedAt; null when not found, "uid_taken" (nothing written)
   * when the new uid is another application's.
   */
  updateApplication(
    workspaceId: string,
    id: string,
    patch: ApplicationPatch,
    at: Date,
  ): Promise<ApplicationRecord | null | "uid_taken">;
  /**
   * Deletes the application (its uid is free again), deletes its live endpoints as
   * DeleteEndpoint does (their subscriptions go, their non-final deliveries are cancelled with
   * `reason`, with the outbox rows `outbox` builds) and its portal sessions, in one
   * transaction; null when not found.
   */
  deleteApplication(
    workspaceId: string,
    id: string,
    at: Date,
    reason: string,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<DeletedApplication | null>;
}

/** What endpoint creation, Trigger and portal sessions need of the applications. */
export type ApplicationLookup = Pick<ApplicationRepository, "getApplication">;

/** Why deliveries to a deleted application's endpoints were cancelled (their last_error). */
export const APPLICATION_DELETED = "application deleted";

/** The longest application name and uid. */
export const MAX_APPLICATION_NAME = 256;

const UID = /^[A-Za-z0-9._\-:|@]{1,256}$/;

/** Application fields a producer sets; uid "" is none. */
export interface ApplicationInput {
  id: string;
  name: string;
  uid: string;
  metadata: Record<string, string>;
  /** The environment to create it in; "" (or absent): the workspace's default one. Immutable. */
  environmentId?: string | undefined;
}

/** The fields UpdateApplication's mask may name. */
export const UPDATABLE_APPLICATION_FIELDS = ["name", "uid", "metadata"] as const;
type UpdatableField = (typeof UPDATABLE_APPLICATION_FIELDS)[number];

/** What the application use cases need. */
export interface ApplicationDeps {
  store: ApplicationRepository;
  /** The environments a new application's environment_id must name. */
  environments: EnvironmentLookup;
  relay: OutboxRelay;
  /** Send's endpoint cache: the endpoints deleted with an application leave it at once. */
  endpointCache?: TtlCache<EndpointRecord> | undefined;
}

function checkFields(v: Violations, input: ApplicationInput, fields: ReadonlySet<UpdatableField>): void {
  if (fields.has("name")) {
    if (input.name.trim() === "") v.add("application.name", "is required");
    else if (input.name.length > MAX_APPLICATION_NAME)
      v.add("application.name", `must be at most ${MAX_APPLICATION_NAME} characters`);
  }
  if (fields.has("uid") && input.uid !== "") checkUid(v, "application.uid", input.uid);
  if (fields.has("metadata"))
    checkStringMap(v, "application.metadata", input.metadata, { maxEntries: 50, maxKey: 64, maxValue: 512 });
}

function checkUid(v: Violations, field: string, uid: string): void {
  if (!UID.test(uid)) v.add(field, 'must be 1 to 256 characters of letters, digits and "._-:|@"');
}

function uidTaken(uid: string): DomainError {
  return new DomainError("already_exists", "APPLICATION_UID_EXISTS", `application uid ${JSON.stringify(uid)} exists`, {
    violations: [
      { field: "application.uid", description: "is already the uid of another application of this workspace" },
    ],
  });
}

/** Registers an application; a uid already used in the workspace is already_exists. */
export async function createApplication(
  deps: ApplicationDeps,
  workspaceId: string,
  input: ApplicationInput | undefined,
): Promise<ApplicationRecord> {
  if (!input) throw invalidArgument([{ field: "application", description: "is required" }]);
  const v = new Violations();
  checkFields(v, input, new Set(UPDATABLE_APPLICATION_FIELDS));
  v.throwIfAny();
  const environmentId = await resolveEnvironmentId(
    deps.environments,
    workspaceId,
    input.environmentId ?? "",
    "application.environment_id",
  );
  const now = new Date();
  const app: ApplicationRecord = {
    id: newId("application"),
    workspaceId,
    environmentId,
    name: input.name,
    uid: input.uid === "" ? null : input.uid,
    metadata: { ...input.metadata },
    createdAt: now,
    updatedAt: now,
  };
  if (!(await deps.store.createApplication(app))) throw uidTaken(input.uid);
  return app;
}

/** Returns an application of the workspace by id, or by uid: exactly one of them. */
export async function getApplication(
  store: Pick<ApplicationRepository, "getApplication" | "getApplicationByUid">,
  workspaceId: string,
  req: { id: string; uid: string },
): Promise<ApplicationRecord> {
  const v = new Violations();
  if (req.id === "" && req.uid === "") v.add("id", "is required (or uid)");
  else if (req.id !== "" && req.uid !== "") v.add("uid", "must be empty when id is given: name the application once");
  else if (req.id !== "") checkId(v, "id", "application", req.id);
  else checkUid(v, "uid", req.uid);
  v.throwIfAny();
  const app =
    req.id !== ""
      ? await store.getApplication(workspaceId, req.id)
      : await store.getApplicationByUid(workspaceId, req.uid);
  if (!app) throw notFound("application", req.id || req.uid);
  return app;
}

/**
 * Resolves an application id a request names (`field`): it must be well formed and an
 * application of the workspace (not_found APPLICATION_NOT_FOUND, with the field, otherwise).
 */
export async function requireApplication(
  lookup: ApplicationLookup,
  workspaceId: string,
  id: string,
  field: string,
): Promise<ApplicationRecord> {
  const v = new Violations();
  checkId(v, field, "application", id);
  v.throwIfAny();
  const app = await lookup.getApplication(workspaceId, id);
  if (!app) {
    throw new DomainError("not_found", "APPLICATION_NOT_FOUND", `application ${JSON.stringify(id)} not found`, {
      violations: [{ field, description: "is not an application of this workspace" }],
    });
  }
  return app;
}

/** Lists applications, newest first. */
export async function listApplications(
  store: Pick<ApplicationRepository, "listApplications">,
  workspaceId: string,
  req: { pageSize: number; pageToken: string; environmentId?: string | undefined },
): Promise<{ items: ApplicationRecord[]; nextPageToken: string }> {
  const v = new Violations();
  checkEnvironmentFilter(v, "environment_id", req.environmentId ?? "");
  v.throwIfAny();
  const limit = pageSize(req.pageSize);
  const filter = req.environmentId || null;
  const afterId = decodePageToken(req.pageToken, "applications", filter);
  const rows = await store.listApplications(workspaceId, { afterId, limit: limit + 1 }, filter ?? undefined);
  return pageOf(rows, limit, "applications", filter);
}

/** Changes the fields named in `maskPaths` (all updatable fields when empty). */
export async function updateApplication(
  deps: ApplicationDeps,
  workspaceId: string,
  input: ApplicationInput | undefined,
  maskPaths: readonly string[],
): Promise<ApplicationRecord> {
  const v = new Violations();
  if (!input) v.add("application", "is required");
  else checkId(v, "application.id", "application", input.id);
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths.map(snakeCase)) {
    if ((UPDATABLE_APPLICATION_FIELDS as readonly string[]).includes(path)) fields.add(path as UpdatableField);
    else
      v.add(
        "update_mask",
        `${JSON.stringify(path)} is not an updatable field (${UPDATABLE_APPLICATION_FIELDS.join(", ")})`,
      );
  }
  if (maskPaths.length === 0) for (const f of UPDATABLE_APPLICATION_FIELDS) fields.add(f);
  if (input) checkFields(v, input, fields);
  v.throwIfAny();
  const given = input!;
  const patch: ApplicationPatch = {};
  if (fields.has("name")) patch.name = given.name;
  if (fields.has("uid")) patch.uid = given.uid === "" ? null : given.uid;
  if (fields.has("metadata")) patch.metadata = { ...given.metadata };
  const app = await deps.store.updateApplication(workspaceId, given.id, patch, new Date());
  if (app === "uid_taken") throw uidTaken(given.uid);
  if (!app) throw notFound("application", given.id);
  return app;
}

/**
 * Deletes an application with its endpoints (Svix deletes an application's endpoints with it;
 * here they are deleted as DeleteEndpoint does) and cancels their pending deliveries, announced
 * on the status stream, in one transaction.
 */
export async function deleteApplication(
  deps: ApplicationDeps,
  workspaceId: string,
  id: string,
): Promise<{ deletedEndpoints: number; cancelledDeliveries: number }> {
  const v = new Violations();
  checkId(v, "id", "application", id);
  v.throwIfAny();
  const now = new Date();
  const result = await deps.store.deleteApplication(workspaceId, id, now, APPLICATION_DELETED, (d) => [
    statusRow(d, null, now),
  ]);
  if (!result) throw notFound("application", id);
  for (const endpointId of result.endpointIds) deps.endpointCache?.delete(endpointCacheKey(workspaceId, endpointId));
  await deps.relay.publishNow(result.outbox);
  return { deletedEndpoints: result.endpointIds.length, cancelledDeliveries: result.cancelled.length };
}
