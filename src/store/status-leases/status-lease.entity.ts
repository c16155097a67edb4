import { defineEntity, p } from "@mikro-orm/core";

/**
 * Table schema of a worker process's status lease (status-announcer.ts): one row per running
 * worker, renewed every few seconds, saying up to when every attempt it recorded has had its
 * status event published. No foreign keys: a row outlives nothing but its process.
 */
export const StatusLeaseSchema = defineEntity({
  name: "StatusLease",
  tableName: "status_lease",
  properties: {
    id: p.string().length(64).primary(),
    /** Every attempt recorded under this lease that started before this has its event published. */
    settledBefore: p.datetime(3),
    heartbeatAt: p.datetime(3),
    createdAt: p.datetime(3),
  },
  indexes: [{ name: "status_lease_heartbeat_at_index", properties: ["heartbeatAt"] }],
});

/** A status lease row. */
export class StatusLease extends StatusLeaseSchema.class {}
StatusLeaseSchema.setClass(StatusLease);
