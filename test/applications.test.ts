/**
 * Applications on the real stack (api, dispatcher and worker as separate processes, the
 * database of HOOKSTREAM_TEST_DB, a private nats-server, a local receiver): their CRUD with
 * every bad input refused precisely and changing nothing, endpoints scoped to one, Trigger
 * and ListDeliveries limited to one, and deleting one cancelling its endpoints' pending
 * deliveries.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { ApplicationService } from "../gen/hookstream/v1/application_service_pb.ts";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { PortalService } from "../gen/hookstream/v1/portal_service_pb.ts";
import { pino } from "pino";
import { HookstreamManagement, HookstreamPortal, isHookstreamError } from "../src/client/index.ts";
import { openStore } from "../src/store/index.ts";
import { PortalSession } from "../src/store/entities.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { failsWith, fields } from "./support/expect-error.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    if (i > 600) throw new Error(`never saw ${what}`);
    await sleep(100);
  }
}

for (const kind of testDbKinds()) {
  void describe(`applications on ${kind}`, { timeout: 240_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;
    let apps: Client<typeof ApplicationService>;
    let otherApps: Client<typeof ApplicationService>;
    let managementToken: string;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        // Failed attempts wait an hour, so a failing endpoint keeps its deliveries pending.
        env: { HOOKSTREAM_RETRY_SCHEDULE: "1h", HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "200ms" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "applications" });
      management = createClients(stack.apiUrl, ws.managementToken);
      managementToken = ws.managementToken;
      apps = createClient(ApplicationService, management.transport);
      const key = await management.apiKeys.createApiKey({ label: "applications" });
      producer = createClients(stack.apiUrl, key.secret);
      const other = await admin.admin.createWorkspace({ name: "other" });
      otherApps = createClient(ApplicationService, createClients(stack.apiUrl, other.managementToken).transport);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const delivery = (id: string): Promise<Delivery> =>
      management.deliveries.getDelivery({ id }).then((r) => r.delivery!);
    const allApps = async (): Promise<unknown[]> => (await apps.listApplications({ pageSize: 200 })).applications;

    void it("CRUD: every bad field reported, unique uid, get by id or uid, pages, masks; bad input changes nothing", async () => {
      const bad = await failsWith(
        apps.createApplication({
          application: {
            name: "",
            uid: "has space",
            metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"])),
          },
        }),
        Code.InvalidArgument,
        "bad name, uid and metadata",
      );
      assert.deepEqual(fields(bad), ["application.name", "application.uid", "application.metadata"]);
      await failsWith(apps.createApplication({}), Code.InvalidArgument, "no application");
      await failsWith(
        apps.createApplication({ application: { name: "x".repeat(257) } }),
        Code.InvalidArgument,
        "long name",
      );
      assert.deepEqual(await allApps(), [], "nothing was created");

      const acme = (
        await apps.createApplication({ application: { name: "Acme ✓", uid: "cust_1", metadata: { plan: "gold" } } })
      ).application!;
      assert.match(acme.id, /^app_/);
      assert.equal(acme.uid, "cust_1");
      assert.deepEqual(acme.metadata, { plan: "gold" });
      assert.ok(acme.createTime && acme.updateTime);
      const dup = await failsWith(
        apps.createApplication({ application: { name: "Dup", uid: "cust_1" } }),
        Code.AlreadyExists,
        "duplicate uid",
      );
      assert.equal(dup.reason, "APPLICATION_UID_EXISTS");
      assert.deepEqual(fields(dup), ["application.uid"]);
      assert.equal((await allApps()).length, 1, "the duplicate was not created");
      // Another workspace has its own uids and never sees this one.
      await otherApps.createApplication({ application: { name: "Theirs", uid: "cust_1" } });
      await failsWith(otherApps.getApplication({ id: acme.id }), Code.NotFound, "another workspace's id");

      assert.deepEqual((await apps.getApplication({ id: acme.id })).application, acme);
      assert.deepEqual((await apps.getApplication({ uid: "cust_1" })).application, acme);
      assert.deepEqual(fields(await failsWith(apps.getApplication({}), Code.InvalidArgument, "neither")), ["id"]);
      assert.deepEqual(
        fields(await failsWith(apps.getApplication({ id: acme.id, uid: "cust_1" }), Code.InvalidArgument, "both")),
        ["uid"],
      );
      assert.deepEqual(fields(await failsWith(apps.getApplication({ id: "ep_x" }), Code.InvalidArgument, "bad id")), [
        "id",
      ]);
      await failsWith(apps.getApplication({ uid: "nobody" }), Code.NotFound, "unknown uid");

      const beta = (await apps.createApplication({ application: { name: "Beta", uid: "cust_2" } })).application!;
      const gamma = (await apps.createApplication({ application: { name: "Gamma" } })).application!;
      const page1 = await apps.listApplications({ pageSize: 2 });
      assert.deepEqual(
        page1.applications.map((a) => a.id),
        [gamma.id, beta.id],
      );
      const page2 = await apps.listApplications({ pageSize: 2, pageToken: page1.nextPageToken });
      assert.deepEqual(
        page2.applications.map((a) => a.id),
        [acme.id],
      );
      assert.equal(page2.nextPageToken, "");

      // Updates: every bad field and mask path at once, and a taken uid, change nothing.
      const before = await allApps();
      const badUpdate = await failsWith(
        apps.updateApplication({
          application: { id: acme.id, name: "", uid: "bad uid" },
          updateMask: { paths: ["name", "uid", "colour"] },
        }),
        Code.InvalidArgument,
        "bad update",
      );
      assert.deepEqual(fields(badUpdate).sort(), ["application.name", "application.uid", "update_mask"]);
      const taken = await failsWith(
        apps.updateApplication({ application: { id: acme.id, name: "Renamed", uid: "cust_2" } }),
        Code.AlreadyExists,
        "uid of another",
      );
      assert.deepEqual(fields(taken), ["application.uid"]);
      await failsWith(
        otherApps.updateApplication({ application: { id: acme.id, name: "Hijack" }, updateMask: { paths: ["name"] } }),
        Code.NotFound,
        "another workspace's application",
      );
      assert.deepEqual(await allApps(), before, "nothing changed");

      const renamed = (
        await apps.updateApplication({
          application: { id: acme.id, name: "Acme Inc" },
          updateMask: { paths: ["name"] },
        })
      ).application!;
      assert.equal(renamed.name, "Acme Inc");
      assert.equal(renamed.uid, "cust_1", "unmasked fields kept");
      assert.deepEqual(renamed.metadata, { plan: "gold" });
      const cleared = (
        await apps.updateApplication({ application: { id: acme.id, name: "Acme Inc" } })
      ) // empty mask: every field
      .application!;
      assert.equal(cleared.uid, "");
      assert.deepEqual(cleared.metadata, {});
      await failsWith(apps.getApplication({ uid: "cust_1" }), Code.NotFound, "uid cleared");
    });

    void it("endpoints under an application; Trigger and ListDeliveries limited to it; bad ids refused precisely", async () => {
      const eventTypes = createClient(EventTypeService, management.transport);
      await eventTypes.createEventType({ eventType: { name: "app.test" } });
      const a = (await apps.createApplication({ application: { name: "A" } })).application!;
      const b = (await apps.createApplication({ application: { name: "B" } })).application!;
      const endpointCount = async (): Promise<number> =>
        (await management.endpoints.listEndpoints({ pageSize: 200 })).endpoints.length;
      const countBefore = await endpointCount();
      const unknown = await failsWith(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/a`, applicationId: "app_00000000000000000000000000" },
        }),
        Code.NotFound,
        "unknown application",
      );
      assert.equal(unknown.reason, "APPLICATION_NOT_FOUND");
      assert.deepEqual(fields(unknown), ["endpoint.application_id"]);
      const malformed = await failsWith(
        management.endpoints.createEndpoint({ endpoint: { url: "ftp://x", applicationId: "nope" } }),
        Code.InvalidArgument,
        "malformed application id",
      );
      assert.deepEqual(fields(malformed).sort(), ["endpoint.application_id", "endpoint.url"]);
      assert.equal(await endpointCount(), countBefore, "nothing created");

      const epA = (
        await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/a`, applicationId: a.id } })
      ).endpoint!;
      const epB = (
        await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/b`, applicationId: b.id } })
      ).endpoint!;
      const epWide = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/wide` } }))
        .endpoint!;
      assert.equal(epA.applicationId, a.id);
      assert.equal(epWide.applicationId, "");
      // The application is immutable: an update mask cannot name it.
      await failsWith(
        management.endpoints.updateEndpoint({
          endpoint: { id: epA.id, applicationId: b.id },
          updateMask: { paths: ["application_id"] },
        }),
        Code.InvalidArgument,
        "application_id is not updatable",
      );
      assert.equal((await management.endpoints.getEndpoint({ id: epA.id })).endpoint?.applicationId, a.id);
      assert.deepEqual(
        (await management.endpoints.listEndpoints({ applicationId: a.id })).endpoints.map((e) => e.id),
        [epA.id],
      );
      await failsWith(
        management.endpoints.listEndpoints({ applicationId: "bad" }),
        Code.InvalidArgument,
        "bad list filter",
      );

      const body = { case: "payloadJson" as const, value: '{"n":1}' };
      const missing = await failsWith(
        producer.messages.trigger({ eventType: "app.test", body, applicationId: "app_00000000000000000000000000" }),
        Code.NotFound,
        "trigger for an unknown application",
      );
      assert.deepEqual(fields(missing), ["application_id"]);
      const onlyA = await producer.messages.trigger({ eventType: "app.test", body, applicationId: a.id });
      assert.deepEqual(
        onlyA.deliveries.map((d) => d.endpointId),
        [epA.id],
      );
      const everyone = await producer.messages.trigger({ eventType: "app.test", body });
      assert.deepEqual(everyone.deliveries.map((d) => d.endpointId).sort(), [epA.id, epB.id, epWide.id].sort());
      const ofA = await management.deliveries.listDeliveries({ applicationId: a.id });
      assert.deepEqual(
        ofA.deliveries.map((d) => d.id).sort(),
        [onlyA.deliveries[0]!.deliveryId, everyone.deliveries.find((d) => d.endpointId === epA.id)!.deliveryId].sort(),
      );
      assert.ok(ofA.deliveries.every((d) => d.endpointId === epA.id));
      const messagesOfA = await producer.messages.listMessages({ applicationId: a.id });
      assert.deepEqual(
        messagesOfA.messages.map((m) => m.id),
        [everyone.messageId, onlyA.messageId],
      );
      await failsWith(
        producer.messages.listMessages({ applicationId: "nope" }),
        Code.InvalidArgument,
        "bad message filter",
      );
      await failsWith(
        management.deliveries.listDeliveries({ applicationId: "app_" }),
        Code.InvalidArgument,
        "bad delivery filter",
      );
    });

    void it("deleting an application deletes its endpoints and cancels their pending deliveries, nothing else", async () => {
      receiver!.addRule((req) => (req.path.startsWith("/doomed") || req.path === "/kept" ? 500 : undefined));
      const doomedApp = (await apps.createApplication({ application: { name: "Doomed", uid: "doomed" } })).application!;
      const keptApp = (await apps.createApplication({ application: { name: "Kept" } })).application!;
      const doomed = await Promise.all(
        ["/doomed/1", "/doomed/2"].map(
          async (path) =>
            (
              await management.endpoints.createEndpoint({
                endpoint: { url: `${receiver!.url}${path}`, applicationId: doomedApp.id },
              })
            ).endpoint!,
        ),
      );
      const kept = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/kept`, applicationId: keptApp.id },
        })
      ).endpoint!;
      const sendTo = (endpointId: string) =>
        producer.messages.send({ endpointId, eventType: "app.doomed", body: { case: "payloadJson", value: "{}" } });
      const doomedSends = [await sendTo(doomed[0]!.id), await sendTo(doomed[1]!.id), await sendTo(doomed[1]!.id)];
      const keptSend = await sendTo(kept.id);
      for (const s of [...doomedSends, keptSend]) {
        await until(`${s.deliveryId} pending_retry`, async () =>
          (await delivery(s.deliveryId)).status === DeliveryStatus.PENDING_RETRY ? true : undefined,
        );
      }
      await failsWith(apps.deleteApplication({ id: "bad" }), Code.InvalidArgument, "bad id");
      await failsWith(otherApps.deleteApplication({ id: doomedApp.id }), Code.NotFound, "another workspace's");
      assert.equal((await delivery(doomedSends[0]!.deliveryId)).status, DeliveryStatus.PENDING_RETRY, "untouched");

      const res = await apps.deleteApplication({ id: doomedApp.id });
      assert.equal(res.deletedEndpoints, 2);
      assert.equal(res.cancelledDeliveries, 3);
      for (const s of doomedSends) {
        const d = await delivery(s.deliveryId);
        assert.equal(d.status, DeliveryStatus.CANCELLED);
        assert.equal(d.lastError, "application deleted");
      }
      assert.equal((await delivery(keptSend.deliveryId)).status, DeliveryStatus.PENDING_RETRY);
      for (const e of doomed) await failsWith(management.endpoints.getEndpoint({ id: e.id }), Code.NotFound, "gone");
      await failsWith(apps.getApplication({ id: doomedApp.id }), Code.NotFound, "deleted");
      await failsWith(apps.deleteApplication({ id: doomedApp.id }), Code.NotFound, "deleted twice");
      await failsWith(
        management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/x`, applicationId: doomedApp.id } }),
        Code.NotFound,
        "no endpoint under a deleted application",
      );
      await failsWith(
        producer.messages.send({
          endpointId: doomed[0]!.id,
          eventType: "x",
          body: { case: "payloadJson", value: "{}" },
        }),
        Code.NotFound,
        "Send to a deleted application's endpoint",
      );
      // Its uid is free again; its deliveries stay listed by application.
      await apps.createApplication({ application: { name: "Reborn", uid: "doomed" } });
      const history = await management.deliveries.listDeliveries({ applicationId: doomedApp.id });
      assert.equal(history.deliveries.length, 3);
    });

    void it("portal sessions: one-time codes, exchanged once (concurrently too); a token of A never reaches B; expiry", async () => {
      const portalAdmin = createClient(PortalService, management.transport);
      const anonymous = createClient(PortalService, createClients(stack!.apiUrl).transport);
      const a = (await apps.createApplication({ application: { name: "Portal A" } })).application!;
      const b = (await apps.createApplication({ application: { name: "Portal B" } })).application!;
      const mk = async (applicationId: string, path: string) =>
        (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}${path}`, applicationId } }))
          .endpoint!;
      const epA = await mk(a.id, "/portal/a");
      const epB = await mk(b.id, "/portal/b");
      const epWide = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/portal/w` } }))
        .endpoint!;
      const sendTo = (endpointId: string) =>
        producer.messages.send({ endpointId, eventType: "portal.x", body: { case: "payloadJson", value: "{}" } });
      const sentA = await sendTo(epA.id);
      const sentB = await sendTo(epB.id);
      const sentWide = await sendTo(epWide.id);
      for (const s of [sentA, sentB, sentWide]) {
        await until(`${s.deliveryId} delivered`, async () =>
          (await delivery(s.deliveryId)).status === DeliveryStatus.SUCCEEDED ? true : undefined,
        );
      }

      // Creating a session: every bad field at once; an unknown application is not_found.
      const bad = await failsWith(
        portalAdmin.createPortalSession({ applicationId: "", ttl: { seconds: 1n, nanos: 0 } }),
        Code.InvalidArgument,
        "bad session request",
      );
      assert.deepEqual(fields(bad).sort(), ["application_id", "ttl"]);
      await failsWith(
        portalAdmin.createPortalSession({ applicationId: "app_00000000000000000000000000" }),
        Code.NotFound,
        "unknown application",
      );
      const session = await portalAdmin.createPortalSession({ applicationId: a.id });
      assert.match(session.code, /^hspc_/);
      assert.ok(session.url.endsWith(`/portal?code=${encodeURIComponent(session.code)}`), session.url);
      assert.ok(session.codeExpireTime && session.expireTime);

      // Exchange needs no credential; bad and unknown codes are refused precisely.
      await failsWith(anonymous.exchangePortalCode({ code: "" }), Code.InvalidArgument, "empty code");
      await failsWith(anonymous.exchangePortalCode({ code: "hsm_x" }), Code.InvalidArgument, "not a portal code");
      const unknown = await failsWith(
        anonymous.exchangePortalCode({ code: "hspc_unknown" }),
        Code.PermissionDenied,
        "unknown code",
      );
      assert.equal(unknown.reason, "PORTAL_CODE_INVALID");
      // Two concurrent exchanges of one code: exactly one wins, the other is told it was used.
      const raced = await Promise.allSettled([
        anonymous.exchangePortalCode({ code: session.code }),
        anonymous.exchangePortalCode({ code: session.code }),
      ]);
      const won = raced.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      assert.equal(won.length, 1, "exactly one exchange wins");
      const lost = raced.find((r) => r.status === "rejected");
      assert.ok(lost && lost.status === "rejected");
      const lostErr = ConnectError.from(lost.reason);
      assert.equal(lostErr.code, Code.FailedPrecondition);
      assert.equal(lostErr.findDetails(ErrorDetailSchema)[0]?.reason, "PORTAL_CODE_USED");
      const again = await failsWith(
        anonymous.exchangePortalCode({ code: session.code }),
        Code.FailedPrecondition,
        "3rd",
      );
      assert.equal(again.reason, "PORTAL_CODE_USED");
      const { token, applicationId } = won[0]!;
      assert.match(token, /^hsp_/);
      assert.equal(applicationId, a.id);

      // What management sees of B and the workspace before the portal of A tries them.
      const snapshot = async (): Promise<unknown> => ({
        endpoints: (await management.endpoints.listEndpoints({ pageSize: 200 })).endpoints,
        deliveries: (await management.deliveries.listDeliveries({ pageSize: 200 })).deliveries,
        attemptsB: (await management.deliveries.listAttempts({ deliveryId: sentB.deliveryId })).attempts,
        apps: await allApps(),
      });
      const before = await snapshot();
      const portal = createClients(stack!.apiUrl, token);
      const foreign = [epB.id, epWide.id];
      for (const id of foreign) {
        await failsWith(portal.endpoints.getEndpoint({ id }), Code.NotFound, `get ${id}`);
        await failsWith(
          portal.endpoints.updateEndpoint({
            endpoint: { id, description: "pwned" },
            updateMask: { paths: ["description"] },
          }),
          Code.NotFound,
          `update ${id}`,
        );
        await failsWith(
          portal.endpoints.updateEndpoint({ endpoint: { id, url: "not a url" } }),
          Code.InvalidArgument,
          `bad update of ${id}: validated first`,
        );
        await failsWith(portal.endpoints.deleteEndpoint({ id }), Code.NotFound, `delete ${id}`);
        await failsWith(portal.endpoints.testEndpoint({ id }), Code.NotFound, `test ${id}`);
        await failsWith(portal.endpoints.rotateEndpointSecret({ id }), Code.PermissionDenied, `rotate ${id}`);
      }
      for (const s of [sentB, sentWide]) {
        await failsWith(portal.deliveries.getDelivery({ id: s.deliveryId }), Code.NotFound, "another's delivery");
        await failsWith(
          portal.deliveries.getDelivery({ id: s.deliveryId, includePayload: true }),
          Code.NotFound,
          "another's payload",
        );
        await failsWith(
          portal.deliveries.listAttempts({ deliveryId: s.deliveryId }),
          Code.NotFound,
          "another's attempts",
        );
      }
      assert.deepEqual((await portal.endpoints.listEndpoints({ applicationId: b.id })).endpoints, []);
      assert.deepEqual((await portal.deliveries.listDeliveries({ applicationId: b.id })).deliveries, []);
      assert.deepEqual((await portal.deliveries.listDeliveries({ endpointId: epB.id })).deliveries, []);
      const createUnderB = await failsWith(
        portal.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/evil`, applicationId: b.id } }),
        Code.NotFound,
        "create under B",
      );
      assert.deepEqual(fields(createUnderB), ["endpoint.application_id"]);
      // Everything else of the workspace is refused by the declared policy, before any handler.
      await failsWith(portal.endpoints.rotateEndpointSecret({ id: epA.id }), Code.PermissionDenied, "rotate own");
      await failsWith(
        createClient(ApplicationService, portal.transport).listApplications({}),
        Code.PermissionDenied,
        "applications",
      );
      await failsWith(
        createClient(PortalService, portal.transport).createPortalSession({ applicationId: b.id }),
        Code.PermissionDenied,
        "a portal opening another portal",
      );
      await failsWith(
        portal.messages.send({ endpointId: epA.id, eventType: "x", body: { case: "payloadJson", value: "{}" } }),
        Code.PermissionDenied,
        "send",
      );
      await failsWith(portal.messages.getMessage({ id: sentA.messageId }), Code.PermissionDenied, "messages");
      await failsWith(portal.apiKeys.listApiKeys({}), Code.PermissionDenied, "api keys");
      assert.deepEqual(await snapshot(), before, "nothing of B or the workspace changed");

      // Its own application: everything works, and what it creates is A's.
      assert.deepEqual(
        (await portal.endpoints.listEndpoints({})).endpoints.map((e) => e.id),
        [epA.id],
      );
      assert.equal((await portal.endpoints.getEndpoint({ id: epA.id })).endpoint?.id, epA.id);
      const mine = (await portal.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/portal/mine` } }))
        .endpoint!;
      assert.equal(mine.applicationId, a.id);
      const updated = await portal.endpoints.updateEndpoint({
        endpoint: { id: mine.id, description: "mine" },
        updateMask: { paths: ["description"] },
      });
      assert.equal(updated.endpoint?.description, "mine");
      const ping = await portal.endpoints.testEndpoint({ id: epA.id });
      assert.equal(ping.success, true);
      assert.deepEqual(
        (await portal.deliveries.listDeliveries({})).deliveries.map((d) => d.id),
        [sentA.deliveryId],
      );
      assert.equal((await portal.deliveries.getDelivery({ id: sentA.deliveryId })).delivery?.id, sentA.deliveryId);
      assert.ok((await portal.deliveries.listAttempts({ deliveryId: sentA.deliveryId })).attempts.length >= 1);
      await portal.endpoints.deleteEndpoint({ id: mine.id });
      await failsWith(portal.endpoints.getEndpoint({ id: mine.id }), Code.NotFound, "deleted");

      // Expiry: a code past its time is not exchanged; a session past its time is unauthenticated.
      const store = await openStore(database!.config, { logger: pino({ level: "silent" }), overrides: false });
      try {
        const late = await portalAdmin.createPortalSession({ applicationId: a.id });
        await store.orm.em
          .fork()
          .nativeUpdate(PortalSession, { id: late.sessionId }, { codeExpiresAt: new Date(Date.now() - 1000) });
        const expiredCode = await failsWith(
          anonymous.exchangePortalCode({ code: late.code }),
          Code.FailedPrecondition,
          "expired code",
        );
        assert.equal(expiredCode.reason, "PORTAL_CODE_EXPIRED");
        const second = await portalAdmin.createPortalSession({ applicationId: a.id });
        const other = await anonymous.exchangePortalCode({ code: second.code });
        const otherPortal = createClients(stack!.apiUrl, other.token);
        assert.equal((await otherPortal.endpoints.listEndpoints({})).endpoints.length, 1);
        await store.orm.em
          .fork()
          .nativeUpdate(PortalSession, { id: second.sessionId }, { expiresAt: new Date(Date.now() - 1000) });
        const expired = await failsWith(
          otherPortal.endpoints.listEndpoints({}),
          Code.Unauthenticated,
          "expired session",
        );
        assert.equal(expired.reason, "PORTAL_SESSION_EXPIRED");
      } finally {
        await store.close();
      }

      // Deleting the application ends its sessions at once.
      await apps.deleteApplication({ id: a.id });
      const ended = await failsWith(portal.endpoints.listEndpoints({}), Code.Unauthenticated, "after deletion");
      assert.equal(ended.reason, "INVALID_CREDENTIALS");
    });

    void it("the SDK: applications, a portal session opened from its code, and a replayed trigger bound to its application", async () => {
      const sdk = new HookstreamManagement({ baseUrl: stack!.apiUrl, managementToken: managementToken });
      const app = await sdk.applications.create({ name: "SDK app", uid: "sdk_1", metadata: { a: "b" } });
      assert.equal((await sdk.applications.get({ uid: "sdk_1" })).id, app.id);
      assert.equal((await sdk.applications.update(app.id, { name: "SDK app 2" })).name, "SDK app 2");
      const listed: string[] = [];
      for await (const a of sdk.applications.listAll({ pageSize: 1 })) listed.push(a.id);
      assert.ok(listed.includes(app.id));
      assert.ok(!(await otherApps.listApplications({})).applications.some((a) => a.id === app.id), "isolation");
      const ep = (await sdk.endpoints.create({ url: `${receiver!.url}/sdk`, applicationId: app.id })).endpoint!;
      const session = await sdk.portalSessions.create(app.id, { ttl: "10m" });
      const portal = await HookstreamPortal.open(session.code, { baseUrl: stack!.apiUrl });
      assert.deepEqual(
        (await portal.endpoints.list()).endpoints.map((e) => e.id),
        [ep.id],
      );
      await assert.rejects(HookstreamPortal.open(session.code, { baseUrl: stack!.apiUrl }), (e: unknown) => {
        assert.ok(isHookstreamError(e));
        assert.equal(e.reason, "PORTAL_CODE_USED");
        return true;
      });

      // A trigger's idempotency key is bound to its application too.
      const body = { case: "payloadJson" as const, value: "{}" };
      const first = await producer.messages.trigger({
        eventType: "app.test",
        body,
        applicationId: app.id,
        idempotencyKey: "sdk-app-1",
      });
      assert.equal(first.deliveries.length, 1);
      const replay = await producer.messages.trigger({
        eventType: "app.test",
        body,
        applicationId: app.id,
        idempotencyKey: "sdk-app-1",
      });
      assert.equal(replay.replayed, true);
      assert.equal(replay.messageId, first.messageId);
      await failsWith(
        producer.messages.trigger({ eventType: "app.test", body, idempotencyKey: "sdk-app-1" }),
        Code.AlreadyExists,
        "same key, no application",
      );
      const deleted = await sdk.applications.delete(app.id);
      assert.equal(deleted.deletedEndpoints, 1);
    });
  });
}
