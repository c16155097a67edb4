import assert from "node:assert/strict";
import { test } from "node:test";
import { Violations } from "./errors.ts";
import { checkEndpointUrl, checkEventType, checkHeaders, checkIdempotencyKey } from "./validation.ts";

function violations(fn: (v: Violations) => void): string[] {
  const v = new Violations();
  fn(v);
  return v.list.map((x) => `${x.field}: ${x.description}`);
}

test("endpoint URLs must be absolute http(s) without credentials", () => {
  assert.deepEqual(
    violations((v) => checkEndpointUrl(v, "u", "https://example.com/hook?x=1")),
    [],
  );
  for (const bad of [
    "",
    "example.com",
    "ftp://example.com/",
    "https://user:pw@example.com/",
    "https://example.com/#frag",
    "javascript:alert(1)",
    "https://" + "a".repeat(2100),
  ]) {
    assert.equal(violations((v) => checkEndpointUrl(v, "endpoint.url", bad)).length, 1, bad);
  }
});

test("event types, headers and idempotency keys", () => {
  assert.deepEqual(
    violations((v) => checkEventType(v, "e", "order.paid")),
    [],
  );
  assert.equal(violations((v) => checkEventType(v, "e", "order paid")).length, 1);
  assert.equal(violations((v) => checkEventType(v, "e", "")).length, 1);
  assert.deepEqual(
    violations((v) => checkHeaders(v, "h", { "X-Tenant": "a" })),
    [],
  );
  assert.equal(violations((v) => checkHeaders(v, "h", { "webhook-id": "x" })).length, 1);
  assert.equal(violations((v) => checkHeaders(v, "h", { Host: "x" })).length, 1);
  assert.equal(violations((v) => checkHeaders(v, "h", { "X-A": "a\r\nInjected: 1" })).length, 1);
  assert.equal(violations((v) => checkHeaders(v, "h", { "bad name": "a" })).length, 1);
  assert.deepEqual(
    violations((v) => checkIdempotencyKey(v, "k", "order-42")),
    [],
  );
  assert.equal(violations((v) => checkIdempotencyKey(v, "k", "has space")).length, 1);
  assert.equal(violations((v) => checkIdempotencyKey(v, "k", "x".repeat(257))).length, 1);
});
