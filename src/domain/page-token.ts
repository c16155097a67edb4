import { createHash } from "node:crypto";
import { invalidArgument } from "./errors.ts";

/** Default page size when a request leaves page_size at 0. */
export const DEFAULT_PAGE_SIZE = 50;
/** Largest page; larger requests are coerced down (AIP-158). */
export const MAX_PAGE_SIZE = 200;

interface TokenBody {
  v: 1;
  c: string;
  f: string;
  a: string;
}

function filterKey(filters: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(filters ?? null))
    .digest("base64url")
    .slice(0, 16);
}

/** Validates page_size: negative is invalid, 0 means the default, above the max is capped. */
export function pageSize(requested: number, field = "page_size"): number {
  if (requested < 0) throw invalidArgument([{ field, description: "must not be negative" }]);
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/**
 * An opaque, versioned page token bound to its collection and filters, so a token reused
 * with other filters is rejected instead of silently skipping rows.
 */
export function encodePageToken(collection: string, filters: unknown, afterId: string): string {
  const body: TokenBody = { v: 1, c: collection, f: filterKey(filters), a: afterId };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

/** The cursor inside `token`, or undefined for the first page; invalid_argument when it doesn't fit. */
export function decodePageToken(
  token: string,
  collection: string,
  filters: unknown,
  field = "page_token",
): string | undefined {
  if (token === "") return undefined;
  let body: Partial<TokenBody>;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<TokenBody>;
  } catch {
    throw invalidArgument([{ field, description: "is not a page token returned by this API" }]);
  }
  if (
    typeof body !== "object" ||
    body === null ||
    body.v !== 1 ||
    typeof body.a !== "string" ||
    typeof body.c !== "string"
  ) {
    throw invalidArgument([{ field, description: "is not a page token returned by this API" }]);
  }
  if (body.c !== collection) {
    throw invalidArgument([{ field, description: "belongs to another list" }]);
  }
  if (body.f !== filterKey(filters)) {
    throw invalidArgument([
      { field, description: "was issued for other filters; repeat the request with the same filters" },
    ]);
  }
  return body.a;
}

/** Cuts one extra fetched row off and returns the page with its next token. */
export function pageOf<T extends { id: string }>(
  rows: T[],
  limit: number,
  collection: string,
  filters: unknown,
): { items: T[]; nextPageToken: string } {
  if (rows.length <= limit) return { items: rows, nextPageToken: "" };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: encodePageToken(collection, filters, items[items.length - 1]!.id) };
}
