/**
 * The resource catalog on the real stack (api, dispatcher and worker as separate processes, the
 * database of HOOKSTREAM_TEST_DB, a private nats-server, a local receiver): event types with
 * their schemas and archived flag as Send enforces them, and deleting a type with pending
 * deliveries.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema, type ErrorDetail } from "../gen/hookstream/v1/error_pb.ts";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
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

/** Awaits a call that must fail with `code`; returns its ErrorDetail. */
async function failsWith(call: Promise<unknown>, code: Code, what: string): Promise<ErrorDetail> {
  try {
    await call;
  } catch (error) {
    const ce = ConnectError.from(error);
    assert.equal(ce.code, code, `${what}: got ${Code[ce.code]}: ${ce.rawMessage}`);
    const [detail] = ce.findDetails(ErrorDetailSchema);
    assert.ok(detail !== undefined, `${what}: no ErrorDetail`);
    return detail;
  }
  return assert.fail(`${what}: expected ${Code[code]}, but the call succeeded`);
}

const fields = (d: ErrorDetail): string[] => d.fieldViolations.map((v) => v.field);

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
