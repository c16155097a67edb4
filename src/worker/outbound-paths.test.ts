// Every outbound request a customer can point somewhere (deliveries, test pings, Slack and other
// destinations, forwarding) must go through the SSRF-guarded sender. This test reads every source
// file and fails when one opens an outbound connection by any other means, so a new outbound path
// cannot skip the guard (or the proxy, CA bundle and client certificates) by accident.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const srcDir = join(fileURLToPath(import.meta.url), "..", "..");

// The outbound door itself, and why anything else is allowed.
const ALLOWED: Record<string, string> = {
  "worker/http-sender.ts": "the SSRF-guarded sender",
  "worker/outbound-proxy.ts": "CONNECT tunnels for the sender, to addresses it already checked",
  "cli/local-nats.ts": "probes the local nats-server it started itself, never a customer address",
  "cli/client-cli.ts":
    "the user's own command line: `listen --forward-to` posts to a URL the user typed, from the user's machine, never from a Hookstream role",
};

const CLIENT_CALLS: readonly [RegExp, string][] = [
  [/from\s+["']undici["']/, "imports undici"],
  [/(?<![.\w])fetch\s*\(/, "calls global fetch"],
  [/\b(?:http|https|http2)\.(?:request|get|connect)\s*\(/, "makes an http/https/http2 client request"],
  [/\b(?:net|tls)\.(?:connect|createConnection)\s*\(/, "opens a raw socket"],
  [
    /import\s*\{[^}]*\b(?:request|get|connect|createConnection)\b[^}]*\}\s*from\s*["']node:(?:http|https|http2|net|tls)["']/,
    "imports a client function",
  ],
  [/\bnew\s+WebSocket\s*\(/, "opens a WebSocket"],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [path] : [];
  });
}

test("no source file opens an outbound connection except through the SSRF-guarded sender", () => {
  const offences: string[] = [];
  const files = sources(srcDir);
  assert.ok(files.length > 50, "the scan sees the source tree");
  for (const file of files) {
    const name = relative(srcDir, file).split("\\").join("/");
    if (ALLOWED[name] !== undefined) continue;
    const text = readFileSync(file, "utf8");
    for (const [pattern, what] of CLIENT_CALLS) if (pattern.test(text)) offences.push(`${name} ${what}`);
  }
  assert.deepEqual(offences, [], "send outbound requests with createHttpSender (src/worker/http-sender.ts)");
});

test("the scan recognises the ways an outbound request is made", () => {
  const hit = (text: string): boolean => CLIENT_CALLS.some(([p]) => p.test(text));
  assert.ok(hit('import { request } from "undici";'));
  assert.ok(hit("await fetch(url)"));
  assert.ok(hit("https.get(url, cb)"));
  assert.ok(hit("net.connect({ host })"));
  assert.ok(hit('import { connect, isIP } from "node:net";'));
  assert.ok(!hit("await consumer.fetch({ max_messages: 1 })"));
  assert.ok(!hit('import http, { type IncomingMessage } from "node:http"; http.createServer()'));
});
