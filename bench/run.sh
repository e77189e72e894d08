#!/usr/bin/env bash
# bench/run.sh — `make bench`: run every bench/bench_*.sh in order (each prints its table and
# may update bench/RESULTS.md). BENCH_ONLY=name runs just bench/bench_<name>.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/bench_*.sh; do
    name=$(basename "$b" .sh); name=${name#bench_}
    [ -n "${BENCH_ONLY:-}" ] && [ "$BENCH_ONLY" != "$name" ] && continue
    echo "== bench: $name"
    bash "$b"
done
