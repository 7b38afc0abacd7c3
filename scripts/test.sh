#!/usr/bin/env bash
# The whole test suite: formatting, lints, the browser (wasm32) build of the
# crates that run in browsers, unit/integration/doc tests, end-to-end tests
# with real processes, and the npm package in headless Chromium.
# Long runs are opt-in: SYNKRO_CRASH_ROUNDS=500 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# One target dir for every step, so nothing is built twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A full run builds each crate once: incremental state would only add ~2 GB
# of disk (CI machines can be short of it) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "wasm32 build (synkro-core, synkro-storage, synkro-webrtc, synkro-net, synkro, synkro-wasm)"
cargo clippy --locked --target wasm32-unknown-unknown -p synkro-core -p synkro-storage -p synkro-webrtc -p synkro-net -p synkro -p synkro-wasm -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -p synkro-storage --test indexeddb -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -p synkro-core --test browser -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown -p synkro-webrtc --test browser -- -D warnings

step "tests"
# The end-to-end tests run the synkro and synkro-relay binaries: build them
# first (cargo builds a package's binaries only for its own tests). With
# --tests in the same command the binaries see the features the tests turn
# on (tokio's `process`, say); built alone they would need a second copy of
# every crate above tokio, ~2 GB more, which `cargo test` then rebuilds.
cargo build --workspace --locked --bins --tests
# --no-fail-fast: one run shows every failing test binary, not just the first.
cargo test --workspace --locked --no-fail-fast

step "vendored Automerge: its bounded walk against the full walk on random concurrent histories (vendor/README.md)"
AUTOMERGE_BOUNDED_WALK_CASES="${AUTOMERGE_BOUNDED_WALK_CASES:-32}" \
  cargo test --locked --manifest-path vendor/automerge/Cargo.toml --lib bounded_walk

step "fuzz: every decoder for a bounded time (long runs: FUZZ_SECONDS=3600 scripts/fuzz.sh)"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz.sh

step "browser: the core, the IndexedDB backend and WebRTC signaling in headless Chromium (wasm-bindgen-test)"
bash scripts/setup-browser.sh
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver
cargo test --locked --target wasm32-unknown-unknown -p synkro-core --test browser
cargo test --locked --target wasm32-unknown-unknown -p synkro-storage --test indexeddb
cargo test --locked --target wasm32-unknown-unknown -p synkro-webrtc --test browser

step "browser: the npm package and the web demo in headless Chromium"
bash scripts/build-demo.sh
(cd tests/browser && npm test)

step "benchmarks, quick: synkro against automerge-repo on small workloads (printed, not asserted; full run: scripts/bench.sh)"
BENCH_PROFILE=dev bash scripts/bench.sh --quick
