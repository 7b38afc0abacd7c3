#!/usr/bin/env bash
# Builds the web demo (web-demo/, Vite) on the npm package synkro into
# web-demo/dist: the package first (scripts/build-wasm.sh), then the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
if [ ! -x web-demo/node_modules/.bin/vite ] || [ web-demo/package-lock.json -nt web-demo/node_modules/.package-lock.json ]; then
  (cd web-demo && npm ci --no-audit --no-fund)
fi
(cd web-demo && npm run --silent build -- --logLevel warn)
echo "web demo: web-demo/dist"
