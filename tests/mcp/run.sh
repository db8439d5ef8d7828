#!/bin/sh
# The MCP gateways of Aegis against the official MCP TypeScript SDK client and reference servers:
#   gateway  gateway_test.mjs: `aegis serve`'s proxy routes with `mcp: true`, over the streamable
#            HTTP transport, in front of server-everything;
#   stdio    stdio_test.mjs: `aegis mcp wrap` in front of server-filesystem, over stdio.
# Usage: tests/mcp/run.sh <path to aegis> [gateway|stdio]   (both when not named)
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <path to aegis> [gateway|stdio]" >&2
  exit 2
fi
case "${2:-all}" in
  gateway) tests=gateway_test.mjs ;;
  stdio) tests=stdio_test.mjs ;;
  all) tests="gateway_test.mjs stdio_test.mjs" ;;
  *) echo "$0: no test set called $2 (gateway, stdio)" >&2; exit 2 ;;
esac
aegis=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
for package in sdk server-everything server-filesystem; do
  if [ ! -d "node_modules/@modelcontextprotocol/$package" ]; then
    npm ci --no-audit --no-fund --silent >/dev/null
    break
  fi
done
status=0
for t in $tests; do
  node "$t" "$aegis" || status=1
done
exit $status
