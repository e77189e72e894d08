#!/usr/bin/env bash
# quantize_cli.sh — `gtr quantize` end to end: usage errors, bf16 and int8 copies of gtr-small
# that `gtr embed` / `gtr info` / `gtr index` / `gtr search` load directly, with the same
# vectors as the original at that --dtype, the original's fingerprint (an index built with
# one is searched with the other), a refused existing output, nothing left behind on failure,
# a copy with one flipped byte inside a weight refused with one line naming the file and the
# tensor (loaded with GTR_NO_VERIFY=1), and (when .venv-bench exists) sentence-transformers
# loading the bf16 copy.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
M=$SHARED/models/gtr-small
SF=$SHARED/beir/scifact
need_shared -d "$M" -f "$SF/corpus.jsonl"
plan 60

ok "--help" $GTR quantize --help
like "$(cat "$TMP/out")" "int8-per-channel-v1" "--help documents the int8 format"
fails "no --dtype" $GTR quantize -m "$M" -o "$TMP/x"
like "$(cat "$TMP/err")" "--dtype" "... says what is missing"
fails "--dtype f32 is not a quantisation" $GTR quantize -m "$M" -o "$TMP/x" --dtype f32
fails "no output" $GTR quantize -m "$M" --dtype int8

ok "quantize to int8" $GTR quantize -m "$M" -o "$TMP/q8" --dtype int8 -q
ok "quantize to bf16" $GTR quantize -m "$M" -o "$TMP/qb" --dtype bf16 -q
ok "quantize to bf16 --portable" $GTR quantize -m "$M" -o "$TMP/qp" --dtype bf16 --portable -q
fails "--portable int8 is refused" $GTR quantize -m "$M" -o "$TMP/qp8" --dtype int8 --portable
is "$(ls -d "$TMP"/*.tmp 2>/dev/null | wc -l | tr -d ' ')" "0" "no staging directory left"
is "$(( $(stat -c %s "$TMP/q8/model.safetensors") * 10 / $(stat -c %s "$M/model.safetensors") ))" "5" \
   "int8 file is about half the F16 original (a quarter of float32)"

# plain passages (the reference texts include special-token literals that the HF tokenizer
# treats differently, see ../shared/README.md)
sed -n '101,130p' "$SHARED/tokenizer/texts.jsonl" > "$TMP/t.jsonl"
for dt in int8 bf16 portable; do
    d=$TMP/q${dt:0:1}; [ $dt = int8 ] && d=$TMP/q8
    [ $dt = portable ] && { d=$TMP/qp; dt=bf16; }
    $GTR embed -m "$M" -i "$TMP/t.jsonl" -o "$TMP/orig_$dt.npy" --dtype $dt -q
    ok "gtr embed loads the $dt copy ($d)" $GTR embed -m "$d" -i "$TMP/t.jsonl" -o "$TMP/copy_$dt.npy" --dtype $dt -q
    ok "... same vectors as the original with --dtype $dt" cmp "$TMP/orig_$dt.npy" "$TMP/copy_$dt.npy"
done
# Above GTR_MAX_SHARD_BYTES (5 GB by default, as transformers) the copy is split into
# model-0000k-of-0000K.safetensors + model.safetensors.index.json, as transformers saves it
ok "int8 copy above a 2 MB shard limit" env GTR_MAX_SHARD_BYTES=2000000 $GTR quantize -m "$M" -o "$TMP/q8s" --dtype int8
like "$(cat "$TMP/err")" "[0-9]+ shards \(model.safetensors.index.json\)" "... the summary counts the shards"
shards_ok() { /usr/bin/python3 - "$1" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(d, "model*.safetensors")))
named = sorted(set(json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"].values()))
k = len(named)
want = ["model-%05d-of-%05d.safetensors" % (i + 1, k) for i in range(k)]
print("ok" if k >= 2 and files == named == want else "bad: %s / %s" % (files, named))
PY
}
is "$(shards_ok "$TMP/q8s")" "ok" "... several shards named as transformers names them, exactly the files the index names"
ok "gtr embed loads the sharded int8 copy" $GTR embed -m "$TMP/q8s" -i "$TMP/t.jsonl" -o "$TMP/copy_int8s.npy" --dtype int8 -q
ok "... same vectors as the original with --dtype int8" cmp "$TMP/orig_int8.npy" "$TMP/copy_int8s.npy"
ok "gtr info on the sharded copy" $GTR info -m "$TMP/q8s"
like "$(cat "$TMP/out")" "checksums: [0-9]+ tensors verified" "... verifies the checksums of every shard"
ok "--portable bf16 copy above a 4 MB shard limit" env GTR_MAX_SHARD_BYTES=4000000 $GTR quantize -m "$M" -o "$TMP/qps" --dtype bf16 --portable -q
is "$(shards_ok "$TMP/qps")" "ok" "... in shards"
ok "... same vectors as the original with --dtype bf16" sh -c "$GTR embed -m '$TMP/qps' -i '$TMP/t.jsonl' -o '$TMP/copy_bf16s.npy' --dtype bf16 -q && cmp '$TMP/orig_bf16.npy' '$TMP/copy_bf16s.npy'"

ok "gtr info on the int8 copy --dtype int8" $GTR info -m "$TMP/q8" --dtype int8
like "$(cat "$TMP/out")" "mapped from the file in place" "... its weights are used from the mapping"

ok "gtr info on the int8 copy" $GTR info -m "$TMP/q8"
like "$(cat "$TMP/out")" "storage: encoder F32\+I8\+I32 " "info shows the I8 storage"
like "$(cat "$TMP/out")" "compute: INT8 weights \([0-9.]+ MiB, [0-9.]+ MiB of them mapped from the file in place\)" \
     "... without --dtype: loaded in the copy's own dtype, mapped in place"
ok "gtr info on the bf16 copy" $GTR info -m "$TMP/qb"
like "$(cat "$TMP/out")" "compute: BF16 weights \([0-9.]+ MiB, [0-9.]+ MiB of them mapped from the file in place\)" \
     "... without --dtype: bf16, mapped in place"
ok "gtr info on the --portable bf16 copy" $GTR info -m "$TMP/qp"
like "$(cat "$TMP/out")" "compute: BF16 weights" "... without --dtype: bf16 (its Linear weights are BF16)"
ok "gtr info on the F16 original" $GTR info -m "$M"
like "$(cat "$TMP/out")" "compute: F32 weights" "... without --dtype: f32, as before"
ok "gtr info on the int8 copy --dtype f32" $GTR info -m "$TMP/q8" --dtype f32
like "$(cat "$TMP/out")" "compute: F32 weights" "... --dtype still chooses"
fp_orig=$($GTR info -m "$M" | sed -n 's/^fingerprint: //p')
like "$(cat "$TMP/out")" "fingerprint: $fp_orig" "the copy answers to the original's fingerprint"

like "$(cat "$TMP/out")" "checksums: [0-9]+ tensors verified \(crc32c\)" "info: the load verified the checksums"
ok "... also with the table CRC (GTR_CPU=generic: no SSE4.2 instruction)" env GTR_CPU=generic $GTR info -m "$TMP/q8"

# one flipped byte in the middle of a weight body: refused, one line naming file and tensor
cp -r "$TMP/q8" "$TMP/q8flip"
/usr/bin/python3 - "$TMP/q8flip/model.safetensors" <<'EOF'
import json, struct, sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", d[:8])[0]
b, e = json.loads(d[8:8 + n])["encoder.block.2.packed.wi"]["data_offsets"]
d[8 + n + (b + e) // 2] ^= 0x01
open(p, "wb").write(d)
EOF
fails "gtr embed refuses the copy with a flipped byte" $GTR embed -m "$TMP/q8flip" -i "$TMP/t.jsonl" -o "$TMP/flip.npy" -q
is "$(wc -l < "$TMP/err" | tr -d ' ')" "1" "... with one line"
like "$(cat "$TMP/err")" "q8flip/model.safetensors: tensor 'encoder.block.2.packed.wi' is damaged" "... naming the file and the tensor"
fails "gtr info refuses it too" $GTR info -m "$TMP/q8flip"
ok "GTR_NO_VERIFY=1 loads it" env GTR_NO_VERIFY=1 $GTR info -m "$TMP/q8flip"
like "$(cat "$TMP/out")" "checksums: not verified" "... and says so"

# an index built with the original (int8) is searched with the int8 copy
head -n 200 "$SF/corpus.jsonl" > "$TMP/c.jsonl"
head -n 10 "$SF/queries.jsonl" > "$TMP/queries.jsonl"
ok "index with the original, --dtype int8" $GTR index -q -m "$M" --dtype int8 -c "$TMP/c.jsonl" -o "$TMP/a.gtri"
ok "search it with the int8 copy" $GTR search --index "$TMP/a.gtri" -m "$TMP/q8" -q "$TMP/queries.jsonl" -k 5 -o "$TMP/run" --quiet
is "$(wc -l < "$TMP/run" | tr -d ' ')" "50" "... 5 hits for each of 10 queries"

fails "an existing output is refused" $GTR quantize -m "$M" -o "$TMP/q8" --dtype bf16
like "$(cat "$TMP/err")" "already exists" "... with a clear message"
fails "a directory that is not a model" $GTR quantize -m "$TMP" -o "$TMP/bad" --dtype int8
is "$(ls -d "$TMP/bad" "$TMP/bad.tmp" 2>/dev/null | wc -l | tr -d ' ')" "0" "nothing written on failure"

# Python's sentence-transformers loads the bf16 copy (when the bench venv exists)
PY=.venv-bench/bin/python
if [ -x "$PY" ] && "$PY" -c "import sentence_transformers" >/dev/null 2>&1; then
    cat > "$TMP/st.py" <<'EOF'
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
model, texts, emb = sys.argv[1:4]
m = SentenceTransformer(model, device="cpu", model_kwargs={"dtype": "float32"})
e = m.encode([json.loads(l) for l in open(texts)], convert_to_numpy=True)
g = np.load(emb)
cos = (e * g).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(g, axis=1)
print(f"min cosine {cos.min():.6f}")
sys.exit(0 if cos.min() > 0.999 else 1)
EOF
    ok "sentence-transformers loads the bf16 copy (cosine to gtr's bf16 vectors > 0.999)" \
       "$PY" "$TMP/st.py" "$TMP/qp" "$TMP/t.jsonl" "$TMP/copy_bf16.npy"
    ok "sentence-transformers loads the sharded bf16 copy (index json as transformers writes it)" \
       "$PY" "$TMP/st.py" "$TMP/qps" "$TMP/t.jsonl" "$TMP/copy_bf16.npy"
else
    _tap_n=$((_tap_n+1)); echo "ok $_tap_n # skip no .venv-bench with sentence-transformers (make venv-bench)"
    _tap_n=$((_tap_n+1)); echo "ok $_tap_n # skip no .venv-bench with sentence-transformers (make venv-bench)"
fi
done_testing
