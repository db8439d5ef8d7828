#!/usr/bin/env bash
# What agent tokens cost (issue 5: token verification per call <= 50 us, and its share of a
# decision), measured two ways in one run:
#
#   1. in process: build/release/src/identity/identity_benchmark — Verify of an agent token
#      (first sight: the Ed25519 check; again: the verified-token cache) and Sign — next to
#      build/release/bench/engine_benchmark's decision on the same machine;
#   2. over HTTP: /v1/decide with no token and with `require_agent_token` and the token sent on
#      every call (x-aegis-token), wrk -t2 -c32, DURATION s x REPS, medians, and the ratio.
#
# Knobs (environment): DURATION (5), REPS (3), WARMUP (2), AEGIS (build/release/src/cli/aegis).
# Prints; never asserts.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
REPS=${REPS:-3}
WARMUP=${WARMUP:-2}
AEGIS=${AEGIS:-build/release/src/cli/aegis}
for tool in wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench-identity: $tool is not installed" >&2; exit 1; }
done
if [[ ! -x $AEGIS || ! -x build/release/src/identity/identity_benchmark ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis identity_benchmark -j "$(nproc)" >/dev/null
fi
source scripts/bench-lib.sh

echo "== in process (identity_benchmark, 5 repetitions, medians)"
build/release/src/identity/identity_benchmark --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true 2>/dev/null | grep -E '^(Benchmark|-|.*_median)'
echo

work=$(mktemp -d /tmp/aegis-bench-identity.XXXXXX)
cleanup() {
  for pid in ${AEGIS_PID_plain:-} ${AEGIS_PID_token:-}; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

secret=bench-issuer-secret-0123456789
hash=$(printf '%s' "$secret" | "$AEGIS" token hash)
cat >"$work/plain.yaml" <<EOF
data_dir: $work/plain
log_level: warn
policy: {watch: false}
EOF
cat >"$work/token.yaml" <<EOF
data_dir: $work/token
log_level: warn
policy: {watch: false}
identity:
  require_agent_token: true
  credentials: [{name: bench, token_sha256: $hash, roles: [issuer]}]
EOF
start_aegis "$work" plain "$work/plain.yaml" bench/http/bundle >"$work/plain.port"
start_aegis "$work" token "$work/token.yaml" bench/http/bundle >"$work/token.port"
plain_url=http://127.0.0.1:$(cat "$work/plain.port")/v1/decide
token_url=http://127.0.0.1:$(cat "$work/token.port")/v1/decide
token=$(curl -s -X POST "http://127.0.0.1:$(cat "$work/token.port")/v1/tokens" \
  -H "Authorization: Bearer $secret" -H 'Content-Type: application/json' \
  -d '{"agent":"finance-agent","ttl_seconds":3600}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
check_allowed "$plain_url"
status=$(decide_body | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -H "x-aegis-token: $token" --data-binary @- "$token_url")
[[ $status == 200 ]] || { echo "bench-identity: the call with a token was refused ($status)" >&2; exit 1; }
status=$(decide_body | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @- "$token_url")
[[ $status == 401 ]] || { echo "bench-identity: a call without a token was not refused ($status)" >&2; exit 1; }

run_wrk "$plain_url" 2 16 "$WARMUP" >/dev/null
WRK_TOKEN=$token run_wrk "$token_url" 2 16 "$WARMUP" >/dev/null
declare -A rps p50 p99
for rep in $(seq "$REPS"); do
  for name in plain token; do
    if [[ $name == token ]]; then
      line=$(WRK_TOKEN=$token run_wrk "$token_url" 2 32 "$DURATION")
    else
      line=$(run_wrk "$plain_url" 2 32 "$DURATION")
    fi
    rps[$name]+=" $(field rps "$line")"
    p50[$name]+=" $(field p50_us "$line")"
    p99[$name]+=" $(field p99_us "$line")"
  done
done
echo "== /v1/decide without and with an agent token ($(nproc) cores; wrk -t2 -c32, ${DURATION} s x $REPS, medians)"
printf '\n%-8s %12s %10s %10s %10s\n' "token" "requests/s" "p50 ms" "p99 ms" "vs none"
base=$(median <<<"${rps[plain]}")
for name in plain token; do
  r=$(median <<<"${rps[$name]}")
  printf '%-8s %12s %10s %10s %9sx\n' "$name" "$r" "$(ms "$(median <<<"${p50[$name]}")")" \
    "$(ms "$(median <<<"${p99[$name]}")")" "$(awk -v a="$r" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
exit "$(bench_status)"
