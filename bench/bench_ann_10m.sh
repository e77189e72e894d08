#!/usr/bin/env bash
# bench_ann_10m.sh — issue 14's beyond-memory run: 10M x 768 clustered unit vectors (31 GB of
# float32, more than this machine's 24 GB of RAM) built into gtr's IVF-int8 index and searched
# on 2 threads at several nprobe (bench/ann_big.c says how the data are made). The vectors are
# generated on the fly and streamed into the build (gtr_ivf_build_stream), so the only float32
# copy is the index's own: disk = the index, n * (dim * 5 + 8) bytes (~38.5 GB at 10M). Three
# processes, each under /usr/bin/time -v for its peak RSS: build, exact ground truth (gtr's
# exact score over the same vectors, regenerated), search. Everything it wrote is removed at
# the end. Run it under /work/bench.lock on a quiet machine (~25-40 min at 10M on 2 cores).
#   BENCH_ANN_N=10000000 BENCH_ANN_NQ=1000 BENCH_ANN_LISTS (default sqrt N)
#   BENCH_ANN_NPROBE="1 2 4 8 16 32" BENCH_THREADS=2 BENCH_ANN_DIR=build/bench/ann10m
#   BENCH_ANN_KILL_AT=F (0 < F < 1): the build is killed (SIGKILL) once its checkpoint holds a
#   fraction F of the vectors, and the same command is run again: it resumes, and "build" is
#   that second process (its wall time includes re-reading and checking the saved prefix); the
#   search rows then show the resumed file's recall, to compare with an uninterrupted run's.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bench/ann_big >&2
n=${BENCH_ANN_N:-10000000}; dim=768; nq=${BENCH_ANN_NQ:-1000}; threads=${BENCH_THREADS:-2}
lists=${BENCH_ANN_LISTS:-$(awk -v n="$n" 'BEGIN{printf "%d", sqrt(n)+0.5}')}
nprobe=${BENCH_ANN_NPROBE:-1 2 4 8 16 32}
dir=${BENCH_ANN_DIR:-build/bench/ann10m}
bin=build/release/bench/ann_big
mkdir -p "$dir"
trap 'rm -f "$dir"/gtr.ivf "$dir"/gtr.ivf.tmp.* "$dir"/gtr.ivf.partial "$dir"/gtr.ivf.ckpt "$dir"/truth.u32 "$dir"/*.time' EXIT
need=$(( n * (dim * 5 + 8) / 1024 / 1024 / 1024 + 2 ))
avail=$(df -BG --output=avail "$dir" | tail -1 | tr -dc 0-9)
[ "$avail" -gt "$need" ] || { echo "bench_ann_10m.sh: ${need} GB of disk needed in $dir, ${avail} GB free" >&2; exit 1; }
rss() { awk -F': ' '/Maximum resident set size/{printf "%.2f", $2/1024/1024}' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$1"; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $threads threads, RAM $(free -g | awk '/Mem/{print $2}') GB, $(date -u '+%F %H:%M') UTC"
echo "docs $n, dim $dim, lists $lists, queries $nq (batch 1: the first ${BENCH_ANN_NQ1:-200}), disk free before: ${avail} GB"
echo "load before build: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${BENCH_ANN_KILL_AT:-}" ]; then
    # the checkpoint is 128 bytes plus 4 per vector done
    want=$(awk -v n="$n" -v f="$BENCH_ANN_KILL_AT" 'BEGIN{printf "%d", 128 + 4 * int(n * f)}')
    t0=$(date +%s.%N)
    "$bin" build "$n" "$dim" "$lists" "$threads" "$dir/gtr.ivf" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && [ "$(stat -c %s "$dir/gtr.ivf.ckpt" 2>/dev/null || echo 0)" -lt "$want" ]; do sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "killed (SIGKILL) after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s, checkpoint at $(( ($(stat -c %s "$dir/gtr.ivf.ckpt") - 128) / 4 )) vectors; partial file $(du -B1 "$dir/gtr.ivf.partial" | awk '{printf "%.2f GB", $1/1e9}'); output present: $([ -e "$dir/gtr.ivf" ] && echo yes || echo no)"
fi
/usr/bin/time -v -o "$dir/build.time" "$bin" build "$n" "$dim" "$lists" "$threads" "$dir/gtr.ivf"
echo "build: wall $(wall "$dir/build.time"), peak RSS $(rss "$dir/build.time") GB, index file $(du -B1 "$dir/gtr.ivf" | awk '{printf "%.2f GB", $1/1e9}'), disk free after: $(df -BG --output=avail "$dir" | tail -1 | tr -dc 0-9) GB"
echo "load before truth: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v -o "$dir/truth.time" "$bin" truth "$n" "$dim" "$nq" "$threads" "$dir/truth.u32"
echo "truth: wall $(wall "$dir/truth.time"), peak RSS $(rss "$dir/truth.time") GB"
echo "load before search: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| data | docs | method | recall@10 | q/s batch 1 | q/s batch 256 |"
echo "|---|---|---|---|---|---|"
/usr/bin/time -v -o "$dir/search.time" "$bin" search "$n" "$dim" "$nq" "$threads" "$nprobe" "$dir/gtr.ivf" "$dir/truth.u32"
echo "search: wall $(wall "$dir/search.time"), peak RSS $(rss "$dir/search.time") GB, major faults $(awk -F': ' '/Major/{print $2}' "$dir/search.time"), load after: $(cut -d' ' -f1-3 /proc/loadavg)"
