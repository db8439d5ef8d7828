#!/bin/sh
# Interoperability of Aegis tokens with jose (npm), in both directions.
# Usage: tests/identity/run.sh <path to aegis_jwt_tool>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to aegis_jwt_tool>" >&2
  exit 2
fi
tool=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
if [ ! -d node_modules/jose ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
exec node interop.mjs "$tool"
