import { DomainError, Violations, invalidArgument, notFound } from "./errors.ts";
import { newId } from "./ids.ts";
import type { OutboxRelay } from "./outbox-relay.ts";
import { statusRow } from "./outbox-rows.ts";
import { publishQueued, type DirectPublisher } from "./publish-check.ts";
import { decodePageToken, pageOf, pageSize } from "./page-token.ts";
import type {
  DeliveryRecord,
  EndpointRecord,
  EndpointTypeName,
  NewOutboxRecord,
  OutboxRecord,
  PageQuery,
  RecentOutcomes,
} from "./records.ts";
import type { SecretBox } from "./secret-box.ts";
import { checkClientCertificate, clientKeyContext, type ClientCertificateInput } from "./client-certificate.ts";
import type { RateLimit } from "./rate-limit.ts";
import { generateEd25519SigningKey, generateSigningSecret } from "./signing.ts";
import type { TtlCache } from "./ttl-cache.ts";
import { checkEventTypeName, isOperationalEventType, type EventTypeLookup } from "./event-types.ts";
import { compileFilter } from "./filter-expression.ts";
import { requireApplication, type ApplicationLookup } from "./applications.ts";
import {
  checkEnvironmentFilter,
  defaultEnvironmentId,
  resolveEnvironmentId,
  type EnvironmentLookup,
} from "./environments.ts";
import { applicationFilterOf, endpointInScope, environmentFilterOf, type Scope } from "./scope.ts";
import { checkRetryOverride, type RetryOverride, type RetryOverrideInput } from "./retry-policy.ts";
import { checkEndpointUrl, checkHeaders, checkId, checkLength, checkStringMap, snakeCase } from "./validation.ts";

/** Partial update of an endpoint (only the present keys change). */
export type EndpointPatch = Partial<
  Pick<
    EndpointRecord,
    | "url"
    | "description"
    | "metadata"
    | "enabled"
    | "headers"
    | "timeoutMs"
    | "secret"
    | "previousSecret"
    | "previousSecretExpiresAt"
    | "asyncAck"
    | "ordered"
    | "retryPolicy"
    | "type"
    | "eventTypes"
    | "filter"
    | "publicKey"
    | "previousPublicKey"
    | "clientCertificatePem"
    | "clientKey"
    | "rateLimit"
    | "rateLimitBurst"
  >
>;

/** The endpoint use cases' port. */
export interface EndpointRepository {
  /**
   * Stores a new endpoint; false (nothing written) when it names an application that is gone
   * (checked in the same transaction, so it cannot race the application's deletion).
   */
  createEndpoint(ep: EndpointRecord): Promise<boolean>;
  /** Null when missing, deleted, or in another workspace. */
  getEndpoint(workspaceId: string, id: string): Promise<EndpointRecord | null>;
  /**
   * How the endpoint's latest `limit` deliveries with an attempt outcome (succeeded, failed,
   * pending a retry) went: how many of them succeeded, of how many.
   */
  recentOutcomes(workspaceId: string, id: string, limit: number): Promise<RecentOutcomes>;
  /**
   * Newest first, deleted ones excluded; only the application's when `applicationId` is given,
   * only the environment's when `environmentId` is.
   */
  listEndpoints(
    workspaceId: string,
    page: PageQuery,
    applicationId?: string,
    environmentId?: string,
  ): Promise<EndpointRecord[]>;
  /**
   * Applies the patch and sets updatedAt; null when not found. Enabling or disabling the endpoint
   * writes its operational event (endpoint.enabled / endpoint.disabled) in the same transaction;
   * that event's deliveries are pushed onto `emitted` after the commit, for the caller to publish.
   * A function patch is computed from the endpoint as it is under the transaction's row lock
   * (a read-modify-write that concurrent writers cannot interleave).
   */
  updateEndpoint(
    workspaceId: string,
    id: string,
    patch: EndpointPatch | ((current: EndpointRecord) => EndpointPatch),
    at: Date,
    emitted?: DeliveryRecord[],
  ): Promise<EndpointRecord | null>;
  /**
   * Marks the endpoint deleted and cancels its non-final deliveries, writing the outbox rows
   * `outbox` builds for each cancelled delivery, in one transaction; returns null when not found.
   */
  deleteEndpoint(
    workspaceId: string,
    id: string,
    at: Date,
    outbox: (cancelled: DeliveryRecord) => NewOutboxRecord[],
  ): Promise<{ cancelled: DeliveryRecord[]; outbox: OutboxRecord[] } | null>;
}

/** Reads one endpoint: what Send needs of the endpoints. */
export type EndpointLookup = Pick<EndpointRepository, "getEndpoint">;

/** Default per-request deadline of an endpoint. */
export const DEFAULT_ENDPOINT_TIMEOUT_MS = 15_000;

/** Endpoint fields a producer sets; undefined means "not given". */
export interface EndpointInput {
  url: string;
  description: string;
  metadata: Record<string, string>;
  enabled: boolean | undefined;
  headers: Record<string, string>;
  /** Undefined when no timeout was given; NaN when the given one was malformed. */
  timeoutMs: number | undefined;
  /** Undefined when not given (false). */
  asyncAck?: boolean | undefined;
  ordered?: boolean | undefined;
  /** The endpoint's retry schedule, unchecked; undefined when not given (none: the installation's). */
  retryPolicy?: RetryOverrideInput | undefined;
  /** Undefined when not given (webhook); null when the given value is not a known type. */
  type?: EndpointTypeName | null | undefined;
  /** The event types Trigger routes here; empty: every type. */
  eventTypes?: readonly string[] | undefined;
  /** CEL filter for triggered messages; "" for none. */
  filter?: string | undefined;
  /** How deliveries are signed; undefined when not given (HMAC on create). */
  signatureScheme?: SignatureSchemeName | "invalid" | undefined;
  /** mTLS client certificate; undefined or null when none is given. */
  clientCertificate?: ClientCertificateInput | null | undefined;
  /** 0 when not given (no limit). */
  rateLimit?: number | undefined;
  /** 0 when not given (the rate itself). */
  rateLimitBurst?: number | undefined;
  /** The application to create the endpoint under; "" or undefined for none. Immutable. */
  applicationId?: string | undefined;
  /** The environment to create the endpoint in; "" or undefined: its application's, or the default. Immutable. */
  environmentId?: string | undefined;
}

/** The most event types one endpoint or subscription can name. */
export const MAX_ROUTED_EVENT_TYPES = 100;

/** The signing schemes, as the domain spells them. */
export type SignatureSchemeName = "hmac_sha256" | "ed25519";

/** The scheme an endpoint signs with now (from its current key's public key). */
export function signatureSchemeOf(ep: EndpointRecord): SignatureSchemeName {
  return ep.publicKey === null || ep.publicKey === undefined ? "hmac_sha256" : "ed25519";
}

const SCHEME_VIOLATION = "must be SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519";

/** Longest grace period a rotation may ask for. */
export const MAX_SECRET_GRACE_PERIOD_MS = 30 * 86_400_000;

/** The fields UpdateEndpoint's mask may name. */
export const UPDATABLE_ENDPOINT_FIELDS = [
  "url",
  "description",
  "metadata",
  "enabled",
  "headers",
  "timeout",
  "async_ack",
  "ordered",
  "type",
  "event_types",
  "filter",
  "client_certificate",
  "rate_limit",
  "rate_limit_burst",
  "retry_policy",
] as const;
type UpdatableField = (typeof UPDATABLE_ENDPOINT_FIELDS)[number];

/** What the endpoint use cases need. */
export interface EndpointDeps {
  store: EndpointRepository;
  /** Publishes deletions' status events, and operational events' deliveries when it can publish directly. */
  relay: OutboxRelay & Partial<DirectPublisher>;
  secretGracePeriodMs: number;
  /** Seals signing secrets before they are stored (encryption at rest). */
  secrets: Pick<SecretBox, "seal">;
  /** Endpoints by workspace + id for Send; entries are dropped when this server changes them. */
  cache?: TtlCache<EndpointRecord> | undefined;
  /** The workspace's event types, which an endpoint's event_types must name. */
  eventTypes?: EventTypeLookup | undefined;
  /** The workspace's applications, which an endpoint's application_id must name. */
  applications?: ApplicationLookup | undefined;
  /** The workspace's environments, which an endpoint's environment_id must name. */
  environments?: EnvironmentLookup | undefined;
}

/** What a sealed signing secret of an endpoint is bound to, so it opens for that endpoint only. */
export function endpointSecretContext(endpointId: string): string {
  return `endpoint/${endpointId}/signing-key`;
}

/** Cache key of an endpoint. */
export function endpointCacheKey(workspaceId: string, id: string): string {
  return `${workspaceId}/${id}`;
}

function check(v: Violations, input: EndpointInput, fields: ReadonlySet<UpdatableField>, prefix: string): void {
  if (fields.has("url")) checkEndpointUrl(v, `${prefix}.url`, input.url);
  if (fields.has("description")) checkLength(v, `${prefix}.description`, input.description, 1000);
  if (fields.has("metadata"))
    checkStringMap(v, `${prefix}.metadata`, input.metadata, { maxEntries: 50, maxKey: 64, maxValue: 512 });
  if (fields.has("headers")) checkHeaders(v, `${prefix}.headers`, input.headers);
  if (fields.has("timeout") && input.timeoutMs !== undefined) {
    if (!Number.isFinite(input.timeoutMs) || input.timeoutMs < 1000 || input.timeoutMs > 60_000) {
      v.add(`${prefix}.timeout`, "must be between 1s and 60s");
    }
  }
  if (fields.has("type") && input.type === null) v.add(`${prefix}.type`, "is not a known endpoint type");
  if (fields.has("event_types")) checkRoutedEventTypes(v, `${prefix}.event_types`, input.eventTypes ?? [], true);
  if (fields.has("filter")) checkFilter(v, `${prefix}.filter`, input.filter ?? "");
  const rate = input.rateLimit ?? 0;
  const burst = input.rateLimitBurst ?? 0;
  if (fields.has("rate_limit") && rate > MAX_RATE_LIMIT) {
    v.add(`${prefix}.rate_limit`, `must be at most ${MAX_RATE_LIMIT} deliveries per second (0 for no limit)`);
  }
  if (fields.has("rate_limit_burst")) {
    if (burst > MAX_RATE_LIMIT) v.add(`${prefix}.rate_limit_burst`, `must be at most ${MAX_RATE_LIMIT}`);
    else if (burst > 0 && rate === 0 && fields.has("rate_limit")) {
      v.add(`${prefix}.rate_limit_burst`, "needs a rate_limit");
    }
  }
}

/**
 * Checks a list of event type names an endpoint or subscription routes (unique, valid names, at
 * most 100); `emptyAllowed` says whether an empty list (every type) is allowed.
 */
export function checkRoutedEventTypes(
  v: Violations,
  field: string,
  names: readonly string[],
  emptyAllowed: boolean,
): void {
  if (names.length === 0 && !emptyAllowed) v.add(field, "must name at least one event type");
  if (names.length > MAX_ROUTED_EVENT_TYPES) v.add(field, `must have at most ${MAX_ROUTED_EVENT_TYPES} entries`);
  const seen = new Set<string>();
  names.forEach((name, i) => {
    checkEventTypeName(v, `${field}[${i}]`, name);
    if (seen.has(name)) v.add(`${field}[${i}]`, `repeats ${JSON.stringify(name)}`);
    seen.add(name);
  });
}

/** Checks a CEL filter as saved: "" is no filter; anything else must compile (position in the violation). */
export function checkFilter(v: Violations, field: string, filter: string): void {
  if (filter === "") return;
  const compiled = compileFilter(filter, field);
  if (!compiled.ok) v.add(compiled.violation.field, compiled.violation.description);
}

/** Refuses names that are no event types of the workspace (after the names themselves passed). */
export async function checkEventTypesExist(
  lookup: EventTypeLookup | undefined,
  workspaceId: string,
  field: string,
  names: readonly string[],
): Promise<void> {
  if (lookup === undefined || names.length === 0) return;
  const v = new Violations();
  // The operational types exist in every workspace without a row.
  const found = await Promise.all(
    names.map((name) =>
      isOperationalEventType(name) ? Promise.resolve(true) : lookup.getEventType(workspaceId, name),
    ),
  );
  found.forEach((et, i) => {
    if (et === null) v.add(`${field}[${i}]`, `${JSON.stringify(names[i])} is not an event type of this workspace`);
  });
  v.throwIfAny();
}

/** The sealed columns of a client certificate, or nulls when none is given (checked first). */
function clientCertificateColumns(
  deps: EndpointDeps,
  id: string,
  input: EndpointInput,
  chainPem: string | undefined,
): Pick<EndpointRecord, "clientCertificatePem" | "clientKey"> {
  const cc = input.clientCertificate;
  if (cc === undefined || cc === null || chainPem === undefined) return { clientCertificatePem: null, clientKey: null };
  return { clientCertificatePem: chainPem, clientKey: deps.secrets.seal(cc.privateKeyPem, clientKeyContext(id)) };
}

/** Checks the client certificate when the fields include it; the normalized chain when one is set. */
function checkCertificate(
  v: Violations,
  input: EndpointInput,
  fields: ReadonlySet<UpdatableField>,
  prefix: string,
): string | undefined {
  const cc = input.clientCertificate;
  if (!fields.has("client_certificate") || cc === undefined || cc === null) return undefined;
  if (cc.certificatePem === "" && cc.privateKeyPem === "") return undefined;
  return checkClientCertificate(v, `${prefix}.client_certificate`, cc, new Date());
}

/**
 * Checks the retry policy when the fields include it (violations under `prefix.retry_policy.*`,
 * as a message's override is checked); the policy with its defaults filled, null when none is
 * given (none, or cleared), undefined when the fields leave it alone or it is invalid.
 */
function checkRetryPolicy(
  v: Violations,
  input: EndpointInput,
  fields: ReadonlySet<UpdatableField>,
  prefix: string,
): RetryOverride | null | undefined {
  if (!fields.has("retry_policy")) return undefined;
  if (input.retryPolicy === undefined) return null;
  return checkRetryOverride(v, `${prefix}.retry_policy`, input.retryPolicy);
}

/** A new signing key of `scheme`: what is stored (sealed), its public key, and what the producer sees once. */
function newSigningKey(
  deps: EndpointDeps,
  id: string,
  scheme: SignatureSchemeName,
): { secret: string; publicKey: string | null; shown: string } {
  if (scheme === "ed25519") {
    const pair = generateEd25519SigningKey();
    return {
      secret: deps.secrets.seal(pair.secretKey, endpointSecretContext(id)),
      publicKey: pair.publicKey,
      shown: "",
    };
  }
  const plain = generateSigningSecret();
  return { secret: deps.secrets.seal(plain, endpointSecretContext(id)), publicKey: null, shown: plain };
}

/** Highest rate limit (deliveries per second) and burst an endpoint may have. */
export const MAX_RATE_LIMIT = 100_000;

/** An endpoint's rate limit, or null when it has none. */
export function rateLimitOf(ep: EndpointRecord): RateLimit | null {
  const rate = ep.rateLimit ?? 0;
  return rate > 0 ? { rate, burst: ep.rateLimitBurst ?? 0 } : null;
}

/** Registers an endpoint with a fresh signing key (a whsec_ secret, or an ed25519 key pair). */
export async function createEndpoint(
  deps: EndpointDeps,
  scope: Scope,
  input: EndpointInput | undefined,
): Promise<{ endpoint: EndpointRecord; signingSecret: string }> {
  if (!input) throw invalidArgument([{ field: "endpoint", description: "is required" }]);
  const workspaceId = scope.workspaceId;
  const v = new Violations();
  const fields = new Set(UPDATABLE_ENDPOINT_FIELDS);
  check(v, input, fields, "endpoint");
  const chainPem = checkCertificate(v, input, fields, "endpoint");
  const retryPolicy = checkRetryPolicy(v, input, fields, "endpoint");
  if (input.signatureScheme === "invalid") v.add("endpoint.signature_scheme", SCHEME_VIOLATION);
  if (input.applicationId) checkId(v, "endpoint.application_id", "application", input.applicationId);
  if (input.environmentId) checkId(v, "endpoint.environment_id", "environment", input.environmentId);
  v.throwIfAny();
  // A portal session creates under its own application only; naming another is not_found.
  const applicationId = applicationFilterOf(scope, input.applicationId ?? "");
  if (applicationId === null) throw applicationNotFound(input.applicationId ?? "");
  let environmentId: string;
  if (applicationId !== undefined) {
    if (deps.applications === undefined) throw new Error("createEndpoint needs the application lookup");
    const app = await requireApplication(deps.applications, workspaceId, applicationId, "endpoint.application_id");
    // An application's endpoints live in its environment.
    environmentId = app.environmentId;
    if (input.environmentId && input.environmentId !== environmentId) {
      throw invalidArgument([
        {
          field: "endpoint.environment_id",
          description: `must be empty or the environment of application ${applicationId} (${environmentId})`,
        },
      ]);
    }
  } else if (input.environmentId) {
    if (deps.environments === undefined) throw new Error("createEndpoint needs the environment lookup");
    environmentId = await resolveEnvironmentId(
      deps.environments,
      workspaceId,
      input.environmentId,
      "endpoint.environment_id",
    );
  } else {
    environmentId = scope.environmentId ?? defaultEnvironmentId(workspaceId);
  }
  if (scope.environmentId !== null && environmentId !== scope.environmentId)
    throw invalidArgument([
      { field: "endpoint.environment_id", description: "is outside this credential's environment" },
    ]);
  await checkEventTypesExist(deps.eventTypes, workspaceId, "endpoint.event_types", input.eventTypes ?? []);
  const now = new Date();
  const id = newId("endpoint");
  const key = newSigningKey(deps, id, input.signatureScheme === "ed25519" ? "ed25519" : "hmac_sha256");
  const endpoint: EndpointRecord = {
    id,
    workspaceId,
    url: input.url,
    description: input.description,
    metadata: input.metadata,
    enabled: input.enabled ?? true,
    headers: input.headers,
    timeoutMs: input.timeoutMs ?? DEFAULT_ENDPOINT_TIMEOUT_MS,
    asyncAck: input.asyncAck ?? false,
    ordered: input.ordered ?? false,
    retryPolicy: retryPolicy ?? null,
    type: input.type ?? "webhook",
    eventTypes: [...(input.eventTypes ?? [])],
    filter: input.filter ?? "",
    rateLimit: input.rateLimit ?? 0,
    rateLimitBurst: input.rateLimitBurst ?? 0,
    health: null,
    secret: key.secret,
    previousSecret: null,
    previousSecretExpiresAt: null,
    publicKey: key.publicKey,
    previousPublicKey: null,
    ...clientCertificateColumns(deps, id, input, chainPem),
    applicationId: applicationId ?? null,
    environmentId,
    createdAt: now,
    updatedAt: now,
  };
  if (!(await deps.store.createEndpoint(endpoint))) throw applicationNotFound(applicationId ?? "");
  return { endpoint, signingSecret: key.shown };
}

function applicationNotFound(id: string): DomainError {
  return new DomainError("not_found", "APPLICATION_NOT_FOUND", `application ${JSON.stringify(id)} not found`, {
    violations: [{ field: "endpoint.application_id", description: "is not an application of this workspace" }],
  });
}

/** Returns an endpoint within the scope (not_found for one outside it). */
export async function getEndpoint(
  store: EndpointLookup,
  scope: Scope,
  id: string,
  field = "id",
): Promise<EndpointRecord> {
  const v = new Violations();
  checkId(v, field, "endpoint", id);
  v.throwIfAny();
  const ep = await store.getEndpoint(scope.workspaceId, id);
  if (!ep || !endpointInScope(scope, ep)) throw notFound("endpoint", id);
  return ep;
}

/** Refuses (not_found) an endpoint outside a narrowed scope; a workspace scope needs no read. */
async function requireInScope(store: EndpointLookup, scope: Scope, id: string): Promise<void> {
  if (scope.applicationId !== null || scope.environmentId !== null) await getEndpoint(store, scope, id);
}

/** How many of an endpoint's latest deliveries its recent success rate is over. */
export const RECENT_DELIVERIES = 100;

/** An endpoint of the workspace with its recent delivery outcomes (GetEndpoint's health). */
export async function getEndpointHealth(
  store: Pick<EndpointRepository, "getEndpoint" | "recentOutcomes">,
  scope: Scope,
  id: string,
): Promise<{ endpoint: EndpointRecord; recent: RecentOutcomes }> {
  const endpoint = await getEndpoint(store, scope, id);
  return { endpoint, recent: await store.recentOutcomes(scope.workspaceId, endpoint.id, RECENT_DELIVERIES) };
}

/** Lists the scope's endpoints, newest first, optionally only one application's. */
export async function listEndpoints(
  store: Pick<EndpointRepository, "listEndpoints">,
  scope: Scope,
  req: { pageSize: number; pageToken: string; applicationId?: string | undefined; environmentId?: string | undefined },
): Promise<{ items: EndpointRecord[]; nextPageToken: string }> {
  const v = new Violations();
  const requested = req.applicationId ?? "";
  const requestedEnv = req.environmentId ?? "";
  if (requested !== "") checkId(v, "application_id", "application", requested);
  checkEnvironmentFilter(v, "environment_id", requestedEnv);
  v.throwIfAny();
  const limit = pageSize(req.pageSize);
  const applicationId = applicationFilterOf(scope, requested);
  const environmentId = environmentFilterOf(scope, requestedEnv);
  // The token is bound to the request's filter (not the scope), so it reads the same either way.
  const filters =
    requested === "" && requestedEnv === ""
      ? null
      : requestedEnv === ""
        ? { applicationId: requested }
        : { applicationId: requested, environmentId: requestedEnv };
  const afterId = decodePageToken(req.pageToken, "endpoints", filters);
  if (applicationId === null || environmentId === null) return { items: [], nextPageToken: "" };
  const rows = await store.listEndpoints(
    scope.workspaceId,
    { afterId, limit: limit + 1 },
    applicationId,
    environmentId,
  );
  return pageOf(rows, limit, "endpoints", filters);
}

/** Changes the fields named in `maskPaths` (all updatable fields when empty). */
export async function updateEndpoint(
  deps: EndpointDeps,
  scope: Scope,
  id: string,
  input: EndpointInput | undefined,
  maskPaths: readonly string[],
): Promise<EndpointRecord> {
  const v = new Violations();
  if (!input) v.add("endpoint", "is required");
  checkId(v, "endpoint.id", "endpoint", id);
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths.map(snakeCase)) {
    if ((UPDATABLE_ENDPOINT_FIELDS as readonly string[]).includes(path)) fields.add(path as UpdatableField);
    else
      v.add(
        "update_mask",
        `${JSON.stringify(path)} is not an updatable field (${UPDATABLE_ENDPOINT_FIELDS.join(", ")})`,
      );
  }
  if (maskPaths.length === 0) for (const f of UPDATABLE_ENDPOINT_FIELDS) fields.add(f);
  if (input) check(v, input, fields, "endpoint");
  const chainPem = input ? checkCertificate(v, input, fields, "endpoint") : undefined;
  const retryPolicy = input ? checkRetryPolicy(v, input, fields, "endpoint") : undefined;
  v.throwIfAny();
  const workspaceId = scope.workspaceId;
  const given = input!;
  // An endpoint's application never changes, so checking it before the write cannot race.
  await requireInScope(deps.store, scope, id);
  if (fields.has("event_types"))
    await checkEventTypesExist(deps.eventTypes, workspaceId, "endpoint.event_types", given.eventTypes ?? []);
  const patch: EndpointPatch = {};
  if (fields.has("url")) patch.url = given.url;
  if (fields.has("description")) patch.description = given.description;
  if (fields.has("metadata")) patch.metadata = given.metadata;
  if (fields.has("headers")) patch.headers = given.headers;
  if (fields.has("enabled")) patch.enabled = given.enabled ?? true;
  if (fields.has("timeout")) patch.timeoutMs = given.timeoutMs ?? DEFAULT_ENDPOINT_TIMEOUT_MS;
  if (fields.has("async_ack")) patch.asyncAck = given.asyncAck ?? false;
  if (fields.has("ordered")) patch.ordered = given.ordered ?? false;
  if (fields.has("retry_policy")) patch.retryPolicy = retryPolicy ?? null;
  if (fields.has("type")) patch.type = given.type ?? "webhook";
  if (fields.has("event_types")) patch.eventTypes = [...(given.eventTypes ?? [])];
  if (fields.has("filter")) patch.filter = given.filter ?? "";
  if (fields.has("client_certificate")) Object.assign(patch, clientCertificateColumns(deps, id, given, chainPem));
  if (fields.has("rate_limit")) patch.rateLimit = given.rateLimit ?? 0;
  if (fields.has("rate_limit_burst")) patch.rateLimitBurst = given.rateLimitBurst ?? 0;
  deps.cache?.delete(endpointCacheKey(workspaceId, id));
  const now = new Date();
  const emitted: DeliveryRecord[] = [];
  const ep = await deps.store.updateEndpoint(workspaceId, id, patch, now, emitted);
  if (!ep) throw notFound("endpoint", id);
  await publishQueued(deps.relay, emitted, now);
  return ep;
}

/** Deletes an endpoint and cancels its pending deliveries (announced on the status stream). */
export async function deleteEndpoint(deps: EndpointDeps, scope: Scope, id: string): Promise<void> {
  const v = new Violations();
  checkId(v, "id", "endpoint", id);
  v.throwIfAny();
  const workspaceId = scope.workspaceId;
  await requireInScope(deps.store, scope, id);
  deps.cache?.delete(endpointCacheKey(workspaceId, id));
  const now = new Date();
  const result = await deps.store.deleteEndpoint(workspaceId, id, now, (d) => [statusRow(d, null, now)]);
  if (!result) throw notFound("endpoint", id);
  await deps.relay.publishNow(result.outbox);
}

/** How a rotation goes: the new key's scheme (default: the current one) and the grace period. */
export interface RotationOptions {
  scheme?: SignatureSchemeName | "invalid" | undefined;
  /** Undefined: the installation's default; NaN when the given one was malformed. */
  gracePeriodMs?: number | undefined;
}

/**
 * Issues a new signing key; the old one keeps signing beside it until the grace period ends (a
 * grace period of 0 retires it at once). The new key may be of another scheme.
 */
export async function rotateEndpointSecret(
  deps: EndpointDeps,
  scope: Scope,
  id: string,
  options: RotationOptions = {},
): Promise<{ endpoint: EndpointRecord; signingSecret: string; previousSecretExpiresAt: Date }> {
  const v = new Violations();
  checkId(v, "id", "endpoint", id);
  const grace = options.gracePeriodMs ?? deps.secretGracePeriodMs;
  if (!Number.isFinite(grace) || grace < 0 || grace > MAX_SECRET_GRACE_PERIOD_MS) {
    v.add("grace_period", "must be between 0s and 30 days");
  }
  if (options.scheme === "invalid") v.add("signature_scheme", SCHEME_VIOLATION);
  v.throwIfAny();
  const workspaceId = scope.workspaceId;
  // In scope (and not deleted): anything else is not_found before a key is made.
  await getEndpoint(deps.store, scope, id);
  const now = new Date();
  const scheme = options.scheme === "ed25519" || options.scheme === "hmac_sha256" ? options.scheme : undefined;
  const previousSecretExpiresAt = new Date(now.getTime() + grace);
  const keepOld = grace > 0;
  deps.cache?.delete(endpointCacheKey(workspaceId, id));
  // The key that is current under the row lock becomes the previous one: of two rotations at once,
  // the second keeps the first's new key signing through its grace period instead of losing it.
  let shown = "";
  const ep = await deps.store.updateEndpoint(
    workspaceId,
    id,
    (current) => {
      const key = newSigningKey(deps, id, scheme ?? signatureSchemeOf(current));
      shown = key.shown;
      return {
        secret: key.secret,
        publicKey: key.publicKey,
        previousSecret: keepOld ? current.secret : null,
        previousPublicKey: keepOld ? (current.publicKey ?? null) : null,
        previousSecretExpiresAt: keepOld ? previousSecretExpiresAt : null,
      };
    },
    now,
  );
  if (!ep) throw notFound("endpoint", id);
  return { endpoint: ep, signingSecret: shown, previousSecretExpiresAt };
}

/**
 * The secrets that sign a delivery now, as stored (sealed): the current one, plus the previous
 * within its grace period.
 */
export function signingSecretsOf(ep: EndpointRecord, now: Date): string[] {
  const secrets = [ep.secret];
  if (ep.previousSecret !== null && ep.previousSecretExpiresAt !== null && ep.previousSecretExpiresAt > now) {
    secrets.push(ep.previousSecret);
  }
  return secrets;
}

/** Raised when a message is sent to an endpoint that is switched off. */
export function endpointDisabled(id: string): DomainError {
  return new DomainError(
    "failed_precondition",
    "ENDPOINT_DISABLED",
    `endpoint ${JSON.stringify(id)} is disabled; enable it to send`,
  );
}
