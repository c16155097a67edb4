import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { captureRawJson, rawJsonMembersKey, replaceMembers } from "./raw-json-body.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("utf8");

async function* chunksOf(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

function request(body: Uint8Array, headers: Record<string, string>, chunk = 7): UniversalServerRequest {
  return {
    httpVersion: "1.1",
    url: "http://localhost/hookstream.v1.MessageService/Send",
    method: "POST",
    header: new Headers(headers),
    body: chunksOf(body, chunk),
    signal: new AbortController().signal,
  };
}

async function readAll(req: UniversalServerRequest): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const c of req.body as AsyncIterable<Uint8Array>) parts.push(c);
  return text(Buffer.concat(parts));
}

const compressions = [compressionGzip, compressionBrotli];

void describe("replaceMembers", () => {
  it("keeps the exact member bytes and hands on the JSON with null in their place", () => {
    const captured = new Map<string, Uint8Array[]>();
    const body = '{"endpointId":"ep_1","payload":{"n":9007199254740993, "s":"\\u00e9"},"eventType":"a"}';
    const out = replaceMembers(Buffer.from(body), ["payload"], captured);
    assert.equal(text(out), '{"endpointId":"ep_1","payload":null,"eventType":"a"}');
    assert.deepEqual(captured.get("payload")?.map(text), ['{"n":9007199254740993, "s":"\\u00e9"}']);
  });

  it("replaces every element's member for items[].payload", () => {
    const captured = new Map<string, Uint8Array[]>();
    const body = '{"items":[{"payload":1.0},{"payload":[{"payload":2}]}]}';
    const out = replaceMembers(Buffer.from(body), ["items[].payload"], captured);
    assert.equal(text(out), '{"items":[{"payload":null},{"payload":null}]}');
    assert.deepEqual(captured.get("items[].payload")?.map(text), ["1.0", '[{"payload":2}]']);
  });

  it("passes malformed JSON on untouched and captures nothing", () => {
    const captured = new Map<string, Uint8Array[]>();
    const body = Buffer.from('{"payload":"unterminated}');
    assert.equal(replaceMembers(body, ["payload"], captured), body);
    assert.equal(captured.size, 0);
  });
});

void describe("captureRawJson", () => {
  it("captures a chunked Connect JSON body and drops the length it changes", async () => {
    const body = Buffer.from('{"payload": [1e3, 12345678901234567890] }');
    const req = captureRawJson(
      request(body, { "content-type": "application/json", "content-length": String(body.length) }),
      ["payload"],
      1024,
      compressions,
    );
    assert.equal(req.header.get("content-length"), null);
    assert.equal(await readAll(req), '{"payload": null }');
    assert.deepEqual(req.contextValues?.get(rawJsonMembersKey)?.get("payload")?.map(text), [
      "[1e3, 12345678901234567890]",
    ]);
  });

  it("decompresses gzip itself and tells connect the body is no longer encoded", async () => {
    const body = gzipSync('{"payload":{"a":1.50}}');
    const req = captureRawJson(
      request(body, { "content-type": "application/json; charset=utf-8", "content-encoding": "gzip" }),
      ["payload"],
      1024,
      compressions,
    );
    assert.equal(req.header.get("content-encoding"), null);
    assert.equal(await readAll(req), '{"payload":null}');
    assert.deepEqual(req.contextValues?.get(rawJsonMembersKey)?.get("payload")?.map(text), ['{"a":1.50}']);
  });

  it("refuses a body over the limit with resource_exhausted", async () => {
    const req = captureRawJson(
      request(Buffer.from(`{"payload":"${"x".repeat(100)}"}`), { "content-type": "application/json" }),
      ["payload"],
      50,
      compressions,
    );
    await assert.rejects(readAll(req), (err: unknown) => ConnectError.from(err).code === Code.ResourceExhausted);
  });

  it("holds the body to its Content-Length, as connect does", async () => {
    const body = Buffer.from('{"payload":1}');
    const req = captureRawJson(
      request(body, { "content-type": "application/json", "content-length": String(body.length + 1) }),
      ["payload"],
      1024,
      compressions,
    );
    await assert.rejects(readAll(req), (err: unknown) => ConnectError.from(err).code === Code.InvalidArgument);
  });

  it("leaves other requests to connect as they are", () => {
    const body = Buffer.from("{}");
    for (const headers of [
      { "content-type": "application/proto" },
      { "content-type": "application/grpc+json" },
      { "content-type": "application/connect+json" },
      { "content-type": "application/json", "content-encoding": "zstd" },
      { "content-type": "application/json", "content-length": "4096" },
      { "content-type": "application/json", "content-length": "12abc" },
    ]) {
      const req = request(body, headers);
      assert.equal(captureRawJson(req, ["payload"], 1024, compressions), req, JSON.stringify(headers));
    }
    const get = { ...request(body, { "content-type": "application/json" }), method: "GET" };
    assert.equal(captureRawJson(get, ["payload"], 1024, compressions), get);
  });
});
