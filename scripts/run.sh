#!/usr/bin/env bash
# The main job: builds everything, starts a synkro-relay on loopback that
# also serves the web demo, and prints the address to open. Open it in two
# browser windows (one private) to collaborate; stop with Ctrl-C.
# Boards stay in .synkro-demo/ (the relay's encrypted copies) and in each
# browser's IndexedDB. SYNKRO_DEMO_PORT picks the HTTP port (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== building synkro-relay and the synkro CLI"
cargo build --quiet --locked -p synkro-relay -p synkro-cli
echo "== building the npm package and the web demo"
bash scripts/build-demo.sh

port="${SYNKRO_DEMO_PORT:-8080}"
data=.synkro-demo
mkdir -p "$data"
out="$data/relay.out"
echo "== starting synkro-relay (encrypted copies in $data/relay)"
RUST_LOG="${RUST_LOG:-warn}" "$CARGO_TARGET_DIR/debug/synkro-relay" --data-dir "$data/relay" --http "127.0.0.1:$port" \
  --listen /ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws,/ip4/127.0.0.1/udp/0/webrtc-direct \
  --web-root web-demo/dist >"$out" &
relay=$!
trap 'kill "$relay" 2>/dev/null; wait "$relay" 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  grep -q '^http ' "$out" && [ "$(grep -c '^listening ' "$out")" -ge 3 ] && break
  kill -0 "$relay" 2>/dev/null || { echo "the relay did not start (is port $port free? set SYNKRO_DEMO_PORT)" >&2; exit 1; }
  sleep 0.1
done
tcp=$(grep '^listening ' "$out" | grep '/tcp/' | grep -v '/ws' | head -n1 | cut -d' ' -f2)
cat <<MSG

  synkro boards is running:  http://127.0.0.1:$port/

  Open it, make a board, press Share, and open the invite link in another
  browser (or a private window). The relay also syncs CLI devices:
    target/debug/synkro --home /tmp/me init && target/debug/synkro --home /tmp/me join TOKEN
    target/debug/synkro --home /tmp/me sync --relay $tcp
  Metrics: http://127.0.0.1:$port/metrics   Stop: Ctrl-C

MSG
wait "$relay"
