import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findJsonMembers, isJsonText, isUtf8, jsonTextError, JsonSyntaxError, parseJsonPath } from "./json-spans.ts";

const bytes = (s: string): Uint8Array => Buffer.from(s, "utf8");

/** The text of each member at `path`. */
function members(json: string, path: string): string[] {
  const b = bytes(json);
  return findJsonMembers(b, path).map((s) => Buffer.from(b.subarray(s.start, s.end)).toString("utf8"));
}

void describe("findJsonMembers", () => {
  it("returns the exact text of a member, numbers, escapes and whitespace as written", () => {
    const payload =
      '{"id": 9007199254740993, "big":12345678901234567890, "f":1.0, "e":1e3, "neg":-1e400,' +
      ' "s":"caf\\u00e9 \\"quoted\\" \u{1F600}", "z":1, "a":[ 1 , 2 ]}';
    assert.deepEqual(members(`{"endpointId":"ep_1","payload":${payload},"eventType":"x"}`, "payload"), [payload]);
  });

  it("finds scalars, null and empty containers", () => {
    for (const value of ["0", "-0.5e-7", "true", "false", "null", '""', "{}", "[]", '"\\\\"']) {
      assert.deepEqual(members(`{ "payload" :\t${value} \n}`, "payload"), [value]);
    }
  });

  it("ignores the key inside strings and nested objects", () => {
    const json = '{"a":"\\"payload\\": 1","b":{"payload":2},"payload":[3],"c":"payload"}';
    assert.deepEqual(members(json, "payload"), ["[3]"]);
    assert.deepEqual(members('{"b":{"payload":2}}', "payload"), []);
  });

  it("compares keys as JSON.parse decodes them", () => {
    assert.deepEqual(members('{"p\\u0061yload":5}', "payload"), ["5"]);
    assert.deepEqual(members('{"payload ":5}', "payload"), []);
  });

  it("takes the last of repeated keys, like JSON.parse", () => {
    assert.deepEqual(members('{"payload":1,"payload":{"x":2}}', "payload"), ['{"x":2}']);
  });

  it("walks items[].payload in document order", () => {
    const json = '{"items":[{"payload":1},{"other":0},{"payload":{"a":"]"}},7,{"payload":[[]]}]}';
    assert.deepEqual(members(json, "items[].payload"), ["1", '{"a":"]"}', "[[]]"]);
    assert.deepEqual(members('{"items":{"payload":1}}', "items[].payload"), []);
    assert.deepEqual(members('{"items":[]}', "items[].payload"), []);
  });

  it("keeps 100 levels of nesting and survives a million", () => {
    const deep = "[".repeat(100) + '{"k":1}' + "]".repeat(100);
    assert.deepEqual(members(`{"payload":${deep}}`, "payload"), [deep]);
    const huge = "[".repeat(1_000_000) + "]".repeat(1_000_000);
    assert.equal(members(`{"payload":${huge}}`, "payload")[0]!.length, 2_000_000);
    assert.throws(() => members(`{"payload":${"[".repeat(1_000_000)}}`, "payload"), JsonSyntaxError);
  });

  it("allows a leading byte order mark, as connect's TextDecoder does", () => {
    assert.deepEqual(members('\uFEFF{"payload":1}', "payload"), ["1"]);
  });

  it("rejects malformed JSON with the offset", () => {
    const bad = [
      '{"payload":"unterminated}',
      '{"payload":"bad \\x escape"}',
      '{"payload":"\\u12g4"}',
      '{"payload":"tab\there"}',
      '{"payload":01}',
      '{"payload":1.}',
      '{"payload":.5}',
      '{"payload":1e}',
      '{"payload":+1}',
      '{"payload":tru}',
      '{"payload":NaN}',
      '{"payload":[1,]}',
      '{"payload":{"a":1,}}',
      '{"payload":{"a" 1}}',
      '{"payload":{a:1}}',
      '{"payload":1',
      '{"payload":1}}',
      '{"payload":1} 2',
      "",
      "[",
    ];
    for (const json of bad) {
      assert.throws(() => members(json, "payload"), JsonSyntaxError, json);
      assert.throws(() => JSON.parse(json) as unknown, SyntaxError, `JSON.parse agrees on ${json}`);
    }
    const err = jsonTextError(bytes('{"a":"x'));
    assert.ok(err instanceof JsonSyntaxError);
    assert.equal(err.offset, 7);
    assert.match(err.message, /unterminated string at byte 7/);
  });
});

void describe("isJsonText", () => {
  it("accepts one value with whitespace around it and nothing else", () => {
    for (const ok of ["1", ' {"a":[1,2,{"b":null}]} ', '"\u{1F600}"', "\n[]\t"]) assert.ok(isJsonText(bytes(ok)), ok);
    for (const bad of ["", " ", "1 2", "{} {}", "'a'", "[1", "undefined", "\uFEFF1"]) {
      assert.ok(!isJsonText(bytes(bad)), bad);
    }
  });

  it("agrees with JSON.parse on a corpus of valid texts", () => {
    const corpus = [
      { a: [1, 2.5, -3e-9, "x\n\u0000\u2028", true, false, null], b: { c: {} } },
      "\u00e9\u{1F600}",
      [[[[[]]]]],
      -0,
    ];
    for (const value of corpus) assert.ok(isJsonText(bytes(JSON.stringify(value, null, 2))));
  });
});

void describe("isUtf8", () => {
  it("tells well-formed UTF-8 from broken bytes", () => {
    assert.ok(isUtf8(bytes('"\u{1F600}é"')));
    assert.ok(!isUtf8(Uint8Array.of(0x22, 0xc3, 0x22)));
    assert.ok(!isUtf8(Uint8Array.of(0xed, 0xa0, 0x80))); // an encoded lone surrogate
  });
});

void describe("parseJsonPath", () => {
  it("splits keys and array steps", () => {
    assert.deepEqual(parseJsonPath("payload"), ["payload"]);
    assert.deepEqual(parseJsonPath("items[].payload"), ["items", "[]", "payload"]);
    assert.deepEqual(parseJsonPath("a[][].b"), ["a", "[]", "[]", "b"]);
    assert.throws(() => parseJsonPath("a..b"));
    assert.throws(() => parseJsonPath("[]"));
  });
});
