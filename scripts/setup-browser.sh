#!/usr/bin/env bash
# Installs what the browser build and tests need, idempotently:
# the wasm32 target, the wasm-bindgen CLI at exactly the version in
# Cargo.lock, Chromium and ChromeDriver (Debian packages), and the npm
# packages of the browser tests (from their lock file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The CLI must match the wasm-bindgen crate byte for byte.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "setup-browser: installing wasm-bindgen-cli $want"
  # Its own temporary target dir (not ours): the build is thrown away after.
  env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$want" --locked
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "setup-browser: installing chromium and chromium-driver"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

need_npm() { command -v npm >/dev/null 2>&1 || { echo "setup-browser: npm not found; install Node.js 20+ first" >&2; exit 1; }; }
need_npm
if [ ! -d tests/browser/node_modules/playwright-core ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
