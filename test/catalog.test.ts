/**
 * The resource catalog on the real stack (api, dispatcher and worker as separate processes, the
 * database of HOOKSTREAM_TEST_DB, a private nats-server, a local receiver): event types with
 * their schemas and archived flag as Send enforces them, and deleting a type with pending
 * deliveries.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { Webhook } from "standardwebhooks";
import { AttemptErrorKind, DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { EndpointType } from "../gen/hookstream/v1/endpoint_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { SubscriptionService } from "../gen/hookstream/v1/subscription_service_pb.ts";
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
  void describe(`catalog on ${kind}`, { timeout: 240_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;
    let eventTypes: Client<typeof EventTypeService>;
    let otherEventTypes: Client<typeof EventTypeService>;

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
      const ws = await admin.admin.createWorkspace({ name: "catalog" });
      management = createClients(stack.apiUrl, ws.managementToken);
      eventTypes = createClient(EventTypeService, management.transport);
      const key = await management.apiKeys.createApiKey({ label: "catalog" });
      producer = createClients(stack.apiUrl, key.secret);
      const other = await admin.admin.createWorkspace({ name: "other" });
      otherEventTypes = createClient(EventTypeService, createClients(stack.apiUrl, other.managementToken).transport);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const delivery = (id: string): Promise<Delivery> =>
      management.deliveries.getDelivery({ id }).then((r) => r.delivery!);

    void it("event types: validated names and schemas, unique names, pages by name, update masks, isolation", async () => {
      const bad = await failsWith(
        eventTypes.createEventType({
          eventType: { name: "order..paid", description: "x".repeat(1001), schema: { type: "object", colour: 1 } },
        }),
        Code.InvalidArgument,
        "bad name, description and schema",
      );
      assert.deepEqual(fields(bad), ["event_type.name", "event_type.description", "event_type.schema"]);
      assert.match(bad.fieldViolations[2]!.description, /colour/);
      const pattern = await failsWith(
        eventTypes.createEventType({
          eventType: { name: "order.paid", schema: { type: "string", pattern: "^(a+)+$" } },
        }),
        Code.InvalidArgument,
        "catastrophic pattern",
      );
      assert.match(pattern.fieldViolations[0]!.description, /backtrack/);
      await failsWith(eventTypes.getEventType({ name: "order.paid" }), Code.NotFound, "nothing was created");

      const created = await eventTypes.createEventType({
        eventType: {
          name: "order.paid",
          description: "An order was paid",
          schema: {
            type: "object",
            required: ["id", "price"],
            properties: { id: { type: "integer" }, price: { type: "number" } },
          },
        },
      });
      assert.equal(created.eventType?.name, "order.paid");
      assert.deepEqual(created.eventType?.schema?.["required"], ["id", "price"]);
      assert.equal(created.eventType?.archived, false);
      const dup = await failsWith(
        eventTypes.createEventType({ eventType: { name: "order.paid" } }),
        Code.AlreadyExists,
        "duplicate name",
      );
      assert.equal(dup.reason, "EVENT_TYPE_EXISTS");
      for (const name of ["a.first", "order.refunded", "z.archived"]) {
        await eventTypes.createEventType({ eventType: { name, archived: name === "z.archived" } });
      }
      await otherEventTypes.createEventType({ eventType: { name: "other.only" } });

      const page1 = await eventTypes.listEventTypes({ pageSize: 2 });
      assert.deepEqual(
        page1.eventTypes.map((e) => e.name),
        ["a.first", "order.paid"],
      );
      const page2 = await eventTypes.listEventTypes({ pageSize: 2, pageToken: page1.nextPageToken });
      assert.deepEqual(
        page2.eventTypes.map((e) => e.name),
        ["order.refunded"],
      );
      assert.equal(page2.nextPageToken, "");
      const all = await eventTypes.listEventTypes({ includeArchived: true });
      assert.deepEqual(
        all.eventTypes.map((e) => e.name),
        ["a.first", "order.paid", "order.refunded", "z.archived"],
      );
      await failsWith(
        eventTypes.listEventTypes({ pageSize: 2, pageToken: page1.nextPageToken, includeArchived: true }),
        Code.InvalidArgument,
        "a token reused with other filters",
      );
      await failsWith(otherEventTypes.getEventType({ name: "order.paid" }), Code.NotFound, "another workspace's");
      await failsWith(
        otherEventTypes.deleteEventType({ name: "order.paid" }),
        Code.NotFound,
        "deleting another workspace's",
      );

      const badMask = await failsWith(
        eventTypes.updateEventType({ eventType: { name: "a.first" }, updateMask: { paths: ["name", "schema"] } }),
        Code.InvalidArgument,
        "name is not updatable",
      );
      assert.deepEqual(fields(badMask), ["update_mask"]);
      const described = await eventTypes.updateEventType({
        eventType: { name: "a.first", description: "changed", archived: true },
        updateMask: { paths: ["description"] },
      });
      assert.equal(described.eventType?.description, "changed");
      assert.equal(described.eventType?.archived, false, "only masked fields change");
      await failsWith(
        eventTypes.updateEventType({
          eventType: { name: "a.first", schema: { type: "object", $ref: "https://example.com/s.json" } },
          updateMask: { paths: ["schema"] },
        }),
        Code.InvalidArgument,
        "an unresolvable $ref",
      );
      await failsWith(
        eventTypes.updateEventType({ eventType: { name: "no.such" }, updateMask: { paths: ["archived"] } }),
        Code.NotFound,
        "updating a missing type",
      );
    });

    void it("Send validates payloads against the type's schema, refuses archived types, allows unknown ones", async () => {
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/schema` } });
      const send = (eventType: string, json: string, idempotencyKey = "") =>
        producer.messages.send({
          endpointId: ep.endpoint!.id,
          eventType,
          body: { case: "payloadJson", value: json },
          idempotencyKey,
        });
      const mismatch = await failsWith(
        send("order.paid", '{"id":"seven","price":"free","extra":[1]}', "schema-key"),
        Code.InvalidArgument,
        "payload against the schema",
      );
      assert.equal(mismatch.reason, "PAYLOAD_SCHEMA_MISMATCH");
      assert.deepEqual(
        mismatch.fieldViolations.map((v) => [v.field, v.description]),
        [
          ["payload_json", "/id must be integer"],
          ["payload_json", "/price must be number"],
        ],
      );
      const missing = await failsWith(send("order.paid", "[]"), Code.InvalidArgument, "not an object");
      assert.deepEqual(
        missing.fieldViolations.map((v) => v.description),
        ["/ must be object"],
      );
      await failsWith(
        producer.messages.send({
          endpointId: ep.endpoint!.id,
          eventType: "order.paid",
          body: { case: "rawPayload", value: new Uint8Array([1, 2]) },
          contentType: "application/octet-stream",
        }),
        Code.InvalidArgument,
        "raw bytes for a type with a schema",
      );
      // The refused request stored nothing: its key is still free.
      const ok = await send("order.paid", '{"id":9007199254740993,"price":1.50}', "schema-key");
      assert.equal(ok.replayed, false);
      assert.equal((await send("order.paid", '{"id":9007199254740993,"price":1.50}', "schema-key")).replayed, true);
      await receiver!.waitFor(() => receiver!.byId(ok.deliveryId).length > 0, 30_000, "the valid message");
      assert.equal(receiver!.byId(ok.deliveryId)[0]!.body.toString(), '{"id":9007199254740993,"price":1.50}');

      // Unknown event types are allowed on Send (it names its endpoint); types without a schema take anything.
      assert.equal((await send("never.declared", "42")).replayed, false);
      assert.equal((await send("order.refunded", '"anything"')).replayed, false);

      await eventTypes.updateEventType({
        eventType: { name: "order.refunded", archived: true },
        updateMask: { paths: ["archived"] },
      });
      const archived = await failsWith(send("order.refunded", "{}"), Code.FailedPrecondition, "archived type");
      assert.equal(archived.reason, "EVENT_TYPE_ARCHIVED");
      assert.deepEqual(fields(archived), ["event_type"]);
      await eventTypes.updateEventType({ eventType: { name: "order.refunded" }, updateMask: { paths: ["archived"] } });
      assert.equal((await send("order.refunded", "{}")).replayed, false, "unarchived again");

      // Removing the schema (empty mask: every updatable field) lets any payload through.
      await eventTypes.updateEventType({ eventType: { name: "order.paid", description: "no schema now" } });
      assert.equal((await send("order.paid", "[]")).replayed, false);
    });

    void it("endpoints: type, event types and CEL filter are checked when saved, masks change them", async () => {
      await eventTypes.createEventType({ eventType: { name: "user.signed_up" } });
      const bad = await failsWith(
        management.endpoints.createEndpoint({
          endpoint: {
            url: `${receiver!.url}/routed`,
            type: 7 as EndpointType,
            eventTypes: ["user.signed_up", "bad..name", "user.signed_up"],
            filter: "payload.total >",
          },
        }),
        Code.InvalidArgument,
        "bad type, names and filter",
      );
      assert.deepEqual(fields(bad), [
        "endpoint.type",
        "endpoint.event_types[1]",
        "endpoint.event_types[2]",
        "endpoint.filter",
      ]);
      assert.match(bad.fieldViolations[3]!.description, /^syntax error at 1:\d+/);
      const unknownVar = await failsWith(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/routed`, filter: "payload.a == 1 &&\n  totl > 3" },
        }),
        Code.InvalidArgument,
        "an unknown variable",
      );
      assert.match(unknownVar.fieldViolations[0]!.description, /2:3/);
      const unknownType = await failsWith(
        management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/routed`, eventTypes: ["user.signed_up", "user.never"] },
        }),
        Code.InvalidArgument,
        "an event type that does not exist",
      );
      assert.deepEqual(fields(unknownType), ["endpoint.event_types[1]"]);

      const created = await management.endpoints.createEndpoint({
        endpoint: {
          url: `${receiver!.url}/routed`,
          eventTypes: ["user.signed_up"],
          filter: 'payload.plan == "pro"',
        },
      });
      assert.equal(created.endpoint?.type, EndpointType.WEBHOOK);
      assert.deepEqual(created.endpoint?.eventTypes, ["user.signed_up"]);
      assert.equal(created.endpoint?.filter, 'payload.plan == "pro"');
      const id = created.endpoint?.id ?? "";
      await failsWith(
        management.endpoints.updateEndpoint({ endpoint: { id, filter: "1 + 1" }, updateMask: { paths: ["filter"] } }),
        Code.InvalidArgument,
        "a filter that cannot be a bool",
      );
      const updated = await management.endpoints.updateEndpoint({
        endpoint: { id, type: EndpointType.SLACK, eventTypes: [], filter: "" },
        updateMask: { paths: ["type", "event_types", "filter"] },
      });
      assert.equal(updated.endpoint?.type, EndpointType.SLACK);
      assert.deepEqual(updated.endpoint?.eventTypes, []);
      assert.equal(updated.endpoint?.filter, "");
      const got = await management.endpoints.getEndpoint({ id });
      assert.equal(got.endpoint?.type, EndpointType.SLACK);
      assert.equal(got.endpoint?.url, `${receiver!.url}/routed`, "fields outside the mask kept");
    });

    void it("TestEndpoint sends a signed ping and reports success, status, latency and the failure class", async () => {
      const ok = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/ping-ok` } });
      const res = await management.endpoints.testEndpoint({ id: ok.endpoint!.id });
      assert.equal(res.success, true);
      assert.equal(res.statusCode, 200);
      assert.equal(res.failureClass, AttemptErrorKind.UNSPECIFIED);
      assert.ok(res.latency !== undefined && (Number(res.latency.seconds) > 0 || res.latency.nanos > 0));
      assert.match(res.webhookId, /^ping_[0-9a-f]{32}$/);
      const [ping] = receiver!.byId(res.webhookId);
      assert.ok(ping !== undefined, "the receiver got the ping");
      const verified = new Webhook(ok.signingSecret).verify(ping.body.toString("utf8"), ping.headers) as {
        type: string;
        endpointId: string;
      };
      assert.equal(verified.type, "hookstream.ping");
      assert.equal(verified.endpointId, ok.endpoint!.id);

      receiver!.addRule((req) => (req.path === "/ping-503" ? 503 : undefined));
      const failing = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver!.url}/ping-503`, enabled: false },
      });
      const failed = await management.endpoints.testEndpoint({ id: failing.endpoint!.id });
      assert.equal(failed.success, false);
      assert.equal(failed.statusCode, 503);
      assert.equal(failed.failureClass, AttemptErrorKind.HTTP_STATUS);

      const refused = await management.endpoints.createEndpoint({ endpoint: { url: "http://10.255.255.1/hook" } });
      const blocked = await management.endpoints.testEndpoint({ id: refused.endpoint!.id });
      assert.equal(blocked.success, false);
      assert.equal(blocked.statusCode, 0);
      assert.equal(blocked.failureClass, AttemptErrorKind.REFUSED_BY_POLICY, "the SSRF guard applies");

      await failsWith(management.endpoints.testEndpoint({ id: "ep_nope" }), Code.InvalidArgument, "a bad id");
      await failsWith(
        producer.endpoints.testEndpoint({ id: ok.endpoint!.id }),
        Code.PermissionDenied,
        "an API key cannot test",
      );
    });

    void it("a slack endpoint receives the event rendered as a Slack message; TestEndpoint renders the ping", async () => {
      const ep = await management.endpoints.createEndpoint({
        endpoint: { url: `${receiver!.url}/slack`, type: EndpointType.SLACK, headers: { "x-team": "ops" } },
      });
      const payload = '{"orderId":12345678901234567890,"note":"<b>&</b>"}';
      const sent = await producer.messages.send({
        endpointId: ep.endpoint!.id,
        eventType: "order.shipped",
        body: { case: "payloadJson", value: payload },
      });
      await receiver!.waitFor(() => receiver!.requests.some((r) => r.path === "/slack"), 30_000, "the Slack message");
      const request = receiver!.requests.find((r) => r.path === "/slack")!;
      assert.equal(request.headers["content-type"], "application/json");
      assert.equal(request.headers["x-team"], "ops");
      assert.equal(request.headers["webhook-signature"], undefined, "Slack messages are not signed");
      const body = JSON.parse(request.body.toString("utf8")) as {
        text: string;
        blocks: { type: string; text: { type: string; text: string } }[];
      };
      assert.equal(body.text, `order.shipped: ${payload}`);
      assert.equal(body.blocks[0]!.text.text, `*order.shipped*  ·  \`${sent.deliveryId}\``);
      assert.equal(
        body.blocks[1]!.text.text,
        "```" + '{"orderId":12345678901234567890,"note":"&lt;b&gt;&amp;&lt;/b&gt;"}' + "```",
        "the exact payload text, escaped for mrkdwn",
      );
      await until("the slack delivery succeeded", async () =>
        (await delivery(sent.deliveryId)).status === DeliveryStatus.SUCCEEDED ? true : undefined,
      );
      const tested = await management.endpoints.testEndpoint({ id: ep.endpoint!.id });
      assert.equal(tested.success, true);
      const ping = receiver!.requests.filter((r) => r.path === "/slack").at(-1)!;
      assert.match(
        (JSON.parse(ping.body.toString("utf8")) as { text: string }).text,
        /^hookstream\.ping: \{"type":"hookstream\.ping"/,
      );
    });

    void it("Trigger fans out by type through endpoint and subscription filters; signed, byte-exact, idempotent", async () => {
      const admin = createClients(stack!.apiUrl, stack!.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "fan-out" });
      const mgmt = createClients(stack!.apiUrl, ws.managementToken);
      const types = createClient(EventTypeService, mgmt.transport);
      const subs = createClient(SubscriptionService, mgmt.transport);
      const key = await mgmt.apiKeys.createApiKey({ label: "fan-out" });
      const prod = createClients(stack!.apiUrl, key.secret);
      await types.createEventType({
        eventType: { name: "fan.out", schema: { type: "object", required: ["amount"] } },
      });
      for (const name of ["other.type", "lonely.type", "old.type"]) {
        await types.createEventType({ eventType: { name, archived: name === "old.type" } });
      }
      const endpoint = async (path: string, fields: Record<string, unknown> = {}) => {
        const r = await mgmt.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/fan/${path}`, ...fields } });
        return { id: r.endpoint!.id, secret: r.signingSecret, path: `/fan/${path}` };
      };
      const a = await endpoint("a", { eventTypes: ["fan.out"] });
      const b = await endpoint("b", { eventTypes: ["fan.out"], filter: "payload.amount > 100" });
      const c = await endpoint("c", { eventTypes: ["other.type"] });
      // Disabled: it still gets its deliveries, held until it is enabled again.
      const d = await endpoint("d", { enabled: false, eventTypes: ["fan.out"] });
      const e = await endpoint("e");
      const f = await endpoint("f");
      const bad = await failsWith(
        subs.createSubscription({ subscription: { endpointId: e.id, eventTypes: [], filter: "metadata.region ==" } }),
        Code.InvalidArgument,
        "a subscription with no types and a bad filter",
      );
      assert.deepEqual(fields(bad), ["subscription.event_types", "subscription.filter"]);
      await failsWith(
        subs.createSubscription({
          subscription: { endpointId: "ep_00000000000000000000000000", eventTypes: ["fan.out"] },
        }),
        Code.NotFound,
        "an endpoint that does not exist",
      );
      const eu = await subs.createSubscription({
        subscription: { endpointId: e.id, eventTypes: ["fan.out", "other.type"], filter: 'metadata.region == "eu"' },
      });
      assert.match(eu.subscription?.id ?? "", /^sub_/);
      assert.equal(eu.subscription?.enabled, true);
      const paused = await subs.createSubscription({
        subscription: { endpointId: f.id, eventTypes: ["fan.out"], enabled: false },
      });
      const listed = await subs.listSubscriptions({ endpointId: e.id });
      assert.deepEqual(
        listed.subscriptions.map((x) => x.id),
        [eu.subscription.id],
      );

      // Over Connect JSON, the payload member's exact text is what every receiver gets and verifies.
      const text = '{"amount": 250, "id": 12345678901234567890, "note": "d\\u00e9j\\u00e0"}';
      const res = await fetch(`${stack!.apiUrl}/hookstream.v1.MessageService/Trigger`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key.secret}` },
        body: `{"eventType":"fan.out","payload":${text},"metadata":{"region":"eu"},"idempotencyKey":"fan-1"}`,
      });
      assert.equal(res.status, 200);
      const first = (await res.json()) as {
        messageId: string;
        deliveries: { deliveryId: string; endpointId: string }[];
        replayed?: boolean;
        noEndpointMatched?: boolean;
      };
      assert.deepEqual(
        first.deliveries.map((x) => x.endpointId),
        [a.id, b.id, d.id, e.id].sort(),
      );
      assert.equal(first.noEndpointMatched ?? false, false);
      const secretOf = new Map([a, b, d, e].map((x) => [x.id, x.secret]));
      for (const dl of first.deliveries.filter((x) => x.endpointId !== d.id)) {
        await receiver!.waitFor(() => receiver!.byId(dl.deliveryId).length > 0, 30_000, `delivery ${dl.deliveryId}`);
        const got = receiver!.byId(dl.deliveryId)[0]!;
        assert.equal(got.body.toString("utf8"), text, "the producer's bytes");
        new Webhook(secretOf.get(dl.endpointId)!).verify(got.body.toString("utf8"), got.headers);
      }
      for (const x of [c, f]) assert.equal(receiver!.requests.filter((r) => r.path === x.path).length, 0);
      const msg = await prod.messages.getMessage({ id: first.messageId });
      assert.equal(msg.message?.payloadJson, text);
      assert.deepEqual(msg.message?.metadata, { region: "eu" }, "the metadata is stored with the message");
      assert.equal(msg.deliveries.length, 4);
      // The disabled endpoint's delivery is kept and shown as held, not dropped.
      const dDelivery = first.deliveries.find((x) => x.endpointId === d.id)!;
      await until("d's delivery held", async () => {
        const m = await prod.messages.getMessage({ id: first.messageId });
        return m.deliveries.find((x) => x.id === dDelivery.deliveryId)?.status === DeliveryStatus.HELD
          ? true
          : undefined;
      });

      const again = await prod.messages.trigger({
        eventType: "fan.out",
        body: { case: "payloadJson", value: text },
        metadata: { region: "eu" },
        idempotencyKey: "fan-1",
      });
      assert.equal(again.replayed, true);
      assert.equal(again.messageId, first.messageId);
      assert.deepEqual(
        again.deliveries.map((x) => x.deliveryId).sort(),
        first.deliveries.map((x) => x.deliveryId).sort(),
      );
      const conflict = await failsWith(
        prod.messages.trigger({
          eventType: "fan.out",
          body: { case: "payloadJson", value: text },
          metadata: { region: "us" },
          idempotencyKey: "fan-1",
        }),
        Code.AlreadyExists,
        "the same key with other metadata",
      );
      assert.equal(conflict.reason, "IDEMPOTENCY_KEY_REUSED");

      const small = await prod.messages.trigger({
        eventType: "fan.out",
        body: { case: "payloadJson", value: '{"amount":50}' },
        metadata: { region: "us" },
      });
      assert.deepEqual(
        small.deliveries.map((x) => x.endpointId),
        [a.id, d.id].sort(),
        "b's filter and e's subscription filter refuse it",
      );

      await subs.updateSubscription({
        subscription: { id: paused.subscription!.id, enabled: true },
        updateMask: { paths: ["enabled"] },
      });
      const resumed = await prod.messages.trigger({
        eventType: "fan.out",
        body: { case: "payloadJson", value: '{"amount":1}' },
      });
      assert.deepEqual(
        resumed.deliveries.map((x) => x.endpointId),
        [a.id, d.id, f.id].sort(),
      );
      // Enabled again, d gets every message it was held for, signed with its own secret.
      await mgmt.endpoints.updateEndpoint({
        endpoint: { id: d.id, enabled: true },
        updateMask: { paths: ["enabled"] },
      });
      for (const dl of [dDelivery, ...small.deliveries, ...resumed.deliveries].filter((x) => x.endpointId === d.id)) {
        await receiver!.waitFor(
          () => receiver!.byId(dl.deliveryId).length > 0,
          30_000,
          `held delivery ${dl.deliveryId}`,
        );
        const got = receiver!.byId(dl.deliveryId)[0]!;
        new Webhook(d.secret).verify(got.body.toString("utf8"), got.headers);
      }
      await until("every held delivery of d succeeded", async () => {
        const mine = await mgmt.deliveries.listDeliveries({ endpointId: d.id });
        return mine.deliveries.length === 3 && mine.deliveries.every((x) => x.status === DeliveryStatus.SUCCEEDED)
          ? true
          : undefined;
      });

      const none = await prod.messages.trigger({
        eventType: "lonely.type",
        body: { case: "payloadJson", value: "{}" },
      });
      assert.equal(none.noEndpointMatched, true);
      assert.deepEqual(none.deliveries, []);
      assert.match(none.messageId, /^msg_/);
      assert.equal((await prod.messages.getMessage({ id: none.messageId })).deliveries.length, 0);

      const unknown = await failsWith(
        prod.messages.trigger({ eventType: "never.made", body: { case: "payloadJson", value: "{}" } }),
        Code.NotFound,
        "an unknown event type",
      );
      assert.equal(unknown.reason, "EVENT_TYPE_NOT_FOUND");
      await failsWith(
        prod.messages.trigger({ eventType: "old.type", body: { case: "payloadJson", value: "{}" } }),
        Code.FailedPrecondition,
        "an archived event type",
      );
      const mismatch = await failsWith(
        prod.messages.trigger({ eventType: "fan.out", body: { case: "payloadJson", value: '{"n":1}' } }),
        Code.InvalidArgument,
        "a payload the schema refuses",
      );
      assert.deepEqual(
        mismatch.fieldViolations.map((v) => [v.field, v.description]),
        [["payload_json", "/ must have required property 'amount'"]],
      );
      await failsWith(
        mgmt.messages.trigger({ eventType: "fan.out", body: { case: "payloadJson", value: '{"amount":1}' } }),
        Code.PermissionDenied,
        "a management token cannot trigger",
      );

      // Deleting an endpoint takes its subscriptions with it.
      await mgmt.endpoints.deleteEndpoint({ id: e.id });
      await failsWith(
        subs.getSubscription({ id: eu.subscription.id }),
        Code.NotFound,
        "a deleted endpoint's subscription",
      );
      await subs.deleteSubscription({ id: paused.subscription!.id });
      await failsWith(subs.deleteSubscription({ id: paused.subscription!.id }), Code.NotFound, "deleted twice");
    });

    void it("TriggerBatch answers item by item: byte-exact payloads, per-item errors under items[i], idempotent replays", async () => {
      const admin = createClients(stack!.apiUrl, stack!.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "trigger-batch" });
      const mgmt = createClients(stack!.apiUrl, ws.managementToken);
      const types = createClient(EventTypeService, mgmt.transport);
      const key = await mgmt.apiKeys.createApiKey({ label: "trigger-batch" });
      const prod = createClients(stack!.apiUrl, key.secret);
      await types.createEventType({ eventType: { name: "batch.a", schema: { type: "object", required: ["amount"] } } });
      await types.createEventType({ eventType: { name: "batch.b" } });
      const endpoint = async (path: string, eventTypes: string[]) => {
        const r = await mgmt.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/tb/${path}`, eventTypes } });
        return { id: r.endpoint!.id, secret: r.signingSecret };
      };
      const a = await endpoint("a", ["batch.a"]);
      const b = await endpoint("b", ["batch.b"]);
      const before = await prod.messages.listMessages({});

      const textA = '{"amount": 12345678901234567890, "note": "d\\u00e9j\\u00e0"}';
      const body = JSON.stringify({
        items: [
          { eventType: "batch.a", payload: "@A", idempotencyKey: "tb-1" },
          { eventType: "never.made", payload: {} },
          { eventType: "batch.a", payload: { n: 1 } },
          { eventType: "batch.b", payloadJson: "[1,  2]" },
          { eventType: "bad..name", payload: {}, metadata: { "": "x" } },
        ],
      }).replace('"@A"', textA);
      const call = async () => {
        const res = await fetch(`${stack!.apiUrl}/hookstream.v1.MessageService/TriggerBatch`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key.secret}` },
          body,
        });
        assert.equal(res.status, 200);
        return (await res.json()) as {
          allSucceeded?: boolean;
          results: {
            index?: number;
            code?: string;
            error?: { reason: string; fieldViolations?: { field: string }[] };
            response?: {
              messageId: string;
              deliveries: { deliveryId: string; endpointId: string }[];
              replayed?: boolean;
            };
          }[];
        };
      };
      const first = await call();
      assert.equal(first.allSucceeded ?? false, false);
      assert.deepEqual(
        first.results.map((r) => [r.index ?? 0, r.code ?? "ok", r.error?.reason ?? ""]),
        [
          [0, "ok", ""],
          [1, "not_found", "EVENT_TYPE_NOT_FOUND"],
          [2, "invalid_argument", "PAYLOAD_SCHEMA_MISMATCH"],
          [3, "ok", ""],
          [4, "invalid_argument", "INVALID_ARGUMENT"],
        ],
      );
      assert.deepEqual(
        first.results[2]!.error!.fieldViolations!.map((v) => v.field),
        ["items[2].payload"],
      );
      assert.deepEqual(
        first.results[4]!.error!.fieldViolations!.map((v) => v.field),
        ["items[4].event_type", 'items[4].metadata[""]'],
      );
      const [okA, okB] = [first.results[0]!.response!, first.results[3]!.response!];
      assert.deepEqual(
        okA.deliveries.map((d) => d.endpointId),
        [a.id],
      );
      assert.deepEqual(
        okB.deliveries.map((d) => d.endpointId),
        [b.id],
      );
      for (const [d, secret, text] of [
        [okA.deliveries[0]!, a.secret, textA],
        [okB.deliveries[0]!, b.secret, "[1,  2]"],
      ] as const) {
        await receiver!.waitFor(() => receiver!.byId(d.deliveryId).length > 0, 30_000, `delivery ${d.deliveryId}`);
        const got = receiver!.byId(d.deliveryId)[0]!;
        assert.equal(got.body.toString("utf8"), text, "the producer's bytes");
        new Webhook(secret).verify(got.body.toString("utf8"), got.headers);
      }
      const afterFirst = await prod.messages.listMessages({});
      assert.equal(afterFirst.messages.length - before.messages.length, 2, "the failed items stored nothing");

      // The same batch again: the keyed item replays its message, the unkeyed one is new.
      const second = await call();
      assert.equal(second.results[0]!.response!.replayed, true);
      assert.equal(second.results[0]!.response!.messageId, okA.messageId);
      assert.deepEqual(
        second.results[0]!.response!.deliveries.map((d) => d.deliveryId),
        okA.deliveries.map((d) => d.deliveryId),
      );
      assert.notEqual(second.results[3]!.response!.messageId, okB.messageId);
      const conflict = await prod.messages.triggerBatch({
        items: [{ eventType: "batch.a", body: { case: "payloadJson", value: '{"amount":1}' }, idempotencyKey: "tb-1" }],
      });
      assert.equal(conflict.results[0]!.code, "already_exists");
      assert.equal(conflict.results[0]!.error?.reason, "IDEMPOTENCY_KEY_REUSED");
      assert.deepEqual(fields(conflict.results[0]!.error), ["items[0].idempotency_key"]);

      const empty = await failsWith(prod.messages.triggerBatch({ items: [] }), Code.InvalidArgument, "no items");
      assert.deepEqual(fields(empty), ["items"]);
      const many = Array.from({ length: 21 }, () => ({
        eventType: "batch.b",
        body: { case: "payloadJson" as const, value: "{}" },
      }));
      const tooMany = await failsWith(prod.messages.triggerBatch({ items: many }), Code.InvalidArgument, "21 items");
      assert.deepEqual(fields(tooMany), ["items"]);
      await failsWith(
        mgmt.messages.triggerBatch({ items: [{ eventType: "batch.b", body: { case: "payloadJson", value: "{}" } }] }),
        Code.PermissionDenied,
        "a management token cannot trigger",
      );
      const afterAll = await prod.messages.listMessages({});
      assert.equal(afterAll.messages.length - before.messages.length, 3, "refused calls stored nothing");
    });

    void it("deleting an event type cancels its pending deliveries with the reason and leaves others alone", async () => {
      receiver!.addRule((req) => (req.path === "/failing" ? 500 : undefined));
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/failing` } });
      await eventTypes.createEventType({ eventType: { name: "invoice.sent" } });
      const sendOne = (eventType: string) =>
        producer.messages.send({ endpointId: ep.endpoint!.id, eventType, body: { case: "payloadJson", value: "{}" } });
      const doomed = [await sendOne("invoice.sent"), await sendOne("invoice.sent")];
      const kept = await sendOne("invoice.kept");
      for (const d of [...doomed, kept]) {
        await until(`${d.deliveryId} pending_retry`, async () =>
          (await delivery(d.deliveryId)).status === DeliveryStatus.PENDING_RETRY ? true : undefined,
        );
      }
      const res = await eventTypes.deleteEventType({ name: "invoice.sent" });
      assert.equal(res.cancelledDeliveries, 2);
      for (const d of doomed) {
        const after = await delivery(d.deliveryId);
        assert.equal(after.status, DeliveryStatus.CANCELLED);
        assert.equal(after.lastError, "event type deleted");
        assert.equal(after.nextAttemptTime, undefined);
      }
      assert.equal((await delivery(kept.deliveryId)).status, DeliveryStatus.PENDING_RETRY);
      await failsWith(eventTypes.getEventType({ name: "invoice.sent" }), Code.NotFound, "deleted");
      await failsWith(eventTypes.deleteEventType({ name: "invoice.sent" }), Code.NotFound, "deleted twice");
      await failsWith(eventTypes.deleteEventType({ name: "bad..name" }), Code.InvalidArgument, "bad name");
    });
  });
}
