#!/usr/bin/env bash
# Fuzzes synkro's decoders with cargo fuzz (libFuzzer). Every target first
# replays its regression inputs (fuzz/regressions/<target>: crashers found
# earlier), then fuzzes from its corpus for a bounded time.
#
#   scripts/fuzz.sh                      # every target, 15 s each (CI; stable Rust, no sanitizer)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh sync_session
#   FUZZ_NIGHTLY=1 FUZZ_SECONDS=3600 scripts/fuzz.sh   # nightly with AddressSanitizer
#
# A crash leaves its input in fuzz/artifacts/<target>/; copy it into
# fuzz/regressions/<target>/ with the fix so it is replayed from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked  # a temporary target dir, removed after
fi

seconds="${FUZZ_SECONDS:-15}"
if [ -n "${FUZZ_NIGHTLY:-}" ]; then
  toolchain=(+nightly)
  sanitizer=address
else
  toolchain=()
  sanitizer=none
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# Fuzz builds use their own flags; keep them apart from the main target dir.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"
log="$CARGO_TARGET_DIR/fuzz.log"
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    echo "fuzz $t: replaying $(ls "fuzz/regressions/$t" | wc -l) regression inputs"
    cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$t" "fuzz/regressions/$t" -- -runs=0
  fi
  echo "fuzz $t: ${seconds} s"
  status=0
  cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$t" "$corpus" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|panicked|ERROR|SUMMARY" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (input saved under fuzz/artifacts/$t/)" >&2
    exit "$status"
  fi
done
