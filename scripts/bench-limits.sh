#!/usr/bin/env bash
# What limits cost the HTTP decide API (issue 4): /v1/decide decisions/s and latency with no
# limits, with limits in memory, and with limits on a real Redis (one round trip per decision),
# in the same run, on the same call (bench/http/decide.lua).
#
#   1. starts redis-server (loopback port, no persistence) and three `aegis serve`: the HTTP
#      benchmark's bundle as is (none), and the same bundle with a rate limit and a budget on the
#      agent and on its tool — large enough never to refuse — in memory and on Redis;
#   2. runs wrk (-t2 -c32, DURATION s) against each in turn, REPS times, and prints the medians
#      and the ratios to "none".
#
#   3. first, the in-process cost of one memory-store Admit (build/release/src/limits/
#      limits_benchmark: three keys, with and without a reservation; target <= 200 ns).
#
# Knobs (environment): DURATION (5), REPS (3), WARMUP (2), AEGIS (build/release/src/cli/aegis).
# Prints; never asserts.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
REPS=${REPS:-3}
WARMUP=${WARMUP:-2}
AEGIS=${AEGIS:-build/release/src/cli/aegis}

for tool in wrk redis-server python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench-limits: $tool is not installed" >&2; exit 1; }
done
if [[ ! -x $AEGIS || ! -x build/release/src/limits/limits_benchmark ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis limits_benchmark -j "$(nproc)" >/dev/null
fi
echo "== one Admit in memory (limits_benchmark, 5 repetitions, median)"
build/release/src/limits/limits_benchmark --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true 2>/dev/null | grep -E '^(Benchmark|-|.*_median)'
echo
source scripts/bench-lib.sh

work=$(mktemp -d /tmp/aegis-bench-limits.XXXXXX)
redis_pid=""
cleanup() {
  for pid in ${AEGIS_PID_none:-} ${AEGIS_PID_memory:-} ${AEGIS_PID_redis:-}; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [[ -n $redis_pid ]] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

# The HTTP benchmark's bundle, with limits on the agent and on its tool.
mkdir -p "$work/limited"
python3 - "$work/limited/policy.yaml" <<'PY'
import sys
s = open("bench/http/bundle/policy.yaml").read()
limits = ("    max_requests_per_second: 1000000\n    burst: 1000000\n"
          "    max_daily_budget_usd: 100000000\n")
agent = "    allowed_domains: [api.stripe.com]\n"
tool = "    hosts: [api.stripe.com]\n"
assert s.count(agent) == 1 and s.count(tool) == 1
s = s.replace(agent, agent + limits).replace(tool, tool + limits)
open(sys.argv[1], "w").write(s)
PY
cat >"$work/aegis.yaml" <<EOF
data_dir: $work/data
log_level: warn
policy: {watch: false}
EOF
start_aegis "$work" none "$work/aegis.yaml" bench/http/bundle >"$work/none.port"
start_aegis "$work" memory "$work/aegis.yaml" "$work/limited" >"$work/memory.port"
start_aegis "$work" redis "$work/aegis.yaml" "$work/limited" \
  --redis "redis://127.0.0.1:$redis_port" >"$work/redis.port"

declare -A url rps p50 p99
for name in none memory redis; do
  url[$name]=http://127.0.0.1:$(cat "$work/$name.port")/v1/decide
  check_allowed "${url[$name]}"
  decide_body | curl -s -H 'Content-Type: application/json' --data-binary @- "${url[$name]}" |
    grep -q '"reserved":true' || [[ $name == none ]] ||
    { echo "bench-limits: $name did not reserve the call's cost" >&2; exit 1; }
  run_wrk "${url[$name]}" 2 16 "$WARMUP" >/dev/null
done

echo "== /v1/decide with and without limits ($(nproc) cores; wrk -t2 -c32, ${DURATION} s x $REPS," \
  "medians; wrk, aegis and redis on one machine)"
for rep in $(seq "$REPS"); do
  for name in none memory redis; do
    line=$(run_wrk "${url[$name]}" 2 32 "$DURATION")
    rps[$name]+=" $(field rps "$line")"
    p50[$name]+=" $(field p50_us "$line")"
    p99[$name]+=" $(field p99_us "$line")"
  done
done
printf '\n%-8s %12s %10s %10s %10s\n' "limits" "requests/s" "p50 ms" "p99 ms" "vs none"
base=$(median <<<"${rps[none]}")
for name in none memory redis; do
  r=$(median <<<"${rps[$name]}")
  printf '%-8s %12s %10s %10s %9sx\n' "$name" "$r" "$(ms "$(median <<<"${p50[$name]}")")" \
    "$(ms "$(median <<<"${p99[$name]}")")" "$(awk -v a="$r" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
redis_calls=$(redis-cli -p "$redis_port" info commandstats | grep -E '^cmdstat_(evalsha|eval):' |
  sed 's/^[^:]*:calls=\([0-9]*\).*/\1/' | awk '{ n += $1 } END { print n }')
echo
echo "redis: $redis_calls script calls in all (one per limited decision: EVALSHA, EVAL on a cold cache)"
exit "$(bench_status)"
