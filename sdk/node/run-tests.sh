#!/bin/sh
# The Node SDK's tests (node:test), each file against a real `aegis serve` it starts itself.
# Usage: sdk/node/run-tests.sh <path to aegis>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to aegis>" >&2
  exit 2
fi
aegis=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
if [ ! -d node_modules/typescript ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
AEGIS_BIN="$aegis" exec node --test --test-concurrency=2 test/*.test.js
