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
