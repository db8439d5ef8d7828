#!/bin/sh
# The LangGraph example as a test: runs agent.mjs against a real `aegis serve`.
# Usage: examples/langgraph/run-test.sh <path to aegis>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to aegis>" >&2
  exit 2
fi
aegis=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
if [ ! -d node_modules/@langchain/langgraph ] || [ ! -e node_modules/aegis ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
AEGIS_BIN="$aegis" exec node --test test.mjs
