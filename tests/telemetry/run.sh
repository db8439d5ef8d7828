#!/bin/sh
# Aegis's OTLP trace export decoded with OpenTelemetry's own generated protobuf code (npm), and
# its OTLP/JSON encoding checked against the OTLP/JSON rules.
# Usage: tests/telemetry/run.sh <path to otlp_export_tool>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <path to otlp_export_tool>" >&2
  exit 2
fi
tool=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
if [ ! -d node_modules/@opentelemetry/otlp-proto-exporter-base ]; then
  npm ci --no-audit --no-fund --silent >/dev/null
fi
exec node decode.mjs "$tool"
