import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { AdminService } from "../../gen/hookstream/v1/admin_service_pb.ts";
import { ErrorDetailSchema } from "../../gen/hookstream/v1/error_pb.ts";
import { WatchService } from "../../gen/hookstream/v1/watch_service_pb.ts";
import { DomainError, invalidArgument, notFound, type ErrorKind } from "../domain/errors.ts";
import { createErrorInterceptor, errorDetailOf, toConnectError } from "./error-mapping.ts";

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: "debug" },
    { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
  );
  return { logger, lines };
}

void describe("toConnectError", () => {
  const kinds: Array<[ErrorKind, Code]> = [
    ["invalid_argument", Code.InvalidArgument],
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["failed_precondition", Code.FailedPrecondition],
    ["resource_exhausted", Code.ResourceExhausted],
    ["unauthenticated", Code.Unauthenticated],
    ["permission_denied", Code.PermissionDenied],
    ["unavailable", Code.Unavailable],
    ["internal", Code.Internal],
  ];
  for (const [kind, code] of kinds) {
    void it(`maps DomainError kind ${kind} to ${Code[code]} with its reason`, () => {
      const { logger } = capturingLogger();
      const err = toConnectError(new DomainError(kind, "SOME_REASON", "what happened"), logger);
      assert.equal(err.code, code);
      assert.equal(errorDetailOf(err)?.reason, "SOME_REASON");
    });
  }

  void it("keeps the message and lists every field violation", () => {
    const { logger, lines } = capturingLogger();
    const err = toConnectError(
      invalidArgument([
        { field: "endpoint.url", description: "must be https" },
        { field: "event_type", description: "must not be empty" },
      ]),
      logger,
    );
    assert.equal(err.rawMessage, "endpoint.url: must be https; event_type: must not be empty");
    const detail = errorDetailOf(err);
    assert.deepEqual(
      detail?.fieldViolations.map((v) => [v.field, v.description]),
      [
        ["endpoint.url", "must be https"],
        ["event_type", "must not be empty"],
      ],
    );
    assert.equal(detail?.retryDelay, undefined);
    assert.equal(lines.length, 0, "a client mistake is not logged");
  });

  void it("turns retryDelayMs into retry_delay and a Retry-After header", () => {
    const { logger } = capturingLogger();
    const err = toConnectError(
      new DomainError("resource_exhausted", "RATE_LIMITED", "slow down", { retryDelayMs: 2250 }),
      logger,
    );
    const delay = errorDetailOf(err)?.retryDelay;
    assert.equal(delay?.seconds, 2n);
    assert.equal(delay?.nanos, 250_000_000);
    assert.equal(err.metadata.get("retry-after"), "3");
  });

  void it("hides the message of an internal DomainError and logs it", () => {
    const { logger, lines } = capturingLogger();
    const err = toConnectError(new DomainError("internal", "STATE_CORRUPT", "row 42 is corrupt"), logger, "/p/Q");
    assert.equal(err.rawMessage, "internal error");
    assert.equal(errorDetailOf(err)?.reason, "STATE_CORRUPT");
    assert.equal(lines[0]?.["procedure"], "/p/Q");
  });

  void it("logs an unavailable dependency as a warning but shows the message", () => {
    const { logger, lines } = capturingLogger();
    const err = toConnectError(new DomainError("unavailable", "DATABASE_UNAVAILABLE", "database unavailable"), logger);
    assert.equal(err.rawMessage, "database unavailable");
    assert.equal(lines[0]?.["level"], 40);
  });

  void it("makes any other error internal, never shown, its cause logged with the procedure", () => {
    const { logger, lines } = capturingLogger();
    const cause = new TypeError("cannot read secret of undefined");
    const err = toConnectError(cause, logger, "/hookstream.v1.MessageService/Send");
    assert.equal(err.code, Code.Internal);
    assert.equal(err.rawMessage, "internal error");
    assert.equal(err.cause, cause, "kept for logs");
    assert.equal(errorDetailOf(err)?.reason, "INTERNAL");
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.["level"], 50);
    assert.equal(lines[0]?.["procedure"], "/hookstream.v1.MessageService/Send");
    assert.match(JSON.stringify(lines[0]?.["err"]), /cannot read secret/);
    assert.equal(toConnectError("a string", logger).rawMessage, "internal error");
  });

  void it("treats an AbortError from a fired signal as canceled, not as a bug", () => {
    const { logger, lines } = capturingLogger();
    const err = toConnectError(new DOMException("aborted", "AbortError"), logger);
    assert.equal(err.code, Code.Canceled);
    assert.ok(lines.every((l) => l["level"] === 20));
  });

  void it("passes a ConnectError with an ErrorDetail through unchanged", () => {
    const { logger } = capturingLogger();
    const original = new ConnectError("nope", Code.PermissionDenied, undefined, [
      { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: "SCOPE_MISSING" }) },
    ]);
    assert.equal(toConnectError(original, logger), original);
  });

  void it("adds a reason derived from the code to a ConnectError without an ErrorDetail", () => {
    const { logger } = capturingLogger();
    const original = new ConnectError("no such thing", Code.NotFound, { "x-a": "1" });
    const err = toConnectError(original, logger);
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, "no such thing");
    assert.equal(err.metadata.get("x-a"), "1");
    assert.equal(errorDetailOf(err)?.reason, "NOT_FOUND");
    assert.equal(
      errorDetailOf(toConnectError(new ConnectError("x", Code.InvalidArgument), logger))?.reason,
      "INVALID_ARGUMENT",
    );
  });

  void it("logs a hidden cause once even when mapped twice (nested interceptors)", () => {
    const { logger, lines } = capturingLogger();
    const once = toConnectError(new Error("boom"), logger);
    assert.equal(toConnectError(once, logger), once);
    assert.equal(lines.length, 1);
  });

  void it("turns connect's internal 'parse binary' error into invalid_argument", () => {
    const { logger } = capturingLogger();
    const err = toConnectError(new ConnectError("parse binary: premature EOF", Code.Internal), logger);
    assert.equal(err.code, Code.InvalidArgument);
    assert.equal(errorDetailOf(err)?.reason, "INVALID_ARGUMENT");
  });

  void it("errorDetailOf is undefined for an error without a detail", () => {
    assert.equal(errorDetailOf(new ConnectError("x", Code.Unknown)), undefined);
  });
});

void describe("createErrorInterceptor", () => {
  const { logger, lines } = capturingLogger();
  const transport = createRouterTransport(
    (router) => {
      router.service(AdminService, {
        createWorkspace(req) {
          if (req.name === "missing") throw notFound("workspace", "ws_1");
          throw new Error("socket hang up");
        },
      });
      router.service(WatchService, {
        async *watchDeliveries(req) {
          if (req.endpointId === "before") throw invalidArgument([{ field: "endpoint_id", description: "unknown" }]);
          yield { resumeToken: "rt_1" };
          throw new RangeError("mid-stream bug");
        },
      });
    },
    { router: { interceptors: [createErrorInterceptor(logger)] } },
  );

  void it("maps unary errors", async () => {
    const admin = createClient(AdminService, transport);
    await assert.rejects(admin.createWorkspace({ name: "missing" }), (err: ConnectError) => {
      assert.equal(err.code, Code.NotFound);
      assert.equal(errorDetailOf(err)?.reason, "WORKSPACE_NOT_FOUND");
      return true;
    });
    await assert.rejects(admin.createWorkspace({ name: "x" }), (err: ConnectError) => {
      assert.equal(err.code, Code.Internal);
      assert.equal(err.rawMessage, "internal error");
      return true;
    });
    assert.ok(lines.some((l) => l["procedure"] === "/hookstream.v1.AdminService/CreateWorkspace"));
  });

  void it("maps errors thrown before a stream's first item and in the middle of it", async () => {
    const watch = createClient(WatchService, transport);
    await assert.rejects(
      (async () => {
        for await (const _ of watch.watchDeliveries({ endpointId: "before" })) assert.fail("no item expected");
      })(),
      (err: ConnectError) =>
        err.code === Code.InvalidArgument && errorDetailOf(err)?.fieldViolations[0]?.field === "endpoint_id",
    );
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const item of watch.watchDeliveries({ endpointId: "mid" })) seen.push(item.resumeToken);
      })(),
      (err: ConnectError) => err.code === Code.Internal && err.rawMessage === "internal error",
    );
    assert.deepEqual(seen, ["rt_1"]);
    assert.ok(lines.some((l) => l["procedure"] === "/hookstream.v1.WatchService/WatchDeliveries"));
  });
});
