#!/usr/bin/env bash
# `make run`: shows Aegis deciding on the quickstart policy with its embedded defaults.
# The long-running server (`aegis serve`) arrives with the decision-service issue; until then
# this checks the bundle, runs its policy tests, and decides two sample calls.
set -euo pipefail
cd "$(dirname "$0")/.."
aegis=build/release/src/cli/aegis
bundle=${AEGIS_BUNDLE:-examples/quickstart}

echo "== aegis check $bundle"
$aegis check "$bundle"
echo
echo "== aegis test $bundle"
$aegis test "$bundle" --verbose
for amount in 120 7000; do
  call="{\"agent\":\"finance-agent\",\"tool\":\"stripe\",\"action\":\"create_payment\",\"params\":{\"amount\":$amount}}"
  echo
  echo "== aegis eval $bundle <<< $call"
  echo "$call" | $aegis eval "$bundle" --input -
done
