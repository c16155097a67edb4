import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  BulkOperationSchema,
  BulkOperationState,
  DeliveryAction,
  DeliveryFilterSchema,
  type BulkOperation,
  type DeliveryFilter,
} from "../../gen/hookstream/v1/bulk_operation_pb.ts";
import type { RecoveryService } from "../../gen/hookstream/v1/recovery_service_pb.ts";
import {
  actOnDelivery,
  getBulkOperation,
  listDeadLetters,
  replayMessage,
  startBulkOperation,
  type BulkOperationRecord,
  type DeliveryActionName,
  type SelectionInput,
} from "../domain/recovery.ts";
import { deliveryView, statusFromProto, statusToProto } from "../domain/proto-views.ts";
import type { ApiDeps } from "./api-deps.ts";
import { workspaceIdOf } from "./authorization.ts";

const ACTION_FROM_PROTO: Partial<Record<DeliveryAction, DeliveryActionName>> = {
  [DeliveryAction.REPLAY]: "replay",
  [DeliveryAction.RETRY_NOW]: "retry_now",
  [DeliveryAction.CANCEL_RETRY]: "cancel_retry",
};
const ACTION_TO_PROTO: Record<DeliveryActionName, DeliveryAction> = {
  replay: DeliveryAction.REPLAY,
  retry_now: DeliveryAction.RETRY_NOW,
  cancel_retry: DeliveryAction.CANCEL_RETRY,
};

const time = (t: Timestamp | undefined): Date | undefined => (t === undefined ? undefined : timestampDate(t));

function selectionInput(f: DeliveryFilter | undefined): SelectionInput {
  return {
    endpointId: f?.endpointId ?? "",
    messageId: f?.messageId ?? "",
    eventType: f?.eventType ?? "",
    statuses: (f?.statuses ?? []).map(statusFromProto),
    createdAfter: time(f?.createTimeAfter),
    createdBefore: time(f?.createTimeBefore),
  };
}

function isEmptyFilter(f: DeliveryFilter | undefined): boolean {
  const s = selectionInput(f);
  return (
    s.endpointId === "" &&
    s.messageId === "" &&
    s.eventType === "" &&
    s.statuses.length === 0 &&
    s.createdAfter === undefined &&
    s.createdBefore === undefined
  );
}

/** A bulk operation as the API shows it. */
export function bulkOperationView(op: BulkOperationRecord): BulkOperation {
  const f = op.filter;
  return create(BulkOperationSchema, {
    id: op.id,
    action: ACTION_TO_PROTO[op.action],
    filter: create(DeliveryFilterSchema, {
      endpointId: f.endpointId ?? "",
      messageId: f.messageId ?? "",
      eventType: f.eventType ?? "",
      statuses: (f.statuses ?? []).map(statusToProto),
      createTimeAfter: f.createdAfter === undefined ? undefined : timestampFromDate(f.createdAfter),
      createTimeBefore: f.createdBefore === undefined ? undefined : timestampFromDate(f.createdBefore),
    }),
    deliveryIds: op.deliveryIds,
    limit: op.limit,
    state: op.state === "running" ? BulkOperationState.RUNNING : BulkOperationState.SUCCEEDED,
    matched: BigInt(op.matched),
    affected: BigInt(op.affected),
    createTime: timestampFromDate(op.createdAt),
    updateTime: timestampFromDate(op.updatedAt),
    finishTime: op.finishedAt === null ? undefined : timestampFromDate(op.finishedAt),
  });
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/** How often WatchBulkOperation looks at the operation's progress. */
const WATCH_POLL_MS = 250;

/** RecoveryService: replay, retry now, cancel retry, dead letters and bulk operations (management token). */
export function createRecoveryService(deps: ApiDeps): ServiceImpl<typeof RecoveryService> {
  const recoveryDeps = { store: deps.recovery, relay: deps.relay };
  const one = async (ctx: Parameters<typeof workspaceIdOf>[0], id: string, action: DeliveryActionName) => ({
    delivery: deliveryView(await actOnDelivery(recoveryDeps, workspaceIdOf(ctx), id, action)),
  });
  return {
    replayDelivery: (req, ctx) => one(ctx, req.id, "replay"),
    retryDelivery: (req, ctx) => one(ctx, req.id, "retry_now"),
    cancelRetry: (req, ctx) => one(ctx, req.id, "cancel_retry"),
    async replayMessage(req, ctx) {
      const { replayed, skipped } = await replayMessage(recoveryDeps, workspaceIdOf(ctx), req.id);
      return { replayed: replayed.map(deliveryView), skippedDeliveryIds: skipped };
    },
    async listDeadLetters(req, ctx) {
      const page = await listDeadLetters(deps.recovery, workspaceIdOf(ctx), {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        filter: selectionInput(req.filter),
      });
      return { deliveries: page.items.map(deliveryView), nextPageToken: page.nextPageToken };
    },
    async startBulkOperation(req, ctx) {
      const op = await startBulkOperation(deps.recovery, workspaceIdOf(ctx), {
        action: ACTION_FROM_PROTO[req.action],
        deliveryIds: req.deliveryIds,
        filter: isEmptyFilter(req.filter) ? undefined : selectionInput(req.filter),
        limit: req.limit,
      });
      return { operation: bulkOperationView(op) };
    },
    async getBulkOperation(req, ctx) {
      return { operation: bulkOperationView(await getBulkOperation(deps.recovery, workspaceIdOf(ctx), req.id)) };
    },
    async *watchBulkOperation(req, ctx) {
      const workspaceId = workspaceIdOf(ctx);
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal]);
      let last = "";
      for (;;) {
        const op = await getBulkOperation(deps.recovery, workspaceId, req.id);
        const key = `${op.state}:${op.matched}:${op.affected}`;
        if (key !== last) {
          last = key;
          yield { operation: bulkOperationView(op) };
        }
        if (op.state !== "running" || signal.aborted) return;
        await sleep(WATCH_POLL_MS, signal);
        if (signal.aborted) return;
      }
    },
  };
}
