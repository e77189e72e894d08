#!/usr/bin/env bash
# bench_ann.sh — approximate search (issue 14): gtr's IVF-int8 index against FAISS
# (IndexIVFFlat, IndexHNSWFlat, IndexIVFPQ + refine) and hnswlib from PyPI, measured in the
# same run on the same vectors, queries and ground truth (exact top-10, computed by ann_bench).
# Data sets: clustered (1000 centres on the sphere plus noise, like embeddings) and uniform
# unit vectors (the hard case); see bench/ann_bench.c for how they are made.
#   BENCH_ANN_N=1000000 BENCH_ANN_DIM=768 BENCH_ANN_NQ=1000 BENCH_THREADS=2
#   BENCH_ANN_LISTS (default sqrt N)  BENCH_ANN_KINDS="clustered uniform"
#   gtr's settings per data set: BENCH_ANN_NPROBE_CLUSTERED / _UNIFORM ("NPROBE[:RERANK] ...");
#   the baselines': BENCH_ANN_IVF_<KIND> (nprobe), BENCH_ANN_EF_<KIND> (efSearch),
#   BENCH_ANN_REFINE_<KIND> (IVFPQ refine factor), BENCH_ANN_HNSW_M / _EFC (HNSW build);
#   uniform data need most lists probed for recall 0.95 (no cluster structure), so its default
#   grids run from 60% of the lists to all of them;
#   BENCH_ANN_NQ1=200 queries timed at batch 1; BENCH_ANN_SKIP="ivfflat faiss-hnsw ivfpq hnswlib"
#   (or BENCH_ANN_SKIP_CLUSTERED / _UNIFORM, per data set) leaves baselines out;
#   BENCH_ANN_PQ_<KIND>: IVFPQ's nprobe grid (default: BENCH_ANN_IVF_<KIND>).
# Running in pieces (each under the lock for a shorter time): BENCH_ANN_KEEP=1 keeps the data
# set's vectors, queries and ground truth in BENCH_ANN_OUT (default build/bench/ann; one data
# set at a time: run one kind per call); a later call with "gtr" in BENCH_ANN_SKIP and the same
# kind, N, DIM and NQ reuses them instead of running ann_bench (gtr's rows come from the first).
# BENCH_ANN_BUILD_BUDGET_S=SECONDS: an HNSW build (hnswlib, FAISS HNSWFlat) that passes it saves its
# partial graph in BENCH_ANN_OUT and prints no rows; the next call (same settings) goes on from it.
# BENCH_ANN_KEEP_BUILT=1 keeps a finished HNSW build there too: later calls search it without building.
# The rows go to build/bench/ann/results.md too, and bench/ann_plot.py draws them
# (build/bench/ann/recall_qps.png; copy it beside bench/RESULTS.md).
# Disk: N*DIM*4 bytes for the vectors file plus about 1.25x that for gtr's index (1M x 768:
# ~7 GB); RAM: FAISS/hnswlib hold their own copy.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bench/ann_bench >&2
n=${BENCH_ANN_N:-1000000}; dim=${BENCH_ANN_DIM:-768}; nq=${BENCH_ANN_NQ:-1000}
threads=${BENCH_THREADS:-2}
lists=${BENCH_ANN_LISTS:-$(awk -v n="$n" 'BEGIN{printf "%d", sqrt(n)+0.5}')}
kinds=${BENCH_ANN_KINDS:-clustered uniform}
export BENCH_ANN_IVF_CLUSTERED=${BENCH_ANN_IVF_CLUSTERED:-1 2 4 8 16 32}
export BENCH_ANN_EF_CLUSTERED=${BENCH_ANN_EF_CLUSTERED:-16 32 64 128}
# shares of the lists, as nprobe values
pct() { awk -v l="$lists" 'BEGIN { for (i = 1; i < ARGC; i++) printf "%s%d", (i > 1 ? " " : ""), (l * ARGV[i] + 50) / 100 }' "$@"; }
export BENCH_ANN_IVF_UNIFORM=${BENCH_ANN_IVF_UNIFORM:-$(pct 80 86 90 94 97)}
export BENCH_ANN_EF_UNIFORM=${BENCH_ANN_EF_UNIFORM:-256 1024 4096}
export BENCH_ANN_LISTS=$lists
out=${BENCH_ANN_OUT:-build/bench/ann}
skip_all=" ${BENCH_ANN_SKIP:-} "
mkdir -p "$out"
need=$(( n * dim * 4 * 5 / 2 / 1024 / 1024 / 1024 + 1 ))
avail=$(df -BG --output=avail "$out" | tail -1 | tr -dc 0-9)
[ "$avail" -gt "$need" ] || { echo "bench_ann.sh: ${need} GB of disk needed in $out, ${avail} GB free" >&2; exit 1; }
py=""
# a venv with every baseline first (.venv-bench has them since venv.sh lists hnswlib), else
# any with numpy (the baselines it lacks are left out, and say so)
for need in "numpy, faiss, hnswlib" numpy; do
    for cand in .venv-bench/bin/python build/venv-ann/bin/python; do
        if [ -x "$cand" ] && "$cand" -c "import $need" 2>/dev/null; then py=$cand; break 2; fi
    done
done
if [ -z "$py" ] && /usr/bin/python3 -m venv build/venv-ann >&2 && build/venv-ann/bin/pip install -q numpy faiss-cpu hnswlib matplotlib >&2; then
    py=build/venv-ann/bin/python
fi
{
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512f|avx512_vnni|avx512_bf16|amx_int8)$' | tr '\n' ' ' | sed 's/ $//')), $threads threads, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %H:%M UTC')"
echo
echo "| data | docs | method | recall@10 | q/s batch 1 | q/s batch 256 | build s | peak RSS build GB | peak RSS GB | index memory GB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for kind in $kinds; do
    case $kind in
        clustered) nprobe=${BENCH_ANN_NPROBE_CLUSTERED:-1 1:20 2 2:20 4 8 16 32} ;;
        *) nprobe=${BENCH_ANN_NPROBE_UNIFORM:-$(pct 60 80 86 90 94 97 100)} ;;
    esac
    kskip=" ${skip_all} $(eval echo "\${BENCH_ANN_SKIP_${kind^^}:-}") "
    stamp="$kind $n $dim $nq"
    if [[ "$kskip" == *" gtr "* ]] && [ "$(cat "$out/data.stamp" 2>/dev/null)" = "$stamp" ] &&
        [ -s "$out/vectors.f32" ] && [ -s "$out/truth.u32" ]; then
        echo "(gtr skipped: reusing $out's $stamp vectors, queries and ground truth)" >&2
    else
        rm -f "$out/data.stamp"
        build/release/bench/ann_bench "$kind" "$n" "$dim" "$nq" "$threads" "$lists" "$nprobe" "$out"
        echo "$stamp" > "$out/data.stamp"
    fi
    if [ -n "$py" ]; then "$py" bench/ann_baselines.py "$kind" "$out" "$threads"; else echo "(no python venv: baselines skipped)" >&2; fi
    echo "load average after $kind: $(cut -d' ' -f1-3 /proc/loadavg)"
done
} | tee "$out/results.md"
rm -f "$out"/gtr.ivf
[ "${BENCH_ANN_KEEP:-0}" = 1 ] || rm -f "$out"/vectors.f32 "$out"/data.stamp
if [ -n "$py" ] && "$py" -c "import matplotlib" 2>/dev/null; then
    "$py" bench/ann_plot.py "$out/results.md" "$out/recall_qps.png" && echo "plot: $out/recall_qps.png" >&2
fi
