#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the integration tests
# (HOOKSTREAM_TEST_DB=postgresql pass). Installs and starts the Debian cluster when root.
set -euo pipefail

pg_ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

if pg_ready; then
  exit 0
fi

as_root=0
[[ "$(id -u)" == "0" ]] && as_root=1

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [[ "$as_root" == "1" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y postgresql postgresql-client
  else
    echo "PostgreSQL is not installed or not running on 127.0.0.1:5432." >&2
    echo "Install it (e.g. sudo apt-get install -y postgresql) and start it, or run only the" >&2
    echo "SQLite pass: HOOKSTREAM_TEST_DBS=sqlite npm test" >&2
    exit 1
  fi
fi

version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
if [[ -z "$version" ]]; then
  echo "PostgreSQL is installed but no cluster exists under /etc/postgresql." >&2
  exit 1
fi
echo "==> starting PostgreSQL $version"
if [[ "$as_root" == "1" ]]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
else
  sudo -n pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

for _ in $(seq 1 30); do
  if pg_ready; then exit 0; fi
  sleep 1
done
echo "PostgreSQL did not become ready on 127.0.0.1:5432." >&2
exit 1
