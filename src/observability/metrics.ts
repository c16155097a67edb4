import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The process's Prometheus registry and the counters the roles update. */
export interface Metrics {
  readonly registry: Registry;
  readonly attempts: Counter<"outcome">;
  readonly attemptLatency: Histogram;
  /** Jobs handed back without an attempt, by why (rate_limit, concurrency, circuit_open, ordering). */
  readonly deferrals: Counter<"reason">;
  /** Reports, at each scrape, how many jobs wait in this process for an endpoint's slot. */
  observeSlotWaiters(count: () => number): void;
  /** Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Creates the registry with Node's default metrics and Hookstream's own. */
export function createMetrics(role: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: "hookstream_" });
  const attempts = new Counter({
    name: "hookstream_delivery_attempts_total",
    help: "Delivery attempts by outcome (succeeded, pending_retry, failed).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const attemptLatency = new Histogram({
    name: "hookstream_delivery_attempt_seconds",
    help: "Duration of delivery HTTP requests, body included.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const deferrals = new Counter({
    name: "hookstream_delivery_deferrals_total",
    help: "Delivery jobs handed back to the queue without an attempt, by reason.",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  let slotWaiters: () => number = () => 0;
  new Gauge({
    name: "hookstream_delivery_slot_waiters",
    help: "Delivery jobs waiting in this worker for a slot of their endpoint (a fast endpoint at its concurrency cap).",
    registers: [registry],
    collect() {
      this.set(slotWaiters());
    },
  });
  return {
    registry,
    attempts,
    attemptLatency,
    deferrals,
    observeSlotWaiters(count) {
      slotWaiters = count;
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
