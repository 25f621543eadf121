#!/usr/bin/env bash
# Runs every cargo-fuzz target for RUNS executions each (default 10,000,000) with the
# nightly toolchain, and prints libFuzzer's closing stats. Not part of `npm test`.
#   bash scripts/fuzz.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS="${1:-10000000}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in chunker convert source_ops; do
  echo "== $t ($RUNS runs)"
  cargo +nightly fuzz run "$t" -- -runs="$RUNS" -max_len=4096 -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|#[0-9]+ +DONE|==[0-9]+== ERROR)" || true
done
