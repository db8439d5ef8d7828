#!/usr/bin/env bash
# Envoy ext_authz gRPC budget (DESIGN.md section 8), measured on this machine:
#   >= 20k Check/s; p99 <= 2 ms at half that rate.
# Starts `aegis serve` on bench/http/bundle (ports picked at run time), drives
# envoy.service.auth.v3.Authorization/Check with tests/grpc/extauthz_client (a C++ gRPC load
# client built from proto/): first flat out, then at 10,000/s (half the 20k target) and at half
# the rate measured (stricter, for information). As the reference in
# the same run, the same call through the HTTP decide API under wrk. Prints; never asserts.
# Knobs: DURATION (10), CONCURRENCY (64), BUILD_DIR (build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
BUILD_DIR=${BUILD_DIR:-build/release}
aegis=$BUILD_DIR/src/cli/aegis
client=$BUILD_DIR/tests/grpc/extauthz_client
[[ -x $aegis && -x $client ]] || { echo "bench-grpc: run 'make build' first" >&2; exit 1; }

out=$(mktemp)
$aegis serve --bundle bench/http/bundle --http 127.0.0.1:0 --grpc 127.0.0.1:0 --proxy 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q "aegis: ready" "$out" && break; sleep 0.1; done
grpc_port=$(sed -n 's/.*grpc listening on [0-9.]*:\([0-9]*\).*/\1/p' "$out")
http_port=$(sed -n 's/.*http listening on [0-9.]*:\([0-9]*\).*/\1/p' "$out")

body='{"amount":120,"currency":"usd","customer":"cus_Q2x8Jm4TzK1aB9","description":"Invoice INV-2024-000871"}'
call=(--addr "127.0.0.1:$grpc_port" --method POST --host api.stripe.com --path /v1/payment_intents
      --ext agent=finance-agent --header content-type:application/json --body "$body")
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

echo "== Check flat out: concurrency $CONCURRENCY, ${DURATION}s"
max=$($client load "${call[@]}" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 1)
echo "$max"
rps=$(echo "$max" | field 'round(d["rps"])')
half=$((rps / 2))
echo "== Check at 10000/s"
paced=$($client load "${call[@]}" --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 1 \
        --rate 10000)
echo "$paced"
echo "== Check at half the measured rate: $half/s"
paced_half=$($client load "${call[@]}" --concurrency "$CONCURRENCY" --duration "$DURATION" \
             --warmup 1 --rate "$half")
echo "$paced_half"

lua=$(mktemp --suffix=.lua)
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"agent":"finance-agent","tool":"stripe","action":"create_payment","params":$body}'
LUA
echo "== reference: the same call through the HTTP decide API (wrk -t2 -c32, ${DURATION}s)"
http_rps=$(wrk -t2 -c32 -d"${DURATION}s" -s "$lua" "http://127.0.0.1:$http_port/v1/decide" |
           sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
rm -f "$lua"

printf '\n%-40s %12s %12s\n' "what" "measured" "target"
printf '%-40s %12s %12s\n' "Check/s, flat out" "$rps" ">= 20000"
printf '%-40s %12s %12s\n' "Check p99 ms at 10000/s" \
  "$(echo "$paced" | field 'd["latency_us"]["p99"]/1000')" "<= 2"
printf '%-40s %12s %12s\n' "Check p99 ms at $half/s (half measured)" \
  "$(echo "$paced_half" | field 'd["latency_us"]["p99"]/1000')" "(info)"
printf '%-40s %12s %12s\n' "reference: HTTP /v1/decide req/s" "${http_rps%.*}" "(info)"
