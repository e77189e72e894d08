#!/usr/bin/env bash
# bench_ann_10m.sh — issue 14's beyond-memory run: 10M x 768 clustered unit vectors (31 GB of
# float32, more than this machine's 24 GB of RAM) generated in chunks into a file, memory-mapped,
# built into gtr's IVF-int8 index (~39 GB: int8 codes + the float32 copy for re-ranking) and
# searched on 2 threads at several nprobe. Prints the same Markdown row format as
# bench_ann.sh (recall@10 against brute-force truth, q/s at batch 1 and 256, build seconds,
# peak RSS). Needs ~72 GB free disk in BENCH_ANN_DIR (checked first) and a few hours on 2
# cores (the brute-force ground truth alone is ~1.5e12 multiply-adds for 200 queries); run it
# on a quiet machine. Everything it wrote is removed at the end.
#   BENCH_ANN_N=10000000 BENCH_ANN_NQ=200 BENCH_ANN_LISTS=16384 BENCH_ANN_NPROBE="16 32 64 128"
#   BENCH_ANN_DIR=build/bench/ann10m
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bench/ann_bench >&2
n=${BENCH_ANN_N:-10000000}; dim=768; nq=${BENCH_ANN_NQ:-200}
lists=${BENCH_ANN_LISTS:-16384}; nprobe=${BENCH_ANN_NPROBE:-16 32 64 128}
dir=${BENCH_ANN_DIR:-build/bench/ann10m}
mkdir -p "$dir"
trap 'rm -f "$dir"/vectors.f32 "$dir"/gtr.ivf "$dir"/gtr.ivf.tmp.*' EXIT
need=$(( n * dim * 4 * 9 / 4 / 1024 / 1024 / 1024 + 2 ))
avail=$(df -BG --output=avail "$dir" | tail -1 | tr -dc 0-9)
[ "$avail" -gt "$need" ] || { echo "bench_ann_10m.sh: ${need} GB of disk needed in $dir, ${avail} GB free" >&2; exit 1; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), 2 threads, RAM $(free -g | awk '/Mem/{print $2}') GB, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
echo "| data | docs | method | recall@10 | q/s batch 1 | q/s batch 256 | build s | peak RSS build GB | peak RSS GB |"
echo "|---|---|---|---|---|---|---|---|---|"
ANN_BENCH_MMAP=1 build/release/bench/ann_bench clustered "$n" "$dim" "$nq" 2 "$lists" "$nprobe" "$dir"
echo "index file: $(du -h "$dir/gtr.ivf" | cut -f1)"
