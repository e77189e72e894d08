#!/usr/bin/env bash
# sharded_cli.sh — sharded checkpoints as transformers saves big models, made here from
# gtr-tiny by tests/scripts/shard_model.py: model-0000i-of-00003.safetensors and
# pytorch_model-0000i-of-00003.bin with their *.index.json give the same vectors (and
# fingerprint) as the single file; an index that lies is refused naming the tensor.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
if ! command -v python3 >/dev/null; then
    echo "1..0 # SKIP python3 not found"
    exit 0
fi
M=$SHARED/models/gtr-tiny
plan 9
python3 tests/scripts/shard_model.py "$M" "$TMP/st" 3
python3 tests/scripts/shard_model.py --bin "$M" "$TMP/bin" 3
printf '%s\n' "sharded checkpoints" "load like one file" > "$TMP/t.txt"
ok "single file" $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/one.f32" -q
ok "three safetensors shards" $GTR embed -m "$TMP/st" -i "$TMP/t.txt" -o "$TMP/st.f32" -q
is "$(cmp "$TMP/one.f32" "$TMP/st.f32" && echo same)" "same" "... the same vectors"
ok "three pytorch_model.bin shards" $GTR embed -m "$TMP/bin" -i "$TMP/t.txt" -o "$TMP/bin.f32" -q
is "$(cmp "$TMP/one.f32" "$TMP/bin.f32" && echo same)" "same" "... the same vectors"
is "$($GTR info -m "$TMP/bin" | grep fingerprint)" "$($GTR info -m "$M" | grep fingerprint)" "... the same fingerprint"
# the .bin index moves a tensor to a shard that does not hold it
python3 - "$TMP/bin/pytorch_model.bin.index.json" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); wm = j["weight_map"]
k = next(iter(wm)); wm[k] = next(f for f in sorted(set(wm.values())) if f != wm[k])
json.dump(j, open(p, "w"))
PY
fails "a lying index" $GTR info -m "$TMP/bin"
like "$(cat "$TMP/err")" "pytorch_model.bin.index.json: tensor '.*' is listed in pytorch_model-0000.-of-00003.bin but is stored in" "... names the tensor and both shards"
rm "$TMP/st/model-00002-of-00003.safetensors"
fails "a missing shard" $GTR info -m "$TMP/st"
done_testing
