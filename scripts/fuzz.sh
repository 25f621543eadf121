#!/usr/bin/env bash
# Runs every cargo-fuzz target with the nightly toolchain, for RUNS executions each
# (default 10,000,000) or, with FUZZ_SECONDS set, for that long each, and prints
# libFuzzer's closing stats. Not part of `npm test`.
#   bash scripts/fuzz.sh [RUNS]          FUZZ_SECONDS=120 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
RUNS="${1:-10000000}"
LIMIT=(-runs="$RUNS")
if [ -n "${FUZZ_SECONDS:-}" ]; then LIMIT=(-max_total_time="$FUZZ_SECONDS"); fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in chunker convert source_ops; do
  echo "== $t (${LIMIT[*]})"
  cargo +nightly fuzz run "$t" -- "${LIMIT[@]}" -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|DONE|ERROR|panicked" || true
done
