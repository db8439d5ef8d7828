#!/usr/bin/env bash
# The HTTP decide API's performance budget (DESIGN.md section 8), measured on this machine:
#   >= 50k decisions/s; p99 <= 2 ms at half that rate; >= 0.5x nginx serving a fixed response.
#
#   1. starts `aegis serve` on bench/http/bundle (port 0) and nginx with bench/http/nginx-fixed.conf
#      (a fixed decision-sized JSON answer, as many workers as cores), both on 127.0.0.1;
#   2. for each wrk setting (threads x connections), runs wrk with bench/http/decide.lua — a ~1 KB
#      call POSTed on keep-alive connections — against aegis's /v1/decide, then the same against
#      nginx, DURATION seconds each, and prints requests/s, p50, p99 and the ratio aegis/nginx;
#   3. runs aegis again at about half its best rate and prints p50/p99 there. wrk2 is not packaged,
#      so the rate is fixed with wrk's own delay() hook (WRK_DELAY_MS in decide.lua): each of
#      PACED_CONNECTIONS connections waits PACE_MS after every response. wrk measures from the
#      moment each request is sent, so a stall delays later requests instead of counting against
#      them (coordinated omission): the p99 printed is a lower bound, good for comparing runs.
#
# Knobs (environment): DURATION (10), SETTINGS ("1x8 2x32": threads x connections), WARMUP (2),
# PACE_MS (2), PACED_CONNECTIONS (default: calibrated), AEGIS (build/release/src/cli/aegis).
# Prints; never asserts. The exit code is non-zero only when something fails to run or a run saw
# errors.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
SETTINGS=${SETTINGS:-"1x8 2x32"}
WARMUP=${WARMUP:-2}
PACE_MS=${PACE_MS:-2}
AEGIS=${AEGIS:-build/release/src/cli/aegis}
CORES=$(nproc)

for tool in wrk nginx python3; do
  if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
    echo "bench-http: $tool is not installed (scripts/install-deps.sh)" >&2
    exit 1
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ ! -x $AEGIS ]]; then
  echo "== build $AEGIS"
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis -j "$CORES" >/dev/null
fi

work=$(mktemp -d /tmp/aegis-bench-http.XXXXXX)
chmod 755 "$work"
aegis_pid="" nginx_pid=""
cleanup() {
  [[ -n $aegis_pid ]] && kill -TERM "$aegis_pid" 2>/dev/null && wait "$aegis_pid" 2>/dev/null
  [[ -n $nginx_pid ]] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

source scripts/bench-lib.sh

# --- aegis ---------------------------------------------------------------------------------------
cat >"$work/aegis.yaml" <<EOF
data_dir: $work/data
log_level: warn
policy: {watch: false}
EOF
# Not in $(...): the server must stay this shell's child, for the cleanup trap.
start_aegis "$work" aegis "$work/aegis.yaml" bench/http/bundle >"$work/aegis.port"
aegis_pid=$AEGIS_PID_aegis
aegis_url=http://127.0.0.1:$(cat "$work/aegis.port")/v1/decide

# --- nginx ---------------------------------------------------------------------------------------
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/LISTEN_PORT/$nginx_port/" -e "s/WORKERS/$CORES/" bench/http/nginx-fixed.conf \
  >"$work/nginx.conf"
"$NGINX" -p "$work" -c nginx.conf -g 'daemon off;' >"$work/nginx.log" 2>&1 &
nginx_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && break
  sleep 0.1
done
nginx_url=http://127.0.0.1:$nginx_port/v1/decide

check_allowed "$aegis_url"
body_bytes=$(decide_body | wc -c)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
echo "== HTTP decide API vs nginx fixed response ($CORES cores, $cpu)"
echo "   ${DURATION} s per run, keep-alive, ${body_bytes}-byte call POSTed, wrk and servers on one machine"
echo
echo "== warm-up (${WARMUP} s each)"
run_wrk "$aegis_url" 2 16 "$WARMUP" >/dev/null
run_wrk "$nginx_url" 2 16 "$WARMUP" >/dev/null

printf '\n%-10s %-6s %12s %10s %10s %10s\n' "wrk" "server" "requests/s" "p50 ms" "p99 ms" "max ms"
best_aegis=0 best_aegis_setting="" best_ratio=0
for setting in $SETTINGS; do
  threads=${setting%x*} conns=${setting#*x}
  a=$(run_wrk "$aegis_url" "$threads" "$conns" "$DURATION")
  n=$(run_wrk "$nginx_url" "$threads" "$conns" "$DURATION")
  for pair in "aegis:$a" "nginx:$n"; do
    line=${pair#*:}
    printf '%-10s %-6s %12s %10s %10s %10s\n' "-t$threads -c$conns" "${pair%%:*}" \
      "$(field rps "$line")" "$(ms "$(field p50_us "$line")")" \
      "$(ms "$(field p99_us "$line")")" "$(ms "$(field max_us "$line")")"
  done
  ratio=$(awk -v a="$(field rps "$a")" -v n="$(field rps "$n")" 'BEGIN { printf "%.2f", a / n }')
  printf '%-10s %-6s %12s\n' "" "ratio" "${ratio}x"
  if awk -v a="$(field rps "$a")" -v b="$best_aegis" 'BEGIN { exit !(a > b) }'; then
    best_aegis=$(field rps "$a") best_aegis_setting="-t$threads -c$conns" best_ratio=$ratio
  fi
done

# --- half rate -----------------------------------------------------------------------------------
# Each paced connection sends at most 1000 / PACE_MS requests/s, less by the latency and the timer
# granularity: a short calibration run measures what one connection really sends, and the
# connection count is set from that.
target=$(awk -v b="$best_aegis" 'BEGIN { printf "%d", b / 2 }')
probe_conns=$(awk -v t="$target" -v d="$PACE_MS" 'BEGIN { c = int(t * d / 1000) + 1; print (c < 2 ? 2 : c) }')
probe=$(WRK_DELAY_MS=$PACE_MS run_wrk "$aegis_url" 2 "$probe_conns" 2)
paced_conns=${PACED_CONNECTIONS:-$(awk -v t="$target" -v c="$probe_conns" \
  -v r="$(field rps "$probe")" 'BEGIN { n = int(t * c / r + 0.5); print (n < 2 ? 2 : n) }')}
echo
echo "== half the best rate: target $target decisions/s; wrk -t2 -c$paced_conns, each connection" \
  "waits ${PACE_MS} ms after every response"
h=$(WRK_DELAY_MS=$PACE_MS run_wrk "$aegis_url" 2 "$paced_conns" "$DURATION")
printf '%-10s %-6s %12s %10s %10s %10s %10s\n' "paced" "server" "requests/s" "p50 ms" "p99 ms" \
  "p99.9 ms" "max ms"
printf '%-10s %-6s %12s %10s %10s %10s %10s\n' "-c$paced_conns" "aegis" "$(field rps "$h")" \
  "$(ms "$(field p50_us "$h")")" "$(ms "$(field p99_us "$h")")" \
  "$(ms "$(field p999_us "$h")")" "$(ms "$(field max_us "$h")")"

# --- summary -------------------------------------------------------------------------------------
verdict() { if awk "BEGIN { exit !($1) }"; then echo "meets"; else echo "MISSES"; fi; }
half_p99=$(ms "$(field p99_us "$h")")
half_rps=$(field rps "$h")
echo
echo "== summary (DESIGN.md section 8 targets; printed, not asserted)"
printf '%-36s %14s %14s  %s\n' "what" "measured" "target" ""
printf '%-36s %14s %14s  %s\n' "decisions/s (best: $best_aegis_setting)" "$best_aegis" ">= 50000" \
  "$(verdict "$best_aegis >= 50000")"
printf '%-36s %14s %14s  %s\n' "p99 ms at ~half rate ($half_rps/s)" "$half_p99" "<= 2" \
  "$(verdict "$half_p99 <= 2")"
printf '%-36s %14s %14s  %s\n' "aegis / nginx requests/s" "${best_ratio}x" ">= 0.5x" \
  "$(verdict "$best_ratio >= 0.5")"
exit "$(bench_status)"
