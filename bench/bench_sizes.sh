#!/usr/bin/env bash
# bench_sizes.sh — every GTR size on this machine: for base, large, xl and xxl (random weights of
# the exact shapes, F16 model.safetensors as on the hub, made by
# ../shared/reference/make_big_model.py into BENCH_SIZES_DIR and deleted afterwards) and each
# compute dtype (f32, bf16, int8): load time and peak RSS (`gtr embed` of one short text),
# encoding throughput in tokens/s on SciFact passages (fewer for the big sizes), and the time
# that projects to for SciFact, NQ and MS MARCO. A dtype the memory check refuses is reported
# with the refusal. Then, per size, the `gtr quantize` bf16 and int8 copies: quantize time,
# load and first-vector time cold (the copy's pages evicted) and warm, with the load's checksum
# verification and without it (GTR_NO_VERIFY=1), peak RSS, tokens/s.
# Updates the "Model sizes" section of bench/RESULTS.md.
#
#   bench/bench_sizes.sh   BENCH_SIZES ("base large xl xxl"), BENCH_SIZES_DIR (build/bench/sizes),
#                          BENCH_THREADS (all cores), BENCH_SIZES_KEEP=1 keeps the checkpoints,
#                          BENCH_PASSAGES_<size> (passages encoded: 64, 32, 16, 4),
#                          PYTHON (/usr/bin/python3: needs numpy), BENCH_SIZES_SKIP ("": e.g. "xxl:f32" on a machine others share;
#                          "xl:qbf16" skips the bf16 copy of xl; "xxl:f32 xxl:bf16 xxl:int8" leaves
#                          the copies only), BENCH_SIZES_TAG (text added to the subsection's title,
#                          so that a run keeps an earlier one of the same sizes: e.g. ", copies")
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
qrows=""
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
            rows+="| $size | $dt | not run (BENCH_SIZES_SKIP) | | | | | | | |"$'\n'; continue ;; esac
        # cold load: the checkpoint's pages evicted first (only this file, not the machine's cache)
        "${PYTHON:-/usr/bin/python3}" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$m/model.safetensors"
        lcold=refused
        if /usr/bin/time -f "%e" -o "$out/t_cold" $GTR embed -m "$m" --dtype "$dt" -t "$threads" \
             -i "$out/one.txt" -o "$out/sizes.f32" -q 2> /dev/null; then read -r lcold < "$out/t_cold"; lcold="$lcold s"; fi
        cat "$m/model.safetensors" > /dev/null # warm page cache: the other figures are warm loads
        if ! /usr/bin/time -f "%e %M" -o "$out/t_load" $GTR embed -m "$m" --dtype "$dt" -t "$threads" \
             -i "$out/one.txt" -o "$out/sizes.f32" -q 2> "$out/err_load"; then
            why=$(grep -v "Command exited" "$out/err_load" | head -1)
            rows+="| $size | $dt | refused by the memory check: \`${why}\` | | | | | | |"$'\n'
            continue
        fi
        read -r lw lrss < "$out/t_load"
        /usr/bin/time -f "%e %M" -o "$out/t_emb" $GTR embed -m "$m" --dtype "$dt" -t "$threads" \
            -i "$out/sizes_passages.jsonl" -o "$out/sizes.f32" -q
        read -r ew erss < "$out/t_emb"
        row=$(awk -v lw="$lw" -v ew="$ew" -v tok="$tokens" -v np="$np" -v lrss="$lrss" -v erss="$erss" \
                  -v size="$size" -v dt="$dt" -v gb="$gb" -v lcold="$lcold" 'BEGIN {
            enc = ew - lw; if (enc < 0.01) enc = 0.01
            tps = tok / enc
            sf = 5183 * (tok / np) / tps; nq = 2681468 * 100 / tps; mm = 8841823 * 75 / tps
            printf "| %s (%s GB F16) | %s | %s | %.1f s | %.2f GiB | %.0f | %.1f h | %.0f h | %.0f h | %.2f GiB |",
                   size, gb, dt, lcold, lw, lrss / 1048576, tps, sf / 3600, nq / 3600, mm / 3600, erss / 1048576
        }')
        rows+="$row"$'\n'
        echo "$row" >&2
    done
    # `gtr quantize` copies: mapped and used in place. Cold = the copy's pages evicted from the
    # page cache first (posix_fadvise DONTNEED on its files: only this file, not the whole
    # machine's cache); load = `gtr info` ("loaded in"), first vector = `gtr embed` of one
    # short text (every weight page is read once for it).
    for dt in bf16 int8; do
        case " ${BENCH_SIZES_SKIP:-} " in *" $size:q$dt "*) continue ;; esac
        q=$dir/$size-$dt
        rm -rf "$q"
        /usr/bin/time -f "%e" -o "$out/t_q" $GTR quantize -m "$m" -o "$q" --dtype "$dt" -t "$threads" -q
        read -r qw < "$out/t_q"
        qgb=$(cat "$q"/model*.safetensors | wc -c | awk '{printf "%.2f", $1 / 1e9}')
        evict() { "${PYTHON:-/usr/bin/python3}" -c 'import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$q"/model*.safetensors; }
        cached() { fincore -b -n -o RES "$q"/model*.safetensors 2>/dev/null | awk '{s += $1} END {printf "%.2f", s / 1e9}'; }
        # load = `gtr info`'s "loaded in"; ck = its "checksums: N tensors verified in X s"
        info() { $GTR info -m "$q" --dtype "$dt" -t "$threads" > "$out/info.txt"
                 sed -n 's/^loaded in \([0-9.]*\) s.*/\1/p' "$out/info.txt"
                 sed -n 's/^checksums: .* in \([0-9.]*\) s$/\1/p' "$out/info.txt"; }
        evict; c0=$(cached)
        read -r lc ckc < <(info | tr '\n' ' '; echo)
        evict
        /usr/bin/time -f "%e %M" -o "$out/t_fc" $GTR embed -m "$q" --dtype "$dt" -t "$threads" -i "$out/one.txt" -o "$out/sizes.f32" -q
        read -r fc _ < "$out/t_fc"
        evict # the same without the checksums
        GTR_NO_VERIFY=1 /usr/bin/time -f "%e %M" -o "$out/t_fn" $GTR embed -m "$q" --dtype "$dt" -t "$threads" -i "$out/one.txt" -o "$out/sizes.f32" -q
        read -r fcn _ < "$out/t_fn"
        /usr/bin/time -f "%e %M" -o "$out/t_fw" $GTR embed -m "$q" --dtype "$dt" -t "$threads" -i "$out/one.txt" -o "$out/sizes.f32" -q
        read -r fw frss < "$out/t_fw"
        read -r lw2 ckw < <(info | tr '\n' ' '; echo)
        lnv=$(GTR_NO_VERIFY=1 $GTR info -m "$q" --dtype "$dt" -t "$threads" | sed -n 's/^loaded in \([0-9.]*\) s.*/\1/p')
        /usr/bin/time -f "%e %M" -o "$out/t_qe" $GTR embed -m "$q" --dtype "$dt" -t "$threads" \
            -i "$out/sizes_passages.jsonl" -o "$out/sizes.f32" -q
        read -r qe qrss < "$out/t_qe"
        qrow=$(awk -v size="$size" -v dt="$dt" -v qgb="$qgb" -v qw="$qw" -v lc="$lc" -v lw="$lw2" -v fc="$fc" \
                   -v fw="$fw" -v frss="$frss" -v qe="$qe" -v tok="$tokens" -v c0="$c0" -v qrss="$qrss" \
                   -v ckc="${ckc:-0}" -v ckw="${ckw:-0}" -v lnv="$lnv" -v fcn="$fcn" 'BEGIN {
            enc = qe - fw; if (enc < 0.01) enc = 0.01
            printf "| %s | %s | %s GB | %.0f s | %.2f s (%.2f) | %.2f s (%.2f) | %.2f s | %.1f s | %.1f s | %.1f s | %.0f | %.2f GiB | %.2f GiB |",
                   size, dt, qgb, qw, lc, ckc, lw, ckw, lnv, fc, fcn, fw, tok / enc, frss / 1048576, qrss / 1048576
        }')
        qrows+="$qrow"$'\n'
        echo "$qrow (cached before the cold runs: $c0 GB)" >&2
        rm -rf "$q"
    done
    [ -n "${BENCH_SIZES_KEEP:-}" ] || rm -rf "$m"
done
load_end=$(cut -d' ' -f1 /proc/loadavg)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
flags=$(grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx512f|avx512_bf16|avx512_vnni|amx_bf16|amx_int8|avx512_fp16)$' | tr '\n' ' ')
results=${BENCH_RESULTS:-bench/RESULTS.md}
# one subsection per run (keyed by its sizes): a later run of other sizes keeps this one's
old=$(awk '/^## / { ins = ($0 == "## Model sizes"); next } ins' "$results" 2>/dev/null || true)
tag=${BENCH_SIZES_TAG:-}
kept=$(printf '%s\n' "$old" | awk -v key="### Sizes: $sizes$tag (" '/^### / { keep = index($0, key) != 1 } keep')
section="## Model sizes

\`bench/bench_sizes.sh\` (BENCH_SIZES picks the sizes; each run writes its own subsection below).
Random weights of each released GTR shape, F16 \`model.safetensors\` as on the hub (made by
../shared/reference/make_big_model.py), converted at load to the compute dtype. Load =
\`gtr embed\` of one short text (load time and peak RSS of the whole process), cold (the
checkpoint's pages evicted first) and warm (the file read into the page cache first; the other
figures are warm); peak RSS in GiB (KiB / 1048576: the subsections before 2026-12-06 04:00 say
\"GB\" for the same unit); tokens/s on
the first SciFact passages (base ${npass[base]}, large ${npass[large]}, xl ${npass[xl]}, xxl ${npass[xxl]}; tokens including </s>), from the embed
time minus the load time. Projections: SciFact 5,183 passages at the measured passage length, NQ
2,681,468 passages x ~100 tokens, MS MARCO 8,841,823 x ~75 tokens, on that machine with those
threads. The second table of each run: the \`gtr quantize\` copies, memory-mapped and used in
place (weights packed for the kernels): quantize time (from the F16 file, its validation load
included); load = \`gtr info --dtype\`'s \"loaded in\", in brackets the part of it that verified
the checksums of every tensor (CRC-32C on all threads; columns without brackets come from runs
before the checksums existed), and the warm load with \`GTR_NO_VERIFY=1\`; first vector =
\`gtr embed\` of one short text (it reads every weight page once), cold with and without the
checksums. Cold: the copy's pages evicted from the page cache first (posix_fadvise DONTNEED on
its files, not the machine's whole cache); warm: right after. Peak RSS there counts the mapped
file pages the process touched (page cache, shared between processes, not private memory).
${kept:+
$kept
}
### Sizes: $sizes$tag ($(date -u +%Y-%m-%d), $cpu, $threads threads)

Flags: $flags. Load average $load_start at the start and $load_end at the end (a machine shared
with other jobs: figures taken under load are slower than a quiet machine's).${BENCH_SIZES_SKIP:+ BENCH_SIZES_SKIP=$BENCH_SIZES_SKIP.}

| size | dtype | load cold | load warm | load peak RSS | tokens/s | SciFact | NQ | MS MARCO | embed peak RSS |
|---|---|---|---|---|---|---|---|---|---|
${rows}
| size | copy | file | quantize | load cold (checksums) | load warm (checksums) | load warm, GTR_NO_VERIFY | first vector cold | first vector cold, GTR_NO_VERIFY | first vector warm | tokens/s | first vector peak RSS | embed peak RSS |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
${qrows}"
results_section "Model sizes" "$section"
echo "$section"
