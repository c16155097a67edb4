/**
 * The SDK never falls behind the schema: every RPC of every hookstream.v1 service in gen/ has an
 * SDK method (listed in RPC_METHODS and present on the client it names), and nothing stale is listed.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescFile } from "@bufbuild/protobuf";
import { Hookstream, HookstreamManagement, HookstreamOperator, HookstreamPortal, RPC_METHODS } from "./index.ts";

const genDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "gen", "hookstream");

async function schemaRpcs(): Promise<string[]> {
  const rpcs = new Set<string>();
  for (const p of readdirSync(genDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"))) {
    const mod = (await import(pathToFileURL(join(genDir, p)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      if (typeof value !== "object" || value === null || (value as { kind?: unknown }).kind !== "file") continue;
      for (const service of (value as DescFile).services) {
        if (!service.typeName.startsWith("hookstream.v1.")) continue;
        for (const method of service.methods) rpcs.add(`${service.typeName}/${method.name}`);
      }
    }
  }
  return [...rpcs].sort();
}

void describe("SDK coverage of the schema", () => {
  const clients: Record<string, unknown> = {
    producer: new Hookstream({ apiKey: "k", baseUrl: "http://127.0.0.1:1" }),
    management: new HookstreamManagement({ managementToken: "t", baseUrl: "http://127.0.0.1:1" }),
    operator: new HookstreamOperator({ operatorToken: "o", baseUrl: "http://127.0.0.1:1" }),
    portal: new HookstreamPortal({ portalToken: "p", baseUrl: "http://127.0.0.1:1" }),
    HookstreamPortal,
  };
  const resolve = (path: string): unknown =>
    path.split(".").reduce<unknown>((at, key) => (at as Record<string, unknown> | undefined)?.[key], clients);

  void it("every RPC of gen/ has an SDK method", async () => {
    const rpcs = await schemaRpcs();
    assert.ok(rpcs.length > 20, `found only ${rpcs.length} RPCs`);
    const missing = rpcs.filter((rpc) => RPC_METHODS[rpc] === undefined);
    assert.deepEqual(
      missing,
      [],
      `RPCs without an SDK method: add each to src/client (clients.ts) and to RPC_METHODS in src/client/rpc-methods.ts`,
    );
  });

  void it("every listed SDK method exists and every listed RPC is in the schema", async () => {
    const rpcs = new Set(await schemaRpcs());
    for (const [rpc, paths] of Object.entries(RPC_METHODS)) {
      assert.ok(rpcs.has(rpc), `RPC_METHODS lists ${rpc}, which the schema does not have`);
      for (const path of paths.split(" ")) {
        assert.equal(typeof resolve(path), "function", `${rpc}: ${path} is not a function of the SDK`);
      }
    }
  });
});
