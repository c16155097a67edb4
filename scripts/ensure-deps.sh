#!/usr/bin/env bash
# Installs the npm dependencies from the committed lockfile when node_modules is missing or
# older than package-lock.json, so `make dev` / `make test` work on a fresh clone. npm writes
# node_modules/.package-lock.json at the end of every install: its age is the install's age.
set -euo pipefail
cd "$(dirname "$0")/.."

installed=node_modules/.package-lock.json
if [[ ! -f "$installed" || ! -x node_modules/.bin/node || package-lock.json -nt "$installed" ]]; then
  echo "==> installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
