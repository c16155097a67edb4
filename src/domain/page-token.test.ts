import assert from "node:assert/strict";
import { test } from "node:test";
import { DomainError } from "./errors.ts";
import { decodePageToken, encodePageToken, pageOf, pageSize } from "./page-token.ts";

const isInvalid = (field: string) => (err: unknown) =>
  err instanceof DomainError && err.kind === "invalid_argument" && err.violations.some((v) => v.field === field);

test("page tokens round-trip for the same collection and filters", () => {
  const t = encodePageToken("deliveries", { endpointId: "ep_1" }, "dlv_x");
  assert.equal(decodePageToken(t, "deliveries", { endpointId: "ep_1" }), "dlv_x");
  assert.equal(decodePageToken("", "deliveries", {}), undefined);
});

test("a page token reused with other filters or another list is invalid_argument", () => {
  const t = encodePageToken("deliveries", { endpointId: "ep_1" }, "dlv_x");
  assert.throws(() => decodePageToken(t, "deliveries", { endpointId: "ep_2" }), isInvalid("page_token"));
  assert.throws(() => decodePageToken(t, "endpoints", { endpointId: "ep_1" }), isInvalid("page_token"));
  assert.throws(() => decodePageToken("not a token!", "deliveries", {}), isInvalid("page_token"));
  assert.throws(
    () => decodePageToken(Buffer.from("[1]").toString("base64url"), "deliveries", {}),
    isInvalid("page_token"),
  );
});

test("page sizes default, cap and reject negatives", () => {
  assert.equal(pageSize(0), 50);
  assert.equal(pageSize(7), 7);
  assert.equal(pageSize(10_000), 200);
  assert.throws(() => pageSize(-1), isInvalid("page_size"));
});

test("pageOf gives a next token only when more rows exist", () => {
  const rows = [{ id: "a" }, { id: "b" }, { id: "c" }];
  assert.deepEqual(pageOf(rows, 3, "x", null), { items: rows, nextPageToken: "" });
  const p = pageOf(rows, 2, "x", null);
  assert.deepEqual(p.items, rows.slice(0, 2));
  assert.equal(decodePageToken(p.nextPageToken, "x", null), "b");
});
