#!/usr/bin/env bash
# embed_cli.sh — `gtr embed` and `gtr info` end to end: output formats, parity with the
# reference embeddings, batch/thread invariance, BEIR inputs, errors and atomic output.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
M=$SHARED/models/gtr-small
REF=$M/reference
plan 32

# floats of a little-endian float32 .npy (after its header) or raw .f32 file, one per line
npy_floats() { local hl; hl=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' '); od -An -v -f -w4 -j$((10 + hl)) "$1"; }
f32_floats() { od -An -v -f -w4 "$1"; }
max_diff() { paste <(cat "$1") <(cat "$2") | awk '{d=$1-$2; if (d<0) d=-d; if (d>m) m=d} END {printf "%.3g\n", m+0}'; }

ok "embed reference texts to .npy" $GTR embed -m "$M" -i "$REF/texts.jsonl" -o "$TMP/e.npy" -q
npy_floats "$TMP/e.npy" > "$TMP/got"; npy_floats "$REF/embeddings.npy" > "$TMP/want"
is "$(wc -l < "$TMP/got")" "$((66 * 192))" "66 x 192 floats"
d=$(max_diff "$TMP/got" "$TMP/want")
echo "# max |gtr embed - reference| = $d"
is "$(awk -v d="$d" 'BEGIN {print (d <= 1e-5) ? "ok" : "too large"}')" "ok" "matches embeddings.npy within 1e-5"
like "$(head -c 100 "$TMP/e.npy" | tr -d '\0' | tr -c '[:print:]' '.')" "NUMPY.*'descr': '<f4'.*'shape': \(66, 192\)" ".npy header"

ok "raw float32 by extension" $GTR embed -m "$M" -i "$REF/texts.jsonl" -o "$TMP/e.f32" -q
is "$(stat -c %s "$TMP/e.f32")" "$((66 * 192 * 4))" ".f32 size"
f32_floats "$TMP/e.f32" > "$TMP/got32"
is "$(max_diff "$TMP/got" "$TMP/got32")" "0" ".f32 holds the same values"

head -40 "$REF/texts.jsonl" > "$TMP/t40.jsonl"
ok "batch 1, one thread" $GTR embed -m "$M" -i "$TMP/t40.jsonl" -o "$TMP/b1.f32" --batch 1 --threads 1 -q
ok "batch 7, three threads" $GTR embed -m "$M" -i "$TMP/t40.jsonl" -o "$TMP/b7.f32" --batch 7 --threads 3 -q
is "$(max_diff <(f32_floats "$TMP/b1.f32") <(f32_floats "$TMP/b7.f32"))" "0" "batch size and threads do not change vectors"

# BEIR corpus objects: (title + " " + text).strip(); ids carried into JSON lines
printf '%s\n' '{"_id": "d1", "title": "Dense retrieval", "text": "GTR uses a T5 encoder."}' \
              '{"_id": "d2", "title": "", "text": "  only text  "}' > "$TMP/corpus.jsonl"
printf '%s\n' 'Dense retrieval GTR uses a T5 encoder.' 'only text' > "$TMP/plain.txt"
ok "corpus to jsonl" $GTR embed -m "$M" -i "$TMP/corpus.jsonl" -o "$TMP/c.jsonl" -q
is "$(wc -l < "$TMP/c.jsonl")" "2" "one line per document"
like "$(head -1 "$TMP/c.jsonl")" '^\{"_id": "d1", "embedding": \[-?[0-9]' "jsonl line carries the id"
ok "plain lines of the same passages" $GTR embed -m "$M" -i "$TMP/plain.txt" -o "$TMP/p.f32" -q
ok "corpus to f32" $GTR embed -m "$M" -i "$TMP/corpus.jsonl" -o "$TMP/c.f32" -q
is "$(cmp "$TMP/p.f32" "$TMP/c.f32" && echo same)" "same" "title + text is embedded as BEIR joins it"

# standard output: JSON lines by default, .npy on request
out=$(echo "hello world" | $GTR embed -m "$M" -q)
like "$out" '^\[-?[0-9].*\]$' "stdout defaults to a JSON array per text"
is "$(echo "hello world" | $GTR embed -m "$M" -q --format npy | head -c 6 | tail -c 5)" "NUMPY" "--format npy to stdout"

# empty input: a [0, dim] array
: > "$TMP/empty.txt"
ok "empty input" $GTR embed -m "$M" -i "$TMP/empty.txt" -o "$TMP/empty.npy" -q
like "$(head -c 80 "$TMP/empty.npy" | tr -c '[:print:]' '.')" "'shape': \(0, 192\)" "empty input gives shape (0, 192)"

# errors: clear message, non-zero status, nothing written
fails "missing model" $GTR embed -m "$TMP/nope" -i "$TMP/plain.txt" -o "$TMP/x.npy"
like "$(cat "$TMP/err")" "nope.*not a model directory" "message names the directory"
printf '%s\n' '"fine"' '{"text": ' > "$TMP/bad.jsonl"
fails "bad JSON line" $GTR embed -m "$M" -i "$TMP/bad.jsonl" -o "$TMP/bad.npy"
like "$(cat "$TMP/err")" "bad.jsonl:2" "message names file and line"
is "$(ls "$TMP" | grep -c '^bad.npy')" "0" "no output file left behind"
fails "unknown option" $GTR embed -m "$M" --frobnicate

# gtr info
ok "info" $GTR info -m "$M"
like "$(cat "$TMP/out")" "parameters: 11,422,080 " "info: parameter count"
like "$(cat "$TMP/out")" "storage: encoder F16 .*model.safetensors" "info: storage dtype and files"

# GTR_CPU: a name that is not a kernel path is refused (the kernels would take it for the
# slowest one); set but empty is unset
out=$(GTR_CPU=avx512+vnni $GTR embed -m "$M" <<<'{"text": "x"}' 2>&1 >/dev/null); st=$?
is "$st" 2 "GTR_CPU=avx512+vnni: exit 2"
like "$out" "^gtr: GTR_CPU=avx512\+vnni: not a kernel path" "... one line naming it"
is "$(GTR_CPU= $GTR version | grep '^cpu:')" "$(env -u GTR_CPU $GTR version | grep '^cpu:')" "GTR_CPU= (empty): the path chosen when unset"

