#!/usr/bin/env bash
# Two devices on the command line: a synkro-relay on loopback, and two CLI
# homes that are never online together syncing an end-to-end encrypted
# document through it. The relay stores and forwards what it cannot read.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== building synkro and synkro-relay"
cargo build --quiet --locked -p synkro-cli -p synkro-relay
bin="$CARGO_TARGET_DIR/debug"
tmp=$(mktemp -d)
relay_pid=
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== starting synkro-relay (data in $tmp/relay)"
RUST_LOG=warn "$bin/synkro-relay" --data-dir "$tmp/relay" --http 127.0.0.1:0 \
  --listen /ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0/ws,/ip4/127.0.0.1/udp/0/webrtc-direct \
  >"$tmp/relay.out" &
relay_pid=$!
for _ in $(seq 100); do
  grep -q '^http ' "$tmp/relay.out" && [ "$(grep -c '^listening ' "$tmp/relay.out")" -ge 4 ] && break
  kill -0 "$relay_pid" 2>/dev/null || { echo "the relay did not start" >&2; exit 1; }
  sleep 0.1
done
sed 's/^/  relay: /' "$tmp/relay.out"
relay=$(grep '^listening ' "$tmp/relay.out" | grep '/tcp/' | grep -v '/ws' | head -n1 | cut -d' ' -f2)
http=$(grep '^http ' "$tmp/relay.out" | cut -d' ' -f2)

a="$bin/synkro --home $tmp/alice"
b="$bin/synkro --home $tmp/bob"
secret="the door code is 4711"

echo
echo "== alice: a new document, shared with bob, pushed to the relay; then she goes offline"
echo "alice is $($a init | tail -n1)"
doc=$($a new --name trip | tail -n1)
$a set "$doc" title '"Lisbon in May"'
$a set "$doc" notes "\"$secret\""
token=$($a share "$doc" --role write | tail -n1)
$a sync --relay "$relay" --once

echo
echo "== bob: joins with the invitation, pulls from the relay, edits, pushes"
echo "bob is $($b init | tail -n1)"
$b join "$token" >/dev/null
$b sync --relay "$relay" --once
$b set "$doc" days '["Belém", "Alfama", "Sintra"]'
$b sync --relay "$relay" --once
echo "bob's copy:"; $b get "$doc"

echo
echo "== alice comes back and receives bob's edit"
$a sync --relay "$relay" --once
echo "alice's copy:"; $a get "$doc"

echo
echo "== what the relay holds"
curl -fsS "http://$http/health" 2>/dev/null && echo || echo "(curl not installed: see http://$http/health)"
if grep -rqF "$secret" "$tmp/relay"; then
  echo "PLAINTEXT FOUND in the relay's data directory" >&2
  exit 1
fi
echo "$(du -sh "$tmp/relay/docs" | cut -f1) of sealed chunks; \"$secret\" appears nowhere in them"
