#!/usr/bin/env bash
# bench_sizes.sh — every GTR size on this machine: for base, large, xl and xxl (random weights of
# the exact shapes, F16 model.safetensors as on the hub, made by
# ../shared/reference/make_big_model.py into BENCH_SIZES_DIR and deleted afterwards) and each
# compute dtype (f32, bf16, int8): load time and peak RSS (`gtr embed` of one short text),
# encoding throughput in tokens/s on SciFact passages (fewer for the big sizes), and the time
# that projects to for SciFact, NQ and MS MARCO. A dtype the memory check refuses is reported
# with the refusal. Updates the "Model sizes" section of bench/RESULTS.md.
#
#   bench/bench_sizes.sh   BENCH_SIZES ("base large xl xxl"), BENCH_SIZES_DIR (build/bench/sizes),
#                          BENCH_THREADS (all cores), BENCH_SIZES_KEEP=1 keeps the checkpoints,
#                          BENCH_PASSAGES_<size> (passages encoded: 64, 32, 16, 4),
#                          PYTHON (/usr/bin/python3: needs numpy), BENCH_SIZES_SKIP ("": e.g. "xxl:f32" on a machine others share)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/results_section.sh
sizes=${BENCH_SIZES:-base large xl xxl}
dir=${BENCH_SIZES_DIR:-build/bench/sizes}
threads=${BENCH_THREADS:-$(nproc)}
out=build/bench
mkdir -p "$out" "$dir"
make -s all >&2
GTR=bin/gtr
like=../shared/models/gtr-small
load_start=$(cut -d' ' -f1 /proc/loadavg)
echo "a short query" > "$out/one.txt"
# passages per size: the encoder cost grows ~40x from base to xxl
declare -A npass=([base]=${BENCH_PASSAGES_base:-64} [large]=${BENCH_PASSAGES_large:-32}
                  [xl]=${BENCH_PASSAGES_xl:-16} [xxl]=${BENCH_PASSAGES_xxl:-4})
# tokens per passage for the projections (BEIR: NQ ~100, MS MARCO ~75; SciFact measured)
rows=""
for size in $sizes; do
    m=$dir/$size
    if [ ! -f "$m/model.safetensors" ]; then
        echo "# making $size" >&2
        "${PYTHON:-/usr/bin/python3}" ../shared/reference/make_big_model.py --size "$size" --like "$like" --out "$m" >&2
    fi
    gb=$(du -B1 --apparent-size "$m/model.safetensors" | awk '{printf "%.2f", $1 / 1e9}')
    head -"${npass[$size]}" ../shared/beir/scifact/corpus.jsonl > "$out/sizes_passages.jsonl"
    tokens=$($GTR tokenize -m "$m" -i "$out/sizes_passages.jsonl" | wc -w)
    np=${npass[$size]}
    for dt in f32 bf16 int8; do
        case " ${BENCH_SIZES_SKIP:-} " in *" $size:$dt "*)
            rows+="| $size | $dt | not run (BENCH_SIZES_SKIP) | | | | | | |"$'\n'; continue ;; esac
        cat "$m/model.safetensors" > /dev/null # warm page cache: the figures are warm loads
        if ! /usr/bin/time -f "%e %M" -o "$out/t_load" $GTR embed -m "$m" --dtype "$dt" -t "$threads" \
             -i "$out/one.txt" -o "$out/sizes.f32" -q 2> "$out/err_load"; then
            why=$(grep -v "Command exited" "$out/err_load" | head -1)
            rows+="| $size | $dt | refused by the memory check: \`${why}\` | | | | | |"$'\n'
            continue
        fi
        read -r lw lrss < "$out/t_load"
        /usr/bin/time -f "%e %M" -o "$out/t_emb" $GTR embed -m "$m" --dtype "$dt" -t "$threads" \
            -i "$out/sizes_passages.jsonl" -o "$out/sizes.f32" -q
        read -r ew erss < "$out/t_emb"
        row=$(awk -v lw="$lw" -v ew="$ew" -v tok="$tokens" -v np="$np" -v lrss="$lrss" -v erss="$erss" \
                  -v size="$size" -v dt="$dt" -v gb="$gb" 'BEGIN {
            enc = ew - lw; if (enc < 0.01) enc = 0.01
            tps = tok / enc
            sf = 5183 * (tok / np) / tps; nq = 2681468 * 100 / tps; mm = 8841823 * 75 / tps
            printf "| %s (%s GB F16) | %s | %.1f s | %.2f GB | %.0f | %.1f h | %.0f h | %.0f h | %.2f GB |",
                   size, gb, dt, lw, lrss / 1048576, tps, sf / 3600, nq / 3600, mm / 3600, erss / 1048576
        }')
        rows+="$row"$'\n'
        echo "$row" >&2
    done
    [ -n "${BENCH_SIZES_KEEP:-}" ] || rm -rf "$m"
done
load_end=$(cut -d' ' -f1 /proc/loadavg)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
flags=$(grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512f|avx512_bf16|avx512_vnni|amx_bf16|amx_int8|avx512_fp16)$' | tr '\n' ' ')
section="## Model sizes

\`bench/bench_sizes.sh\`, $(date -u +%Y-%m-%d), $cpu ($flags), $threads threads, load average
$load_start at the start and $load_end at the end (a machine shared with other jobs: figures
taken under load are slower than a quiet machine's). Random weights of each released GTR shape,
F16 \`model.safetensors\` as on the hub, converted at load to the compute dtype; page cache warm.
Load = \`gtr embed\` of one short text (load time and peak RSS of the whole process); tokens/s
on the first SciFact passages (base ${npass[base]}, large ${npass[large]}, xl ${npass[xl]}, xxl ${npass[xxl]}; tokens including </s>), from
the embed time minus the load time. Projections: SciFact 5,183 passages at the measured
passage length, NQ 2,681,468 passages x ~100 tokens, MS MARCO 8,841,823 x ~75 tokens, on this
machine with these threads.

| size | dtype | load | load peak RSS | tokens/s | SciFact | NQ | MS MARCO | embed peak RSS |
|---|---|---|---|---|---|---|---|---|
${rows}"
results_section "Model sizes" "$section"
echo "$section"
