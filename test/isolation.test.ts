/**
 * The isolation battery, on the real stack and both databases: no RPC lets another workspace,
 * another environment's producer key or another application's portal session read, change or
 * even confirm the existence of a victim's resources.
 *
 * Every RPC of the schema has an entry in PROBES (a test fails when one is missing): the request
 * it makes with the victim's ids, and what it must answer. Each probe runs with every intruder
 * whose credential the RPC's declared policy accepts. "not_found" is strict: the answer a
 * missing id gets. "quiet" allows success, but nothing the victim owns may appear in the answer
 * (ids, names, descriptions, metadata and payload markers the request did not carry itself).
 * At the end the victim's resources are read back and must be exactly as before.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AdminService } from "../gen/hookstream/v1/admin_service_pb.ts";
import { ApiKeyService } from "../gen/hookstream/v1/api_key_service_pb.ts";
import { ApplicationService } from "../gen/hookstream/v1/application_service_pb.ts";
import { DeliveryAction } from "../gen/hookstream/v1/bulk_operation_pb.ts";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { DeliveryService } from "../gen/hookstream/v1/delivery_service_pb.ts";
import { EndpointService } from "../gen/hookstream/v1/endpoint_service_pb.ts";
import { EnvironmentService } from "../gen/hookstream/v1/environment_service_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { MessageService } from "../gen/hookstream/v1/message_service_pb.ts";
import { PortalService } from "../gen/hookstream/v1/portal_service_pb.ts";
import { RecoveryService } from "../gen/hookstream/v1/recovery_service_pb.ts";
import { SubscriptionService } from "../gen/hookstream/v1/subscription_service_pb.ts";
import { WatchService } from "../gen/hookstream/v1/watch_service_pb.ts";
import { WorkspaceService } from "../gen/hookstream/v1/workspace_service_pb.ts";
import { acceptedKinds } from "../src/api/authorization.ts";
import type { PrincipalKind } from "../src/domain/auth.ts";
import { encodeResumeToken } from "../src/domain/watch.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";

const SERVICES: readonly DescService[] = [
  AdminService,
  ApiKeyService,
  ApplicationService,
  DeliveryService,
  EndpointService,
  EnvironmentService,
  MessageService,
  PortalService,
  RecoveryService,
  SubscriptionService,
  WatchService,
  WorkspaceService,
  // Last: its probes change the intruder's own event type of the victim's name, which the
  // Trigger and CreateSubscription probes need, so that only the victim's ids can fail them.
  EventTypeService,
];

/** The victim's resources that probes name. */
interface Victim {
  environmentId: string;
  environmentSlug: string;
  keyId: string;
  applicationId: string;
  applicationUid: string;
  endpointId: string;
  eventType: string;
  subscriptionId: string;
  messageId: string;
  deliveryId: string;
  scheduledMessageId: string;
  bulkOperationId: string;
}

type Expect = "not_found" | "quiet";
type Probe = { req: (v: Victim) => object; expect: Expect } | { skip: string };

const payload = { case: "payloadJson" as const, value: '{"probe":true}' };

/** Every RPC of the schema: how it is aimed at the victim, and what it must answer. */
const PROBES: Record<string, Probe> = {
  "AdminService/CreateWorkspace": { skip: "operator only: it creates a new workspace and names none" },

  "ApiKeyService/CreateApiKey": { req: (v) => ({ label: "x", environmentId: v.environmentId }), expect: "not_found" },
  "ApiKeyService/ListApiKeys": { req: (v) => ({ environmentId: v.environmentId }), expect: "quiet" },
  "ApiKeyService/RevokeApiKey": { req: (v) => ({ id: v.keyId }), expect: "not_found" },

  "ApplicationService/CreateApplication": {
    req: (v) => ({ application: { name: "x", environmentId: v.environmentId } }),
    expect: "not_found",
  },
  "ApplicationService/GetApplication": { req: (v) => ({ id: v.applicationId }), expect: "not_found" },
  "ApplicationService/ListApplications": { req: (v) => ({ environmentId: v.environmentId }), expect: "quiet" },
  "ApplicationService/UpdateApplication": {
    req: (v) => ({ application: { id: v.applicationId, name: "x" }, updateMask: { paths: ["name"] } }),
    expect: "not_found",
  },
  "ApplicationService/DeleteApplication": { req: (v) => ({ id: v.applicationId }), expect: "not_found" },

  "DeliveryService/GetDelivery": { req: (v) => ({ id: v.deliveryId }), expect: "not_found" },
  "DeliveryService/ListDeliveries": { req: (v) => ({ endpointId: v.endpointId }), expect: "quiet" },
  "DeliveryService/ListAttempts": { req: (v) => ({ deliveryId: v.deliveryId }), expect: "not_found" },
  // Counts carry no ids: the battery checks they count nothing of the victim's.
  "DeliveryService/GetDeliveryStats": {
    req: (v) => ({ endpointId: v.endpointId, window: { seconds: 86_400n, nanos: 0 } }),
    expect: "quiet",
  },

  "EndpointService/CreateEndpoint": {
    req: (v) => ({ endpoint: { url: "https://example.com/x", applicationId: v.applicationId } }),
    expect: "not_found",
  },
  "EndpointService/GetEndpoint": { req: (v) => ({ id: v.endpointId }), expect: "not_found" },
  "EndpointService/ListEndpoints": { req: (v) => ({ applicationId: v.applicationId }), expect: "quiet" },
  "EndpointService/UpdateEndpoint": {
    req: (v) => ({ endpoint: { id: v.endpointId, description: "x" }, updateMask: { paths: ["description"] } }),
    expect: "not_found",
  },
  "EndpointService/DeleteEndpoint": { req: (v) => ({ id: v.endpointId }), expect: "not_found" },
  "EndpointService/RotateEndpointSecret": { req: (v) => ({ id: v.endpointId }), expect: "not_found" },
  "EndpointService/TestEndpoint": { req: (v) => ({ id: v.endpointId }), expect: "not_found" },

  // The slug is the workspace's own namespace: taking the victim's confirms nothing.
  "EnvironmentService/CreateEnvironment": {
    req: (v) => ({ environment: { name: "x", slug: v.environmentSlug } }),
    expect: "quiet",
  },
  "EnvironmentService/GetEnvironment": { req: (v) => ({ id: v.environmentId }), expect: "not_found" },
  "EnvironmentService/ListEnvironments": { req: () => ({}), expect: "quiet" },
  "EnvironmentService/UpdateEnvironment": {
    req: (v) => ({ environment: { id: v.environmentId, name: "x" }, updateMask: { paths: ["name"] } }),
    expect: "not_found",
  },
  "EnvironmentService/DeleteEnvironment": { req: (v) => ({ id: v.environmentId }), expect: "not_found" },

  // Event types are named per workspace: the victim's name is free in another one.
  "EventTypeService/CreateEventType": { req: (v) => ({ eventType: { name: v.eventType } }), expect: "quiet" },
  "EventTypeService/GetEventType": { req: (v) => ({ name: v.eventType }), expect: "quiet" },
  "EventTypeService/ListEventTypes": { req: () => ({}), expect: "quiet" },
  "EventTypeService/UpdateEventType": {
    req: (v) => ({ eventType: { name: v.eventType, description: "x" }, updateMask: { paths: ["description"] } }),
    expect: "quiet",
  },
  "EventTypeService/DeleteEventType": { req: (v) => ({ name: v.eventType }), expect: "quiet" },

  "MessageService/Send": {
    req: (v) => ({ endpointId: v.endpointId, eventType: v.eventType, body: payload }),
    expect: "not_found",
  },
  "MessageService/Trigger": {
    req: (v) => ({ eventType: v.eventType, body: payload, applicationId: v.applicationId }),
    expect: "not_found",
  },
  "MessageService/GetMessage": { req: (v) => ({ id: v.messageId }), expect: "not_found" },
  "MessageService/SendBatch": {
    req: (v) => ({ items: [{ endpointId: v.endpointId, eventType: v.eventType, body: payload }] }),
    expect: "quiet",
  },
  "MessageService/TriggerBatch": {
    req: (v) => ({ items: [{ eventType: v.eventType, body: payload, applicationId: v.applicationId }] }),
    expect: "quiet",
  },
  "MessageService/ListMessages": { req: (v) => ({ applicationId: v.applicationId }), expect: "quiet" },
  "MessageService/CancelMessage": { req: (v) => ({ id: v.scheduledMessageId }), expect: "not_found" },
  "MessageService/RescheduleMessage": {
    req: (v) => ({ id: v.scheduledMessageId, deliverIn: "2d" }),
    expect: "not_found",
  },

  "PortalService/CreatePortalSession": { req: (v) => ({ applicationId: v.applicationId }), expect: "not_found" },
  "PortalService/ExchangePortalCode": {
    skip: "takes no credential: the one-time code is the proof, whoever holds it (tested in applications.test.ts)",
  },

  "RecoveryService/ReplayDelivery": { req: (v) => ({ id: v.deliveryId }), expect: "not_found" },
  "RecoveryService/ReplayMessage": { req: (v) => ({ id: v.messageId }), expect: "not_found" },
  "RecoveryService/RetryDelivery": { req: (v) => ({ id: v.deliveryId }), expect: "not_found" },
  "RecoveryService/CancelRetry": { req: (v) => ({ id: v.deliveryId }), expect: "not_found" },
  "RecoveryService/ListDeadLetters": { req: (v) => ({ filter: { endpointId: v.endpointId } }), expect: "quiet" },
  // Runs in the caller's own workspace, where the victim's ids match nothing.
  "RecoveryService/StartBulkOperation": {
    req: (v) => ({ action: DeliveryAction.REPLAY, deliveryIds: [v.deliveryId] }),
    expect: "quiet",
  },
  "RecoveryService/GetBulkOperation": { req: (v) => ({ id: v.bulkOperationId }), expect: "not_found" },
  "RecoveryService/WatchBulkOperation": { req: (v) => ({ id: v.bulkOperationId }), expect: "not_found" },

  "SubscriptionService/CreateSubscription": {
    req: (v) => ({ subscription: { endpointId: v.endpointId, eventTypes: [v.eventType] } }),
    expect: "not_found",
  },
  "SubscriptionService/GetSubscription": { req: (v) => ({ id: v.subscriptionId }), expect: "not_found" },
  "SubscriptionService/ListSubscriptions": { req: (v) => ({ endpointId: v.endpointId }), expect: "quiet" },
  "SubscriptionService/UpdateSubscription": {
    req: (v) => ({ subscription: { id: v.subscriptionId, enabled: false }, updateMask: { paths: ["enabled"] } }),
    expect: "not_found",
  },
  "SubscriptionService/DeleteSubscription": { req: (v) => ({ id: v.subscriptionId }), expect: "not_found" },

  "WatchService/WatchDeliveries": {
    req: (v) => ({ endpointId: v.endpointId, resumeToken: encodeResumeToken(0) }),
    expect: "not_found",
  },
  "WatchService/WatchMessage": { req: (v) => ({ id: v.messageId }), expect: "not_found" },

  // Only ever the caller's own workspace.
  "WorkspaceService/GetWorkspace": { req: () => ({}), expect: "quiet" },
  "WorkspaceService/UpdateWorkspace": {
    req: () => ({ workspace: { name: "intruder" }, updateMask: { paths: ["name"] } }),
    expect: "quiet",
  },
};

const rpcName = (m: DescMethod): string => `${m.parent.name}/${m.name}`;

/** Calls `method` with `req`; a stream is read for `streamMs` (or to its end). */
async function call(
  transport: Transport,
  method: DescMethod,
  req: object,
  streamMs = 600,
): Promise<{ ok: true; body: unknown } | { ok: false; error: ConnectError }> {
  const client = createClient(method.parent, transport) as unknown as Record<
    string,
    (req: object, opts?: { signal?: AbortSignal }) => unknown
  >;
  const fn = client[method.localName]!;
  try {
    if (method.methodKind === "server_streaming") {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), streamMs);
      const items: unknown[] = [];
      try {
        for await (const item of fn(req, { signal: ac.signal }) as AsyncIterable<unknown>) items.push(item);
      } catch (error) {
        if (!ac.signal.aborted) throw error;
      } finally {
        clearTimeout(timer);
      }
      return { ok: true, body: items };
    }
    return { ok: true, body: await fn(req) };
  } catch (error) {
    return { ok: false, error: ConnectError.from(error) };
  }
}

const text = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));

for (const kind of testDbKinds()) {
  void describe(`isolation battery on ${kind}`, { timeout: 300_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let owner: Clients;
    let victim: Victim;
    let victimWorkspaceId: string;
    /** Strings only the victim's resources carry. */
    let markers: string[];
    const intruders: { name: string; kind: PrincipalKind; transport: Transport; sameWorkspace: boolean }[] = [];

    before(async () => {
      receiver = await startReceiver();
      // The victim's endpoint refuses everything: its delivery is dead-lettered at once.
      receiver.addRule((r) => (r.path === "/victim" ? 400 : undefined));
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({ databaseUrl: database.url, natsUrl: nats.url });
      const admin = createClients(stack.apiUrl, stack.adminToken);

      // The victim: a workspace with one of everything, in its "production" environment.
      const ws = await admin.admin.createWorkspace({ name: "victim-workspace-marker" });
      victimWorkspaceId = ws.workspace!.id;
      owner = createClients(stack.apiUrl, ws.managementToken);
      const t = owner.transport;
      const env = (
        await createClient(EnvironmentService, t).createEnvironment({
          environment: { name: "victim-env-marker", slug: "production" },
        })
      ).environment!;
      const key = await owner.apiKeys.createApiKey({ label: "victim-key-marker", environmentId: env.id });
      const app = (
        await createClient(ApplicationService, t).createApplication({
          application: {
            name: "victim-app-marker",
            uid: "victim-uid-marker",
            environmentId: env.id,
            metadata: { m: "victim-metadata-marker" },
          },
        })
      ).application!;
      const otherApp = (
        await createClient(ApplicationService, t).createApplication({
          application: { name: "neighbour", environmentId: env.id },
        })
      ).application!;
      await createClient(EventTypeService, t).createEventType({
        eventType: { name: "iso.event", description: "victim-event-type-marker" },
      });
      const ep = (
        await owner.endpoints.createEndpoint({
          endpoint: {
            url: `${receiver.url}/victim`,
            applicationId: app.id,
            description: "victim-endpoint-marker",
            metadata: { m: "victim-endpoint-metadata-marker" },
          },
        })
      ).endpoint!;
      const sub = (
        await createClient(SubscriptionService, t).createSubscription({
          subscription: { endpointId: ep.id, eventTypes: ["iso.event"] },
        })
      ).subscription!;
      const producer = createClients(stack.apiUrl, key.secret);
      const sent = await producer.messages.send({
        endpointId: ep.id,
        eventType: "iso.event",
        body: { case: "payloadJson", value: '{"secret":"victim-payload-marker"}' },
      });
      const scheduled = await producer.messages.send({
        endpointId: ep.id,
        eventType: "iso.event",
        body: { case: "payloadJson", value: '{"secret":"victim-scheduled-marker"}' },
        deliverIn: "1d",
      });
      const failed = async (): Promise<boolean> =>
        (await owner.deliveries.getDelivery({ id: sent.deliveryId })).delivery?.status === DeliveryStatus.FAILED;
      for (let i = 0; i < 300 && !(await failed()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(await failed(), "the victim's delivery is dead-lettered");
      const op = (
        await owner.recovery.startBulkOperation({ action: DeliveryAction.REPLAY, deliveryIds: [sent.deliveryId] })
      ).operation!;
      // The bulk replay runs once more to the refusing endpoint: wait until it is final again.
      for (let i = 0; i < 300; i++) {
        const d = (await owner.deliveries.getDelivery({ id: sent.deliveryId })).delivery!;
        const o = (await owner.recovery.getBulkOperation({ id: op.id })).operation!;
        if (d.attemptCount >= 2 && d.status === DeliveryStatus.FAILED && o.finishTime !== undefined) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      victim = {
        environmentId: env.id,
        environmentSlug: env.slug,
        keyId: key.apiKey!.id,
        applicationId: app.id,
        applicationUid: app.uid,
        endpointId: ep.id,
        eventType: "iso.event",
        subscriptionId: sub.id,
        messageId: sent.messageId,
        deliveryId: sent.deliveryId,
        scheduledMessageId: scheduled.messageId,
        bulkOperationId: op.id,
      };
      markers = [
        env.id,
        key.apiKey!.id,
        app.id,
        ep.id,
        sub.id,
        sent.messageId,
        sent.deliveryId,
        scheduled.messageId,
        scheduled.deliveryId,
        op.id,
        "victim-",
      ];

      // Intruders: another workspace (its management token and a producer key), a producer key
      // of the victim workspace's other environment, and a portal session of another application.
      const other = await admin.admin.createWorkspace({ name: "intruder" });
      const otherMgmt = createClients(stack.apiUrl, other.managementToken);
      const otherKey = await otherMgmt.apiKeys.createApiKey({ label: "intruder" });
      // The victim's event type name is free in another workspace.
      await createClient(EventTypeService, otherMgmt.transport).createEventType({ eventType: { name: "iso.event" } });
      const staging = (
        await createClient(EnvironmentService, t).createEnvironment({
          environment: { name: "staging", slug: "staging" },
        })
      ).environment!;
      const stagingKey = await owner.apiKeys.createApiKey({ label: "staging", environmentId: staging.id });
      const code = (await createClient(PortalService, t).createPortalSession({ applicationId: otherApp.id })).code;
      const portalToken = (
        await createClient(PortalService, createClients(stack.apiUrl).transport).exchangePortalCode({ code })
      ).token;
      intruders.push(
        {
          name: "another workspace's management token",
          kind: "management",
          transport: otherMgmt.transport,
          sameWorkspace: false,
        },
        {
          name: "another workspace's producer key",
          kind: "api_key",
          transport: createClients(stack.apiUrl, otherKey.secret).transport,
          sameWorkspace: false,
        },
        {
          name: "another environment's producer key",
          kind: "api_key",
          transport: createClients(stack.apiUrl, stagingKey.secret).transport,
          sameWorkspace: true,
        },
        {
          name: "another application's portal session",
          kind: "portal",
          transport: createClients(stack.apiUrl, portalToken).transport,
          sameWorkspace: true,
        },
      );
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    /** What the victim owns, as its management token reads it. */
    const snapshot = async (): Promise<string> => {
      const t = owner.transport;
      const v = victim;
      return text({
        env: await createClient(EnvironmentService, t).getEnvironment({ id: v.environmentId }),
        keys: await owner.apiKeys.listApiKeys({ pageSize: 200 }),
        app: await createClient(ApplicationService, t).getApplication({ id: v.applicationId }),
        endpoint: await owner.endpoints.getEndpoint({ id: v.endpointId }),
        eventType: await createClient(EventTypeService, t).getEventType({ name: v.eventType }),
        subscription: await createClient(SubscriptionService, t).getSubscription({ id: v.subscriptionId }),
        delivery: await owner.deliveries.getDelivery({ id: v.deliveryId }),
        attempts: await owner.deliveries.listAttempts({ deliveryId: v.deliveryId }),
        deliveries: await owner.deliveries.listDeliveries({ endpointId: v.endpointId, pageSize: 200 }),
        bulk: await owner.recovery.getBulkOperation({ id: v.bulkOperationId }),
        workspace: await owner.workspaces.getWorkspace({}),
        environments: await createClient(EnvironmentService, t).listEnvironments({}),
      });
    };

    void it("every RPC of the schema has a probe", () => {
      const rpcs = SERVICES.flatMap((s) => s.methods.map(rpcName)).sort();
      assert.deepEqual(Object.keys(PROBES).sort(), rpcs, "PROBES lists exactly the schema's RPCs");
    });

    void it("no intruder reads, changes or confirms the victim's resources through any RPC", async () => {
      const before = await snapshot();
      const failures: string[] = [];
      let probed = 0;
      for (const method of SERVICES.flatMap((s) => s.methods)) {
        const probe = PROBES[rpcName(method)]!;
        if ("skip" in probe) continue;
        const kinds = acceptedKinds(method) ?? [];
        for (const intruder of intruders.filter((i) => kinds.includes(i.kind))) {
          const req = probe.req(victim);
          const where = `${rpcName(method)} as ${intruder.name}`;
          const result = await call(intruder.transport, method, req);
          probed++;
          if (!result.ok) {
            if (result.error.code !== Code.NotFound) {
              // A refusal for another reason (an unknown event type in the intruder's own
              // workspace) reveals nothing either, but only not_found is what a missing id gets.
              if (probe.expect === "not_found" || result.error.code === Code.InvalidArgument)
                failures.push(`${where}: ${Code[result.error.code]} ${result.error.rawMessage}`);
            }
            continue;
          }
          if (probe.expect === "not_found") {
            failures.push(`${where}: succeeded, expected not_found: ${text(result.body).slice(0, 300)}`);
            continue;
          }
          const asked = text(req);
          const answer = text(result.body);
          const leaked = markers.filter(
            (m) => answer.includes(m) && !asked.includes(m) && !(intruder.sameWorkspace && m === victimWorkspaceId),
          );
          if (!intruder.sameWorkspace && answer.includes(victimWorkspaceId)) leaked.push(victimWorkspaceId);
          if (leaked.length > 0)
            failures.push(`${where}: the answer carries ${leaked.join(", ")}: ${answer.slice(0, 300)}`);
          if (method.name === "GetDeliveryStats") {
            const stats = result.body as { deliveries: bigint; attempts: bigint };
            if (stats.deliveries !== 0n || stats.attempts !== 0n)
              failures.push(`${where}: counts the victim's deliveries: ${answer.slice(0, 300)}`);
          }
          // A batch item aimed at the victim fails on its own, as not_found.
          if (method.name === "SendBatch" || method.name === "TriggerBatch") {
            const codes = (result.body as { results: { code: string }[] }).results.map((r) => r.code);
            if (!codes.every((c) => c === "not_found")) failures.push(`${where}: batch item codes ${codes.join(",")}`);
          }
        }
      }
      assert.deepEqual(failures, []);
      assert.ok(probed >= 60, `probed ${probed} (RPC, intruder) pairs`);
      // Let anything an intruder started (a bulk operation of its own) run, then compare.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await snapshot(), before, "the victim's resources are unchanged");
    });
  });
}
