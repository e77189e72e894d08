#!/usr/bin/env bash
# bench_gemm.sh — measured fp32/bf16/int8 peak of this CPU and GFLOP/s of gtr's GEMM kernels on
# the gtr-t5-base shapes (f32, bf16, int8; 1 thread and all threads) as a fraction of the peak of
# the instruction family the kernels use (FMA, vdpbf16ps/vpdpbusd, or AMX tdpbf16ps/tdpbusd), plus the attention-sized
# GEMMs. Prints Markdown tables (bench/gemm_bench.c says how each figure is measured).
#   BENCH_TOKENS=M (default 4096)  BENCH_REPS=R (default 5)  BENCH_THREADS=T (default all cores)
#   GTR_CPU=generic|avx2|avx512 caps the kernels, as everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bench/gemm_bench >&2
exec build/release/bench/gemm_bench --tokens "${BENCH_TOKENS:-4096}" --reps "${BENCH_REPS:-5}" \
    --threads-max "${BENCH_THREADS:-$(nproc)}"
