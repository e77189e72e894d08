#!/usr/bin/env bash
# bench_bm25.sh — BM25 on BEIR SciFact (../shared/beir/scifact): index build speed, search
# throughput over the 300 test queries (top 1000, BEIR's ignore_identical_ids), and nDCG@10 /
# recall against Anserini's published BM25-flat figures (nDCG@10 0.6789, R@100 0.9253,
# R@1000 0.9767). Prints Markdown tables; needs `make` first (links lib/libgtr.a).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
pkgs="jansson libcurl libzip"
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc $(pkg-config --cflags $pkgs) bench/bm25_bench.c \
    lib/libgtr.a $(pkg-config --libs $pkgs) -lpthread -lm -o "$out/bm25_bench"
echo "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo
"$out/bm25_bench" "${GTR_SHARED:-../shared}/beir/scifact" "$out"
