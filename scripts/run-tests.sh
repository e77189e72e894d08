#!/usr/bin/env bash
# run-tests.sh BUILD_DIR... — run every test binary of the given builds (and the scripted
# tests under tests/scripts/) with prove; prove's summary is the line CI reads.
# Tests run from the repository root and read reference data from ../shared (GTR_SHARED).
set -uo pipefail
cd "$(dirname "$0")/.."
export CMOCKA_MESSAGE_OUTPUT=TAP
export GTR_SHARED="${GTR_SHARED:-../shared}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
jobs=$(nproc 2>/dev/null || echo 2)
progs=()
for b in "$@"; do
    for t in "$b"/tests/test_*; do
        case "$t" in *.o|*.d) continue ;; esac
        [ -x "$t" ] && progs+=("$t")
    done
done
# Scripted tests (CLI behaviour, HTTP, Python) run once, against the release build.
for t in tests/scripts/*.sh tests/scripts/*.py; do
    [ -x "$t" ] && progs+=("$t")
done
[ ${#progs[@]} -gt 0 ] || { echo "no tests found"; echo "0 passed, 1 failed"; exit 1; }
# scripts/tap-skip.sh: cmocka skips as TAP skips, not failures
exec prove --timer -j "$jobs" --exec scripts/tap-skip.sh "${progs[@]}"
