# Shared by the HTTP benchmarks (bench-http.sh, bench-limits.sh): start `aegis serve`, run wrk
# with bench/http/decide.lua, read its result line. Source it; it defines functions only.

# start_aegis WORKDIR NAME CONFIG_FILE BUNDLE [EXTRA ARGS...]: starts aegis in the background,
# waits for "ready"; sets AEGIS_PID_<NAME> and prints the http port.
start_aegis() {
  local work=$1 name=$2 config=$3 bundle=$4
  shift 4
  "$AEGIS" serve --config "$config" --bundle "$bundle" --http 127.0.0.1:0 --grpc 127.0.0.1:0 --proxy 127.0.0.1:0 \
    "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  printf -v "AEGIS_PID_$name" '%s' "$pid"
  for _ in $(seq 100); do
    grep -q "aegis: ready" "$work/$name.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; return 1; }
    sleep 0.1
  done
  grep -q "aegis: ready" "$work/$name.log" || { echo "aegis ($name) did not start" >&2; return 1; }
  sed -n 's/^aegis: http listening on .*:\([0-9]*\)$/\1/p' "$work/$name.log"
}

# The benchmark's call body, as decide.lua sends it.
decide_body() {
  python3 - <<'PY'
import re
s = open("bench/http/decide.lua").read()
s = s[s.index("wrk.body"):s.index("local delay_ms")]
print("".join(re.findall(r"\[\[(.*?)\]\]", s, re.S)), end="")
PY
}

# check_allowed URL: the benchmark is meaningless unless the call is allowed.
check_allowed() {
  local status
  status=$(decide_body | curl -s -o /tmp/aegis-bench-first.json -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary @- "$1") || true
  if [[ $status != 200 ]]; then
    echo "bench: the benchmark call was not allowed by $1 ($status): $(cat /tmp/aegis-bench-first.json)" >&2
    return 1
  fi
}

# run_wrk URL THREADS CONNECTIONS SECONDS: prints wrk's result line. A run with errors or
# non-2xx answers is remembered in a marker file (callers capture run_wrk's output in $(...), a
# subshell, where a variable would be lost); bench_status turns it into the exit status.
bench_marker=$(mktemp /tmp/aegis-bench-failed.XXXXXX)
rm -f "$bench_marker"
run_wrk() {
  local out line
  out=$(wrk -t "$2" -c "$3" -d "${4}s" --timeout 5s -s bench/http/decide.lua "$1")
  line=$(grep '^wrk-result' <<<"$out") || { echo "$out" >&2; return 1; }
  if ! grep -q 'errors=0 non2xx=0' <<<"$line"; then
    echo "bench: errors in run against $1: $line" >&2
    touch "$bench_marker"
  fi
  echo "$line"
}
# bench_status: 1 if any run_wrk saw errors, else 0 (use as `exit $(bench_status)`).
bench_status() {
  if [[ -e $bench_marker ]]; then
    rm -f "$bench_marker"
    echo 1
  else
    echo 0
  fi
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
