#!/usr/bin/env bash
# The whole test suite, as `npm test` / `make test` / CI run it: toolchain guard, schema gates
# (buf lint, buf breaking, generated code up to date), type check, lint, format check,
# unit tests, then the integration and end-to-end tests once per database kind.
#
# Integration tests (test/**/*.test.ts) run in a first pass with HOOKSTREAM_TEST_DB=sqlite.
# Files that take the database kind from the environment (they import test/support/database.ts)
# run again with HOOKSTREAM_TEST_DB=postgresql; the others run in the first pass only, and so do
# files marked "test-pass: first only" (clients and tools against a server whose behaviour on each
# database the other files prove: the CLI, the SDK, the README's examples).
#
# Knobs (environment):
#   HOOKSTREAM_TEST_DBS="sqlite postgresql"  database passes to run (e.g. "sqlite" without PostgreSQL)
#   HOOKSTREAM_CHECK_FORMAT=0                skip `prettier --check .` (on by default)
#   HOOKSTREAM_TEST_ONLY=unit|integration    run only that part of the tests (gates still run)
#   HOOKSTREAM_TEST_TIMEOUT_MS=300000        per-test timeout for node:test
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

CHECK_FORMAT="${HOOKSTREAM_CHECK_FORMAT:-1}"
DB_PASSES="${HOOKSTREAM_TEST_DBS:-sqlite postgresql}"
ONLY="${HOOKSTREAM_TEST_ONLY:-}"
TEST_TIMEOUT_MS="${HOOKSTREAM_TEST_TIMEOUT_MS:-300000}"

started=$SECONDS
step() { printf '\n==> %s  (+%ss)\n' "$*" "$((SECONDS - started))"; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/hookstream-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

step "node version guard"
node scripts/check-node.ts
node --version

step "buf lint"
buf lint

step "buf breaking --against schema/baseline.binpb"
buf breaking --against schema/baseline.binpb

step "buf generate leaves gen/ unchanged"
# Generate into a scratch directory and compare, so uncommitted work in gen/ is never touched.
buf generate -o "$tmp/out"
if ! diff -ru gen "$tmp/out/gen"; then
  echo "gen/ is out of date with proto/: run \`npm run generate\` and commit the result." >&2
  exit 1
fi

step "tsc -p tsconfig.json"
tsc -p tsconfig.json

step "build @hookstream/client (src/client/dist: JavaScript and .d.ts)"
node src/client/build.ts

# The two static checks read the tree only: run them side by side, then report both.
if [[ "$CHECK_FORMAT" == "1" ]]; then
  step "eslint --max-warnings 0 . and prettier --check . (side by side)"
  prettier --check . >"$tmp/prettier.log" 2>&1 &
  prettier_pid=$!
else
  step "eslint --max-warnings 0 . (prettier --check skipped: HOOKSTREAM_CHECK_FORMAT=0)"
  prettier_pid=""
fi
lint_failed=0
eslint --max-warnings 0 . || lint_failed=1
if [[ -n "$prettier_pid" ]]; then
  prettier_rc=0
  wait "$prettier_pid" || prettier_rc=$?
  cat "$tmp/prettier.log"
  ((prettier_rc == 0)) || lint_failed=1
fi
((lint_failed == 0)) || exit 1

# node:test options shared by every pass: one file at a time (integration tests start processes
# and servers), a per-test timeout so a hang fails instead of blocking CI.
node_test() {
  node --test --test-concurrency=1 --test-timeout="$TEST_TIMEOUT_MS" "$@"
}

if [[ "$ONLY" != "integration" ]]; then
  mapfile -t unit_files < <(find src -name '*.test.ts' -not -path '*/node_modules/*' | sort)
  if ((${#unit_files[@]} > 0)); then
    step "unit tests (${#unit_files[@]} files)"
    node_test "${unit_files[@]}"
  else
    step "unit tests: none found"
  fi
fi

if [[ "$ONLY" != "unit" ]]; then
  mapfile -t integration_files < <(find test -name '*.test.ts' -not -path 'test/support/*' | sort)
  mapfile -t db_files < <(
    ((${#integration_files[@]} > 0)) && grep -l 'support/database' "${integration_files[@]}" |
      xargs -r grep -L 'test-pass: first only' || true
  )
  first=1
  for kind in $DB_PASSES; do
    if [[ "$first" == "1" ]]; then
      files=("${integration_files[@]}")
    else
      files=("${db_files[@]}")
    fi
    first=0
    if ((${#files[@]} == 0)); then
      step "integration tests, HOOKSTREAM_TEST_DB=$kind: none found"
      continue
    fi
    step "integration tests, HOOKSTREAM_TEST_DB=$kind (${#files[@]} files)"
    HOOKSTREAM_TEST_DB="$kind" node_test "${files[@]}"
  done
fi

step "all tests passed in ${SECONDS}s"
