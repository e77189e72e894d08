#!/usr/bin/env bash
# index_cli.sh — `gtr index`, `gtr search` and `gtr beir` with the gtr-tiny model over parts of
# SciFact: runs in TREC format, the recorded model, model mismatch, kill -9 and resume (same
# bytes as an uninterrupted build), --add, duplicate ids and malformed lines (line numbers),
# damaged index files, the compact copy, BEIR's ignore_identical_ids, hybrid fusion, and
# `gtr beir` agreeing with `gtr search` + `gtr eval`; BM25 on all of SciFact near Anserini.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

TINY=$SHARED/models/gtr-tiny
SF=$SHARED/beir/scifact
need_shared -d "$TINY" -f "$SF/corpus.jsonl"
plan 52

head -n 1200 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 40 "$SF/queries.jsonl" >"$TMP/q.jsonl"

# ---- build, inspect, search
ok "index builds" $GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/a.gtri"
$GTR index --info "$TMP/a.gtri" >"$TMP/info" 2>&1
like "$(cat "$TMP/info")" "documents: +1200" "--info counts the documents"
like "$(cat "$TMP/info")" "model dir: +/.*gtr-tiny" "--info shows the recorded model directory"
ok "search writes a run" $GTR search --index "$TMP/a.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/run" --quiet
is "$(wc -l <"$TMP/run" | tr -d ' ')" "400" "10 hits for each of 40 queries"
like "$(head -1 "$TMP/run")" '^0 Q0 [0-9]+ 1 0\.[0-9]+ gtr-dense$' "TREC run format"
ok "an explicit -m gives the same run" $GTR search --index "$TMP/a.gtri" -m "$TINY" -q "$TMP/q.jsonl" -k 10 -o "$TMP/run_m" --quiet
ok "... byte for byte" cmp "$TMP/run" "$TMP/run_m"
ok "--query prints hits" $GTR search --index "$TMP/a.gtri" --query "vitamin D deficiency" -k 3
like "$(head -1 "$TMP/out")" '^  1  [-0-9.]+  [0-9]+  [A-Za-z]' "rank, score, id and passage start"
is "$(wc -l <"$TMP/out" | tr -d ' ')" "3" "--query -k 3 prints three hits"
fails "another model is refused" $GTR search --index "$TMP/a.gtri" -m "$SHARED/models/gtr-tiny-v11" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "built with another model" "... with a clear message"

# ---- kill -9 in the middle, then resume: identical bytes
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/k.gtri" --batch 8 --checkpoint 40 2>/dev/null &
pid=$!
for _ in $(seq 400); do [ -f "$TMP/k.gtri.ckpt" ] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
ok "the killed build left its checkpoint, not an index" test -f "$TMP/k.gtri.ckpt" -a ! -f "$TMP/k.gtri"
ok "running again resumes" $GTR index -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/k.gtri" --batch 8 --checkpoint 40
like "$(cat "$TMP/err")" "from an interrupted build" "... from the checkpoint"
ok "the resumed index equals an uninterrupted build" cmp "$TMP/a.gtri" "$TMP/k.gtri"
ok "no work files remain" test ! -e "$TMP/k.gtri.partial" -a ! -e "$TMP/k.gtri.ckpt"
# SIGTERM (a batch system's notice): the build checkpoints where it is and stops, exit 1
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/t.gtri" --batch 8 --checkpoint 40 2>"$TMP/term.err" &
pid=$!
for _ in $(seq 400); do [ -f "$TMP/t.gtri.ckpt" ] && break; sleep 0.02; done
kill -TERM $pid 2>/dev/null
wait $pid
is "$?" 1 "SIGTERM stops the build with exit status 1"
like "$(cat "$TMP/term.err")" "interrupted after [0-9]+ documents" "... saying it checkpointed"
ok "... and the same command resumes to the same index" sh -c "$GTR index -q -m '$TINY' -c '$TMP/sub.jsonl' \
    -o '$TMP/t.gtri' --batch 8 --checkpoint 40 && cmp '$TMP/a.gtri' '$TMP/t.gtri'"

# ---- --add: the first 800 documents, then the other 400, in place
head -n 800 "$TMP/sub.jsonl" >"$TMP/p1.jsonl"
tail -n +801 "$TMP/sub.jsonl" >"$TMP/p2.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/p1.jsonl" -o "$TMP/add.gtri" 2>/dev/null
ok "--add appends" $GTR index -q -m "$TINY" --add "$TMP/p2.jsonl" -o "$TMP/add.gtri"
ok "... to the same index as one build" cmp "$TMP/a.gtri" "$TMP/add.gtri"
fails "adding the same documents again fails" $GTR index -q -m "$TINY" --add "$TMP/p2.jsonl" -o "$TMP/add.gtri"
like "$(cat "$TMP/err")" "p2.jsonl:1: duplicate document id .* \(already in the base index\)" "... naming the line"

# ---- bad corpora name the line
{ head -n 2 "$TMP/sub.jsonl"; head -n 1 "$TMP/sub.jsonl"; } >"$TMP/dup.jsonl"
fails "a duplicate id is refused" $GTR index -q -m "$TINY" -c "$TMP/dup.jsonl" -o "$TMP/dup.gtri"
like "$(cat "$TMP/err")" "dup.jsonl:3: duplicate document id \"4983\" \(first on line 1\)" "... with both lines"
{ head -n 1 "$TMP/sub.jsonl"; echo '{"_id": "x", "text": oops}'; } >"$TMP/bad.jsonl"
fails "a malformed line is refused" $GTR index -q -m "$TINY" -c "$TMP/bad.jsonl" -o "$TMP/bad.gtri"
like "$(cat "$TMP/err")" "bad.jsonl:2:" "... naming the line"
# an id a later command could not write (a TREC run splits on whitespace) is refused by both
# builds, before any work; so is such a query id before any search
{ head -n 1 "$TMP/sub.jsonl"; echo '{"_id": "a b", "text": "spaced id"}'; } >"$TMP/wsid.jsonl"
fails "gtr index refuses an id with a space" $GTR index -q -m "$TINY" -c "$TMP/wsid.jsonl" -o "$TMP/wsid.gtri"
like "$(cat "$TMP/err")" 'wsid.jsonl:2: document id "a b" contains whitespace' "... naming the line"
fails "gtr bm25-index refuses it too" $GTR bm25-index -c "$TMP/wsid.jsonl" -o "$TMP/wsid.bm25"
like "$(cat "$TMP/err")" 'wsid.jsonl:2: document id "a b" contains whitespace' "... naming the line"
printf '{"_id": "q 1", "text": "x"}\n' >"$TMP/wsq.jsonl"
fails "gtr search refuses such a query id before searching" $GTR search --index "$TMP/a.gtri" -q "$TMP/wsq.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" 'wsq.jsonl:1: query id "q 1" contains whitespace' "... naming the line"

# ---- damaged index files: clean errors, not crashes
size=$(stat -c %s "$TMP/a.gtri")
head -c $((size / 2)) "$TMP/a.gtri" >"$TMP/cut.gtri"
fails "a truncated index is refused" $GTR search --index "$TMP/cut.gtri" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "truncated" "... as truncated"
fails "--no-verify still checks the structure" $GTR search --no-verify --index "$TMP/cut.gtri" -q "$TMP/q.jsonl" -o "$TMP/x"
cp "$TMP/a.gtri" "$TMP/flip.gtri"
printf '\x55' | dd of="$TMP/flip.gtri" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
fails "a damaged index is refused" $GTR search --index "$TMP/flip.gtri" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "checksum mismatch" "... by its checksums"

# ---- ignore_identical_ids: a query whose id is a document's id and whose text is that passage
printf '{"_id": "4983", "text": "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor magnetic resonance imaging"}\n' >"$TMP/self.jsonl"
$GTR search --index "$TMP/a.gtri" -q "$TMP/self.jsonl" -k 5 --quiet >"$TMP/self_run"
$GTR search --index "$TMP/a.gtri" -q "$TMP/self.jsonl" -k 5 --quiet --skip-self >"$TMP/self_skip"
is "$(awk '$3 == "4983"' "$TMP/self_run" | wc -l | tr -d ' '):$(awk '$3 == "4983"' "$TMP/self_skip" | wc -l | tr -d ' '):$(wc -l <"$TMP/self_skip" | tr -d ' ')" \
   "1:0:5" "--skip-self drops the document with the query's id and still returns k hits"

# ---- BM25 and hybrid through gtr search
$GTR bm25-index -c "$TMP/sub.jsonl" -o "$TMP/sub.bm25" --quiet 2>/dev/null
ok "bm25 search writes a run" $GTR search --method bm25 --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 10 -o "$TMP/run_bm25" --quiet
like "$(head -1 "$TMP/run_bm25")" '^0 Q0 [0-9]+ 1 [0-9.]+ gtr-bm25$' "... tagged gtr-bm25"
ok "hybrid (interpolation) search writes a run" $GTR search --method hybrid --index "$TMP/a.gtri" --bm25-index "$TMP/sub.bm25" --fusion interp --alpha 0.3 -q "$TMP/q.jsonl" -k 10 -o "$TMP/run_hyb" --quiet
# alpha 0 is BM25 alone: the same documents in the same order as the bm25 run
is "$($GTR search --method hybrid --index "$TMP/a.gtri" --bm25-index "$TMP/sub.bm25" --fusion interp --alpha 0 -q "$TMP/q.jsonl" -k 5 --quiet | awk '{print $1, $3}' | head -20)" \
   "$(awk '$4 <= 5 {print $1, $3}' "$TMP/run_bm25" | head -20)" "interp with alpha 0 ranks as BM25"

# ---- BEIR on a small slice of SciFact: beir == search + eval; the cache is reused
mkdir -p "$TMP/mini/qrels"
head -n 31 "$SF/qrels/test.tsv" >"$TMP/mini/qrels/test.tsv"
awk -F'\t' 'NR > 1 { print "{\"_id\": \"" $2 "\"" }' "$TMP/mini/qrels/test.tsv" | sort -u >"$TMP/rel_ids"
{ grep -F -f "$TMP/rel_ids" "$SF/corpus.jsonl"; head -n 500 "$SF/corpus.jsonl"; } | awk '!seen[$0]++' >"$TMP/mini/corpus.jsonl"
cp "$SF/queries.jsonl" "$TMP/mini/queries.jsonl"
ok "gtr beir runs bm25, dense and hybrid" $GTR beir -q -d "$TMP/mini" --method bm25,dense,hybrid -m "$TINY" --cache "$TMP/cache" --json --save-runs "$TMP/runs"
cp "$TMP/out" "$TMP/beir.json"
like "$(tr -d ' \n' <"$TMP/beir.json")" '^\{"bm25":\{"num_q":28,.*"ndcg_cut_10":.*"recip_rank_cut_10":[0-9.e-]+\},"dense":\{.*\},"hybrid":\{.*\}\}$' "--json: one object per method"
$GTR index -q -m "$TINY" -c "$TMP/mini/corpus.jsonl" -o "$TMP/mini.gtri" 2>/dev/null
$GTR search --index "$TMP/mini.gtri" -q "$TMP/mini/queries.jsonl" -k 1000 --skip-self --quiet -o "$TMP/mini_run" 2>/dev/null
want=$($GTR eval --qrels "$TMP/mini/qrels/test.tsv" --run "$TMP/mini_run" -m ndcg_cut.10 2>/dev/null | cut -f3)
got=$(tr -d ' \n' <"$TMP/beir.json" | sed 's/.*"dense":{[^}]*"ndcg_cut_10":\([0-9.e-]*\).*/\1/')
# gtr eval prints trec_eval's 4 decimals
awk -v a="$got" -v b="$want" 'BEGIN { exit !(a != "" && b != "" && (a - b <= 5e-5) && (b - a <= 5e-5)) }'
_tap_result $? "dense nDCG@10 of gtr beir ($got) = gtr search + gtr eval ($want)"
ok "a second gtr beir reuses the cached indexes" $GTR beir -d "$TMP/mini" --method dense -m "$TINY" --cache "$TMP/cache"
like "$(cat "$TMP/err"; echo END)" '^END$' "... without encoding anything (nothing on stderr)"

# ---- BM25 on all of SciFact: the published Anserini flat figure
ok "gtr beir --method bm25 on SciFact" $GTR beir -q -d "$SF" --method bm25 --cache "$TMP/cache" --json
ndcg=$(tr -d ' \n' <"$TMP/out" | sed 's/.*"ndcg_cut_10":\([0-9.e-]*\).*/\1/')
awk -v a="$ndcg" 'BEGIN { exit !(a > 0.669 && a < 0.689) }'
_tap_result $? "BM25 nDCG@10 $ndcg within 0.01 of Anserini's 0.679"
done_testing
