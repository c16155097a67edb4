/**
 * Operational events on the real stack (both databases, real NATS): a monitor endpoint that
 * names endpoint.disabled / endpoint.enabled / message.attempt.exhausted in its event types gets
 * exactly one message per state change, with the documented payload, and the endpoint the event
 * is about never gets it. Kill-safety: each event's message and deliveries are written in the
 * same database transaction as the change they announce (the endpoint's disable in
 * recordEndpointHealth, the enable in updateEndpoint, the dead letter in recordAttempt), and a
 * queued delivery is its own outbox (its publish check re-publishes it), so a crash after the
 * commit cannot lose the event and a crash before it loses both, never one without the other.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { EventTypeService } from "../gen/hookstream/v1/event_type_service_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";
import { until } from "./support/wait.ts";

interface OpEvent {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

for (const kind of testDbKinds()) {
  void describe(`operational events on ${kind}`, { timeout: 180_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;

    before(async () => {
      receiver = await startReceiver();
      receiver.addRule((req) => (req.path.startsWith("/down") ? 503 : undefined));
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: {
          HOOKSTREAM_RETRY_SCHEDULE: "200ms,200ms",
          HOOKSTREAM_RETRY_JITTER: "0",
          HOOKSTREAM_MAX_ATTEMPTS: "3",
          HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "100ms",
          HOOKSTREAM_AUTO_DISABLE_FAILURES: "3",
          HOOKSTREAM_AUTO_DISABLE_WINDOW: "300ms",
        },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "ops" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "ops" });
      producer = createClients(stack.apiUrl, key.secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const eventsAt = (path: string, type: string): OpEvent[] =>
      receiver!.requests
        .filter((r) => r.path === path)
        .map((r) => JSON.parse(r.body.toString("utf8")) as OpEvent)
        .filter((e) => e.type === type);

    void it("the names are reserved for producers and known to endpoints and subscriptions", async () => {
      const types = createClient(EventTypeService, management.transport);
      await assert.rejects(types.createEventType({ eventType: { name: "endpoint.disabled" } }), (e: unknown) => {
        assert.ok(e instanceof ConnectError && e.code === Code.InvalidArgument);
        return true;
      });
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/any` } })).endpoint!;
      await assert.rejects(
        producer.messages.send({
          endpointId: ep.id,
          eventType: "message.attempt.exhausted",
          body: { case: "payloadJson", value: "{}" },
        }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument,
      );
    });

    void it("auto-disable → exactly one endpoint.disabled; enable → endpoint.enabled; dead letter → message.attempt.exhausted", async () => {
      const monitor = (
        await management.endpoints.createEndpoint({
          endpoint: {
            url: `${receiver!.url}/monitor`,
            eventTypes: ["endpoint.disabled", "endpoint.enabled", "message.attempt.exhausted"],
          },
        })
      ).endpoint!;
      // A catch-all endpoint does not opt in to operational events.
      await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/catch-all` } });
      const failing = (
        await management.endpoints.createEndpoint({
          endpoint: { url: `${receiver!.url}/down`, eventTypes: ["endpoint.disabled", "message.attempt.exhausted"] },
        })
      ).endpoint!;
      const sent = await producer.messages.send({
        endpointId: failing.id,
        eventType: "ops.test",
        body: { case: "payloadJson", value: '{"i":1}' },
      });

      await until("the endpoint disabled", 60_000, async () =>
        (await management.endpoints.getEndpoint({ id: failing.id })).endpoint!.enabled === false ? true : undefined,
      );
      const disabled = await until("endpoint.disabled at the monitor", 30_000, async () => {
        const got = eventsAt("/monitor", "endpoint.disabled");
        return got.length > 0 ? got : undefined;
      });
      assert.equal(disabled.length, 1);
      const d = disabled[0]!;
      assert.equal(d.data["endpointId"], failing.id);
      assert.equal(d.data["cause"], "auto_disable");
      assert.equal(d.data["failureClass"], "http_status");
      assert.equal(d.data["lastFailure"], "HTTP 503");
      assert.match(String(d.data["reason"]), /failed attempts in a row/);
      assert.ok(!Number.isNaN(Date.parse(d.timestamp)));
      // The message is a normal one of the workspace, visible to the producer.
      const opDelivery = (await management.deliveries.listDeliveries({ endpointId: monitor.id })).deliveries.find(
        (x) => x.eventType === "endpoint.disabled",
      )!;
      const opMessage = await producer.messages.getMessage({ id: opDelivery.messageId });
      assert.equal(opMessage.message?.eventType, "endpoint.disabled");
      assert.deepEqual(JSON.parse(opMessage.message?.payloadJson ?? ""), d, "the bytes stored are the bytes delivered");

      // The failing endpoint exhausted its retries while it was failing: message.attempt.exhausted.
      const exhausted = await until("message.attempt.exhausted at the monitor", 30_000, async () => {
        const got = eventsAt("/monitor", "message.attempt.exhausted");
        return got.length > 0 ? got : undefined;
      });
      assert.equal(exhausted.length, 1);
      assert.equal(exhausted[0]!.data["deliveryId"], sent.deliveryId);
      assert.equal(exhausted[0]!.data["messageId"], sent.messageId);
      assert.equal(exhausted[0]!.data["endpointId"], failing.id);
      assert.equal(exhausted[0]!.data["eventType"], "ops.test");
      assert.equal(exhausted[0]!.data["attemptCount"], 3);
      assert.equal(exhausted[0]!.data["failureClass"], "http_status");

      await management.endpoints.updateEndpoint({
        endpoint: { id: failing.id, enabled: true },
        updateMask: { paths: ["enabled"] },
      });
      const enabled = await until("endpoint.enabled at the monitor", 30_000, async () => {
        const got = eventsAt("/monitor", "endpoint.enabled");
        return got.length > 0 ? got : undefined;
      });
      assert.equal(enabled.length, 1);
      assert.equal(enabled[0]!.data["endpointId"], failing.id);
      assert.equal(enabled[0]!.data["cause"], "manual");

      // Nothing about the failing endpoint was ever addressed to it, nor to the catch-all.
      const toFailing = (await management.deliveries.listDeliveries({ endpointId: failing.id })).deliveries;
      assert.deepEqual(
        toFailing.map((x) => x.eventType),
        ["ops.test"],
      );
      assert.equal(receiver!.requests.filter((r) => r.path === "/catch-all").length, 0);
      assert.equal(eventsAt("/monitor", "endpoint.disabled").length, 1, "exactly one endpoint.disabled");
    });
  });
}
