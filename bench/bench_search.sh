#!/usr/bin/env bash
# bench_search.sh — exact dense search on random unit vectors (768 dimensions, as GTR): gtr's
# float32 scan and its exact f16 / int8 first passes, against FAISS IndexFlatIP (faiss-cpu) on
# the same vectors and queries, at batch 1 (latency) and batch 256 (throughput), with a check
# that FAISS's top-10 equal gtr's. Prints a Markdown table.
#   BENCH_SEARCH_SIZES="100000 1000000"  index sizes (default both; 1M needs ~7 GB of disk
#                                        while building and ~3 GB of RAM for FAISS's copy)
#   BENCH_THREADS=T                      threads for both (default all cores)
#   BENCH_SEARCH_FAISS=0                 skip FAISS
# FAISS comes from .venv-bench (scripts/venv.sh bench) when it has faiss, else from a small
# private venv build/venv-faiss (numpy + faiss-cpu), created on first use if pip can reach PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bench/search_bench >&2
sizes=${BENCH_SEARCH_SIZES:-100000 1000000}
threads=${BENCH_THREADS:-$(nproc)}
out=build/bench/search
mkdir -p "$out"

py=""
if [ "${BENCH_SEARCH_FAISS:-1}" != 0 ]; then
    for cand in .venv-bench/bin/python build/venv-faiss/bin/python; do
        if [ -x "$cand" ] && "$cand" -c "import faiss, numpy" 2>/dev/null; then py=$cand; break; fi
    done
    if [ -z "$py" ]; then
        echo "(no faiss found: trying a small venv in build/venv-faiss)" >&2
        if /usr/bin/python3 -m venv build/venv-faiss >&2 && build/venv-faiss/bin/pip install -q numpy faiss-cpu >&2; then
            py=build/venv-faiss/bin/python
        else
            echo "(could not install faiss-cpu: FAISS rows skipped)" >&2
        fi
    fi
fi

echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| docs | dim | threads | method | batch | queries/s | ms per query (median) | p99 ms |"
echo "|---|---|---|---|---|---|---|---|"
checks=()
tlist=1
[ "$threads" != 1 ] && tlist="1 $threads"
for n in $sizes; do
    dir=$out/$n
    # float32 scan and FAISS, at 1 thread and at all threads (FAISS's OpenMP + OpenBLAS threads
    # can fight each other; both counts are shown so neither side is judged by a bad setting)
    for t in $tlist; do
        build/release/bench/search_bench --docs "$n" --dim 768 --threads "$t" --dir "$dir" >"$dir.t$t.log"
        grep '^RESULT' "$dir.t$t.log" | sed 's/^RESULT //'
        if [ -n "$py" ]; then
            "$py" bench/search_faiss.py "$dir" "$t" 10 256 >"$dir.t$t.faiss" || true
            grep '^RESULT' "$dir.t$t.faiss" | sed 's/^RESULT //'
            while read -r line; do checks+=("$n docs, $t threads, FAISS ${line#CHECK }"); done < <(grep '^CHECK' "$dir.t$t.faiss")
        fi
    done
    rm -f "$dir"/*.gtri
    # the exact compact first passes (all threads)
    for compact in f16 int8; do
        cdir=$out/$n-$compact
        build/release/bench/search_bench --docs "$n" --dim 768 --threads "$threads" --dir "$cdir" \
            --compact "$compact" >"$cdir.log"
        grep '^RESULT' "$cdir.log" | grep -v 'exact f32' | sed 's/^RESULT //'
        if cmp -s "$cdir/hits_b1.txt" "$cdir/hits_b1_compact.txt" && cmp -s "$cdir/hits_b256.txt" "$cdir/hits_b256_compact.txt"; then
            checks+=("$n docs, $compact first pass: top-10 ids and scores identical to the float32 scan")
        else
            checks+=("$n docs, $compact first pass: DIFFERENT from the float32 scan")
        fi
        rm -f "$cdir"/*.gtri
    done
done
echo
for c in "${checks[@]}"; do echo "- $c"; done
