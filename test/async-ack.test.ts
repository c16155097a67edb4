/**
 * Async acknowledgement on the real stack (both databases): an async_ack endpoint answering 202
 * leaves the delivery in awaiting_ack until the receiver calls the signed URL from its headers;
 * ack → succeeded, nack → a retry, an expired wait → a retry; calling twice reports
 * applied: false; a bad token is 401, an expired URL 410. Without async_ack, 202 is success.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";
import { until } from "./support/wait.ts";

async function call(
  url: string,
  method = "POST",
): Promise<{ status: number; body: { applied?: boolean; status?: string } }> {
  const res = await fetch(url, { method });
  const json = (res.headers.get("content-type") ?? "").startsWith("application/json");
  return { status: res.status, body: json ? ((await res.json()) as { applied?: boolean; status?: string }) : {} };
}

for (const kind of testDbKinds()) {
  void describe(`async acknowledgement on ${kind}`, { timeout: 120_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: {
          HOOKSTREAM_ACK_TIMEOUT: "2s",
          HOOKSTREAM_RETRY_SCHEDULE: "1s",
          HOOKSTREAM_OUTBOX_SWEEP_INTERVAL: "200ms",
        },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "acks" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "acks" });
      producer = createClients(stack.apiUrl, key.secret);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const sendTo = async (path: string, asyncAck: boolean): Promise<string> => {
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}${path}`, asyncAck } });
      assert.equal(ep.endpoint?.asyncAck, asyncAck);
      const res = await producer.messages.send({
        endpointId: ep.endpoint.id,
        eventType: "ack.test",
        body: { case: "payloadJson", value: "{}" },
      });
      return res.deliveryId;
    };
    const delivery = (id: string): Promise<Delivery> =>
      management.deliveries.getDelivery({ id }).then((r) => r.delivery!);
    const reach = (id: string, status: DeliveryStatus): Promise<Delivery> =>
      until(`${id} status ${status}`, 30_000, async () => {
        const d = await delivery(id);
        return d.status === status ? d : undefined;
      });

    void it("ack settles once; a bad token is 401; the delivery carries the signed URLs", async () => {
      const rx = receiver!;
      rx.addRule((req) => (req.path === "/async-ack" ? 202 : undefined));
      const id = await sendTo("/async-ack", true);
      await reach(id, DeliveryStatus.AWAITING_ACK);
      const headers = rx.byId(id)[0]!.headers;
      const ackUrl = headers["webhook-ack-url"]!;
      assert.match(ackUrl, new RegExp(`^${stack!.apiUrl}/v1/deliveries/${id}/ack\\?attempt=1&expires=\\d+&token=`));
      assert.match(headers["webhook-nack-url"] ?? "", /\/nack\?/);

      assert.equal((await call(ackUrl.replace(/token=[^&]+/, "token=forged"))).status, 401);
      assert.equal((await call(ackUrl.replace("/ack?", "/nack?"))).status, 401, "an ack token does not nack");
      assert.equal((await call(ackUrl.replace("attempt=1", "attempt=2"))).status, 401);
      assert.equal((await delivery(id)).status, DeliveryStatus.AWAITING_ACK, "bad calls change nothing");

      const first = await call(ackUrl);
      assert.deepEqual(first, { status: 200, body: { applied: true, status: "succeeded" } });
      assert.deepEqual(await call(ackUrl, "GET"), { status: 200, body: { applied: false, status: "succeeded" } });
      assert.equal((await reach(id, DeliveryStatus.SUCCEEDED)).attemptCount, 1);
      assert.equal((await call(ackUrl, "PUT")).status, 405);
    });

    void it("nack retries by the policy; an expired wait retries too and its URL answers 410", async () => {
      const rx = receiver!;
      // /async-retry answers 202 the first time, 200 afterwards.
      rx.addRule((req, count) => (req.path.startsWith("/async-retry") ? (count > 1 ? 200 : 202) : undefined));
      const nacked = await sendTo("/async-retry", true);
      await reach(nacked, DeliveryStatus.AWAITING_ACK);
      const nackUrl = rx.byId(nacked)[0]!.headers["webhook-nack-url"]!;
      assert.deepEqual((await call(nackUrl)).body, { applied: true, status: "pending_retry" });
      const done = await reach(nacked, DeliveryStatus.SUCCEEDED);
      assert.equal(done.attemptCount, 2);

      const expired = await sendTo("/async-retry-expire", true);
      await reach(expired, DeliveryStatus.AWAITING_ACK);
      const ackUrl = rx.byId(expired)[0]!.headers["webhook-ack-url"]!;
      const after = await reach(expired, DeliveryStatus.SUCCEEDED);
      assert.equal(after.attemptCount, 2, "the expired wait counted as a failed attempt and was retried");
      assert.equal((await call(ackUrl)).status, 410);
    });

    void it("without async_ack a 202 is plain success and carries no ack URLs", async () => {
      const id = await sendTo("/async-plain", false);
      await reach(id, DeliveryStatus.SUCCEEDED);
      assert.equal(receiver!.byId(id)[0]!.headers["webhook-ack-url"], undefined);
    });
  });
}
