#!/usr/bin/env bash
# Installs the npm dependencies from the committed lockfile when node_modules is missing or
# older than package-lock.json, so `make dev` / `make test` work on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d node_modules || ! -x node_modules/.bin/node || package-lock.json -nt node_modules ]]; then
  echo "==> installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
  touch node_modules
fi
