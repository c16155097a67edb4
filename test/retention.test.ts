/**
 * Payload retention on the real stack (both databases): a workspace's payloads expire after its
 * retention period (the installation default here is 2 s), GetDelivery with include_payload says
 * available / expired, a message with a delivery still in flight keeps its payload, a workspace
 * with its own longer period keeps its payloads, and bad retention values change nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeliveryStatus } from "../gen/hookstream/v1/delivery_pb.ts";
import { PayloadStatus } from "../gen/hookstream/v1/payload_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, startStack, type Clients, type Stack } from "./support/stack.ts";
import { sleep, until } from "./support/wait.ts";

for (const kind of testDbKinds()) {
  void describe(`payload retention on ${kind}`, { timeout: 120_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        env: {
          HOOKSTREAM_PAYLOAD_RETENTION: "2s",
          HOOKSTREAM_RETENTION_SWEEP_INTERVAL: "200ms",
          HOOKSTREAM_RETRY_SCHEDULE: "1h",
        },
      });
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const tenant = async (name: string): Promise<{ management: Clients; producer: Clients }> => {
      const admin = createClients(stack!.apiUrl, stack!.adminToken);
      const ws = await admin.admin.createWorkspace({ name });
      const management = createClients(stack!.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: name });
      return { management, producer: createClients(stack!.apiUrl, key.secret) };
    };

    void it("expires payloads of finished messages only, per workspace, and says so", async () => {
      const rx = receiver!;
      rx.addRule((req) => (req.path === "/down" ? 503 : undefined));
      const a = await tenant("short");
      const b = await tenant("long");
      await b.management.workspaces.updateWorkspace({
        workspace: { payloadRetention: { seconds: 7200n } },
        updateMask: { paths: ["payload_retention"] },
      });
      const got = await b.management.workspaces.getWorkspace({});
      assert.equal(got.workspace?.payloadRetention?.seconds, 7200n);

      const send = async (t: { management: Clients; producer: Clients }, path: string) => {
        const ep = await t.management.endpoints.createEndpoint({ endpoint: { url: `${rx.url}${path}` } });
        const res = await t.producer.messages.send({
          endpointId: ep.endpoint!.id,
          eventType: "retention.test",
          body: { case: "payloadJson", value: '{"keep": 12345678901234567890}' },
        });
        return { t, id: res.deliveryId };
      };
      const done = await send(a, "/ok");
      const inFlight = await send(a, "/down");
      const longer = await send(b, "/ok");
      const status = async (x: { t: { management: Clients }; id: string }) =>
        (await x.t.management.deliveries.getDelivery({ id: x.id })).delivery!.status;
      await until("deliveries settled", 30_000, async () =>
        (await status(done)) === DeliveryStatus.SUCCEEDED &&
        (await status(inFlight)) === DeliveryStatus.PENDING_RETRY &&
        (await status(longer)) === DeliveryStatus.SUCCEEDED
          ? true
          : undefined,
      );
      const envelope = async (x: { t: { management: Clients }; id: string }) =>
        (await x.t.management.deliveries.getDelivery({ id: x.id, includePayload: true })).payload!;
      const fresh = await envelope(done);
      assert.equal(fresh.status, PayloadStatus.AVAILABLE);
      assert.equal(fresh.payloadJson, '{"keep": 12345678901234567890}');
      assert.equal(
        (await a.management.deliveries.getDelivery({ id: done.id })).payload,
        undefined,
        "no payload unless asked",
      );

      const expired = await until("payload expired", 30_000, async () => {
        const e = await envelope(done);
        return e.status === PayloadStatus.EXPIRED ? e : undefined;
      });
      assert.equal(expired.payloadJson, "");
      assert.ok(expired.expireTime !== undefined);
      await sleep(600);
      assert.equal(
        (await envelope(inFlight)).status,
        PayloadStatus.AVAILABLE,
        "a delivery in flight keeps its payload",
      );
      assert.equal(
        (await envelope(longer)).status,
        PayloadStatus.AVAILABLE,
        "the other workspace's longer period holds",
      );
      // The sweeper deletes old attempts in its own batches after the payloads: wait for them.
      await until("attempts of the finished delivery deleted", 30_000, async () =>
        (await a.management.deliveries.listAttempts({ deliveryId: done.id })).attempts.length === 0 ? true : undefined,
      );
      assert.equal((await a.management.deliveries.listAttempts({ deliveryId: inFlight.id })).attempts.length, 1);
    });

    void it("refuses bad retention values with the field and changes nothing", async () => {
      const t = await tenant("bad values");
      for (const seconds of [60n, 500n * 86_400n]) {
        await assert.rejects(
          t.management.workspaces.updateWorkspace({
            workspace: { payloadRetention: { seconds } },
            updateMask: { paths: ["payload_retention"] },
          }),
          (err: unknown) =>
            err instanceof ConnectError &&
            err.code === Code.InvalidArgument &&
            err.message.includes("workspace.payload_retention"),
        );
      }
      await assert.rejects(
        t.management.workspaces.updateWorkspace({ workspace: { name: "" }, updateMask: { paths: ["name", "owner"] } }),
        (err: unknown) =>
          err instanceof ConnectError &&
          err.code === Code.InvalidArgument &&
          err.message.includes("workspace.name") &&
          err.message.includes("update_mask"),
      );
      const ws = (await t.management.workspaces.getWorkspace({})).workspace!;
      assert.equal(ws.name, "bad values");
      assert.equal(ws.payloadRetention, undefined);
      const renamed = await t.management.workspaces.updateWorkspace({
        workspace: { name: "renamed" },
        updateMask: { paths: ["name"] },
      });
      assert.equal(renamed.workspace?.name, "renamed");
    });
  });
}
