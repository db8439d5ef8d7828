#!/usr/bin/env bash
# What the MCP gateways add to a tools/call, measured on this machine: server-everything's `echo`
# over streamable HTTP directly and through `aegis serve`'s MCP proxy route, and over stdio
# directly and through `aegis mcp wrap` (bench/mcp/tools_call.mjs; bench/mcp/README.md). One call
# at a time, keep-alive; prints p50/p99 per path, medians of RUNS runs, and what each aegis path
# adds to its direct one. Prints; never asserts. The exit code is non-zero when something fails
# to start or any call fails.
# Knobs (environment): RUNS (3), CALLS (2000 per path per run), WARMUP (1000 per path),
# AEGIS (build/release/src/cli/aegis).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
CALLS=${CALLS:-2000}
WARMUP=${WARMUP:-1000}
AEGIS=${AEGIS:-build/release/src/cli/aegis}

command -v node >/dev/null || { echo "bench-mcp: node is not installed (scripts/install-deps.sh)" >&2; exit 1; }
if [[ ! -x $AEGIS ]]; then
  echo "== build $AEGIS"
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis -j "$(nproc)" >/dev/null
fi
# server-everything comes from the MCP interop tests' pinned packages.
if [[ ! -d tests/mcp/node_modules/@modelcontextprotocol/server-everything ||
      tests/mcp/package-lock.json -nt tests/mcp/node_modules/.package-lock.json ]]; then
  (cd tests/mcp && npm ci --no-audit --no-fund --silent >/dev/null)
fi

# The run uses one copy of the binary: a rebuild meanwhile must not change or break it.
work=$(mktemp -d /tmp/aegis-bench-mcp.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$AEGIS" "$work/aegis"
node bench/mcp/tools_call.mjs --aegis "$work/aegis" --runs "$RUNS" --calls "$CALLS" \
  --warmup "$WARMUP" --modules tests/mcp/node_modules
