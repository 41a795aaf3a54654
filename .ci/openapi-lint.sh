#!/usr/bin/env bash
# Lint the OpenAPI document the gateway serves with Redocly CLI (from npm, pinned; recommended rules,
# .ci/redocly.yaml). Any error or warning fails: the document must stay clean.
set -euo pipefail
cd "$(dirname "$0")/.."
REDOCLY_VERSION="${REDOCLY_VERSION:-2.77.0}"
if ! command -v npx >/dev/null 2>&1; then  # Node.js and npm from Debian (apt), the CLI itself from npm
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q nodejs npm >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nodejs npm >/dev/null
  }
fi
# Redocly CLI 2 needs Node.js 20.19+; Debian bookworm's own nodejs is 18, which the 1.34 line still supports
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  REDOCLY_VERSION="${REDOCLY_VERSION_NODE18:-1.34.6}"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/ppa-openapi.XXXXXX")"
trap 'rm -rf "$work"' EXIT
uv run --frozen python .ci/openapi_document.py >"$work/openapi.json"
# REDOCLY_TELEMETRY=off: no usage data sent from CI
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  npx --yes "@redocly/cli@$REDOCLY_VERSION" lint --config .ci/redocly.yaml --max-problems 50 "$work/openapi.json" \
  2>&1 | tee "$work/lint.out"
# redocly exits 0 on warnings: count them as failures too
if grep -q "warning" "$work/lint.out" && ! grep -q "Woohoo! Your API description is valid" "$work/lint.out"; then
  echo "openapi-lint: warnings above" >&2
  exit 1
fi
