#!/usr/bin/env bash
# `make bench`: the performance budget of DESIGN.md section 8, measured on this machine.
#
#   1. builds bench/engine_benchmark (release preset) if needed;
#   2. installs the peer engines (npm ci in bench/peers: cedar-wasm, cel-js);
#   3. generates the 50 / 1,000 / 10,000-rule policies and their calls, as an Aegis bundle and as
#      Cedar policies (bench/peers/gen.mjs, fixed seed);
#   4. runs Aegis (engine_benchmark), then Cedar and cel-js on the same inputs (bench/peers/run.mjs),
#      checking that they agree on every decision;
#   5. prints one table: measured values, targets and ratios (bench/peers/summary.mjs).
#
# Knobs (environment): REPS (5), SAMPLES (200000 timed calls per rep), CEDAR_RULES (50,1000),
# RULES (50,1000,10000), QUICK=1 (fewer reps and samples, no Google Benchmark pass),
# BUILD_DIR (build/release), OUT (build/bench-data), GBENCH_ARGS (extra --benchmark_* flags).
# Timing targets are reported, never asserted; the exit code is non-zero only when something
# fails to run or Aegis and a peer disagree on a decision.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build/release}
OUT=${OUT:-build/bench-data}
REPS=${REPS:-5}
SAMPLES=${SAMPLES:-200000}
RULES=${RULES:-50,1000,10000}
CEDAR_RULES=${CEDAR_RULES:-50,1000}
MIN_SECONDS=${MIN_SECONDS:-1}
GBENCH=()
if [[ ${QUICK:-0} == 1 ]]; then
  REPS=2 SAMPLES=50000 MIN_SECONDS=0.3
  GBENCH=(--no-gbench)
fi
bin=$BUILD_DIR/bench/engine_benchmark

echo "== build $bin"
if [[ ! -d $BUILD_DIR/bench ]]; then  # not configured, or configured before bench/ existed
  if [[ $BUILD_DIR == build/release ]]; then
    cmake --preset release >/dev/null
  else
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAEGIS_BENCH=ON >/dev/null
  fi
fi
cmake --build "$BUILD_DIR" --target engine_benchmark -j "$(nproc)" >/dev/null

echo "== peers: npm ci in bench/peers"
if [[ ! -d bench/peers/node_modules/@cedar-policy/cedar-wasm ||
      bench/peers/package-lock.json -nt bench/peers/node_modules/.package-lock.json ]]; then
  (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== generate policies ($RULES rules) into $OUT"
rm -rf "$OUT"
node bench/peers/gen.mjs --out "$OUT" --rules "$RULES"

echo
echo "== Aegis: $bin"
# shellcheck disable=SC2086
"$bin" --data "$OUT" --fintech examples/fintech --reps "$REPS" --samples "$SAMPLES" \
  --results "$OUT/aegis.json" "${GBENCH[@]}" --benchmark_min_time=0.3 ${GBENCH_ARGS:-}

echo
echo "== peers: Cedar and cel-js on the same inputs"
node bench/peers/run.mjs --data "$OUT" --cedar-rules "$CEDAR_RULES" --reps "$REPS" \
  --min-seconds "$MIN_SECONDS" --aegis-results "$OUT/aegis.json" --results "$OUT/peers.json"

echo
echo "== summary ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
  "medians of $REPS reps; DESIGN.md section 8 targets)"
node bench/peers/summary.mjs --aegis "$OUT/aegis.json" --peers "$OUT/peers.json"
