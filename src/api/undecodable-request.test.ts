import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { errorDetailOf } from "./error-mapping.ts";
import { isUndecodableRequestError, watchUndecodableRequest } from "./undecodable-request.ts";

function fakeContext(): { context: HandlerContext; abort: (reason?: unknown) => void } {
  const controller = new AbortController();
  return { context: { signal: controller.signal } as HandlerContext, abort: (r) => controller.abort(r) };
}

void describe("undecodable request bodies", () => {
  void it("recognises connect's internal errors for bodies it could not decode", () => {
    assert.equal(isUndecodableRequestError(new ConnectError("parse binary: premature EOF", Code.Internal)), true);
    assert.equal(isUndecodableRequestError(new ConnectError("decompression failed", Code.Internal)), true);
    assert.equal(isUndecodableRequestError(new ConnectError("parse binary: x", Code.InvalidArgument)), false);
    assert.equal(isUndecodableRequestError(new ConnectError("serialize binary: x", Code.Internal)), false);
    assert.equal(isUndecodableRequestError(new Error("parse binary: x")), false);
  });

  void it("reclassifies the very error object the handler is about to serialize", () => {
    const { context, abort } = fakeContext();
    watchUndecodableRequest(context);
    const err = new ConnectError("parse binary: premature EOF", Code.Internal);
    abort(err);
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(err.message, "[invalid_argument] parse binary: premature EOF");
    assert.equal(errorDetailOf(err)?.reason, "INVALID_ARGUMENT");
  });

  void it("leaves every other abort reason alone", () => {
    const { context, abort } = fakeContext();
    watchUndecodableRequest(context);
    const err = new ConnectError("serialize binary: bad", Code.Internal);
    abort(err);
    assert.equal(err.code, Code.Internal);
    const second = fakeContext();
    watchUndecodableRequest(second.context);
    second.abort(); // a normal end of call
    assert.equal(second.context.signal.aborted, true);
  });
});
