/**
 * Environments on the real stack (api, dispatcher and worker as separate processes, the
 * database of HOOKSTREAM_TEST_DB, a private nats-server, a local receiver): the default
 * environment every workspace starts with, CRUD with every bad input refused precisely and
 * changing nothing, and isolation: a producer key bound to one environment never reaches
 * another's endpoints, messages, applications, idempotency keys or live status, and an event
 * type unpublished in an environment cannot be triggered there.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ApiKeyScope } from "../gen/hookstream/v1/api_key_pb.ts";
import { ApplicationService } from "../gen/hookstream/v1/application_service_pb.ts";
import { EnvironmentService } from "../gen/hookstream/v1/environment_service_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { HookstreamManagement, isHookstreamError } from "../src/client/index.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { failsWith, fields } from "./support/expect-error.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";

const json = (value: unknown) => ({ case: "payloadJson" as const, value: JSON.stringify(value) });

for (const kind of testDbKinds()) {
  void describe(`environments on ${kind}`, { timeout: 240_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let managementToken: string;
    let envs: Client<typeof EnvironmentService>;
    let otherEnvs: Client<typeof EnvironmentService>;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: { HOOKSTREAM_CACHE_TTL: "100ms" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "environments" });
      managementToken = ws.managementToken;
      management = createClients(stack.apiUrl, ws.managementToken);
      envs = createClient(EnvironmentService, management.transport);
      const other = await admin.admin.createWorkspace({ name: "other" });
      otherEnvs = createClient(EnvironmentService, createClients(stack.apiUrl, other.managementToken).transport);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const allEnvs = async () => (await envs.listEnvironments({ pageSize: 200 })).environments;

    void it("a workspace starts with its default environment; CRUD with precise errors that change nothing", async () => {
      const [dflt, ...rest] = await allEnvs();
      assert.deepEqual(rest, []);
      assert.equal(dflt?.slug, "default");
      assert.equal(dflt?.default, true);
      assert.match(dflt.id, /^env_[0-9a-z]{26}$/);

      const bad = await failsWith(
        envs.createEnvironment({
          environment: { name: "", slug: "Not A Slug", unpublishedEventTypes: ["ok.type", "bad type", "ok.type"] },
        }),
        Code.InvalidArgument,
        "bad name, slug and event types",
      );
      assert.deepEqual(fields(bad).sort(), [
        "environment.name",
        "environment.slug",
        "environment.unpublished_event_types[1]",
        "environment.unpublished_event_types[2]",
      ]);
      await failsWith(envs.createEnvironment({}), Code.InvalidArgument, "no environment");
      const taken = await failsWith(
        envs.createEnvironment({ environment: { name: "again", slug: "default" } }),
        Code.AlreadyExists,
        "the default slug",
      );
      assert.equal(taken.reason, "ENVIRONMENT_SLUG_EXISTS");
      assert.deepEqual(fields(taken), ["environment.slug"]);
      assert.equal((await allEnvs()).length, 1, "nothing was created");

      const staging = (await envs.createEnvironment({ environment: { name: "Staging", slug: "staging" } }))
        .environment!;
      assert.match(staging.id, /^env_/);
      assert.equal(staging.default, false);
      assert.deepEqual(
        (await allEnvs()).map((e) => e.slug),
        ["default", "staging"],
        "oldest first",
      );
      assert.equal((await envs.getEnvironment({ slug: "staging" })).environment?.id, staging.id);
      assert.equal((await envs.getEnvironment({ id: staging.id })).environment?.name, "Staging");
      await failsWith(envs.getEnvironment({}), Code.InvalidArgument, "neither id nor slug");
      await failsWith(envs.getEnvironment({ id: staging.id, slug: "staging" }), Code.InvalidArgument, "both");
      await failsWith(envs.getEnvironment({ id: "env_nope" }), Code.InvalidArgument, "malformed id");
      // Another workspace cannot see it.
      await failsWith(otherEnvs.getEnvironment({ id: staging.id }), Code.NotFound, "other workspace");
      await failsWith(otherEnvs.deleteEnvironment({ id: staging.id }), Code.NotFound, "other workspace delete");

      // Pages.
      const page1 = await envs.listEnvironments({ pageSize: 1 });
      assert.equal(page1.environments.length, 1);
      const page2 = await envs.listEnvironments({ pageSize: 1, pageToken: page1.nextPageToken });
      assert.equal(page2.environments[0]?.id, staging.id);

      // Update masks: the slug is immutable; bad values change nothing.
      const notUpdatable = await failsWith(
        envs.updateEnvironment({ environment: { id: staging.id, slug: "x" }, updateMask: { paths: ["slug"] } }),
        Code.InvalidArgument,
        "slug is immutable",
      );
      assert.deepEqual(fields(notUpdatable), ["update_mask"]);
      await failsWith(
        envs.updateEnvironment({
          environment: { id: staging.id, name: "", unpublishedEventTypes: ["a b"] },
        }),
        Code.InvalidArgument,
        "bad values",
      );
      assert.equal((await envs.getEnvironment({ id: staging.id })).environment?.name, "Staging", "unchanged");
      const renamed = (
        await envs.updateEnvironment({
          environment: { id: staging.id, name: "Staging EU", unpublishedEventTypes: ["x.y"] },
          updateMask: { paths: ["name"] },
        })
      ).environment!;
      assert.equal(renamed.name, "Staging EU");
      assert.deepEqual(renamed.unpublishedEventTypes, [], "outside the mask");

      // The default environment stays; an empty one goes.
      const dfltDelete = await failsWith(
        envs.deleteEnvironment({ id: dflt.id }),
        Code.FailedPrecondition,
        "default environment",
      );
      assert.equal(dfltDelete.reason, "DEFAULT_ENVIRONMENT");
      const temp = (await envs.createEnvironment({ environment: { name: "Temp", slug: "temp" } })).environment!;
      await envs.deleteEnvironment({ id: temp.id });
      await failsWith(envs.getEnvironment({ id: temp.id }), Code.NotFound, "deleted");
      await failsWith(envs.deleteEnvironment({ id: temp.id }), Code.NotFound, "deleted twice");
      // Its slug is free again.
      const again = (await envs.createEnvironment({ environment: { name: "Temp", slug: "temp" } })).environment!;
      await envs.deleteEnvironment({ id: again.id });
    });

    void it("a producer key reaches only its own environment; unpublished event types are refused there", async () => {
      const eventTypes = createClient(EventTypeService, management.transport);
      const apps = createClient(ApplicationService, management.transport);
      await eventTypes.createEventType({ eventType: { name: "order.paid" } });
      await eventTypes.createEventType({ eventType: { name: "order.secret" } });
      const prod = (await envs.createEnvironment({ environment: { name: "Production", slug: "production" } }))
        .environment!;
      const stg = (await envs.getEnvironment({ slug: "staging" })).environment!;
      const dflt = (await envs.getEnvironment({ slug: "default" })).environment!;

      // Keys: bound to an environment (the default one when none is named); management keys are workspace-wide.
      const prodKey = await management.apiKeys.createApiKey({ label: "prod", environmentId: prod.id });
      const stgKey = await management.apiKeys.createApiKey({ label: "stg", environmentId: stg.id });
      const dfltKey = await management.apiKeys.createApiKey({ label: "default" });
      assert.equal(prodKey.apiKey?.environmentId, prod.id);
      assert.equal(dfltKey.apiKey?.environmentId, dflt.id);
      const keyErr = await failsWith(
        management.apiKeys.createApiKey({ scope: ApiKeyScope.MANAGEMENT, environmentId: prod.id }),
        Code.InvalidArgument,
        "management key bound to an environment",
      );
      assert.deepEqual(fields(keyErr), ["environment_id"]);
      const unknownEnv = await failsWith(
        management.apiKeys.createApiKey({ environmentId: "env_00000000000000000000000000" }),
        Code.NotFound,
        "unknown environment",
      );
      assert.equal(unknownEnv.reason, "ENVIRONMENT_NOT_FOUND");
      const keysBefore = (await management.apiKeys.listApiKeys({ pageSize: 200 })).apiKeys.length;
      await failsWith(management.apiKeys.createApiKey({ environmentId: "bad" }), Code.InvalidArgument, "bad env id");
      assert.equal((await management.apiKeys.listApiKeys({ pageSize: 200 })).apiKeys.length, keysBefore);
      assert.deepEqual(
        (await management.apiKeys.listApiKeys({ environmentId: prod.id })).apiKeys.map((k) => k.id),
        [prodKey.apiKey.id],
      );

      // Endpoints and applications live in one environment.
      const prodApp = (await apps.createApplication({ application: { name: "Prod customer", environmentId: prod.id } }))
        .application!;
      assert.equal(prodApp.environmentId, prod.id);
      const epProd = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/prod`, environmentId: prod.id },
        })
      ).endpoint!;
      const epProdApp = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/prod-app`, applicationId: prodApp.id },
        })
      ).endpoint!;
      assert.equal(epProdApp.environmentId, prod.id, "an application's endpoint lives in its environment");
      const epStg = (
        await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/stg`, environmentId: stg.id } })
      ).endpoint!;
      const epDefault = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/default` } }))
        .endpoint!;
      assert.equal(epDefault.environmentId, dflt.id);
      const endpointsBefore = (await management.endpoints.listEndpoints({ pageSize: 200 })).endpoints.length;
      const mismatch = await failsWith(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/x`, applicationId: prodApp.id, environmentId: stg.id },
        }),
        Code.InvalidArgument,
        "application and environment disagree",
      );
      assert.deepEqual(fields(mismatch), ["endpoint.environment_id"]);
      await failsWith(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/x`, environmentId: "env_00000000000000000000000000" },
        }),
        Code.NotFound,
        "unknown environment",
      );
      assert.equal((await management.endpoints.listEndpoints({ pageSize: 200 })).endpoints.length, endpointsBefore);
      assert.deepEqual(
        (await management.endpoints.listEndpoints({ environmentId: prod.id })).endpoints.map((e) => e.id).sort(),
        [epProd.id, epProdApp.id].sort(),
      );
      assert.deepEqual(
        (await apps.listApplications({ environmentId: prod.id })).applications.map((a) => a.id),
        [prodApp.id],
      );
      // An environment that holds something cannot be deleted.
      const notEmpty = await failsWith(envs.deleteEnvironment({ id: prod.id }), Code.FailedPrecondition, "not empty");
      assert.equal(notEmpty.reason, "ENVIRONMENT_NOT_EMPTY");
      assert.equal((await envs.getEnvironment({ id: prod.id })).environment?.id, prod.id, "still there");

      const prodProducer = createClients(stack!.apiUrl, prodKey.secret);
      const stgProducer = createClients(stack!.apiUrl, stgKey.secret);
      const dfltProducer = createClients(stack!.apiUrl, dfltKey.secret);

      // Send: a staging key never reaches a production endpoint (not_found, as if it did not exist).
      await failsWith(
        stgProducer.messages.send({ endpointId: epProd.id, eventType: "order.paid", body: json({ n: 0 }) }),
        Code.NotFound,
        "staging key to a production endpoint",
      );
      const sent = await prodProducer.messages.send({
        endpointId: epProd.id,
        eventType: "order.paid",
        body: json({ n: 1 }),
        idempotencyKey: "shared-key",
      });
      // The same idempotency key in another environment neither replays nor leaks the message.
      const reused = await failsWith(
        stgProducer.messages.send({
          endpointId: epStg.id,
          eventType: "order.paid",
          body: json({ n: 1 }),
          idempotencyKey: "shared-key",
        }),
        Code.AlreadyExists,
        "idempotency key of another environment",
      );
      assert.ok(!JSON.stringify(reused).includes(sent.messageId), "the other environment's message is not named");
      await failsWith(stgProducer.messages.getMessage({ id: sent.messageId }), Code.NotFound, "other env message");
      await failsWith(stgProducer.messages.cancelMessage({ id: sent.messageId }), Code.NotFound, "other env cancel");
      const got = (await prodProducer.messages.getMessage({ id: sent.messageId })).message!;
      assert.equal(got.environmentId, prod.id);
      await receiver!.waitFor((rs) => rs.some((r) => r.path === "/prod"), 30_000, "the production delivery");

      // Trigger fans out within the key's environment only.
      const fromStg = await stgProducer.messages.trigger({ eventType: "order.paid", body: json({ env: "stg" }) });
      assert.deepEqual(
        fromStg.deliveries.map((d) => d.endpointId),
        [epStg.id],
      );
      const fromProd = await prodProducer.messages.trigger({ eventType: "order.paid", body: json({ env: "prod" }) });
      assert.deepEqual(fromProd.deliveries.map((d) => d.endpointId).sort(), [epProd.id, epProdApp.id].sort());
      const fromDefault = await dfltProducer.messages.trigger({ eventType: "order.paid", body: json({ env: "dflt" }) });
      assert.deepEqual(
        fromDefault.deliveries.map((d) => d.endpointId),
        [epDefault.id],
      );
      // Another environment's application is unknown to the key.
      const otherApp = await failsWith(
        stgProducer.messages.trigger({ eventType: "order.paid", body: json({}), applicationId: prodApp.id }),
        Code.NotFound,
        "another environment's application",
      );
      assert.equal(otherApp.reason, "APPLICATION_NOT_FOUND");
      await receiver!.waitFor(
        (rs) => ["/stg", "/prod-app", "/default"].every((p) => rs.some((r) => r.path === p)),
        30_000,
        "the triggered deliveries",
      );
      const bodiesTo = (path: string): string[] =>
        receiver!.requests.filter((r) => r.path === path).map((r) => r.body.toString());
      assert.ok(bodiesTo("/stg").every((b) => !b.includes('"prod"') && !b.includes('"dflt"')));
      assert.ok(bodiesTo("/prod").every((b) => !b.includes('"stg"') && !b.includes('"dflt"')));

      // ListMessages: a key sees its own environment's messages; the management token filters.
      const stgList = (await stgProducer.messages.listMessages({ pageSize: 200 })).messages;
      assert.deepEqual(
        stgList.map((m) => m.id),
        [fromStg.messageId],
      );
      assert.deepEqual(
        (await stgProducer.messages.listMessages({ environmentId: prod.id })).messages,
        [],
        "another environment's filter shows nothing",
      );
      const prodIds = (await prodProducer.messages.listMessages({ pageSize: 200 })).messages.map((m) => m.id);
      assert.deepEqual(prodIds.sort(), [sent.messageId, fromProd.messageId].sort());

      // Unpublished event types: refused in that environment, still triggerable elsewhere.
      await envs.updateEnvironment({
        environment: { id: stg.id, unpublishedEventTypes: ["order.secret"] },
        updateMask: { paths: ["unpublished_event_types"] },
      });
      // The API caches environments for HOOKSTREAM_CACHE_TTL (100ms here).
      await new Promise((r) => setTimeout(r, 300));
      const messagesBefore = (await stgProducer.messages.listMessages({ pageSize: 200 })).messages.length;
      const unpublished = await failsWith(
        stgProducer.messages.trigger({ eventType: "order.secret", body: json({}) }),
        Code.FailedPrecondition,
        "unpublished in staging",
      );
      assert.equal(unpublished.reason, "EVENT_TYPE_UNPUBLISHED");
      assert.deepEqual(fields(unpublished), ["event_type"]);
      const batch = await stgProducer.messages.triggerBatch({
        items: [
          { eventType: "order.secret", body: json({}) },
          { eventType: "order.paid", body: json({ batch: true }) },
        ],
      });
      assert.equal(batch.results[0]?.code, "failed_precondition");
      assert.equal(batch.results[0]?.error?.reason, "EVENT_TYPE_UNPUBLISHED");
      assert.deepEqual(
        batch.results[0]?.error?.fieldViolations.map((v) => v.field),
        ["items[0].event_type"],
      );
      assert.equal(batch.results[1]?.response?.deliveries[0]?.endpointId, epStg.id);
      const published = await prodProducer.messages.trigger({ eventType: "order.secret", body: json({}) });
      assert.equal(published.deliveries.length, 2, "published in production");
      // The refused triggers wrote nothing: only the batch's good item is new in staging.
      const afterList = (await stgProducer.messages.listMessages({ pageSize: 200 })).messages;
      assert.equal(afterList.length, messagesBefore + 1);
      assert.ok(afterList.every((m) => m.eventType !== "order.secret"));

      // ListDeliveries filters by event type and creation time (management token, every environment).
      const secretDeliveries = (await management.deliveries.listDeliveries({ eventType: "order.secret" })).deliveries;
      assert.deepEqual(secretDeliveries.map((d) => d.endpointId).sort(), [epProd.id, epProdApp.id].sort());
      const future = timestampFromDate(new Date(Date.now() + 3_600_000));
      assert.deepEqual((await management.deliveries.listDeliveries({ createTimeAfter: future })).deliveries, []);
      assert.equal(
        (await management.deliveries.listDeliveries({ createTimeBefore: future, pageSize: 200 })).deliveries.length,
        (await management.deliveries.listDeliveries({ pageSize: 200 })).deliveries.length,
      );
      const badFilter = await failsWith(
        management.deliveries.listDeliveries({
          eventType: "bad type",
          createTimeAfter: future,
          createTimeBefore: future,
        }),
        Code.InvalidArgument,
        "bad delivery filters",
      );
      assert.deepEqual(fields(badFilter).sort(), ["create_time_before", "event_type"]);

      // Watch: a staging key's stream carries no production delivery, and production's endpoint is not_found.
      await failsWith(
        (async () => {
          for await (const _ of stgProducer.watch.watchDeliveries({ endpointId: epProd.id })) break;
        })(),
        Code.NotFound,
        "watching another environment's endpoint",
      );
      await failsWith(
        (async () => {
          for await (const _ of stgProducer.watch.watchMessage({ id: sent.messageId })) break;
        })(),
        Code.NotFound,
        "watching another environment's message",
      );
      const seen: string[] = [];
      const ac = new AbortController();
      const watching = (async () => {
        try {
          for await (const item of stgProducer.watch.watchDeliveries({}, { signal: ac.signal })) {
            if (item.delivery) seen.push(item.delivery.endpointId);
          }
        } catch {
          // aborted
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      await prodProducer.messages.trigger({ eventType: "order.paid", body: json({ watch: "prod" }) });
      const stgWatched = await stgProducer.messages.trigger({ eventType: "order.paid", body: json({ watch: "stg" }) });
      for (let i = 0; i < 200 && !seen.includes(stgWatched.deliveries[0]!.endpointId); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      ac.abort();
      await watching;
      assert.ok(seen.includes(epStg.id), "the staging delivery was seen");
      assert.ok(
        seen.every((id) => id === epStg.id),
        `only staging endpoints are seen: ${seen.join(", ")}`,
      );

      // The SDK's management client manages environments too.
      await using sdk = new HookstreamManagement({ baseUrl: stack!.apiUrl, managementToken });
      const viaSdk = await sdk.environments.create({ name: "SDK", slug: "sdk" });
      assert.equal((await sdk.environments.get({ slug: "sdk" })).id, viaSdk.id);
      const listed: string[] = [];
      for await (const e of sdk.environments.listAll({ pageSize: 1 })) listed.push(e.slug);
      assert.ok(listed.includes("sdk") && listed[0] === "default", listed.join(","));
      assert.deepEqual(
        (await sdk.environments.update(viaSdk.id, { unpublishedEventTypes: ["a.b"] })).unpublishedEventTypes,
        ["a.b"],
      );
      await sdk.environments.delete(viaSdk.id);
      // Delivery statistics over the management API: production's deliveries of the last hour.
      const stats = await sdk.deliveries.stats({ window: "1h", endpointId: epProd.id, bucket: "10m" });
      assert.ok(stats.deliveries >= 3, `production's endpoint had ${stats.deliveries} deliveries`);
      assert.equal(stats.series.length, 6);
      assert.equal(
        stats.series.reduce((n, p) => n + p.deliveries, 0n),
        stats.deliveries,
      );
      await assert.rejects(sdk.deliveries.stats({ window: "40d" }), (e: unknown) => {
        assert.ok(isHookstreamError(e));
        assert.equal(e.code, Code.InvalidArgument);
        assert.deepEqual(
          e.fieldViolations.map((v) => v.field),
          ["window"],
        );
        return true;
      });
    });
  });
}
