#!/bin/sh
# Differential test of the condition language against cel-js.
# Usage: tests/differential/run.sh <path to expr_difftool>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to expr_difftool>" >&2
  exit 2
fi
driver=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent >/dev/null
exec node run.mjs "$driver"
