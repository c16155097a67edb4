import {
  create,
  createFileRegistry,
  createRegistry,
  setExtension,
  type DescFile,
  type DescMethodUnary,
} from "@bufbuild/protobuf";
import {
  EmptySchema,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
  file_google_protobuf_empty,
  type MethodOptions,
} from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  createConnectRouter,
  createRouterTransport,
  type HandlerContext,
} from "@connectrpc/connect";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import pino from "pino";
import { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { AuthPolicySchema, Credential, auth } from "../../gen/hookstream/v1/auth_pb.ts";
import { MessageService } from "../../gen/hookstream/v1/message_service_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { createAuthenticator, type CredentialLookup, type Principal } from "../domain/auth.ts";
import { hashSecret } from "../domain/credentials.ts";
import type { ApiDeps } from "./api-deps.ts";
import type { ApiKeyRecord, PortalSessionRecord, WorkspaceRecord } from "../domain/records.ts";
import { acceptedKinds, createAuthorizationInterceptor, principalOf, workspaceIdOf } from "./authorization.ts";
import { createErrorInterceptor, errorDetailOf } from "./error-mapping.ts";
import { createRoutes } from "./routes.ts";

const genDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "gen");

/** Every file descriptor the generated code exports, found by walking gen/. */
async function generatedFiles(): Promise<DescFile[]> {
  const paths = readdirSync(genDir, { recursive: true, encoding: "utf8" }).filter((p) => p.endsWith("_pb.ts"));
  const files: DescFile[] = [];
  for (const p of paths) {
    const mod = (await import(pathToFileURL(join(genDir, p)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "file") {
        files.push(value as DescFile);
      }
    }
  }
  return files;
}

void describe("declared policies", () => {
  void it("every method of every hookstream.v1 service in gen/ declares who may call it", async () => {
    const registry = createRegistry(...(await generatedFiles()));
    const services = [...registry].filter((t) => t.kind === "service" && t.typeName.startsWith("hookstream.v1."));
    // The walk sees at least every service the API serves.
    const router = createConnectRouter();
    createRoutes({ shutdownSignal: AbortSignal.abort() } as unknown as ApiDeps)(router);
    for (const h of router.handlers) {
      assert.ok(services.includes(h.service), `${h.service.typeName} not found by walking gen/`);
    }
    const undeclared: string[] = [];
    for (const service of services) {
      if (service.kind !== "service") continue;
      for (const method of service.methods) {
        if (acceptedKinds(method) === undefined) undeclared.push(`${service.typeName}/${method.name}`);
      }
    }
    assert.deepEqual(undeclared, [], `methods without an (hookstream.v1.auth) policy: ${undeclared.join(", ")}`);
  });

  void it("every method the API serves declares a policy, and workspace services never take the operator", () => {
    const router = createConnectRouter();
    // Only the handlers' descriptors are read; no call reaches these dependencies.
    createRoutes({ shutdownSignal: AbortSignal.abort() } as unknown as ApiDeps)(router);
    assert.ok(router.handlers.length > 0);
    for (const h of router.handlers) {
      const kinds = acceptedKinds(h.method);
      assert.ok(kinds !== undefined, `${h.requestPath} declares no policy`);
      const isAdmin = h.service.typeName === AdminService.typeName;
      assert.equal(kinds.includes("admin"), isAdmin, `${h.requestPath}: only AdminService takes the operator token`);
      if (isAdmin) assert.deepEqual(kinds, ["admin"], h.requestPath);
    }
  });

  void it("portal sessions reach exactly their endpoint and delivery RPCs; only ExchangePortalCode is public", () => {
    const router = createConnectRouter();
    createRoutes({ shutdownSignal: AbortSignal.abort() } as unknown as ApiDeps)(router);
    const portal: string[] = [];
    const open: string[] = [];
    for (const h of router.handlers) {
      const kinds = acceptedKinds(h.method) ?? [];
      if (kinds.includes("portal")) portal.push(`${h.service.name}/${h.method.name}`);
      if (kinds.includes("anonymous")) {
        open.push(`${h.service.name}/${h.method.name}`);
        assert.deepEqual(kinds, ["anonymous"], `${h.requestPath}: CREDENTIAL_NONE stands alone`);
      }
    }
    assert.deepEqual(portal.sort(), [
      "DeliveryService/GetDelivery",
      "DeliveryService/GetDeliveryStats",
      "DeliveryService/ListAttempts",
      "DeliveryService/ListDeliveries",
      "EndpointService/CreateEndpoint",
      "EndpointService/DeleteEndpoint",
      "EndpointService/GetEndpoint",
      "EndpointService/ListEndpoints",
      "EndpointService/TestEndpoint",
      "EndpointService/UpdateEndpoint",
    ]);
    assert.deepEqual(open, ["PortalService/ExchangePortalCode"]);
  });

  void it("reads the kinds a method lists", () => {
    assert.deepEqual(acceptedKinds(AdminService.method.createWorkspace), ["admin"]);
    assert.deepEqual(acceptedKinds(MessageService.method.send), ["api_key"]);
    assert.deepEqual(acceptedKinds(WatchService.method.watchDeliveries), ["management", "api_key"]);
  });
});

// A service compiled at test time: Ping declares nothing, UnspecifiedOnly only a credential no
// server can check, Empty an empty policy.
function undeclaredService() {
  const policy = (accepts: Credential[]): MethodOptions => {
    const options = create(MethodOptionsSchema);
    setExtension(options, auth, create(AuthPolicySchema, { accepts }));
    return options;
  };
  const proto = create(FileDescriptorProtoSchema, {
    name: "hookstream/test/v1/undeclared.proto",
    package: "hookstream.test.v1",
    dependency: ["google/protobuf/empty.proto"],
    syntax: "proto3",
    service: [
      {
        name: "UndeclaredService",
        method: [
          { name: "Ping", inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty" },
          {
            name: "UnspecifiedOnly",
            inputType: ".google.protobuf.Empty",
            outputType: ".google.protobuf.Empty",
            options: policy([Credential.UNSPECIFIED]),
          },
          {
            name: "Empty",
            inputType: ".google.protobuf.Empty",
            outputType: ".google.protobuf.Empty",
            options: policy([]),
          },
        ],
      },
    ],
  });
  const registry = createFileRegistry(proto, (name) =>
    name === "google/protobuf/empty.proto" ? file_google_protobuf_empty : undefined,
  );
  const service = registry.getService("hookstream.test.v1.UndeclaredService");
  assert.ok(service);
  return service;
}

const workspace: WorkspaceRecord = { id: "ws_a", name: "a", createdAt: new Date() };
const apiKey: ApiKeyRecord = {
  id: "key_a",
  workspaceId: "ws_a",
  label: "",
  secretPrefix: "hsk_xx",
  createdAt: new Date(),
  revokedAt: null,
  scope: "producer",
  mode: "live",
  lastUsedAt: null,
  environmentId: null,
};

const portalSession = (expiresAt: Date): PortalSessionRecord => ({
  id: "pts_a",
  workspaceId: "ws_a",
  applicationId: "app_a",
  codeHash: "c",
  tokenHash: "t",
  codeExpiresAt: new Date(),
  expiresAt,
  exchangedAt: new Date(),
  createdAt: new Date(),
});

// The authenticator's whole port: the three lookups.
const store: CredentialLookup = {
  findWorkspaceByTokenHash: async (h: string) => (h === hashSecret("hsm_good") ? workspace : null),
  findApiKeyByHash: async (h: string) => (h === hashSecret("hsk_good") ? apiKey : null),
  findPortalSessionByTokenHash: async (h: string) =>
    h === hashSecret("hsp_good")
      ? portalSession(new Date(Date.now() + 60_000))
      : h === hashSecret("hsp_expired")
        ? portalSession(new Date(Date.now() - 1))
        : null,
};

void describe("createAuthorizationInterceptor", () => {
  const seen: Principal[] = [];
  let watchEntered = 0;
  let undeclaredEntered = 0;
  const undeclared = undeclaredService();
  const transport = createRouterTransport(
    (router) => {
      router.service(AdminService, {
        createWorkspace(_req, ctx: HandlerContext) {
          seen.push(principalOf(ctx));
          return { workspace: { id: "ws_new", name: "n" }, managementToken: "hsm_new" };
        },
      });
      router.service(WatchService, {
        async *watchDeliveries(_req, ctx) {
          watchEntered++;
          yield { resumeToken: workspaceIdOf(ctx) };
          yield { resumeToken: principalOf(ctx).kind };
        },
      });
      for (const method of undeclared.methods) {
        assert.equal(method.methodKind, "unary");
        router.rpc(method as DescMethodUnary<typeof EmptySchema, typeof EmptySchema>, () => {
          undeclaredEntered++;
          return {};
        });
      }
    },
    {
      router: {
        interceptors: [
          createErrorInterceptor(pino({ level: "silent" })),
          createAuthorizationInterceptor(createAuthenticator(store, "operator-secret")),
        ],
      },
    },
  );
  const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  const failsWith = (code: Code, reason: string) => (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(errorDetailOf(err)?.reason, reason);
    return true;
  };

  void it("refuses a call without a credential as unauthenticated, before the handler", async () => {
    const admin = createClient(AdminService, transport);
    const before = seen.length;
    await assert.rejects(admin.createWorkspace({ name: "n" }), failsWith(Code.Unauthenticated, "MISSING_CREDENTIALS"));
    await assert.rejects(
      admin.createWorkspace({ name: "n" }, bearer("guess")),
      failsWith(Code.Unauthenticated, "INVALID_CREDENTIALS"),
    );
    assert.equal(seen.length, before);
  });

  void it("refuses a credential of the wrong kind as permission_denied", async () => {
    const admin = createClient(AdminService, transport);
    const before = seen.length;
    await assert.rejects(
      admin.createWorkspace({ name: "n" }, bearer("hsm_good")),
      failsWith(Code.PermissionDenied, "WRONG_CREDENTIAL_KIND"),
    );
    assert.equal(seen.length, before);
  });

  void it("lets the right kind through and hands the handler its principal", async () => {
    const admin = createClient(AdminService, transport);
    const res = await admin.createWorkspace({ name: "n" }, bearer("operator-secret"));
    assert.equal(res.workspace?.id, "ws_new");
    assert.deepEqual(seen.at(-1), { kind: "admin" });
  });

  void it("refuses every caller of a method with no usable policy: fail closed", async () => {
    assert.equal(undeclared.methods.length, 3);
    for (const method of undeclared.methods) {
      const call = (header?: Record<string, string>) =>
        transport.unary(
          method as DescMethodUnary<typeof EmptySchema, typeof EmptySchema>,
          undefined,
          undefined,
          header,
          create(EmptySchema),
          undefined,
        );
      for (const token of ["operator-secret", "hsm_good", "hsk_good"]) {
        await assert.rejects(
          call({ authorization: `Bearer ${token}` }),
          failsWith(Code.PermissionDenied, "NO_AUTH_POLICY"),
          `${method.name} with ${token}`,
        );
      }
      await assert.rejects(call(), failsWith(Code.PermissionDenied, "NO_AUTH_POLICY"));
    }
    assert.equal(undeclaredEntered, 0);
  });

  void it("a portal token is refused where the policy does not list it; an expired or unknown one is unauthenticated", async () => {
    const admin = createClient(AdminService, transport);
    const watch = createClient(WatchService, transport);
    const drain = async (token: string): Promise<void> => {
      for await (const item of watch.watchDeliveries({}, bearer(token))) void item;
    };
    await assert.rejects(drain("hsp_good"), failsWith(Code.PermissionDenied, "WRONG_CREDENTIAL_KIND"));
    await assert.rejects(
      admin.createWorkspace({ name: "n" }, bearer("hsp_good")),
      failsWith(Code.PermissionDenied, "WRONG_CREDENTIAL_KIND"),
    );
    await assert.rejects(drain("hsp_expired"), failsWith(Code.Unauthenticated, "PORTAL_SESSION_EXPIRED"));
    await assert.rejects(drain("hsp_guess"), failsWith(Code.Unauthenticated, "INVALID_CREDENTIALS"));
    assert.equal(watchEntered, 0);
  });

  void it("authenticates a server stream before its first message", async () => {
    const watch = createClient(WatchService, transport);
    const read = async (options?: { headers: Record<string, string> }): Promise<string[]> => {
      const items: string[] = [];
      for await (const item of watch.watchDeliveries({}, options)) items.push(item.resumeToken);
      return items;
    };
    const received: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const item of watch.watchDeliveries({})) received.push(item.resumeToken);
      })(),
      failsWith(Code.Unauthenticated, "MISSING_CREDENTIALS"),
    );
    await assert.rejects(read(bearer("operator-secret")), failsWith(Code.PermissionDenied, "WRONG_CREDENTIAL_KIND"));
    assert.deepEqual(received, []);
    assert.equal(watchEntered, 0, "the stream's handler must not start for a refused call");
    assert.deepEqual(await read(bearer("hsk_good")), ["ws_a", "api_key"]);
    assert.deepEqual(await read(bearer("hsm_good")), ["ws_a", "management"]);
    assert.equal(watchEntered, 2);
  });

  void it("refuses a handler whose server was built without the interceptor", async () => {
    const bare = createRouterTransport(
      (router) =>
        router.service(MessageService, {
          send(_req, ctx) {
            return { messageId: workspaceIdOf(ctx), deliveryIds: [], duplicate: false };
          },
        }),
      { router: { interceptors: [createErrorInterceptor(pino({ level: "silent" }))] } },
    );
    await assert.rejects(
      createClient(MessageService, bare).send({}, bearer("hsk_good")),
      failsWith(Code.Internal, "NO_PRINCIPAL"),
    );
  });
});
