#!/usr/bin/env bash
# Builds the npm package `synkro` into bindings/wasm/pkg: the wasm module
# (size-optimised release), its JS glue and types, our wrapper; prints the
# raw and gzip size of the .wasm against the 600 KB gzip budget
# (SYNKRO_WASM_BUDGET_STRICT=1 makes going over it an error).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-browser.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p synkro-wasm
out=bindings/wasm/pkg
rm -rf "$out"
wasm-bindgen --target web --out-dir "$out" --out-name synkro_wasm --remove-name-section --remove-producers-section \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/synkro_wasm.wasm"
cp bindings/wasm/js/{index,draft,snapshot,tabs,react}.js bindings/wasm/js/{index,react}.d.ts bindings/wasm/js/package.json "$out/"

wasm="$out/synkro_wasm_bg.wasm"
raw=$(wc -c < "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
budget=$((600 * 1000))
kb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1000 }'; }
echo "synkro npm package: $out"
echo "  wasm raw  $raw bytes ($(kb "$raw") KB)"
echo "  wasm gzip $gz bytes ($(kb "$gz") KB), budget $((budget / 1000)) KB"
if [ "$gz" -gt "$budget" ]; then
  echo "build-wasm: warning: the wasm is $(kb $((gz - budget))) KB over the gzip budget" >&2
  [ "${SYNKRO_WASM_BUDGET_STRICT:-0}" = 1 ] && exit 1
fi
exit 0
