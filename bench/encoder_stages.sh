#!/usr/bin/env bash
# encoder_stages.sh — where the encoder's time goes, per stage, for f32 / bf16 / int8: perf
# samples of bench/encode_bench (the gtr-t5-base-shaped checkpoint and 512 passages of
# bench_encoder.sh, all threads), each symbol assigned to a stage by name. Prints a Markdown table
# of shares of the encoding time (model loading, which the same process does first, is left out).
#   BENCH_THREADS=N (default all cores)  BENCH_RUNS=R (encodings per dtype, default 2)
#   BENCH_DTYPES="f32 bf16 int8"  GTR_CPU caps the kernels as everywhere.
# Needs perf (linux-perf) and permission to sample (root, or perf_event_paranoid <= 1); run
# bench_encoder.sh once first (it makes the checkpoint and the texts).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
model=$out/gtr-base
texts=$out/texts.jsonl
threads=${BENCH_THREADS:-$(nproc)}
runs=${BENCH_RUNS:-2}
command -v perf >/dev/null || { echo "encoder_stages.sh: perf not found (apt-get install linux-perf)" >&2; exit 2; }
[ -f "$model/model.safetensors" ] && [ -f "$texts" ] ||
    { echo "encoder_stages.sh: run bench/bench_encoder.sh first ($model, $texts missing)" >&2; exit 2; }
make -s build/release/bench/encode_bench >&2
echo "encoder_stages: $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg), $threads threads" >&2
for dt in ${BENCH_DTYPES:-f32 bf16 int8}; do
    perf record -q -F 997 -o "$out/stages_$dt.perf" -- build/release/bench/encode_bench "$model" "$texts" \
        "$out/stages_$dt.npy" --dtype "$dt" --threads "$threads" --runs "$runs" > "$out/stages_$dt.json" 2>/dev/null
    perf report -i "$out/stages_$dt.perf" --stdio --sort symbol 2>/dev/null | grep -v '^#' | grep . > "$out/stages_$dt.txt"
done
python3 - "$out" ${BENCH_DTYPES:-f32 bf16 int8} <<'PY'
import json, re, sys
out, dts = sys.argv[1], sys.argv[2:]
# first matching pattern wins; names are the library's functions (static ones included)
stages = [
    ("load", r"^(convert_task|gtr_t5_load|gtr_f16_to_f32|gtr_f32_to_bf16|gtr_wmat_pack.*|put_int8_row|gtr_quantize_rows_int8|pidx|load_.*|safetensors.*|gtr_tensor.*|alloc_layout|check_finite.*|.*finite.*)$"),
    ("products (Q/K/V, O, FF)", r"^(bf16_tile|int8_tile|bf16_drive|int8_drive|block_bf16|block_int8|prep_rows|bf16_row|int8_row|epilogue|tile|prep|panel|bf16_prep|int8_prep|ukr_any|ukr_packed|gtr_avx512_f32_packed|gtr_avx2_f32_packed|gtr_avx512_bf16_prep|gtr_avx512_int8_prep|gtr_linear.*|linear_task|gtr_f32_linear_tile|gtr_bf16w_tile|pad_rows|config|release)$"),
    ("attention (QKᵀ + bias, softmax, PV)", r"^(ukr_strided|sgemm_strided|gtr_sgemm.*|attn_task|gtr_.*add_softmax|gtr_.*transpose|amx_attn.*|attn_.*|gtr_amx_bf16_.*|row_bf16)$"),
    ("RMS norm", r"^(gtr_.*rmsnorm|rmsnorm_task)$"),
    ("gated-GELU / ReLU", r"^(gtr_.*gelu_mul|gelu_task)$"),
    ("embedding lookup", r"^(embed_task)$"),
    ("pooling + Dense + normalise", r"^(pool_task|gtr_head_forward|gtr_.*dot)$"),
    ("tokenizer", r"^(tok_task|spm_.*|gtr_tokenizer.*|gtr_utf8.*|normalize.*|unigram.*|viterbi.*|trie_.*|da_.*)$"),
]
rows = {}
for dt in dts:
    shares = {}
    for line in open(f"{out}/stages_{dt}.txt"):
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
        st = "other (threads, kernel, libc)" if kind == "k" else next((n for n, p in stages if re.match(p, sym)), "other (threads, kernel, libc)")
        shares[st] = shares.get(st, 0) + pct
    load = shares.pop("load", 0.0)
    enc = sum(shares.values())
    rows[dt] = {k: 100 * v / enc for k, v in shares.items()}
    try:
        j = json.loads(open(f"{out}/stages_{dt}.json").read().strip().splitlines()[-1])
        rows[dt]["_tps"] = j.get("best_tokens_per_s", j.get("tokens_per_s"))
    except (OSError, ValueError, IndexError):
        pass
names = [n for n, _ in stages[1:]] + ["other (threads, kernel, libc)"]
print("| stage | " + " | ".join(dts) + " |\n|---|" + "---|" * len(dts))
for n in names:
    print(f"| {n} | " + " | ".join(f"{rows[d].get(n, 0):.1f}%" for d in dts) + " |")
print("| tokens/s of these runs (under perf) | " + " | ".join(f"{rows[d].get('_tps', 0):.0f}" for d in dts) + " |")
PY
