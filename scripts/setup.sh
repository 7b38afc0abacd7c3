#!/usr/bin/env bash
# Installs what building and testing synkro needs, idempotently.
# Needs: rustup and cargo on PATH (a fresh Debian machine with rustup is enough).
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: $1 not found; install $2 first" >&2; exit 1; }; }
need cargo "Rust via rustup (https://rustup.rs)"
need rustup "rustup"

# Browser builds of synkro-core and synkro-storage are checked in CI.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
for c in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$c"; then
    rustup component add "$c"
  fi
done

# The relay-cluster tests run real NATS JetStream servers. Debian's package
# (2.9.10) has every JetStream feature synkro uses (docs/cluster.md).
if ! command -v nats-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing nats-server"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >/dev/null
  else
    echo "setup: nats-server not found; install NATS server 2.9 or later (https://nats.io) for the cluster tests" >&2
    exit 1
  fi
fi
