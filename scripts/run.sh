#!/usr/bin/env bash
# Two peers sync an end-to-end encrypted document (in one process, over the
# same sync protocol the network transport carries), then the CLI shows the
# same document life cycle on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

cargo run --quiet --locked -p synkro --example two-peers-in-process

cargo build --quiet --locked -p synkro-cli
synkro="$CARGO_TARGET_DIR/debug/synkro"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo
echo "== the CLI, with two devices' homes under $tmp"
a="$synkro --home $tmp/alice"
b="$synkro --home $tmp/bob"
echo "alice is $($a init | tail -n1)"
doc=$($a new --name groceries | tail -n1)
echo "alice created $doc"
$a set "$doc" items '["milk", "tea"]'
$a set "$doc" meta/title '"Groceries"'
echo "alice's document:"; $a get "$doc"
export SYNKRO_DEMO_PASS="correct horse battery staple"
$a export "$doc" "$tmp/groceries.synkro" --passphrase-env SYNKRO_DEMO_PASS
echo "encrypted backup: $(wc -c < "$tmp/groceries.synkro") bytes; bob imports it"
$b import "$tmp/groceries.synkro" --passphrase-env SYNKRO_DEMO_PASS >/dev/null
$b set "$doc" items/2 '"bread"'
echo "bob's copy after his edit:"; $b get "$doc"
echo "members:"; $a info "$doc"
