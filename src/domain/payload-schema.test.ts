import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MAX_PATTERN_SUBJECT_LENGTH,
  MAX_PAYLOAD_ERRORS,
  MAX_SCHEMA_LENGTH,
  compilePayloadSchema,
  validatePayload,
  type CompiledPayloadSchema,
} from "./payload-schema.ts";

const enc = new TextEncoder();
const ORDER_SCHEMA = JSON.stringify({
  type: "object",
  required: ["id", "items"],
  additionalProperties: false,
  properties: {
    id: { type: "string", pattern: "^ord_[a-z0-9]+$" },
    status: { enum: ["paid", "refunded"] },
    items: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        required: ["sku", "price"],
        properties: { sku: { type: "string" }, price: { type: "number", minimum: 0 }, qty: { type: "integer" } },
      },
    },
    placed_at: { type: "string", format: "date-time" },
  },
});

function compiled(text: string): CompiledPayloadSchema {
  const r = compilePayloadSchema(text, "event_type.payload_schema");
  if (!r.ok) assert.fail(r.violation.description);
  return r.schema;
}
function refused(text: string): string {
  const r = compilePayloadSchema(text, "event_type.payload_schema");
  assert.ok(!r.ok, `${text.slice(0, 80)} should be refused`);
  assert.equal(r.violation.field, "event_type.payload_schema");
  assert.ok(r.violation.description.length <= 300);
  return r.violation.description;
}
const check = (schema: CompiledPayloadSchema, payload: string) =>
  validatePayload(schema, enc.encode(payload), "payload").map((v) => {
    assert.equal(v.field, "payload");
    return v.description;
  });

test("a valid payload has no violations (draft-07 by default)", () => {
  const s = compiled(ORDER_SCHEMA);
  assert.equal(s.dialect, "draft-07");
  assert.deepEqual(
    check(s, '{"id": "ord_1", "status": "paid", "items": [{"sku": "A-1", "price": 10.5, "qty": 2}]}'),
    [],
  );
  // "format" is an annotation only.
  assert.deepEqual(check(s, '{"id": "ord_1", "items": [{"sku": "A", "price": 0}], "placed_at": "yesterday"}'), []);
});

test("each error is one violation named by its JSON pointer", () => {
  const s = compiled(ORDER_SCHEMA);
  assert.deepEqual(check(s, '{"id": "ord_1", "items": [{"sku": "A-1", "price": "12"}]}'), [
    "/items/0/price must be number",
  ]);
  assert.deepEqual(check(s, '{"id": "ORDER", "status": "lost", "items": [{"price": -1, "qty": 1.5}], "extra": true}'), [
    '/ must not have the additional property "extra"',
    '/id must match pattern "^ord_[a-z0-9]+$"',
    '/status must be one of ["paid","refunded"]',
    "/items/0 must have required property 'sku'",
    "/items/0/price must be >= 0",
    "/items/0/qty must be integer",
  ]);
  assert.deepEqual(check(s, '{"items": []}'), [
    "/ must have required property 'id'",
    "/items must NOT have fewer than 1 items",
  ]);
  assert.deepEqual(check(s, "[1, 2]"), ["/ must be object"]);
});

test("errors are capped at 20, with one more violation counting the rest", () => {
  const s = compiled(JSON.stringify({ type: "array", items: { type: "string" } }));
  const v = check(s, JSON.stringify(Array.from({ length: 50 }, (_, i) => i)));
  assert.equal(v.length, MAX_PAYLOAD_ERRORS + 1);
  assert.equal(v[0], "/0 must be string");
  assert.equal(v[19], "/19 must be string");
  assert.equal(v[20], "and 30 more schema errors");
  assert.equal(check(s, JSON.stringify(Array.from({ length: 20 }, (_, i) => i))).length, 20);
});

test("2020-12 and 2019-09 schemas are read in their own dialect", () => {
  const s = compiled(
    JSON.stringify({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "array",
      prefixItems: [{ type: "string" }, { type: "number" }],
      items: false,
    }),
  );
  assert.equal(s.dialect, "2020-12");
  assert.deepEqual(check(s, '["a", 1]'), []);
  assert.deepEqual(check(s, '[1, "a"]'), ["/0 must be string", "/1 must be number"]);
  assert.deepEqual(check(s, '["a", 1, 2]'), ["/ must NOT have more than 2 items"]);
  const u = compiled(
    JSON.stringify({
      $schema: "https://json-schema.org/draft/2019-09/schema",
      type: "object",
      properties: { a: { type: "string" } },
      unevaluatedProperties: false,
    }),
  );
  assert.equal(u.dialect, "2019-09");
  assert.deepEqual(check(u, '{"a": "x", "b": 1}'), ['/ must not have the additional property "b"']);
  assert.match(refused('{"$schema": "http://json-schema.org/draft-04/schema#"}'), /^has an unsupported \$schema/);
  assert.match(refused('{"$schema": 7}'), /^has an unsupported \$schema/);
});

test("invalid JSON, non-objects and invalid schemas are refused with ajv's message", () => {
  assert.match(refused('{"type": "object"'), /^is not valid JSON: /);
  assert.match(refused(""), /^is not valid JSON: /);
  for (const t of ["[]", "true", "null", '"schema"', "42"]) assert.equal(refused(t), "must be a JSON object", t);
  assert.match(refused('{"type": "strin"}'), /^is not a valid JSON Schema: schema is invalid: data\/type must be/);
  assert.match(
    refused('{"minimum": "5"}'),
    /^is not a valid JSON Schema: schema is invalid: data\/minimum must be number/,
  );
  // Strict mode catches the typo that would otherwise accept every payload.
  assert.equal(refused('{"requried": ["id"]}'), 'is not a valid JSON Schema: strict mode: unknown keyword: "requried"');
});

test("remote and dangling $refs are never fetched: they are refused", () => {
  assert.equal(
    refused('{"$ref": "https://example.com/order.json"}'),
    "is not a valid JSON Schema: can't resolve reference https://example.com/order.json from id #",
  );
  assert.match(refused('{"properties": {"a": {"$ref": "http://169.254.169.254/latest"}}}'), /can't resolve reference/);
  assert.match(refused('{"$ref": "#/definitions/missing"}'), /can't resolve reference #\/definitions\/missing/);
  // Local references work, including recursion.
  const tree = compiled(
    JSON.stringify({
      definitions: {
        node: { type: "object", properties: { children: { type: "array", items: { $ref: "#/definitions/node" } } } },
      },
      $ref: "#/definitions/node",
    }),
  );
  assert.deepEqual(check(tree, '{"children": [{"children": []}, {"children": [{"children": 1}]}]}'), [
    "/children/1/children/0/children must be array",
  ]);
});

test("schemas of different workspaces may reuse an $id", () => {
  const a = compiled('{"$id": "https://example.com/order", "type": "string"}');
  const b = compiled('{"$id": "https://example.com/order", "type": "number"}');
  assert.deepEqual(check(a, '"x"'), []);
  assert.deepEqual(check(b, "1"), []);
  assert.deepEqual(check(b, '"x"'), ["/ must be number"]);
});

test("hostile schemas: size cap, deep nesting, catastrophic patterns", () => {
  const big = JSON.stringify({ description: "x".repeat(MAX_SCHEMA_LENGTH) });
  assert.equal(refused(big), `must be at most ${MAX_SCHEMA_LENGTH} characters`);
  assert.equal(refused('{"not":'.repeat(5000) + "{}" + "}".repeat(5000)), "is nested too deeply (at most 64 levels)");
  // Brackets inside strings do not count.
  compiled(JSON.stringify({ description: "[[[[{{{{".repeat(100) }));
  const risky = [
    "(a+)+$",
    "^(\\d*)*x",
    "(x{1,}){2,}",
    "(a|ab)*c",
    "(x+){9}",
    "(a[ab]*)+",
    "(\\w+\\s?)+$",
    "((ab)*)+",
    "(.*a){3}",
    "(-[a-z-]+)*",
    "(?<n>a+)+",
    "(-[^\\p{L}]+)*",
  ];
  for (const p of risky) {
    assert.match(refused(JSON.stringify({ pattern: p })), /may backtrack catastrophically \(nested quantifier\)/, p);
  }
  assert.match(refused(JSON.stringify({ pattern: "(a|b)\\1" })), /may backtrack catastrophically \(backreference\)/);
  assert.match(
    refused(JSON.stringify({ patternProperties: { "^(a+)+$": { type: "string" } } })),
    /may backtrack catastrophically/,
  );
  assert.match(refused(JSON.stringify({ pattern: "a".repeat(1001) })), /pattern must be at most 1000 characters/);
  assert.match(refused(JSON.stringify({ pattern: "(" })), /^is not a valid JSON Schema: /);
  // Repetitions that must start with a literal nothing else in the group matches split one way only.
  const safe = [
    "^[a-z]+(-[a-z]+)*$",
    "^\\d+(\\.\\d+)*$",
    "^(?:\\/[a-z]+)+$",
    "^(ab)+$",
    "^[A-Z]{2,3}$",
    "^(foo|bar)$",
    "^\\+?[0-9 ()-]{7,20}$",
    "^(?<x>-\\d+)*$",
  ];
  for (const p of safe) compiled(JSON.stringify({ type: "string", pattern: p }));
  const slug = compiled(JSON.stringify({ type: "string", pattern: "^[a-z]+(-[a-z]+)*$" }));
  assert.deepEqual(check(slug, '"order-paid-eu"'), []);
  assert.deepEqual(check(slug, '"Order--paid"'), ['/ must match pattern "^[a-z]+(-[a-z]+)*$"']);
  // Quadratic patterns slip through the check; the subject cap bounds them.
  const quadratic = compiled(JSON.stringify({ type: "string", pattern: "^\\d+\\d+x$" }));
  const started = performance.now();
  assert.deepEqual(check(quadratic, JSON.stringify("1".repeat(MAX_PATTERN_SUBJECT_LENGTH + 1))), [
    '/ must match pattern "^\\d+\\d+x$"',
  ]);
  assert.deepEqual(check(quadratic, JSON.stringify("1".repeat(MAX_PATTERN_SUBJECT_LENGTH))), [
    '/ must match pattern "^\\d+\\d+x$"',
  ]);
  assert.deepEqual(check(quadratic, '"12x"'), []);
  assert.ok(performance.now() - started < 3000);
});

test("hostile payloads: not JSON, not UTF-8, deeply nested against a recursive schema", () => {
  const s = compiled(ORDER_SCHEMA);
  const notJson = "is not valid JSON, but its event type has a payload schema";
  assert.deepEqual(validatePayload(s, enc.encode("id=ord_1"), "payload"), [{ field: "payload", description: notJson }]);
  assert.deepEqual(validatePayload(s, new Uint8Array([0x22, 0xff, 0x22]), "payload"), [
    { field: "payload", description: notJson },
  ]);
  assert.deepEqual(validatePayload(s, new Uint8Array(0), "payload"), [{ field: "payload", description: notJson }]);
  const recursive = compiled('{"type": "array", "items": {"$ref": "#"}}');
  assert.deepEqual(check(recursive, "[[[]], []]"), []);
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  assert.deepEqual(check(recursive, deep), ["is nested too deeply to validate"]);
  // Prototype keys are just data.
  assert.deepEqual(check(s, '{"id": "ord_1", "items": [{"sku": "A", "price": 1}], "__proto__": {"x": 1}}'), [
    '/ must not have the additional property "__proto__"',
  ]);
});

test("compiled schemas are cached by text hash, and valid payloads validate fast", () => {
  const a = compiled(ORDER_SCHEMA);
  const b = compiled(ORDER_SCHEMA);
  assert.equal(a, b);
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  const payload = enc.encode(
    '{"id": "ord_1", "items": [{"sku": "A-1", "price": 10.5, "qty": 2}, {"sku": "B", "price": 3}]}',
  );
  const started = performance.now();
  for (let n = 0; n < 10_000; n++) assert.equal(validatePayload(a, payload, "payload").length, 0);
  const perCallUs = ((performance.now() - started) / 10_000) * 1000;
  assert.ok(perCallUs < 200, `${perCallUs.toFixed(1)} µs per validation`);
});
