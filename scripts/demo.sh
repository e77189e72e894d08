#!/usr/bin/env bash
# demo.sh — `make demo`: BEIR SciFact retrieved with BM25, GTR (gtr-t5-base) and both fused,
# scored as BEIR scores it, beside the published numbers.
#
# Fetches what is missing into data/ (git-ignored): the model with `gtr pull`, the dataset with
# `gtr pull-dataset`. Offline it says what is missing and how to point at local copies, and
# still runs every method whose inputs it has (BM25 needs only the dataset; a copy of SciFact
# in ../shared/beir/scifact is used when the download fails).
#
# environment:
#   GTR_MODEL=DIR        a local gtr-t5-base (sentence-transformers layout) instead of pulling
#   SCIFACT=DIR          a local SciFact folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)
#   GTR_DEMO_DATA=DIR    where downloads and cached indexes go (default data)
#   GTR_DEMO_DTYPE=bf16  encode with bfloat16 weights (about twice as fast; default f32)
#   GTR_DEMO_THREADS=N   threads (default all cores)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
GTR=bin/gtr
DATA=${GTR_DEMO_DATA:-data}
SHARED=${GTR_SHARED:-../shared}
DTYPE=${GTR_DEMO_DTYPE:-f32}
THREADS=${GTR_DEMO_THREADS:-}
mkdir -p "$DATA" || exit 1
missing=()
notes=()

say() { echo "demo: $*" >&2; }
is_dataset() { [ -f "$1/corpus.jsonl" ] && [ -f "$1/queries.jsonl" ] && [ -f "$1/qrels/test.tsv" ]; }
is_model() { [ -f "$1/modules.json" ] && [ -f "$1/config.json" ]; }
# the last line a failed command printed: its reason
reason() { tail -n 1 "$1" 2>/dev/null | sed 's/^gtr [a-z-]*: //'; }

# ---- SciFact
sf=""
if [ -n "${SCIFACT:-}" ]; then
    if is_dataset "$SCIFACT"; then sf=$SCIFACT
    else missing+=("SCIFACT=$SCIFACT is not a BEIR folder (it needs corpus.jsonl, queries.jsonl, qrels/test.tsv)"); fi
elif is_dataset "$DATA/datasets/scifact"; then
    sf=$DATA/datasets/scifact
else
    say "fetching SciFact (gtr pull-dataset scifact --dir $DATA/datasets)"
    if $GTR pull-dataset scifact --dir "$DATA/datasets" -q >/dev/null 2>"$DATA/pull-dataset.err" &&
        is_dataset "$DATA/datasets/scifact"; then
        sf=$DATA/datasets/scifact
    elif is_dataset "$SHARED/beir/scifact"; then
        sf=$SHARED/beir/scifact
        notes+=("SciFact download failed ($(reason "$DATA/pull-dataset.err")); used the local copy in $sf")
    else
        missing+=("SciFact: download failed ($(reason "$DATA/pull-dataset.err")).
    Point the demo at a local copy: SCIFACT=/path/to/scifact make demo")
    fi
fi

# ---- gtr-t5-base
model=""
if [ -n "${GTR_MODEL:-}" ]; then
    if is_model "$GTR_MODEL"; then model=$GTR_MODEL
    else missing+=("GTR_MODEL=$GTR_MODEL is not a sentence-transformers model directory (no modules.json/config.json)"); fi
elif is_model "$DATA/models/gtr-t5-base"; then
    model=$DATA/models/gtr-t5-base
else
    say "fetching gtr-t5-base (gtr pull sentence-transformers/gtr-t5-base --dir $DATA/models/gtr-t5-base, ~440 MB)"
    if $GTR pull sentence-transformers/gtr-t5-base --dir "$DATA/models/gtr-t5-base" -q >/dev/null \
            2>"$DATA/pull.err" && is_model "$DATA/models/gtr-t5-base"; then
        model=$DATA/models/gtr-t5-base
    else
        missing+=("gtr-t5-base: download failed ($(reason "$DATA/pull.err")).
    Point the demo at a local copy: GTR_MODEL=/path/to/gtr-t5-base make demo
    (the directory of sentence-transformers/gtr-t5-base from the Hugging Face hub)")
    fi
fi

report_missing() {
    [ ${#missing[@]} -eq 0 ] && return
    echo
    echo "Missing, so not run:"
    for m in "${missing[@]}"; do echo "  - $m"; done
}

if [ -z "$sf" ]; then
    echo "demo: nothing to run without SciFact."
    report_missing
    exit 1
fi
for n in "${notes[@]}"; do say "note: $n"; done
common=(-d "$sf" --cache "$DATA/cache")
[ -n "$THREADS" ] && common+=(-t "$THREADS")

# BM25 first: seconds, so there is a result before the long part
if [ -z "$model" ]; then
    $GTR beir "${common[@]}" --method bm25
    rc=$?
    echo
    echo "(GTR and hybrid need the model: see below.)"
    report_missing
    exit $rc
fi
$GTR beir "${common[@]}" --method bm25 -q >/dev/null || exit 1
say "BM25 ready. Encoding SciFact's 5,183 passages with $model ($DTYPE) comes next: on a"
say "few cores this takes tens of minutes (progress and ETA below), once — the index is cached"
say "in $DATA/cache. Ctrl-C stops at a checkpoint; running make demo again resumes there."
$GTR beir "${common[@]}" --method bm25,dense,hybrid -m "$model" --dtype "$DTYPE"
rc=$?
report_missing
exit $rc
