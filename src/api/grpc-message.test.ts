import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { conformGrpcMessage, encodeGrpcMessage } from "./grpc-message.ts";

void describe("grpc-message encoding", () => {
  void it("escapes only bytes outside printable ASCII and the percent sign", () => {
    assert.equal(encodeGrpcMessage("name: must be 1-200 chars / ok?"), "name: must be 1-200 chars / ok?");
    assert.equal(encodeGrpcMessage("100% sure"), "100%25 sure");
    assert.equal(encodeGrpcMessage("line\nbreak"), "line%0Abreak");
    assert.equal(encodeGrpcMessage("café"), "caf%C3%A9");
  });

  void it("re-encodes connect's encodeURIComponent output in place", () => {
    const trailer = new Headers({ "grpc-status": "3", "grpc-message": encodeURIComponent("name: é 100%") });
    assert.equal(conformGrpcMessage(trailer), trailer);
    assert.equal(trailer.get("grpc-message"), "name: %C3%A9 100%25");
    assert.equal(decodeURI(trailer.get("grpc-message") ?? ""), "name: é 100%", "grpc-js's decodeURI reads it right");
  });

  void it("leaves trailers without an escaped message alone", () => {
    const ok = new Headers({ "grpc-status": "0" });
    assert.equal(conformGrpcMessage(ok).get("grpc-message"), null);
    const broken = new Headers({ "grpc-message": "%E0%A4%A" });
    assert.equal(conformGrpcMessage(broken).get("grpc-message"), "%E0%A4%A");
  });
});
