/**
 * bin/hookstream.js starts the user verbs from a light entry (src/cli/user-main.ts) when it knows
 * them: its list must be USER_VERBS, or a new verb silently starts the whole server's modules.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { USER_USAGE, USER_VERBS } from "./client-cli.ts";

void test("bin/hookstream.js dispatches exactly USER_VERBS to the light entry, and the usage lists each", () => {
  const bin = readFileSync(new URL("../../bin/hookstream.js", import.meta.url), "utf8");
  const list = /const USER_VERBS = new Set\(\[([^\]]*)\]\)/.exec(bin)?.[1];
  assert.ok(list !== undefined, "USER_VERBS in bin/hookstream.js");
  const inBin = [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(inBin, [...USER_VERBS]);
  for (const verb of USER_VERBS) assert.match(USER_USAGE, new RegExp(`^  ${verb}\\s`, "m"), verb);
});
