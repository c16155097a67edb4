/**
 * Async acknowledgement on the real stack (both databases): an async_ack endpoint answering 202
 * leaves the delivery in awaiting_ack until the receiver calls the signed URL from its headers;
 * ack → succeeded, nack → a retry, an expired wait → a retry; calling twice reports
 * applied: false; a bad token is 401, an expired URL 410. A nack or an expired wait retries by the
 * message's override, else the endpoint's retry policy, else the installation's. Without
 * async_ack, 202 is success.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { RetryStrategy } from "../gen/hookstream/v1/retry_override_pb.ts";
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

    void it("a nack and an expired wait follow the message's override, else the endpoint's retry policy, else the default", async () => {
      const rx = receiver!;
      rx.addRule((req) => (req.path.startsWith("/async-policy") ? 202 : undefined));
      const fixed = (minRetries: number, seconds: number) => ({
        minRetries,
        firstDelay: { seconds: BigInt(seconds) },
        strategy: RetryStrategy.FIXED,
        jitter: 0,
      });
      const endpointWith = async (path: string, policy?: ReturnType<typeof fixed>): Promise<string> =>
        (
          await management.endpoints.createEndpoint({
            endpoint: { url: `${rx.url}${path}`, asyncAck: true, ...(policy ? { retryPolicy: policy } : {}) },
          })
        ).endpoint!.id;
      const send = async (endpointId: string, retry?: ReturnType<typeof fixed>): Promise<string> =>
        (
          await producer.messages.send({
            endpointId,
            eventType: "ack.policy",
            body: { case: "payloadJson", value: "{}" },
            ...(retry ? { retry } : {}),
          })
        ).deliveryId;
      const nackAttempt = async (id: string, n: number): Promise<{ status?: string }> => {
        await until(`${id} attempt ${n} awaiting its ack`, 30_000, async () => {
          const d = await delivery(id);
          return d.status === DeliveryStatus.AWAITING_ACK && d.attemptCount === n ? d : undefined;
        });
        return (await call(rx.byId(id)[n - 1]!.headers["webhook-nack-url"]!)).body;
      };

      // The endpoint's policy (1 retry, 2 s later) over the installation's (1 s, 9 attempts).
      const ep = await endpointWith("/async-policy/ep", fixed(1, 2));
      const byEndpoint = await send(ep);
      assert.deepEqual(await nackAttempt(byEndpoint, 1), { applied: true, status: "pending_retry" });
      const retrying = await delivery(byEndpoint);
      const scheduled =
        timestampDate(retrying.nextAttemptTime!).getTime() - timestampDate(retrying.updateTime!).getTime();
      assert.equal(scheduled, 2_000, "the nack's retry is the endpoint policy's 2 s");
      assert.deepEqual(
        await nackAttempt(byEndpoint, 2),
        { applied: true, status: "failed" },
        "min_retries 1: dead letter",
      );

      // The message's override (2 retries) wins over the same endpoint's policy.
      const byMessage = await send(ep, fixed(2, 1));
      assert.deepEqual(await nackAttempt(byMessage, 1), { applied: true, status: "pending_retry" });
      assert.deepEqual(await nackAttempt(byMessage, 2), { applied: true, status: "pending_retry" });
      assert.deepEqual(await nackAttempt(byMessage, 3), { applied: true, status: "failed" });

      // An expired wait: an endpoint allowing no retry dead-letters at once, the default retries.
      const none = await send(await endpointWith("/async-policy/none", fixed(0, 1)));
      const expired = await reach(none, DeliveryStatus.FAILED);
      assert.equal(expired.attemptCount, 1);
      const byDefault = await send(await endpointWith("/async-policy/default"));
      await until(`${byDefault} retried after its wait expired`, 30_000, async () => {
        const d = await delivery(byDefault);
        return d.attemptCount >= 2 ? d : undefined;
      });
    });

    void it("without async_ack a 202 is plain success and carries no ack URLs", async () => {
      const id = await sendTo("/async-plain", false);
      await reach(id, DeliveryStatus.SUCCEEDED);
      assert.equal(receiver!.byId(id)[0]!.headers["webhook-ack-url"], undefined);
    });

    void it("a nack or an expired wait that dead-letters announces message.attempt.exhausted", async () => {
      const rx = receiver!;
      rx.addRule((req) => (req.path === "/async-exhaust" ? 202 : undefined));
      // The subscriber of the operational event (it answers 200).
      await management.endpoints.createEndpoint({
        endpoint: { url: `${rx.url}/ops-exhausted`, eventTypes: ["message.attempt.exhausted"] },
      });
      const ep = (
        await management.endpoints.createEndpoint({
          endpoint: {
            url: `${rx.url}/async-exhaust`,
            asyncAck: true,
            retryPolicy: { minRetries: 0, firstDelay: { seconds: 1n }, strategy: RetryStrategy.FIXED, jitter: 0 },
          },
        })
      ).endpoint!;
      const send = async (): Promise<string> =>
        (
          await producer.messages.send({
            endpointId: ep.id,
            eventType: "ack.exhaust",
            body: { case: "payloadJson", value: "{}" },
          })
        ).deliveryId;
      const announced = (deliveryId: string): Promise<Record<string, unknown>> =>
        until(`message.attempt.exhausted for ${deliveryId}`, 30_000, async () => {
          for (const r of rx.requests.filter((q) => q.path === "/ops-exhausted")) {
            const body = JSON.parse(r.body.toString()) as { type: string; data: Record<string, unknown> };
            if (body.type === "message.attempt.exhausted" && body.data["deliveryId"] === deliveryId) return body.data;
          }
          return undefined;
        });

      // A nack with no retry left.
      const nacked = await send();
      await reach(nacked, DeliveryStatus.AWAITING_ACK);
      assert.deepEqual((await call(rx.byId(nacked)[0]!.headers["webhook-nack-url"]!)).body, {
        applied: true,
        status: "failed",
      });
      const byNack = await announced(nacked);
      assert.equal(byNack["endpointId"], ep.id);
      assert.equal(byNack["eventType"], "ack.exhaust");
      assert.equal(byNack["attemptCount"], 1);

      // A wait that expires (HOOKSTREAM_ACK_TIMEOUT 2 s) with no retry left.
      const expired = await send();
      await reach(expired, DeliveryStatus.FAILED);
      const byExpiry = await announced(expired);
      assert.equal(byExpiry["endpointId"], ep.id);
    });
  });
}
