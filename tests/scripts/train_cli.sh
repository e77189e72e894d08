#!/usr/bin/env bash
# train_cli.sh — `gtr train` and `gtr mine-negatives` end to end on gtr-tiny and SciFact's
# train qrels: a run killed with SIGKILL between checkpoints and resumed ends with the very
# files of an uninterrupted run; SIGTERM checkpoints and exits 130; the metrics log is
# consistent after a resume; options that differ are refused on resume; mined negatives feed
# a second stage; the result loads in `gtr embed`.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
plan 21

MODEL=$SHARED/models/gtr-tiny
DATA=$SHARED/beir/scifact
ARGS=(--init "$MODEL" -d "$DATA" --steps 24 --batch 24 --micro-batch 10 --passage-max-len 96
      --checkpoint-every 4 --warmup 3 --seed 3 --threads 2 -q)

ok "--help" "$GTR" train --help
like "$(cat "$TMP/out")" "--resume" "--help documents --resume"
fails "missing --init is a usage error" "$GTR" train -d "$DATA" -o "$TMP/x"
is "$("$GTR" train -d "$DATA" -o "$TMP/x" >/dev/null 2>&1; echo $?)" "2" "usage errors exit 2"

# the uninterrupted reference run
ok "uninterrupted run" "$GTR" train "${ARGS[@]}" -o "$TMP/a"

# a run killed (SIGKILL: no chance to save anything) after a checkpoint, before the next one
"$GTR" train "${ARGS[@]}" -o "$TMP/b" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    n=$({ wc -l < "$TMP/b.metrics.jsonl"; } 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 6 ] && break
    sleep 0.02
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
killed=$?
steps_logged=$(wc -l < "$TMP/b.metrics.jsonl")
if [ "$killed" = 137 ] && [ -f "$TMP/b.ckpt" ] && [ ! -d "$TMP/b" ]; then r=0; else r=1; fi
_tap_result $r "SIGKILL mid-run leaves a checkpoint and no model (killed after step $steps_logged)"
ok "resume after SIGKILL" "$GTR" train "${ARGS[@]}" -o "$TMP/b" --resume
ok "resumed model == uninterrupted model (encoder)" cmp "$TMP/a/model.safetensors" "$TMP/b/model.safetensors"
ok "resumed model == uninterrupted model (Dense)" cmp "$TMP/a/2_Dense/model.safetensors" "$TMP/b/2_Dense/model.safetensors"
is "$(grep -o '"step": [0-9]*' "$TMP/b.metrics.jsonl" | awk '{print $2}' | tr '\n' ' ')" \
   "$(seq 1 24 | tr '\n' ' ')" "metrics log: steps 1..24 once each after the resume"
ok "a finished run removes its checkpoint" test ! -e "$TMP/b.ckpt"

# SIGTERM: finish the step, checkpoint, exit 130
"$GTR" train "${ARGS[@]}" --checkpoint-every 0 -o "$TMP/c" >/dev/null 2>"$TMP/c.err" &
pid=$!
for _ in $(seq 1 600); do
    n=$({ wc -l < "$TMP/c.metrics.jsonl"; } 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.02
done
kill -TERM $pid
wait $pid
is "$?" "130" "SIGTERM exits 130"
like "$(cat "$TMP/c.err")" "continue with --resume" "SIGTERM says how to continue"
fails "resume with another learning rate is refused" "$GTR" train "${ARGS[@]}" --checkpoint-every 0 --lr 0.002 -o "$TMP/c" --resume
like "$(cat "$TMP/err")" "option 'lr'" "the refusal names the option"
ok "resume after SIGTERM" "$GTR" train "${ARGS[@]}" --checkpoint-every 0 -o "$TMP/c" --resume
ok "resumed after SIGTERM == uninterrupted" cmp "$TMP/a/model.safetensors" "$TMP/c/model.safetensors"

fails "an existing output is not overwritten" "$GTR" train "${ARGS[@]}" -o "$TMP/a"

# second stage: negatives mined by the trained model
ok "mine-negatives" "$GTR" mine-negatives -m "$TMP/a" -d "$DATA" -o "$TMP/negs.jsonl" -k 2 --max-len 96 -q
ok "stage 2 on mined negatives, loadable by gtr embed" \
   bash -c "'$GTR' train --init '$TMP/a' -d '$TMP/negs.jsonl' -o '$TMP/s2' --steps 2 --batch 8 --passage-max-len 64 -q &&
            echo 'a query' | '$GTR' embed -m '$TMP/s2' --format jsonl | grep -q '\\['"
# Python's sentence-transformers loads the result with the same embeddings (when the bench
# virtual environment exists: make venv-bench; skipped otherwise)
PY=.venv-bench/bin/python
if [ -x "$PY" ] && "$PY" -c "import sentence_transformers" >/dev/null 2>&1; then
    sed -n '101,110p' "$SHARED/tokenizer/texts.jsonl" > "$TMP/t.jsonl"
    "$GTR" embed -m "$TMP/a" -i "$TMP/t.jsonl" -o "$TMP/e.npy" -q
    cat > "$TMP/st.py" <<'EOF'
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
model, texts, emb = sys.argv[1:4]
m = SentenceTransformer(model, device="cpu")
e = m.encode([json.loads(l) for l in open(texts)], convert_to_numpy=True)
d = float(np.abs(e - np.load(emb)).max())
print(f"max |diff| {d:.3g}")
sys.exit(0 if d < 1e-5 else 1)
EOF
    ok "sentence-transformers loads the trained model with gtr's embeddings" "$PY" "$TMP/st.py" "$TMP/a" "$TMP/t.jsonl" "$TMP/e.npy"
else
    _tap_n=$((_tap_n+1)); echo "ok $_tap_n # skip no .venv-bench with sentence-transformers (make venv-bench)"
fi
done_testing
