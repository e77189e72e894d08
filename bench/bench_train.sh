#!/usr/bin/env bash
# bench_train.sh — training throughput of `gtr train` against PyTorch autograd
# (bench/train_torch.py on Debian's python3-torch + OpenBLAS) on the same model, the same batch
# and the same thread count, run alternately in the same session. Prints a Markdown table.
#
#   bench/bench_train.sh      (BENCH_THREADS=N, default all cores; BENCH_RUNS=R alternations,
#                              default 3; BENCH_STEPS=S steps per run, default 4;
#                              BENCH_BATCH=B, default 32; BENCH_BASE=1 also a gtr-t5-base-sized
#                              random model from ../shared/reference/gtr_reference.py make-model;
#                              BENCH_SCIFACT=0 skips the fine-tuning demo below)
#
# The batch: B SciFact train pairs with distinct queries and distinct positives, each with one
# hard negative (a corpus document that is no batch positive): B queries (≤ 64 tokens),
# B positives and B negatives (≤ 256 tokens), GTR's fine-tuning lengths. Both sides train on
# this one batch every step (gtr: `-d batch.jsonl --batch B`, one batch = the whole file), so
# their losses must agree step by step (checked: step 1 to 1e-4). Throughput = real tokens
# (incl. </s>) of the batch / wall time of a whole step (forward, loss, backward, Adafactor
# update), median of steps 2..S; the table shows the best run of each side (the machine may be
# shared with other jobs).
#
# Then the fine-tuning demo (about 10 minutes on 2 cores): ../shared/models/gtr-small (random
# weights) trained on SciFact's train qrels (919 query/abstract pairs) with `gtr train`, and
# `gtr beir --method dense` on the test split before and after. Prints the nDCG@10 table and the
# loss per epoch; the metrics log stays in build/bench/train/scifact.metrics.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${BENCH_THREADS:-$(nproc)}
runs=${BENCH_RUNS:-3}
steps=${BENCH_STEPS:-4}
B=${BENCH_BATCH:-32}
out=build/bench/train
mkdir -p "$out"
scripts/deps.sh bench >/dev/null
[ -x bin/gtr ] || make -s bin/gtr

batch=$out/batch$B.jsonl
/usr/bin/python3 - "$B" "$batch" <<'EOF'
import json, sys
B, path = int(sys.argv[1]), sys.argv[2]
root = "../shared/beir/scifact"
q = {o["_id"]: o["text"] for o in map(json.loads, open(root + "/queries.jsonl"))}
docs = [json.loads(l) for l in open(root + "/corpus.jsonl")]
c = {o["_id"]: (o.get("title", "") + " " + o["text"]).strip() for o in docs}
rows, sq, sd = [], set(), set()
for line in list(open(root + "/qrels/train.tsv"))[1:]:
    a, b, s = line.split("\t")
    if int(s) >= 1 and a not in sq and b not in sd:
        sq.add(a); sd.add(b); rows.append((a, b))
negs = [o["_id"] for o in docs if o["_id"] not in sd]
with open(path, "w") as f:
    for k, (a, b) in enumerate(rows[:B]):
        f.write(json.dumps({"query": q[a], "pos": c[b], "neg": [c[negs[7 * k]]]}) + "\n")
EOF

models=("../shared/models/gtr-small")
if [ "${BENCH_BASE:-0}" = 1 ]; then
    [ -f build/bench/gtr-base/model.safetensors ] ||
        /usr/bin/python3 ../shared/reference/gtr_reference.py make-model --config base --out build/bench/gtr-base >&2
    models+=("build/bench/gtr-base")
fi

results=$out/results.jsonl
: > "$results"
for model in "${models[@]}"; do
    for r in $(seq 1 "$runs"); do
        echo "bench_train: $model run $r/$runs: gtr" >&2
        bin/gtr train --init "$model" -d "$batch" --batch "$B" --steps "$steps" --schedule constant \
            -o "$out/model" --overwrite --metrics "$out/gtr.jsonl" --checkpoint-every 0 \
            --threads "$threads" -q
        /usr/bin/python3 - "$model" "$out/gtr.jsonl" "$threads" >> "$results" <<'EOF'
import json, statistics, sys
m = [json.loads(l) for l in open(sys.argv[2])]
tail = m[1:] if len(m) > 1 else m
print(json.dumps({"model": sys.argv[1], "side": "gtr", "threads": int(sys.argv[3]),
                  "tokens_per_step": m[0]["tokens"],
                  "tokens_per_s": round(m[0]["tokens"] / statistics.median(x["seconds"] for x in tail), 1),
                  "step_seconds": [round(x["seconds"], 3) for x in m], "losses": [x["loss"] for x in m]}))
EOF
        echo "bench_train: $model run $r/$runs: torch" >&2
        /usr/bin/python3 bench/train_torch.py --model "$model" --data "$batch" --batch "$B" \
            --steps "$steps" --threads "$threads" |
            /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["model"]=sys.argv[1]; d["side"]="torch"; print(json.dumps(d))' "$model" >> "$results"
    done
done

/usr/bin/python3 - "$results" "$threads" "$B" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n| model | threads | batch (q+p+n texts) | tokens/step | gtr tok/s | PyTorch tok/s | gtr / PyTorch | loss step 1 gtr / PyTorch | loss step S gtr / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|")
for model in dict.fromkeys(r["model"] for r in rows):
    g = max((r for r in rows if r["model"] == model and r["side"] == "gtr"), key=lambda r: r["tokens_per_s"])
    t = max((r for r in rows if r["model"] == model and r["side"] == "torch"), key=lambda r: r["tokens_per_s"])
    print(f"| {model.split('/')[-1]} | {sys.argv[2]} | {sys.argv[3]}×3 | {g['tokens_per_step']} | {g['tokens_per_s']:.0f} | "
          f"{t['tokens_per_s']:.0f} | {g['tokens_per_s'] / t['tokens_per_s']:.2f}× | "
          f"{g['losses'][0]:.6f} / {t['losses'][0]:.6f} | {g['losses'][-1]:.6f} / {t['losses'][-1]:.6f} |")
EOF

[ "${BENCH_SCIFACT:-1}" = 1 ] || exit 0
demo=$out/scifact
rm -rf "$demo" "$demo.ckpt" "$out/cache"
ndcg() { grep '^dense' | awk '{print $2}'; }
t0=$(date +%s)
before=$(bin/gtr beir -d ../shared/beir/scifact -m ../shared/models/gtr-small --method dense \
             --cache "$out/cache" --threads "$threads" 2>/dev/null | ndcg)
t1=$(date +%s)
bin/gtr train --init ../shared/models/gtr-small -d ../shared/beir/scifact -o "$demo" --epochs 6 \
    --batch 64 --micro-batch 32 --passage-max-len 256 --warmup 8 --threads "$threads" \
    --metrics "$out/scifact.metrics.jsonl" --log-every 10 2>"$out/scifact.train.log"
t2=$(date +%s)
after=$(bin/gtr beir -d ../shared/beir/scifact -m "$demo" --method dense --cache "$out/cache" \
            --threads "$threads" 2>/dev/null | ndcg)
t3=$(date +%s)
echo
echo "| model | nDCG@10 (SciFact test) | time |"
echo "|---|---|---|"
echo "| gtr-small, random weights | $before | $((t1 - t0)) s (gtr beir: encode corpus + search) |"
echo "| + gtr train on SciFact train (6 epochs, batch 64) | $after | train $((t2 - t1)) s, gtr beir $((t3 - t2)) s |"
/usr/bin/python3 - "$out/scifact.metrics.jsonl" <<'EOF'
import json, math, sys
m = [json.loads(l) for l in open(sys.argv[1])]
print("\n| epoch | steps | mean loss | tokens/s |\n|---|---|---|---|")
last = max(1, round(m[-1]["epoch"]))  # the last step may spill a little past the last epoch
ep = lambda x: min(last, max(1, math.ceil(x["epoch"] - 1e-9)))
for e in range(1, last + 1):
    rows = [x for x in m if ep(x) == e]
    if rows:
        toks = sum(x["tokens"] for x in rows) / sum(x["seconds"] for x in rows)
        print(f"| {e} | {rows[0]['step']}–{rows[-1]['step']} | {sum(x['loss'] for x in rows) / len(rows):.4f} | {toks:.0f} |")
EOF
