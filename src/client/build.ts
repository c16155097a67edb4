/**
 * Builds `@hookstream/client` into src/client/dist: ES2022 JavaScript modules and `.d.ts`, the
 * SDK's sources and the generated code they import (dist/src/client, dist/gen). `npm test` runs it.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const tsc = join(here, "..", "..", "node_modules", "typescript", "bin", "tsc");
rmSync(join(here, "dist"), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", join(here, "tsconfig.build.json")], { stdio: "inherit" });
if (r.status !== 0) {
  console.error("building @hookstream/client failed");
  process.exit(r.status ?? 1);
}
