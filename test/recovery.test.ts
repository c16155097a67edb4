/**
 * Operator recovery on the real stack (api, dispatcher and worker as processes, real NATS, both
 * databases): the dead letter queue, replay, retry now, cancel retry, their errors, and a bulk
 * replay by filter that survives a kill -9 of the dispatcher half-way through with exact counts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { BulkOperationState, DeliveryAction } from "../gen/hookstream/v1/bulk_operation_pb.ts";
import { DeliveryStatus, type Delivery } from "../gen/hookstream/v1/delivery_pb.ts";
import { ErrorDetailSchema } from "../gen/hookstream/v1/error_pb.ts";
import { createTestDatabase, testDbKinds } from "./support/database.ts";
import { startNatsServer, type TestNats } from "./support/nats-server.ts";
import { startReceiver, type Receiver } from "./support/receiver.ts";
import { createClients, listAllDeliveries, startStack, type Clients, type Stack } from "./support/stack.ts";
import { sleep, until } from "./support/wait.ts";

// 12 bulk rounds of 25: the dispatcher's kill lands inside the operation.
const BULK = 300;

function reasonOf(err: unknown): string {
  assert.ok(err instanceof ConnectError, String(err));
  return err.findDetails(ErrorDetailSchema)[0]?.reason ?? "";
}

async function rejectsWith(p: Promise<unknown>, code: Code, reason: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(reasonOf(err), reason, err.message);
    return true;
  });
}

for (const kind of testDbKinds()) {
  void describe(`recovery on ${kind}`, { timeout: 300_000 }, () => {
    let nats: TestNats | undefined;
    let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
    let receiver: Receiver | undefined;
    let stack: Stack | undefined;
    let management: Clients;
    let producer: Clients;
    let other: Clients;

    before(async () => {
      receiver = await startReceiver();
      nats = await startNatsServer();
      database = await createTestDatabase(kind);
      stack = await startStack({
        databaseUrl: database.url,
        natsUrl: nats.url,
        // Retries far away, so pending_retry deliveries stay put until an operator acts; small bulk
        // batches, so a bulk operation spans many dispatcher rounds.
        env: { HOOKSTREAM_RETRY_SCHEDULE: "1h", HOOKSTREAM_BULK_BATCH_SIZE: "25" },
      });
      const admin = createClients(stack.apiUrl, stack.adminToken);
      const ws = await admin.admin.createWorkspace({ name: "recovery" });
      management = createClients(stack.apiUrl, ws.managementToken);
      const key = await management.apiKeys.createApiKey({ label: "recovery" });
      producer = createClients(stack.apiUrl, key.secret);
      const ws2 = await admin.admin.createWorkspace({ name: "someone else" });
      other = createClients(stack.apiUrl, ws2.managementToken);
    });

    after(async () => {
      stack?.destroy();
      await receiver?.close();
      await nats?.stop();
      await database?.drop();
    });

    const endpoint = async (path: string): Promise<string> => {
      const ep = await management.endpoints.createEndpoint({ endpoint: { url: `${receiver!.url}${path}` } });
      return ep.endpoint!.id;
    };
    const send = async (endpointId: string, n: number): Promise<string> => {
      const res = await producer.messages.send({
        endpointId,
        eventType: "recovery.test",
        body: { case: "payloadJson", value: JSON.stringify({ n }) },
      });
      return res.deliveryId;
    };
    const delivery = (id: string): Promise<Delivery> =>
      management.deliveries.getDelivery({ id }).then((r) => r.delivery!);
    const settled = (id: string, status: DeliveryStatus): Promise<Delivery> =>
      until(`${id} status ${status}`, 30_000, async () => {
        const d = await delivery(id);
        return d.status === status ? d : undefined;
      });

    void it("dead letters are listed, replayed with the same webhook-id, and errors change nothing", async () => {
      const rx = receiver!;
      // Every first request of a delivery to /dlq is refused permanently (400), later ones succeed.
      rx.addRule((req, count) => (req.path === "/dlq" && count === 1 ? 400 : undefined));
      const ep = await endpoint("/dlq");
      const id = await send(ep, 1);
      const failed = await settled(id, DeliveryStatus.FAILED);
      assert.equal(failed.attemptCount, 1);

      const dlq = await management.recovery.listDeadLetters({ filter: { endpointId: ep } });
      assert.deepEqual(
        dlq.deliveries.map((d) => d.id),
        [id],
      );
      assert.deepEqual((await other.recovery.listDeadLetters({})).deliveries, [], "another workspace sees none");

      // Not final yet, not ours, malformed: precise errors, nothing changes.
      await rejectsWith(other.recovery.replayDelivery({ id }), Code.NotFound, "DELIVERY_NOT_FOUND");
      await rejectsWith(management.recovery.replayDelivery({ id: "nope" }), Code.InvalidArgument, "INVALID_ARGUMENT");
      await rejectsWith(management.recovery.retryDelivery({ id }), Code.FailedPrecondition, "DELIVERY_STATUS_CONFLICT");
      await rejectsWith(management.recovery.cancelRetry({ id }), Code.FailedPrecondition, "DELIVERY_STATUS_CONFLICT");
      await rejectsWith(
        management.recovery.listDeadLetters({ filter: { statuses: [DeliveryStatus.QUEUED] } }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
      );
      assert.equal((await delivery(id)).status, DeliveryStatus.FAILED);

      const replayed = await management.recovery.replayDelivery({ id });
      assert.equal(replayed.delivery?.status, DeliveryStatus.QUEUED);
      const done = await settled(id, DeliveryStatus.SUCCEEDED);
      assert.equal(done.attemptCount, 2);
      const hits = rx.byId(id);
      assert.equal(hits.length, 2, "one more attempt, same webhook-id");
      assert.notEqual(hits[0]!.headers["webhook-timestamp"], undefined);
      await rejectsWith(
        management.recovery.replayDelivery({ id: "dlv_00000000000000000000000000" }),
        Code.NotFound,
        "DELIVERY_NOT_FOUND",
      );
      assert.deepEqual((await management.recovery.listDeadLetters({ filter: { endpointId: ep } })).deliveries, []);

      // ReplayMessage replays the final delivery of a message again.
      const msg = (await management.deliveries.getDelivery({ id })).delivery!.messageId;
      const again = await management.recovery.replayMessage({ id: msg });
      assert.deepEqual(
        again.replayed.map((d) => d.id),
        [id],
      );
      await settled(id, DeliveryStatus.SUCCEEDED).then(() =>
        until("third attempt", 30_000, async () => ((await delivery(id)).attemptCount === 3 ? true : undefined)),
      );
    });

    void it("retry now and cancel retry act on pending retries only", async () => {
      const rx = receiver!;
      rx.addRule((req, count) => (req.path === "/flaky" && count === 1 ? 503 : undefined));
      const ep = await endpoint("/flaky");
      const [a, b] = [await send(ep, 1), await send(ep, 2)];
      const pendingA = await settled(a, DeliveryStatus.PENDING_RETRY);
      assert.ok(pendingA.nextAttemptTime !== undefined, "retry scheduled an hour away");
      await settled(b, DeliveryStatus.PENDING_RETRY);

      const retried = await management.recovery.retryDelivery({ id: a });
      assert.equal(retried.delivery?.status, DeliveryStatus.QUEUED);
      assert.equal((await settled(a, DeliveryStatus.SUCCEEDED)).attemptCount, 2);

      const cancelled = await management.recovery.cancelRetry({ id: b });
      assert.equal(cancelled.delivery?.status, DeliveryStatus.FAILED);
      assert.equal(cancelled.delivery?.lastError, "retry cancelled by an operator");
      await sleep(300);
      assert.equal(rx.byId(b).length, 1, "a cancelled retry is not tried again");
      await rejectsWith(
        management.recovery.cancelRetry({ id: b }),
        Code.FailedPrecondition,
        "DELIVERY_STATUS_CONFLICT",
      );
    });

    void it(`bulk replay of ${BULK} dead letters by filter survives kill -9 of the dispatcher with exact counts`, async () => {
      const rx = receiver!;
      rx.addRule((req, count) => (req.path === "/bulk" && count === 1 ? 400 : undefined));
      const ep = await endpoint("/bulk");
      const ids: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < BULK) ids.push(await send(ep, next++));
        }),
      );
      await until("every delivery dead-lettered", 120_000, async () => {
        const all = await listAllDeliveries(management, ep);
        return all.length === BULK && all.every((d) => d.status === DeliveryStatus.FAILED) ? true : undefined;
      });

      // Bad requests first: nothing starts.
      await rejectsWith(
        management.recovery.startBulkOperation({ filter: { endpointId: ep } }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
      );
      await rejectsWith(
        management.recovery.startBulkOperation({
          action: DeliveryAction.REPLAY,
          deliveryIds: ["x"],
          filter: { endpointId: ep },
        }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
      );

      const started = await management.recovery.startBulkOperation({
        action: DeliveryAction.REPLAY,
        filter: { endpointId: ep, statuses: [DeliveryStatus.FAILED] },
      });
      const opId = started.operation!.id;
      assert.equal(started.operation?.state, BulkOperationState.RUNNING);
      await rejectsWith(other.recovery.getBulkOperation({ id: opId }), Code.NotFound, "BULK_OPERATION_NOT_FOUND");

      // Kill the dispatcher once the operation has made some progress, then bring it back.
      await until("bulk progress", 60_000, async () => {
        const op = (await management.recovery.getBulkOperation({ id: opId })).operation!;
        return op.matched > 0n ? true : undefined;
      });
      await stack!.kill("dispatcher", "SIGKILL");
      const mid = (await management.recovery.getBulkOperation({ id: opId })).operation!;
      await stack!.restart("dispatcher");

      // Watch it to the end.
      const seen: bigint[] = [];
      let last = mid;
      for await (const item of management.recovery.watchBulkOperation({ id: opId })) {
        seen.push(item.operation!.matched);
        last = item.operation!;
      }
      assert.equal(last.state, BulkOperationState.SUCCEEDED);
      assert.equal(last.matched, BigInt(BULK), `matched (killed at ${mid.matched})`);
      assert.equal(last.affected, BigInt(BULK), "every dead letter replayed exactly once");
      assert.ok(last.finishTime !== undefined);
      assert.deepEqual(
        [...seen].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
        seen,
        "progress only grows",
      );

      await until("every replay delivered", 120_000, async () => {
        const all = await listAllDeliveries(management, ep);
        return all.every((d) => d.status === DeliveryStatus.SUCCEEDED) ? all : undefined;
      });
      const all = await listAllDeliveries(management, ep);
      assert.ok(
        all.every((d) => d.attemptCount === 2),
        "each delivery replayed once: two attempts",
      );
      const duplicates = ids.reduce((sum, id) => sum + Math.max(0, rx.byId(id).length - 2), 0);
      console.log(
        `bulk replay on ${kind}: ${BULK} replayed, killed at matched=${mid.matched}, ${duplicates} duplicate requests`,
      );
    });
  });
}
