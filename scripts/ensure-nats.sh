#!/usr/bin/env bash
# Makes sure a `nats-server` binary (with JetStream) is installed: Hookstream's dev role and the
# tests start their own server from it. Installs it from Debian's packages when running as root;
# otherwise prints how to install it and fails.
set -euo pipefail

if command -v nats-server >/dev/null 2>&1 || [[ -x /usr/sbin/nats-server ]]; then
  exit 0
fi

if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing nats-server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y nats-server
  exit 0
fi

cat >&2 <<'MSG'
nats-server is not installed; Hookstream needs it (NATS with JetStream).
Install it with one of:
  sudo apt-get update && sudo apt-get install -y nats-server      # Debian / Ubuntu
  brew install nats-server                                          # macOS
  or download a release from https://github.com/nats-io/nats-server/releases and put it on PATH
Alternatively point NATS_URL at a running NATS server with JetStream enabled (-js).
MSG
exit 1
