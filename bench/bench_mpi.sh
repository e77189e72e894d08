#!/usr/bin/env bash
# bench_mpi.sh — gtr-mpi (issue 18) on this machine: `gtr-mpi index`, `gtr-mpi search` and
# `gtr-mpi train` on 1-4 ranks (and a sharded index: `gtr-mpi index --shards`, `gtr-mpi search
# --split docs` over it) against `gtr index` / `gtr search` / `gtr train` in the same run,
# same model (gtr-small), same documents, queries and training batches, every MPI result
# checked byte for byte against the single-process one. mpirun runs with --bind-to none: Open MPI
# otherwise binds each rank to one core when there are 2 ranks or fewer, and a rank's threads
# would share that core.
# On one machine the ranks share its cores: this measures the overhead of the distribution
# (encoder work split per batch, vectors sent back), not a cluster's speed-up; see docs/SCALING.md.
#   BENCH_MPI_DOCS=N      corpus documents (default 600)     BENCH_MPI_QUERIES=N (default 300)
#   BENCH_MPI_STEPS=N     training steps of 16 examples, 4 micro-batches of 4 (default 3)
# Skipped (exit 0) without bin/gtr-mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >&2
[ -x bin/gtr-mpi ] || { echo "(bin/gtr-mpi not built: Open MPI missing; skipped)"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
shared=${GTR_SHARED:-../shared}
model=$shared/models/gtr-small
sf=$shared/beir/scifact
docs=${BENCH_MPI_DOCS:-600}
nq=${BENCH_MPI_QUERIES:-300}
steps=${BENCH_MPI_STEPS:-3}
cores=$(nproc)
out=build/bench/mpi
mkdir -p "$out"
head -n "$docs" "$sf/corpus.jsonl" >"$out/corpus.jsonl"
head -n "$nq" "$sf/queries.jsonl" >"$out/queries.jsonl"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }
row() { # label seconds base_seconds items check
    awk -v l="$1" -v s="$2" -v b="$3" -v n="$4" -v c="$5" 'BEGIN { printf "| %s | %.2f | %.1f | %.2f | %s |\n", l, s, n / s, b / s, c }'
}

report="| run | seconds | docs or queries/s | vs single process | identical |
|---|---|---|---|---|"
base=$(secs bin/gtr index -q -m "$model" -c "$out/corpus.jsonl" -o "$out/one.gtri" --restart -t "$cores")
report+=$'\n'"$(row "gtr index -t $cores (baseline)" "$base" "$base" "$docs" -)"
for n in 1 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    rm -f "$out/m.gtri"
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi index -q -m "$model" -c "$out/corpus.jsonl" -o "$out/m.gtri" --restart -t $t)
    same=$(cmp -s "$out/one.gtri" "$out/m.gtri" && echo yes || echo NO)
    report+=$'\n'"$(row "gtr-mpi index, $n ranks x $t threads" "$s" "$base" "$docs" "$same")"
done
# sharded index: each rank encodes and writes its piece of the corpus; "identical": the run of
# gtr search over the manifest against the run over the single file
bin/gtr search --index "$out/one.gtri" -q "$out/queries.jsonl" -k 100 -o "$out/one.run" --quiet -t "$cores" >/dev/null 2>&1
for n in 1 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    rm -f "$out"/s.gtri*
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi index -q -m "$model" -c "$out/corpus.jsonl" -o "$out/s.gtri" --shards --restart -t $t)
    bin/gtr search --index "$out/s.gtri" -q "$out/queries.jsonl" -k 100 -o "$out/s.run" --quiet >/dev/null 2>&1
    same=$(cmp -s "$out/one.run" "$out/s.run" && echo yes || echo NO)
    report+=$'\n'"$(row "gtr-mpi index --shards, $n ranks x $t threads" "$s" "$base" "$docs" "$same")"
done
base=$(secs bin/gtr search --index "$out/one.gtri" -q "$out/queries.jsonl" -k 100 -o "$out/one.run" --quiet -t "$cores")
report+=$'\n'"$(row "gtr search -t $cores (baseline)" "$base" "$base" "$nq" -)"
for n in 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi search --split docs --index "$out/s.gtri" -q "$out/queries.jsonl" -k 100 -o "$out/m.run" --quiet -t $t)
    same=$(cmp -s "$out/one.run" "$out/m.run" && echo yes || echo NO)
    report+=$'\n'"$(row "gtr-mpi search --split docs, 4 shards, $n ranks x $t threads" "$s" "$base" "$nq" "$same")"
done
# approximate search: one IVF over the single file (gtr search --ann, the baseline) against one
# IVF per shard of the 4-shard index (gtr-mpi ann-build, gtr-mpi search --split docs --ann);
# "identical": the run of 1 rank (the per-shard runs merged: tests/scripts/mpi_shards.sh)
bin/gtr ann-build --index "$out/one.gtri" -o "$out/one.ivf" -t "$cores" >/dev/null 2>&1
base_ann=$(secs bin/gtr search --index "$out/one.gtri" --ann "$out/one.ivf" --nprobe 4 -q "$out/queries.jsonl" -k 100 -o "$out/one.ann.run" --quiet -t "$cores")
report+=$'\n'"$(row "gtr search --ann --nprobe 4 -t $cores (one IVF; baseline)" "$base_ann" "$base_ann" "$nq" -)"
s=$(secs mpirun --oversubscribe --bind-to none -n 2 bin/gtr-mpi ann-build --index "$out/s.gtri" -o "$out/s.ivf" -t 1)
report+=$'\n'"$(row "gtr-mpi ann-build, 4 shards, 2 ranks x 1 threads (shards/s)" "$s" "$s" 4 -)"
for n in 1 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi search --split docs --index "$out/s.gtri" --ann "$out/s.ivf" --nprobe 4 -q "$out/queries.jsonl" -k 100 -o "$out/a$n.run" --quiet -t $t)
    same=$(cmp -s "$out/a1.run" "$out/a$n.run" && echo "yes (= 1 rank)" || echo NO)
    report+=$'\n'"$(row "gtr-mpi search --split docs --ann --nprobe 4, 4 shards, $n ranks x $t threads" "$s" "$base_ann" "$nq" "$same")"
done
for n in 1 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi search --index "$out/one.gtri" -q "$out/queries.jsonl" -k 100 -o "$out/m.run" --quiet -t $t)
    same=$(cmp -s "$out/one.run" "$out/m.run" && echo yes || echo NO)
    report+=$'\n'"$(row "gtr-mpi search, $n ranks x $t threads" "$s" "$base" "$nq" "$same")"
done
train=(--init "$model" -d "$sf" --steps "$steps" --batch 16 --micro-batch 4 --query-max-len 32
       --passage-max-len 128 --seed 1 -q --overwrite --metrics -)
base=$(secs bin/gtr train "${train[@]}" -o "$out/one.model" -t "$cores")
report+=$'\n'"$(row "gtr train -t $cores (baseline; steps/s)" "$base" "$base" "$steps" -)"
for n in 1 2 3 4; do
    t=$(( cores / n > 0 ? cores / n : 1 ))
    s=$(secs mpirun --oversubscribe --bind-to none -n $n bin/gtr-mpi train "${train[@]}" -o "$out/m.model" -t $t)
    same=$(cmp -s "$out/one.model/model.safetensors" "$out/m.model/model.safetensors" &&
           cmp -s "$out/one.model/2_Dense/model.safetensors" "$out/m.model/2_Dense/model.safetensors" && echo yes || echo NO)
    report+=$'\n'"$(row "gtr-mpi train, $n ranks x $t threads (steps/s)" "$s" "$base" "$steps" "$same")"
done
echo "$report"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512[a-z0-9_]*\|amx[a-z0-9_]*' | sort -u | tr '\n' ' ')
section=$(printf '## MPI\n\n`bench/bench_mpi.sh`, %s, %s (%s cores; %s; load average %s at the start, %s at the end:\nthe machine is shared with other work, so the figures are indicative). gtr-small, the first %s\nSciFact documents and %s queries (top 100); training: %s steps of 16 SciFact train pairs in 4\nmicro-batches of 4 (queries 32, passages 128 tokens; cross-replica negatives: every query\nagainst all 16 passages of the step). Each time includes process start-up, model loading\nand (MPI) `mpirun`. 1 and 2 ranks fit the 2 cores, 3 and 4 oversubscribe them; on one machine\nmore ranks cannot be faster: the table shows what the distribution costs (start-up, splitting each batch,\nsending vectors back), not a cluster'"'"'s speed-up (docs/SCALING.md). "identical": `cmp` of the\nindex file / run / trained model files against the single-process one (sharded index: the run of\ngtr search over its manifest against the run over the single file; per-shard IVF: the run of 1\nrank). mpirun --bind-to none (by default Open MPI 4.1 binds each of 1 or 2 ranks to one core).\n\n%s\n' \
    "$(date -u +%Y-%m-%d)" "$cpu" "$cores" "$flags" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$docs" "$nq" "$steps" "$report")
. bench/results_section.sh
results_section MPI "$section"
