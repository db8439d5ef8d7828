#!/usr/bin/env bash
# What recording costs (issue 6): /v1/decide decisions/s with the audit trail and traces off,
# with the audit trail on (group commit, the default), and with audit and OTLP traces on (every
# decision sampled, exported to a local receiver that answers 200) — same call, same run.
# In process, the trail's own appends/s: build/release/src/audit/audit_benchmark.
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
  command -v "$tool" >/dev/null || { echo "bench-record: $tool is not installed" >&2; exit 1; }
done
if [[ ! -x $AEGIS ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target aegis -j "$(nproc)" >/dev/null
fi
source scripts/bench-lib.sh

work=$(mktemp -d /tmp/aegis-bench-record.XXXXXX)
sink_pid=""
cleanup() {
  for pid in ${AEGIS_PID_off:-} ${AEGIS_PID_audit:-} ${AEGIS_PID_traced:-}; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

sink_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$sink_port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
sink_pid=$!

for name in off audit traced; do
  {
    echo "data_dir: $work/$name"
    echo "log_level: warn"
    echo "policy: {watch: false}"
    [[ $name == off ]] && echo "audit: {enabled: false}"
    [[ $name == traced ]] && echo "tracing: {enabled: true, endpoint: \"http://127.0.0.1:$sink_port/v1/traces\"}"
  } >"$work/$name.yaml"
  start_aegis "$work" "$name" "$work/$name.yaml" bench/http/bundle >"$work/$name.port"
done

declare -A url rps p50 p99
for name in off audit traced; do
  url[$name]=http://127.0.0.1:$(cat "$work/$name.port")/v1/decide
  check_allowed "${url[$name]}"
  run_wrk "${url[$name]}" 2 16 "$WARMUP" >/dev/null
done
for rep in $(seq "$REPS"); do
  for name in off audit traced; do
    line=$(run_wrk "${url[$name]}" 2 32 "$DURATION")
    rps[$name]+=" $(field rps "$line")"
    p50[$name]+=" $(field p50_us "$line")"
    p99[$name]+=" $(field p99_us "$line")"
  done
done
echo "== /v1/decide with recording off and on ($(nproc) cores; wrk -t2 -c32, ${DURATION} s x $REPS, medians)"
printf '\n%-8s %12s %10s %10s %10s\n' "record" "requests/s" "p50 ms" "p99 ms" "vs off"
base=$(median <<<"${rps[off]}")
for name in off audit traced; do
  r=$(median <<<"${rps[$name]}")
  printf '%-8s %12s %10s %10s %9sx\n' "$name" "$r" "$(ms "$(median <<<"${p50[$name]}")")" \
    "$(ms "$(median <<<"${p99[$name]}")")" "$(awk -v a="$r" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
"$AEGIS" audit verify "$work/audit/audit" >/dev/null 2>&1 || true
exit "$(bench_status)"
