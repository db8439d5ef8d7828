#!/usr/bin/env bash
# The sidecar proxy's performance budget (DESIGN.md section 8), measured on this machine:
#   added latency vs direct p50 <= 150 us, p99 <= 1 ms; throughput >= 0.8x nginx proxying the
#   same upstream.
#
#   1. starts one upstream — nginx answering every request with a fixed ~300-byte JSON
#      (bench/proxy/nginx-upstream.conf, one worker, keep-alive) — and, in front of it, three
#      proxies: `aegis serve` with route /stripe (bench/proxy/aegis.yaml: a credential header from
#      an environment variable) on bench/proxy/bundle, once as configured by default (audit trail
#      on) and once with `audit: {enabled: false}`, and nginx (bench/proxy/nginx-proxy.conf:
#      proxy_pass to the upstream over pooled keep-alive connections, the same header set, one
#      worker per core like aegis's I/O threads);
#   2. checks that every path answers the benchmark's call with 200 and the upstream's body, that
#      aegis allowed it (x-aegis-decision: allow), and that both proxies delivered the credential
#      to the upstream;
#   3. throughput: wrk -t2 -c32 for DURATION s (bench/proxy/call.lua: a small JSON payment POSTed
#      on keep-alive connections, the agent in x-aegis-agent) against the upstream directly, each
#      aegis and the nginx proxy in turn, REPS times; prints the medians, the proxy process's CPU
#      time per request and the ratio to the nginx proxy;
#   4. latency at a fixed, modest rate: wrk -t1 -c$PACED_CONNECTIONS, each connection waiting
#      PACE_MS after every response (wrk's delay() hook: ~2,000 requests/s in all), RATE_DURATION
#      s per path, REPS times; prints the median p50/p99 of each path and what each proxy adds to
#      the direct path's.
#
# Knobs (environment): DURATION (5), REPS (3), WARMUP (2), RATE_DURATION (5), PACE_MS (2),
# PACED_CONNECTIONS (5), AEGIS (build/release/src/cli/aegis).
# The targets are printed, not asserted. The exit code is non-zero when something fails to run,
# a check fails, or any run saw socket errors or non-2xx answers.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
REPS=${REPS:-3}
WARMUP=${WARMUP:-2}
RATE_DURATION=${RATE_DURATION:-5}
PACE_MS=${PACE_MS:-2}
PACED_CONNECTIONS=${PACED_CONNECTIONS:-5}
AEGIS=${AEGIS:-build/release/src/cli/aegis}
CORES=$(nproc)

for tool in wrk nginx python3 curl; do
  if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
    echo "bench-proxy: $tool is not installed (scripts/install-deps.sh)" >&2
    exit 1
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ ! -x $AEGIS ]]; then
  echo "== build $AEGIS"
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis -j "$CORES" >/dev/null
fi

work=$(mktemp -d /tmp/aegis-bench-proxy.XXXXXX)
chmod 755 "$work"  # nginx's workers run as nobody
upstream_pid="" nginx_pid=""
cleanup() {
  for pid in ${AEGIS_PID_audit:-} ${AEGIS_PID_noaudit:-}; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  for pid in $nginx_pid $upstream_pid; do
    kill -QUIT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

source scripts/bench-lib.sh  # start_aegis, field, median

# Both aegis run one copy of the binary: a rebuild during the run must not change or break them.
cp "$AEGIS" "$work/aegis"
AEGIS=$work/aegis

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx NAME CONF PORT [SED EXPRESSIONS...]: runs nginx on a copy of CONF in $work/NAME
# with LISTEN_PORT set to PORT; sets NGINX_PID and waits for the port.
start_nginx() {
  local name=$1 conf=$2 port=$3
  shift 3
  mkdir -p "$work/$name"
  sed -e "s/LISTEN_PORT/$port/" "$@" "$conf" >"$work/$name/nginx.conf"
  "$NGINX" -p "$work/$name" -c nginx.conf -g 'daemon off;' >"$work/$name/nginx.log" 2>&1 &
  NGINX_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-proxy: nginx ($name) did not start:" >&2
  cat "$work/$name/nginx.log" >&2
  return 1
}

# --- the upstream and the proxies ----------------------------------------------------------------
upstream_port=$(free_port)
# Not in $(...): the servers must stay this shell's children, for the cleanup trap.
start_nginx upstream bench/proxy/nginx-upstream.conf "$upstream_port"
upstream_pid=$NGINX_PID

export BENCH_STRIPE_KEY=sk_test_bench_4eC39HqLyjWDarjtT1zdp7dc
nginx_port=$(free_port)
start_nginx nginx-proxy bench/proxy/nginx-proxy.conf "$nginx_port" \
  -e "s/UPSTREAM_PORT/$upstream_port/" -e "s/WORKERS/$CORES/" -e "s/SECRET/$BENCH_STRIPE_KEY/"
nginx_pid=$NGINX_PID

for name in audit noaudit; do
  sed -e "s|WORK|$work/$name|" -e "s/UPSTREAM_PORT/$upstream_port/" bench/proxy/aegis.yaml \
    >"$work/$name.yaml"
done
echo "audit: {enabled: false}" >>"$work/noaudit.yaml"
start_aegis "$work" audit "$work/audit.yaml" bench/proxy/bundle >"$work/audit.http-port"
start_aegis "$work" noaudit "$work/noaudit.yaml" bench/proxy/bundle >"$work/noaudit.http-port"
proxy_port() { sed -n 's/^aegis: proxy listening on .*:\([0-9]*\)$/\1/p' "$work/$1.log"; }

paths=(direct audit noaudit nginx)
declare -A base label pids
base[direct]=http://127.0.0.1:$upstream_port
base[audit]=http://127.0.0.1:$(proxy_port audit)/stripe
base[noaudit]=http://127.0.0.1:$(proxy_port noaudit)/stripe
base[nginx]=http://127.0.0.1:$nginx_port/stripe
label[direct]="direct" label[audit]="aegis proxy" label[noaudit]="aegis, audit off"
label[nginx]="nginx proxy"
# The processes whose CPU time is the proxy's (none for direct: that is the upstream alone).
pids[direct]="" pids[audit]=$AEGIS_PID_audit pids[noaudit]=$AEGIS_PID_noaudit
for p in audit noaudit; do
  [[ ${base[$p]} == http://127.0.0.1:/stripe ]] &&
    { echo "bench-proxy: aegis ($p) printed no proxy port:" >&2; cat "$work/$p.log" >&2; exit 1; }
done

# --- checks --------------------------------------------------------------------------------------
BODY='{"amount":100,"currency":"usd"}'
expected=$(curl -s -X POST -H 'Content-Type: application/json' --data "$BODY" \
  "${base[direct]}/v1/payment_intents")
for p in "${paths[@]}"; do
  status=$(curl -s -o "$work/check.body" -D "$work/check.headers" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'x-aegis-agent: bench-agent' --data "$BODY" \
    "${base[$p]}/v1/payment_intents") || true
  if [[ $status != 200 || $(cat "$work/check.body") != "$expected" ]]; then
    echo "bench-proxy: ${label[$p]} answered $status, not 200 with the upstream's body:" >&2
    cat "$work/check.headers" "$work/check.body" >&2
    exit 1
  fi
  if [[ $p == audit || $p == noaudit ]] &&
    ! grep -qi '^x-aegis-decision: allow' "$work/check.headers"; then
    echo "bench-proxy: ${label[$p]} did not answer x-aegis-decision: allow:" >&2
    cat "$work/check.headers" >&2
    exit 1
  fi
  if [[ $p != direct ]]; then
    got=$(curl -s -H 'x-aegis-agent: bench-agent' "${base[$p]}/v1/credential")
    if [[ $got != "Bearer $BENCH_STRIPE_KEY" ]]; then
      echo "bench-proxy: the upstream got Authorization \"$got\" through ${label[$p]}" >&2
      exit 1
    fi
  fi
done

# nginx's workers exist by now: they answered.
pids[nginx]="$nginx_pid $(ps --ppid "$nginx_pid" -o pid= | xargs)"

# --- measuring -----------------------------------------------------------------------------------
# measure URL THREADS CONNECTIONS SECONDS [DELAY_MS]: sets `result` to wrk's result line (no
# subshell, so that `failures` survives); a run with errors or non-2xx answers is a failure.
failures=()
measure() {
  local out
  out=$(WRK_DELAY_MS=${5:-} wrk -t "$2" -c "$3" -d "${4}s" --timeout 5s -s bench/proxy/call.lua \
    "$1/v1/payment_intents") || { echo "bench-proxy: wrk failed against $1" >&2; exit 1; }
  result=$(grep '^wrk-result' <<<"$out") || { echo "$out" >&2; exit 1; }
  if ! grep -q ' errors=0 non2xx=0$' <<<"$result"; then
    echo "bench-proxy: errors in a run against $1: $result" >&2
    failures+=("$1: $result")
  fi
}
# CPU time (user + system, clock ticks) of the given processes, all their threads.
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$total"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
echo "== sidecar proxy vs direct vs nginx proxying the same upstream ($CORES cores, $cpu)"
echo "   POST ${#BODY}-byte JSON, keep-alive; upstream: nginx, 1 worker, fixed ${#expected}-byte JSON; aegis: 2 proxy threads, nginx proxy: $CORES workers;" \
  "wrk, proxies and upstream on one machine"
echo
echo "== warm-up (${WARMUP} s each)"
for p in "${paths[@]}"; do measure "${base[$p]}" 2 32 "$WARMUP"; done

declare -A rps p50 p99 cpu_us
for _ in $(seq "$REPS"); do
  for p in "${paths[@]}"; do
    # shellcheck disable=SC2086
    before=$(cpu_ticks ${pids[$p]})
    measure "${base[$p]}" 2 32 "$DURATION"
    # shellcheck disable=SC2086
    after=$(cpu_ticks ${pids[$p]})
    rps[$p]+=" $(field rps "$result")"
    p50[$p]+=" $(field p50_us "$result")"
    p99[$p]+=" $(field p99_us "$result")"
    cpu_us[$p]+=" $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
      -v n="$(field requests "$result")" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
  done
done

echo
echo "== throughput: wrk -t2 -c32, ${DURATION} s x $REPS, medians"
printf '%-18s %12s %10s %10s %14s %12s\n' "path" "requests/s" "p50 us" "p99 us" \
  "proxy CPU us" "vs nginx"
printf '%-18s %12s %10s %10s %14s %12s\n' "" "" "" "" "per request" "proxy"
nginx_rps=$(median <<<"${rps[nginx]}")
for p in "${paths[@]}"; do
  r=$(median <<<"${rps[$p]}")
  c="-"
  [[ $p != direct ]] && c=$(median <<<"${cpu_us[$p]}")
  printf '%-18s %12s %10s %10s %14s %11sx\n' "${label[$p]}" "$r" "$(median <<<"${p50[$p]}")" \
    "$(median <<<"${p99[$p]}")" "$c" "$(ratio "$r" "$nginx_rps")"
done
echo "   requests/s of each run:"
for p in "${paths[@]}"; do printf '     %-18s%s\n' "${label[$p]}" "${rps[$p]}"; done

# --- latency at a fixed rate ---------------------------------------------------------------------
declare -A lrps lp50 lp99
for _ in $(seq "$REPS"); do
  for p in "${paths[@]}"; do
    measure "${base[$p]}" 1 "$PACED_CONNECTIONS" "$RATE_DURATION" "$PACE_MS"
    lrps[$p]+=" $(field rps "$result")"
    lp50[$p]+=" $(field p50_us "$result")"
    lp99[$p]+=" $(field p99_us "$result")"
  done
done
echo
echo "== latency at a fixed rate: wrk -t1 -c$PACED_CONNECTIONS, each connection waiting" \
  "${PACE_MS} ms after every response; ${RATE_DURATION} s x $REPS, medians"
printf '%-18s %12s %10s %10s %14s %12s\n' "path" "requests/s" "p50 us" "p99 us" "added p50 us" \
  "added p99 us"
d50=$(median <<<"${lp50[direct]}") d99=$(median <<<"${lp99[direct]}")
declare -A add50 add99
for p in "${paths[@]}"; do
  m50=$(median <<<"${lp50[$p]}") m99=$(median <<<"${lp99[$p]}")
  add50[$p]=$((m50 - d50)) add99[$p]=$((m99 - d99))
  if [[ $p == direct ]]; then
    printf '%-18s %12s %10s %10s %14s %12s\n' "${label[$p]}" "$(median <<<"${lrps[$p]}")" "$m50" \
      "$m99" "-" "-"
  else
    printf '%-18s %12s %10s %10s %14s %12s\n' "${label[$p]}" "$(median <<<"${lrps[$p]}")" "$m50" \
      "$m99" "${add50[$p]}" "${add99[$p]}"
  fi
done
echo "   p50 / p99 us of each run:"
for p in "${paths[@]}"; do
  printf '     %-18s' "${label[$p]}"
  read -ra a <<<"${lp50[$p]}"
  read -ra b <<<"${lp99[$p]}"
  for i in "${!a[@]}"; do printf ' %s/%s' "${a[$i]}" "${b[$i]}"; done
  echo
done

# --- summary -------------------------------------------------------------------------------------
metrics=$(curl -s "http://127.0.0.1:$(cat "$work/audit.http-port")/metrics")
conn() { sed -n "s/^aegis_proxy_upstream_connections_total{kind=\"$1\"} //p" <<<"$metrics"; }
echo
echo "aegis proxy (audit on): upstream connections $(conn new) new, $(conn reused) reused"

verdict() { if awk "BEGIN { exit !($1) }"; then echo "meets"; else echo "MISSES"; fi; }
aegis_ratio=$(ratio "$(median <<<"${rps[audit]}")" "$nginx_rps")
noaudit_ratio=$(ratio "$(median <<<"${rps[noaudit]}")" "$nginx_rps")
echo
echo "== summary (DESIGN.md section 8 targets; printed, not asserted)"
printf '%-42s %12s %12s  %s\n' "what" "measured" "target" ""
printf '%-42s %12s %12s  %s\n' "aegis proxy / nginx proxy requests/s" "${aegis_ratio}x" \
  ">= 0.8x" "$(verdict "$aegis_ratio >= 0.8")"
printf '%-42s %12s %12s  %s\n' "  audit off" "${noaudit_ratio}x" ">= 0.8x" \
  "$(verdict "$noaudit_ratio >= 0.8")"
printf '%-42s %12s %12s  %s\n' "aegis proxy, added p50 us" "${add50[audit]}" "<= 150" \
  "$(verdict "${add50[audit]} <= 150")"
printf '%-42s %12s %12s  %s\n' "aegis proxy, added p99 us" "${add99[audit]}" "<= 1000" \
  "$(verdict "${add99[audit]} <= 1000")"
printf '%-42s %12s %12s\n' "nginx proxy, added p50 / p99 us (reference)" \
  "${add50[nginx]} / ${add99[nginx]}" ""

if ((${#failures[@]})); then
  echo
  echo "bench-proxy: FAILED: ${#failures[@]} run(s) saw errors or non-2xx answers:" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
