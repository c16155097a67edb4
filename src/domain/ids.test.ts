import assert from "node:assert/strict";
import { test } from "node:test";
import { isIdOf, newId } from "./ids.ts";

test("ids carry their prefix and validate by kind", () => {
  const id = newId("message");
  assert.match(id, /^msg_[0-9a-z]{26}$/);
  assert.ok(isIdOf("message", id));
  assert.ok(!isIdOf("endpoint", id));
  assert.ok(!isIdOf("message", "msg_short"));
  assert.ok(!isIdOf("message", id.toUpperCase()));
});

test("ids sort by creation time, also within one millisecond", () => {
  const ids = Array.from({ length: 2000 }, () => newId("delivery"));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(newId("delivery", Date.now() + 10_000) > ids[ids.length - 1]!);
});
