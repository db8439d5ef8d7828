#!/usr/bin/env bash
# `make run`: runs the gateway on its embedded defaults — the quickstart policy, the HTTP API on
# 127.0.0.1:8181 — until Ctrl-C. Override with AEGIS_BUNDLE, AEGIS_HTTP_LISTEN, ... or
# AEGIS_CONFIG=aegis.yaml (docs/serve.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<'TEXT'
Try, from another terminal:
  curl -s -X POST localhost:8181/v1/decide -H 'content-type: application/json' \
    -d '{"agent":"finance-agent","tool":"stripe","action":"create_payment","params":{"amount":7000}}'
  curl -s localhost:8181/v1/policy
TEXT
exec build/release/src/cli/aegis serve "$@"
