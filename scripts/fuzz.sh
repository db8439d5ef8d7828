#!/usr/bin/env bash
# Runs each libFuzzer target for N seconds, starting from (and adding to a scratch copy of) its
# seed corpus in tests/fuzz/corpus/. Crashes are written to build/fuzz/crashes/.
# Usage: scripts/fuzz.sh SECONDS TARGET...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1
shift
mkdir -p build/fuzz/crashes
for target in "$@"; do
  bin=$(find build/fuzz/src -name "$target" -type f -perm -u+x | head -n 1)
  corpus=tests/fuzz/corpus/${target%_fuzz}
  work=build/fuzz/corpus/$target
  mkdir -p "$work"
  echo "== $target for ${seconds}s"
  "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/crashes/"$target"- "$work" "$corpus" 2>&1 | tail -n 3
done
