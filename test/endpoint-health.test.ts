/**
 * Endpoint health on the real stack (both databases): every failed attempt carries its failure
 * class, GetEndpoint shows the recent success rate and the last failure, and sustained failure
 * (HOOKSTREAM_AUTO_DISABLE_FAILURES over HOOKSTREAM_AUTO_DISABLE_WINDOW) disables the endpoint
 * with its reason; enabling it again starts the count afresh. While an endpoint is disabled its new
 * messages are accepted and held (shown as DELIVERY_STATUS_HELD), and delivered once it is enabled.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AttemptErrorKind, DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, freePort, listAllDeliveries, startStack, type Clients, type Stack } from "./support/stack.ts";
import { until } from "./support/wait.ts";

for (const kind of testDbKinds()) {
  void describe(`endpoint health on ${kind}`, { timeout: 180_000 }, () => {
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
          HOOKSTREAM_RETRY_SCHEDULE: "300ms,600ms",
          HOOKSTREAM_RETRY_JITTER: "0",
          HOOKSTREAM_MAX_ATTEMPTS: "4",
          HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "100ms",
          HOOKSTREAM_AUTO_DISABLE_FAILURES: "4",
          HOOKSTREAM_AUTO_DISABLE_WINDOW: "1s",
        },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "health" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "health" });
      producer = createClients(stack.apiUrl, key.secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const send = (endpointId: string, i: number) =>
      producer.messages.send({
        endpointId,
        eventType: "health.test",
        body: { case: "payloadJson", value: `{"i":${i}}` },
      });

    void it("a healthy endpoint: success rate 1, no failure", async () => {
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/up` } })).endpoint!;
      for (let i = 0; i < 3; i++) await send(ep.id, i);
      const health = await until("three successes", 30_000, async () => {
        const h = (await management.endpoints.getEndpoint({ id: ep.id })).endpoint?.health;
        return h !== undefined && h.recentDeliveries === 3 ? h : undefined;
      });
      assert.equal(health.recentSuccessRate, 1);
      assert.equal(health.consecutiveFailures, 0);
      assert.equal(health.lastFailureKind, AttemptErrorKind.UNSPECIFIED);
      assert.equal(health.lastFailureTime, undefined);
    });

    void it("a refused connection is classed connect, an HTTP error http_status, on the attempt and the endpoint", async () => {
      const closed = await freePort();
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `http://127.0.0.1:${closed}/` } }))
        .endpoint!;
      const { deliveryId } = await send(ep.id, 0);
      const attempts = await until("a failed attempt", 30_000, async () => {
        const res = await management.deliveries.listAttempts({ deliveryId });
        return res.attempts.length > 0 ? res.attempts : undefined;
      });
      assert.equal(attempts[0]!.errorKind, AttemptErrorKind.CONNECT);
      // The endpoint's health is written just after the attempt: wait for it, not for a fixed time.
      const health = await until("the endpoint's health", 30_000, async () => {
        const h = (await management.endpoints.getEndpoint({ id: ep.id })).endpoint?.health;
        return h !== undefined && h.lastFailureKind !== AttemptErrorKind.UNSPECIFIED ? h : undefined;
      });
      assert.equal(health.lastFailureKind, AttemptErrorKind.CONNECT);
      assert.ok(health.consecutiveFailures >= 1);
      assert.ok(health.failingSince !== undefined && health.lastFailureTime !== undefined);
      assert.match(health.lastFailure, /ECONNREFUSED/);
    });

    void it("sustained failure disables the endpoint with its reason; enabling it starts afresh", async () => {
      const ep = (await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/down` } })).endpoint!;
      // Two messages of four attempts each, 0.3 s, 0.6 s apart: the last failures are past the 1 s window.
      await send(ep.id, 0);
      await send(ep.id, 1);
      const disabled = await until("the endpoint disabled", 60_000, async () => {
        const e = (await management.endpoints.getEndpoint({ id: ep.id })).endpoint!;
        return e.enabled === false ? e : undefined;
      });
      const h = disabled.health!;
      assert.match(h.disabledReason, /^\d+ failed attempts in a row since .* \(last: HTTP 503\)$/);
      assert.ok(h.consecutiveFailures >= 4, `consecutive failures ${h.consecutiveFailures}`);
      assert.equal(h.lastFailureKind, AttemptErrorKind.HTTP_STATUS);
      assert.equal(h.lastFailure, "HTTP 503");
      assert.ok(h.disableTime !== undefined);
      assert.equal(h.recentSuccessRate, 0);
      await until("the worker's log line", 10_000, async () =>
        stack!.logRecords("worker").some((r) => r["msg"] === "endpoint disabled" && r["endpointId"] === ep.id)
          ? true
          : undefined,
      );

      const enabled = (
        await management.endpoints.updateEndpoint({
          endpoint: { id: ep.id, enabled: true },
          updateMask: { paths: ["enabled"] },
        })
      ).endpoint!;
      assert.equal(enabled.enabled, true);
      const fresh = (await management.endpoints.getEndpoint({ id: ep.id })).endpoint!.health!;
      assert.equal(fresh.consecutiveFailures, 0);
      assert.equal(fresh.disabledReason, "");
      assert.equal(fresh.lastFailure, "HTTP 503");
    });

    void it("while disabled, new messages are accepted and held, and they go out once it is enabled", async () => {
      const ep = (
        await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}/later`, enabled: false } })
      ).endpoint!;
      const sent = [await send(ep.id, 1), await send(ep.id, 2)];
      const held = await until("both deliveries held", 30_000, async () => {
        const res = await management.deliveries.listDeliveries({ endpointId: ep.id, statuses: [DeliveryStatus.HELD] });
        return res.deliveries.length === 2 ? res.deliveries : undefined;
      });
      assert.deepEqual(held.map((d) => d.id).sort(), sent.map((r) => r.deliveryId).sort());
      assert.ok(held.every((d) => d.attemptCount === 0 && /held until it is enabled/.test(d.lastError)));
      assert.equal(receiver!.requests.filter((r) => r.path === "/later").length, 0);
      await management.endpoints.updateEndpoint({
        endpoint: { id: ep.id, enabled: true },
        updateMask: { paths: ["enabled"] },
      });
      await until("both delivered", 30_000, async () => {
        const res = await listAllDeliveries(management, ep.id);
        return res.every((d) => d.status === DeliveryStatus.SUCCEEDED) ? true : undefined;
      });
      assert.deepEqual(
        receiver!.requests
          .filter((r) => r.path === "/later")
          .map((r) => r.webhookId)
          .sort(),
        sent.map((r) => r.deliveryId).sort(),
      );
    });
  });
}
