#!/bin/sh
# The MCP gateway of `aegis serve` (proxy routes with `mcp: true`) between the official MCP
# TypeScript SDK client and the reference server-everything, over the streamable HTTP transport.
# Usage: tests/mcp/run.sh <path to aegis>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to aegis>" >&2
  exit 2
fi
aegis=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
if [ ! -d node_modules/@modelcontextprotocol/server-everything ] ||
   [ ! -d node_modules/@modelcontextprotocol/sdk ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
exec node gateway_test.mjs "$aegis"
