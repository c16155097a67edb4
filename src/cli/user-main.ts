/**
 * Entry of the `hookstream` user commands (send, tail, endpoints, …): only the SDK and the
 * command code load, not the server's modules, so a command starts quickly. bin/hookstream.js
 * picks this entry for the verbs in USER_VERBS; src/cli/main.ts runs them too.
 */
import { runUserCommand } from "./client-cli.ts";

const code = await runUserCommand(process.argv.slice(2));
// Exit once what was written has been flushed (stdout may be a pipe).
process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
