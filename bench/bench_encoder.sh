#!/usr/bin/env bash
# bench_encoder.sh — end-to-end encoder throughput: gtr against the baselines of issue 5, all in
# the same run, on the same machine, texts and checkpoint. Prints a Markdown table.
#
#   bench/bench_encoder.sh            (BENCH_THREADS=N, default all cores; BENCH_RUNS=R, default 1;
#                                      BENCH_SKIP="st ort ref gtr" to leave rows out; BENCH_KEEP=1
#                                      keeps the rows of the previous run, a row's latest figure wins)
#
# Checkpoint: a random gtr-t5-base-sized one from ../shared/reference/gtr_reference.py make-model
# (speed depends only on the shape), in build/bench/gtr-base. Texts: lines 67–578 of
# ../shared/tokenizer/texts.jsonl (512 passages of 20–200 words).
# Baselines:
#   (1) PyTorch (current PyPI wheel, CPU) + sentence-transformers: SentenceTransformer(dir)
#       .encode(texts, batch_size=32), torch.set_num_threads(N); in fp32, in bfloat16
#       (model_kwargs={"torch_dtype": torch.bfloat16}) and with PyTorch's CPU int8 route
#       (torch.ao.quantization.quantize_dynamic on the nn.Linear layers)
#   (2) ONNX Runtime on the T5 encoder exported to ONNX, fp32 and quantize_dynamic int8
#       (same length-sorted batches of 32; pooling/Dense/normalise in numpy)
#   (3) ../shared/reference/gtr_reference.py bench on Debian's python3-torch (OpenBLAS)
# Every figure: real tokens (incl. </s>, ≤ 512 per text) per second of encoding, model loading
# excluded (`gtr embed` rows: the whole command, loading included); the table shows the best of
# BENCH_RUNS runs (robust to other load on a shared machine; the JSON lines in
# build/bench/encoder_results.jsonl also have the median); peak RSS of the whole process.
# Ratios are against (3). The gtr rows also run on the `gtr quantize` copies of the checkpoint
# (build/bench/gtr-base-{bf16,int8}: loading them is a copy, not a conversion) and check that
# they give the same vectors as the float32 checkpoint at that --dtype.
# Accuracy (second table): per-text cosine of each low-precision embedding to its own float32
# one (gtr bf16/int8 to gtr f32, ONNX Runtime int8 to ONNX Runtime fp32) and of everything to
# sentence-transformers fp32 (PyTorch), min and mean over the 512 texts.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${BENCH_THREADS:-$(nproc)}
runs=${BENCH_RUNS:-1}
skip=" ${BENCH_SKIP:-} "
out=build/bench
model=$out/gtr-base
texts=$out/texts.jsonl
mkdir -p "$out"

scripts/deps.sh bench
scripts/venv.sh bench
py=.venv-bench/bin/python
base="$py bench/encoder_baselines.py"

[ -f "$model/model.safetensors" ] ||
    /usr/bin/python3 ../shared/reference/gtr_reference.py make-model --config base --out "$model" >&2
sed -n '67,578p' ../shared/tokenizer/texts.jsonl > "$texts"
[ -f "$out/onnx/encoder.int8.onnx" ] || $base export --model "$model" --onnx "$out/onnx" >&2

results=$out/encoder_results.jsonl
accuracy=$out/encoder_accuracy.jsonl
[ "${BENCH_KEEP:-0}" = 1 ] || : > "$results" # BENCH_KEEP=1: add to the last run's rows (with BENCH_SKIP)
[ "${BENCH_KEEP:-0}" = 1 ] || : > "$accuracy"
echo "bench_encoder: $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/encoder_machine.txt" >&2
cos() { # name, A.npy, B.npy: appends {"name", "min_cos", "mean_cos"} when both files exist
    [ -f "$2" ] && [ -f "$3" ] || return 0
    local c
    c=$($base cos "$2" "$3")
    echo "bench_encoder: $1 cosine: $c" >&2
    echo "$c" | $py -c 'import json,sys; d=json.load(sys.stdin); d["name"]=sys.argv[1]; print(json.dumps(d))' "$1" >> "$accuracy"
}
run() { # name, command... ; appends its JSON line
    echo "bench_encoder: $1" >&2
    shift
    "$@" 2>>"$out/encoder_bench.log" | tail -1 | tee -a "$results" >&2
}

case $skip in *" ref "*) ;; *)
run "Debian torch reference" $base cmd --child-json --name "gtr_reference.py bench (Debian torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), fp32)" \
    --model "$model" --texts "$texts" -- /usr/bin/python3 ../shared/reference/gtr_reference.py bench \
    --model "$model" --texts "$texts" --threads "$threads" --batch 32 --sorted --runs "$runs" ;;
esac
case $skip in *" st "*) ;; *)
run "sentence-transformers" $base st --model "$model" --texts "$texts" --threads "$threads" --runs "$runs" --out "$out/emb_st.npy"
run "sentence-transformers bf16" $base st --dtype bf16 --model "$model" --texts "$texts" --threads "$threads" --runs "$runs" --out "$out/emb_st_bf16.npy"
run "sentence-transformers int8" $base st --dtype int8 --model "$model" --texts "$texts" --threads "$threads" --runs "$runs" --out "$out/emb_st_int8.npy" ;;
esac
case $skip in *" ort "*) ;; *)
run "onnxruntime fp32" $base ort --name "onnxruntime fp32" --model "$model" --onnx "$out/onnx/encoder.onnx" \
    --texts "$texts" --threads "$threads" --runs "$runs" --out "$out/emb_ort_f32.npy"
run "onnxruntime int8" $base ort --name "onnxruntime int8 (quantize_dynamic)" --model "$model" \
    --onnx "$out/onnx/encoder.int8.onnx" --texts "$texts" --threads "$threads" --runs "$runs" --out "$out/emb_ort_int8.npy"
;;
esac

# gtr in process (bench/encode_bench.c: gtr_model_encode, model loading excluded like the Python
# rows), then the `gtr embed` command once it exists (flags per its --help; GTR_EMBED_ARGS overrides).
make -s all build/release/bench/encode_bench >&2
case $skip in *" gtr "*) ;; *)
for dt in f32 bf16 int8; do
    run "gtr $dt" $base cmd --child-json --name "gtr $dt (library, gtr_model_encode)" --model "$model" --texts "$texts" \
        -- build/release/bench/encode_bench "$model" "$texts" "$out/emb_gtr_$dt.npy" --dtype $dt --threads "$threads" --runs "$runs"
done
for dt in f32 bf16 int8; do
    args=${GTR_EMBED_ARGS:--m $model -i $texts -o $out/emb_gtr_cli_$dt.npy --threads $threads --dtype $dt}
    run "gtr embed $dt" $base cmd --name "\`gtr embed --dtype $dt\` (whole command)" --model "$model" --texts "$texts" \
        --runs "$runs" -- bin/gtr embed $args || true
done
# the `gtr quantize` copies: loaded as they are stored
for dt in bf16 int8; do
    q=$out/gtr-base-$dt
    if [ ! -f "$q/model.safetensors" ] || [ "$q/model.safetensors" -ot "$model/model.safetensors" ]; then
        rm -rf "$q"
        bin/gtr quantize -m "$model" -o "$q" --dtype $dt --threads "$threads" >&2
    fi
    run "gtr embed $dt (quantised dir)" $base cmd --name "\`gtr embed --dtype $dt\` on the \`gtr quantize --dtype $dt\` copy (whole command)" \
        --model "$model" --texts "$texts" --runs "$runs" -- \
        bin/gtr embed -m "$q" -i "$texts" -o "$out/emb_gtr_q_$dt.npy" --threads "$threads" --dtype $dt || true
    if cmp -s "$out/emb_gtr_q_$dt.npy" "$out/emb_gtr_cli_$dt.npy"; then
        echo "bench_encoder: the $dt copy gives the float32 checkpoint's --dtype $dt vectors bit for bit" >&2
    else
        echo "bench_encoder: WARNING: the $dt copy's vectors differ from the float32 checkpoint's --dtype $dt" >&2
    fi
done ;;
esac

# accuracy: each low-precision path against its own float32, and everything against PyTorch
cos "gtr bf16 vs gtr f32" "$out/emb_gtr_f32.npy" "$out/emb_gtr_bf16.npy"
cos "gtr int8 vs gtr f32" "$out/emb_gtr_f32.npy" "$out/emb_gtr_int8.npy"
cos "ONNX Runtime int8 vs ONNX Runtime fp32" "$out/emb_ort_f32.npy" "$out/emb_ort_int8.npy"
cos "PyTorch bf16 vs PyTorch fp32" "$out/emb_st.npy" "$out/emb_st_bf16.npy"
cos "PyTorch int8 vs PyTorch fp32" "$out/emb_st.npy" "$out/emb_st_int8.npy"
# gtr tokenizing as the Hugging Face tokenizer does where segmentations tie (--spm-compat hf)
case $skip in *" gtr "*) ;; *)
bin/gtr embed -m "$model" -i "$texts" -o "$out/emb_gtr_f32_hf.npy" --threads "$threads" --spm-compat hf -q ;;
esac
for f in gtr_f32:"gtr f32" gtr_f32_hf:"gtr f32 --spm-compat hf" gtr_bf16:"gtr bf16" gtr_int8:"gtr int8" ort_f32:"ONNX Runtime fp32" ort_int8:"ONNX Runtime int8"; do
    cos "${f#*:} vs sentence-transformers fp32" "$out/emb_st.npy" "$out/emb_${f%%:*}.npy"
done
# the per-core peaks of the instructions the kernels use (gemm_bench's loops), for the fractions
make -s build/release/bench/gemm_bench >&2
build/release/bench/gemm_bench --peak-json > "$out/encoder_peak.json"
echo "bench_encoder: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/encoder_machine.txt" >&2

# the tables
$py - "$results" "$threads" "$accuracy" "$out/encoder_peak.json" "$model/config.json" <<'EOF'
import json, sys
def lines(path):
    rows = {}
    for l in open(path):
        if l.strip():
            r = json.loads(l)
            rows[r["name"]] = r  # latest wins, first position kept
    return list(rows.values())
rows = lines(sys.argv[1])
ref = next((r for r in rows if r["name"].startswith("gtr_reference.py")), None)
print(f"\n### Encoder throughput, gtr-t5-base shape, 512 passages, {sys.argv[2]} threads\n")
print("| system | tokens/s (best) | × Debian torch | median s | peak RSS MB |\n|---|---|---|---|---|")
for r in rows:
    if "error" in r:
        print(f"| {r['name']} | failed: {r['error']} | | | |")
        continue
    best = r.get("best_tokens_per_s", r["tokens_per_s"])
    ratio = f"{best / ref.get('best_tokens_per_s', ref['tokens_per_s']):.2f}" if ref else ""
    print(f"| {r['name']} | {best:.0f} | {ratio} | {r['seconds']:.2f} | {r.get('peak_rss_mb', '')} |")
# targets of issue 16 (ratios within this run) and the encoder's rate against the peaks
def best(prefix):
    r = next((r for r in rows if r["name"].startswith(prefix) and "error" not in r), None)
    return r.get("best_tokens_per_s", r["tokens_per_s"]) if r else None
print("\n| ratio (tokens/s, this run) | value | target |\n|---|---|---|")
for a, b, want in (("gtr bf16 (library", "pytorch+sentence-transformers bfloat16", 2.0),
                   ("gtr int8 (library", "onnxruntime int8", 2.0),
                   ("gtr f32 (library", "onnxruntime fp32", 1.5)):
    x, y = best(a), best(b)
    if x and y:
        print(f"| {a.split(' (')[0]} / {b} | {x / y:.2f} | ≥ {want} {'met' if x / y >= want else 'NOT met'} |")
try:
    peak = json.load(open(sys.argv[4]))
    c = json.load(open(sys.argv[5]))
    d, ff, inner = c["d_model"], c["d_ff"], c["num_heads"] * c["d_kv"]
    gated = c.get("feed_forward_proj", "relu").startswith("gated")
    # flop per token in the products with weights (q, k, v, o, wi (two of them when gated), wo)
    fpt = 2 * c["num_layers"] * (4 * d * inner + (3 if gated else 2) * d * ff)
    t = int(sys.argv[2])
    print(f"\nEncoder rate: {fpt / 1e9:.3f} GFLOP per token in the weight products (attention's "
          f"4·L·{inner} per token and layer not counted); peak = {t} × the per-core peak of gemm_bench "
          f"(kernels {peak['kernels']}: fma {peak['fma']:.0f}, AMX bf16 {peak['amx_bf16']:.0f}, AMX int8 "
          f"{peak['amx_int8']:.0f} G op/s per core)\n")
    print("| gtr row | GFLOP/s | of fp32 FMA peak | of AMX bf16 peak | of AMX int8 peak |\n|---|---|---|---|---|")
    for r in rows:
        if r["name"].startswith("gtr ") and "library" in r["name"] and "error" not in r:
            g = r.get("best_tokens_per_s", r["tokens_per_s"]) * fpt / 1e9
            frac = lambda p: f"{100 * g / (t * p):.0f}%" if p > 0 else ""
            print(f"| {r['name']} | {g:.0f} | {frac(peak['fma'])} | {frac(peak['amx_bf16'])} | {frac(peak['amx_int8'])} |")
except (OSError, KeyError, ValueError) as e:
    print(f"\n(no peak figures: {e})")
acc = lines(sys.argv[3])
if acc:
    print("\n| embeddings compared | min cosine | mean cosine |\n|---|---|---|")
    for r in acc:
        print(f"| {r['name']} | {r['min_cos']:.6f} | {r['mean_cos']:.6f} |")
EOF
