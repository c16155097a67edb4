import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { newId } from "../src/domain/ids.ts";
import { migrateDatabase, openStore } from "../src/store/index.ts";
import { createTestDatabase, testDbKinds, type TestDatabase } from "./support/database.ts";

// Several role processes (api, dispatcher, worker) on one SQLite file: their write transactions
// must wait for each other, never fail with "database is locked".
const PROCESSES = 3;
const ROUNDS = 150;
const HAMMER = new URL("./store-hammer.ts", import.meta.url).pathname;

interface HammerReport {
  failures: number;
  applied: number;
  errors: string[];
}

function hammer(path: string, workspaceId: string, endpointId: string): Promise<HammerReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HAMMER, path, workspaceId, endpointId, String(ROUNDS)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`hammer exited with ${code}: ${err}`));
      else resolve(JSON.parse(out) as HammerReport);
    });
  });
}

if (testDbKinds().includes("sqlite")) {
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase("sqlite");
    await migrateDatabase(db.config, { logger: pino({ level: "silent" }) });
  });

  after(async () => {
    await db?.drop();
  });

  void it(`${PROCESSES} processes writing to one SQLite file at once see no failures`, async () => {
    assert.equal(db.config.kind, "sqlite");
    const path = db.config.kind === "sqlite" ? db.config.path : "";
    const store = await openStore(db.config, { logger: pino({ level: "silent" }) });
    const workspaceId = newId("workspace");
    const endpointId = newId("endpoint");
    const T0 = new Date();
    try {
      await store.workspaces.createWorkspace({ id: workspaceId, name: "hammer", createdAt: T0 }, `hash-${workspaceId}`);
      await store.endpoints.createEndpoint({
        id: endpointId,
        workspaceId,
        url: "https://example.com/hook",
        description: "",
        metadata: {},
        enabled: true,
        headers: {},
        timeoutMs: 1_000,
        secret: "whsec_AAAA",
        previousSecret: null,
        previousSecretExpiresAt: null,
        createdAt: T0,
        updatedAt: T0,
      });
    } finally {
      await store.close();
    }

    const reports = await Promise.all(Array.from({ length: PROCESSES }, () => hammer(path, workspaceId, endpointId)));
    for (const r of reports) {
      assert.equal(r.failures, 0, `failed calls: ${r.errors.join("; ")}`);
      assert.equal(r.applied, ROUNDS, "every attempt of the process's own deliveries was recorded");
    }

    const check = await openStore(db.config, { logger: pino({ level: "silent" }) });
    try {
      const deliveries = await check.deliveries.listDeliveries(workspaceId, {}, { afterId: undefined, limit: 1000 });
      assert.equal(deliveries.length, PROCESSES * ROUNDS);
      assert.ok(deliveries.every((d) => d.attemptCount === 1));
      const outbox = await check.outbox.pendingOutbox(new Date("2100-01-01T00:00:00Z"), 100_000);
      assert.equal(new Set(outbox.map((o) => o.seq)).size, outbox.length);
      assert.ok(outbox.length >= 2 * PROCESSES * ROUNDS, "accept and attempt rows all written");
    } finally {
      await check.close();
    }
  });
}
