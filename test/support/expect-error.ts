/** Assertions on failed RPCs, shared by the integration tests. */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema, type ErrorDetail } from "../../gen/hookstream/v1/error_pb.ts";

/** Awaits a call that must fail with `code`; returns its ErrorDetail (which it must carry). */
export async function failsWith(call: Promise<unknown>, code: Code, what: string): Promise<ErrorDetail> {
  try {
    await call;
  } catch (error) {
    const ce = ConnectError.from(error);
    assert.equal(ce.code, code, `${what}: got ${Code[ce.code]}: ${ce.rawMessage}`);
    const [detail] = ce.findDetails(ErrorDetailSchema);
    assert.ok(detail !== undefined, `${what}: no ErrorDetail`);
    return detail;
  }
  return assert.fail(`${what}: expected ${Code[code]}, but the call succeeded`);
}

/** The fields an ErrorDetail's violations name, in order. */
export const fields = (d: ErrorDetail): string[] => d.fieldViolations.map((v) => v.field);
