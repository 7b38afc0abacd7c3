#!/usr/bin/env bash
# synkro side by side with automerge-repo and Automerge's own limits.
#
#   scripts/bench.sh            full run (about 20 minutes); writes docs/benchmarks.md
#   scripts/bench.sh --quick    small workloads in a few minutes; prints the table
#   scripts/bench.sh --only latency,typists   some scenarios
#   scripts/bench.sh stores [--docs N,...]    the native store for many documents
#
# Installs what it needs (automerge-repo's npm packages, from their lock
# file) and builds synkro-bench and synkro-relay, optimized unless
# BENCH_PROFILE=dev (CI reuses the test build). Scenario 6 (encryption
# overhead) also builds both with sealing switched off, in a target dir of
# their own, for full runs and `--only encryption`. The wasm rows (size,
# and scenario 1 with a peer in headless Chromium) use the npm package:
# built here by scripts/build-wasm.sh if it is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [ "${1:-}" = stores ]; then
  # The native store for many documents: FsStorage, redb and fjall through
  # the same Storage trait. `scripts/bench.sh stores --docs 10000,100000,1000000`
  # for the full comparison (about an hour; a few GB of disk under target/).
  shift
  cargo build --locked --release -p synkro-bench --bin synkro-store-bench
  exec "$CARGO_TARGET_DIR/release/synkro-store-bench" --dir "$CARGO_TARGET_DIR/store-bench" "$@"
fi

bash scripts/setup.sh

command -v node >/dev/null 2>&1 || { echo "bench: node not found; install Node.js 20+ first" >&2; exit 1; }
peer=bench/automerge-repo
if [ ! -d "$peer/node_modules/@automerge/automerge-repo" ] || [ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]; then
  # `npm install`, not `npm ci`: the lock pins every version, but npm 11 leaves
  # cbor-extract's optional per-platform packages out of it, which `npm ci`
  # then refuses as out of sync.
  (cd "$peer" && npm install --no-audit --no-fund)
fi

if [ ! -f bindings/wasm/pkg/index.js ]; then
  bash scripts/build-wasm.sh
fi

args=("$@")
quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
only=0
for a in "$@"; do case "$a" in --only*) only=1 ;; esac; done
if [ "$quick" = 0 ] && [ "$only" = 0 ]; then
  args+=(--write docs/benchmarks.md)
fi

profile="${BENCH_PROFILE:-release}"
if [ "$profile" = dev ]; then
  # The same command as the test step, so the test build is reused as is.
  cargo build --workspace --locked --bins --tests
else
  cargo build --locked --profile "$profile" -p synkro-bench -p synkro-relay -p synkro-cli
fi
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")

if [ "$profile" != dev ] && { { [ "$quick" = 0 ] && [ "$only" = 0 ]; } || [[ " $* " == *encryption* ]]; }; then
  # Benchmark-only: chunks neither encrypted nor signed. Its own target dir,
  # so the real binaries are never built with it.
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/unsealed" cargo build --locked --profile "$profile" \
    -p synkro-bench -p synkro-relay --features synkro/insecure-unsealed-benchmark
  args+=(--unsealed "$CARGO_TARGET_DIR/unsealed/$dir/synkro-bench")
fi
exec "$CARGO_TARGET_DIR/$dir/synkro-bench" "${args[@]}"
