import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate, type Duration } from "@bufbuild/protobuf/wkt";
import type { Endpoint } from "../../gen/hookstream/v1/endpoint_pb.ts";
import { SignatureScheme } from "../../gen/hookstream/v1/endpoint_security_pb.ts";
import type { EndpointService } from "../../gen/hookstream/v1/endpoint_service_pb.ts";
import {
  createEndpoint,
  deleteEndpoint,
  getEndpointHealth,
  listEndpoints,
  rotateEndpointSecret,
  updateEndpoint,
  type EndpointDeps,
  type EndpointInput,
  type SignatureSchemeName,
} from "../domain/endpoints.ts";
import { testEndpoint } from "../domain/endpoint-test.ts";
import { DomainError } from "../domain/errors.ts";
import { endpointTypeFromProto, endpointView, errorKindToProto, durationFromMs } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { retryOverrideOf } from "./message-service.ts";
import { scopeOf } from "./authorization.ts";

/** Milliseconds of a Duration; NaN when it is not a valid duration. */
function durationMs(d: Duration): number {
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  return d.nanos < 0 || d.nanos >= 1e9 ? Number.NaN : ms;
}

function endpointInput(e: Endpoint | undefined): EndpointInput | undefined {
  if (!e) return undefined;
  return {
    url: e.url,
    description: e.description,
    metadata: e.metadata,
    enabled: e.enabled,
    headers: e.headers,
    timeoutMs: e.timeout ? durationMs(e.timeout) : undefined,
    asyncAck: e.asyncAck,
    ordered: e.ordered,
    retryPolicy: retryOverrideOf(e.retryPolicy),
    type: endpointTypeFromProto(e.type),
    eventTypes: e.eventTypes,
    filter: e.filter,
    signatureScheme: schemeName(e.signatureScheme),
    clientCertificate:
      e.clientCertificate === undefined
        ? undefined
        : { certificatePem: e.clientCertificate.certificatePem, privateKeyPem: e.clientCertificate.privateKeyPem },
    rateLimit: e.rateLimit,
    rateLimitBurst: e.rateLimitBurst,
    applicationId: e.applicationId,
    environmentId: e.environmentId,
  };
}

/** The domain's name of a scheme; undefined when not given, "invalid" for an unknown number. */
function schemeName(s: SignatureScheme): SignatureSchemeName | "invalid" | undefined {
  switch (s) {
    case SignatureScheme.UNSPECIFIED:
      return undefined;
    case SignatureScheme.HMAC_SHA256:
      return "hmac_sha256";
    case SignatureScheme.ED25519:
      return "ed25519";
    default:
      return "invalid";
  }
}

/** EndpointService: endpoint CRUD and secret rotation (management token). */
export function createEndpointService(deps: ApiDeps): ServiceImpl<typeof EndpointService> {
  const endpointDeps: EndpointDeps = {
    store: deps.endpoints,
    relay: deps.relay,
    secretGracePeriodMs: deps.secretGracePeriodMs,
    secrets: deps.secrets,
    cache: deps.endpointCache,
    eventTypes: deps.eventTypes,
    applications: deps.applications,
    environments: deps.environments,
  };
  return {
    async createEndpoint(req, ctx) {
      const { endpoint, signingSecret } = await createEndpoint(endpointDeps, scopeOf(ctx), endpointInput(req.endpoint));
      return { endpoint: endpointView(endpoint), signingSecret };
    },
    async getEndpoint(req, ctx) {
      const { endpoint, recent } = await getEndpointHealth(deps.endpoints, scopeOf(ctx), req.id);
      return { endpoint: endpointView(endpoint, recent) };
    },
    async listEndpoints(req, ctx) {
      const page = await listEndpoints(deps.endpoints, scopeOf(ctx), req);
      return { endpoints: page.items.map((e) => endpointView(e)), nextPageToken: page.nextPageToken };
    },
    async updateEndpoint(req, ctx) {
      const ep = await updateEndpoint(
        endpointDeps,
        scopeOf(ctx),
        req.endpoint?.id ?? "",
        endpointInput(req.endpoint),
        req.updateMask?.paths ?? [],
      );
      return { endpoint: endpointView(ep) };
    },
    async deleteEndpoint(req, ctx) {
      await deleteEndpoint(endpointDeps, scopeOf(ctx), req.id);
      return {};
    },
    async rotateEndpointSecret(req, ctx) {
      const r = await rotateEndpointSecret(endpointDeps, scopeOf(ctx), req.id, {
        scheme: schemeName(req.signatureScheme),
        gracePeriodMs: req.gracePeriod === undefined ? undefined : durationMs(req.gracePeriod),
      });
      return {
        endpoint: endpointView(r.endpoint),
        signingSecret: r.signingSecret,
        previousSecretExpireTime: timestampFromDate(r.previousSecretExpiresAt),
        publicKey: r.endpoint.publicKey ?? "",
      };
    },
    async testEndpoint(req, ctx) {
      const probe = deps.endpointProbe;
      if (probe === undefined) {
        throw new DomainError("unavailable", "ENDPOINT_PROBE_UNAVAILABLE", "this API server cannot send test requests");
      }
      const r = await testEndpoint({ endpoints: deps.endpoints, probe }, scopeOf(ctx), req.id);
      return {
        success: r.ok,
        statusCode: r.status,
        latency: durationFromMs(r.latencyMs),
        failureClass: errorKindToProto(r.errorKind),
        errorMessage: r.errorMessage,
        responseBody: r.body,
        webhookId: r.webhookId,
      };
    },
  };
}
