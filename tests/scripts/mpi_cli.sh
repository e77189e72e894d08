#!/usr/bin/env bash
# mpi_cli.sh — bin/gtr-mpi under `mpirun --oversubscribe -n 1|2|3` on this machine, each result
# compared byte for byte with the single-process command run here: index files (cmp), TREC runs
# for dense, BM25 and hybrid search (queries or documents split across ranks), BEIR metrics (--json) against gtr beir
# (dense, BM25, hybrid; queries or documents split); ranks given another
# model or options refused before any work (index, search, beir); a rank killed mid-index:
# non-zero exit naming it, no index, and the same command resumes to the same bytes.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

. tests/scripts/mpi_setup.sh.inc
plan 90

head -n 300 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 30 "$SF/queries.jsonl" >"$TMP/q.jsonl"

# ---- index: 1, 2, 3 ranks against `gtr index`
ok "gtr index (single process)" $GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/one.gtri" -t 1
for n in 1 2 3; do
    ok "gtr-mpi index on $n ranks" run $n $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/m$n.gtri" --batch 5 -t 1
    ok "... the same bytes as gtr index ($n ranks)" cmp "$TMP/one.gtri" "$TMP/m$n.gtri"
done

# ---- search: dense, BM25, hybrid against `gtr search`
$GTR bm25-index -c "$TMP/sub.jsonl" -o "$TMP/sub.bm25" --quiet 2>/dev/null
for method in dense bm25 hybrid; do
    $GTR search --method $method --index "$TMP/one.gtri" --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 10 \
        -o "$TMP/one.$method.run" --quiet
    for n in 1 2 3; do
        ok "gtr-mpi search --method $method on $n ranks" run $n $MPI search --method $method --index "$TMP/m2.gtri" \
            --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 10 -o "$TMP/m$n.$method.run" -t 1
        ok "... the run of gtr search ($method, $n ranks)" cmp "$TMP/one.$method.run" "$TMP/m$n.$method.run"
    done
done
# the fusion options of gtr search (shared option parsing: cli_search_option)
$GTR search --method hybrid --fusion interp --alpha 0.3 --index "$TMP/one.gtri" --bm25-index "$TMP/sub.bm25" \
    -q "$TMP/q.jsonl" -k 10 -o "$TMP/one.interp.run" --quiet
ok "gtr-mpi search --fusion interp --alpha 0.3 on 2 ranks" run 2 $MPI search --method hybrid --fusion interp \
    --alpha 0.3 --index "$TMP/one.gtri" --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 10 -o "$TMP/m2.interp.run" -t 1
ok "... the run of gtr search with those options" cmp "$TMP/one.interp.run" "$TMP/m2.interp.run"
ok "... (which differs from the default fusion's)" sh -c "! cmp -s '$TMP/one.interp.run' '$TMP/one.hybrid.run'"
# ---- document split (--split docs): every rank scans its piece of the documents, rank 0
# merges; the corpus repeats documents under other ids far apart, so equal scores straddle the
# pieces and the merge must break ties by id as the single-process search does
python3 - "$TMP/sub.jsonl" >"$TMP/ties.jsonl" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
for i, d in enumerate(docs):
    print(json.dumps(d))
    if i % 7 == 0:
        e = dict(docs[(i * 13) % len(docs)]); e["_id"] = "dup%03d" % i; print(json.dumps(e))
PY
$GTR index -q -m "$TINY" -c "$TMP/ties.jsonl" -o "$TMP/ties.gtri" -t 1
is "$(awk '{print $1}' "$TMP/ties.jsonl" | wc -l)" "343" "the corpus with repeated documents"
for k in 10 400; do
    $GTR search --index "$TMP/ties.gtri" -q "$TMP/q.jsonl" -k $k -o "$TMP/ties1.$k.run" --quiet --skip-self
    for n in 2 3; do
        ok "gtr-mpi search --split docs -k $k on $n ranks" run $n $MPI search --split docs --index "$TMP/ties.gtri" \
            -q "$TMP/q.jsonl" -k $k -o "$TMP/ties$n.$k.run" -t 1 --skip-self
        ok "... the run of gtr search (k $k, $n ranks)" cmp "$TMP/ties1.$k.run" "$TMP/ties$n.$k.run"
    done
done
like "$(awk '{print $1, $5}' "$TMP/ties1.400.run" | sort | uniq -d | wc -l)" "^[1-9]" "... (the runs hold equal scores)"
# BM25 and hybrid split by documents: each rank scores its piece of the BM25 index's documents
# with the whole collection's statistics; hybrid lists merged per method, fused on rank 0
$GTR bm25-index -c "$TMP/ties.jsonl" -o "$TMP/ties.bm25" --quiet 2>/dev/null
for method in bm25 hybrid; do
    $GTR search --method $method --index "$TMP/ties.gtri" --bm25-index "$TMP/ties.bm25" -q "$TMP/q.jsonl" -k 100 \
        --depth 150 -o "$TMP/ties1.$method.run" --quiet --skip-self
    for n in 2 3; do
        ok "gtr-mpi search --split docs --method $method on $n ranks" run $n $MPI search --split docs --method $method \
            --index "$TMP/ties.gtri" --bm25-index "$TMP/ties.bm25" -q "$TMP/q.jsonl" -k 100 --depth 150 \
            -o "$TMP/ties$n.$method.run" -t 1 --skip-self
        ok "... the run of gtr search ($method, $n ranks)" cmp "$TMP/ties1.$method.run" "$TMP/ties$n.$method.run"
    done
done
like "$(awk '$4 <= 100 {print $1, $5}' "$TMP/ties1.bm25.run" | sort | uniq -d | wc -l)" "^[1-9]" "... (the BM25 run holds equal scores)"
$GTR search --method hybrid --fusion interp --alpha 0.3 --index "$TMP/ties.gtri" --bm25-index "$TMP/ties.bm25" \
    -q "$TMP/q.jsonl" -k 20 -o "$TMP/ties1.interp.run" --quiet
ok "gtr-mpi search --split docs --fusion interp --alpha 0.3 on 3 ranks" run 3 $MPI search --split docs --method hybrid \
    --fusion interp --alpha 0.3 --index "$TMP/ties.gtri" --bm25-index "$TMP/ties.bm25" -q "$TMP/q.jsonl" -k 20 \
    -o "$TMP/ties3.interp.run" -t 1
ok "... the run of gtr search with those options" cmp "$TMP/ties1.interp.run" "$TMP/ties3.interp.run"
# more ranks than queries: the empty pieces contribute nothing
head -n 2 "$TMP/q.jsonl" >"$TMP/q2.jsonl"
$GTR search --index "$TMP/one.gtri" -q "$TMP/q2.jsonl" -k 5 -o "$TMP/one.q2.run" --quiet
ok "3 ranks, 2 queries" run 3 $MPI search --index "$TMP/one.gtri" -q "$TMP/q2.jsonl" -k 5 -o "$TMP/m3.q2.run" -t 1
ok "... the same run" cmp "$TMP/one.q2.run" "$TMP/m3.q2.run"

# ---- BEIR evaluation: a small dataset folder holding the judged documents of 40 qrels lines
small_beir "$TMP/ds"
$GTR index -q -m "$TINY" -c "$TMP/ds/corpus.jsonl" -o "$TMP/ds.gtri"
$GTR bm25-index -c "$TMP/ds/corpus.jsonl" -o "$TMP/ds.bm25" --quiet 2>/dev/null
for method in dense bm25 hybrid; do
    $GTR beir -q -d "$TMP/ds" -m "$TINY" --method $method --json --cache "$TMP/cache" >"$TMP/one.$method.json"
    ok "gtr-mpi beir --method $method on 3 ranks" run 3 $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" \
        --bm25-index "$TMP/ds.bm25" --method $method --json -t 1
    cp "$TMP/out" "$TMP/m3.$method.json"
    ok "... the metrics of gtr beir, byte for byte ($method)" cmp "$TMP/one.$method.json" "$TMP/m3.$method.json"
    ok "gtr-mpi beir --method $method on 1 rank" run 1 $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" \
        --bm25-index "$TMP/ds.bm25" --method $method --json -t 1
    cp "$TMP/out" "$TMP/m1.$method.json"
    ok "... the metrics of gtr beir, byte for byte ($method, 1 rank)" cmp "$TMP/one.$method.json" "$TMP/m1.$method.json"
    # documents split: each rank searches every judged query over its piece of the documents
    ok "gtr-mpi beir --split-by docs --method $method on 2 ranks" run 2 $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" \
        --bm25-index "$TMP/ds.bm25" --method $method --split-by docs --json -t 1
    cp "$TMP/out" "$TMP/d2.$method.json"
    ok "... the metrics of gtr beir, byte for byte ($method, documents split)" cmp "$TMP/one.$method.json" \
        "$TMP/d2.$method.json"
done
like "$(grep ndcg_cut_10 "$TMP/one.dense.json")" '"ndcg_cut_10": 0\.[0-9]*[1-9]' "... (and they are not all zero)"

# ---- disagreement between ranks: refused before any work
fails "a rank with another model is refused" timeout 300 mpirun --oversubscribe \
    -n 1 $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/mix.gtri" -t 1 : \
    -n 1 $MPI index -q -m "$WIDE" -c "$TMP/sub.jsonl" -o "$TMP/mix.gtri" -t 1
like "$(cat "$TMP/err")" "rank 1 loaded another model" "... the message names the rank"
is "$(ls "$TMP" | grep -c '^mix')" "0" "... and nothing was written"
fails "a rank with other options is refused" timeout 300 mpirun --oversubscribe \
    -n 1 $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/mix.gtri" --batch 4 : \
    -n 1 $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/mix.gtri" --batch 8
like "$(cat "$TMP/err")" "rank 1 was given other options" "... the message names the rank"
fails "search: a rank with another model is refused" timeout 300 mpirun --oversubscribe \
    -n 1 $MPI search --index "$TMP/one.gtri" -m "$TINY" -q "$TMP/q.jsonl" -k 5 -o "$TMP/mix.run" -t 1 : \
    -n 1 $MPI search --index "$TMP/one.gtri" -m "$WIDE" -q "$TMP/q.jsonl" -k 5 -o "$TMP/mix.run" -t 1
like "$(cat "$TMP/err")" "rank 1" "... the message names the rank"
fails "search: a rank with another -k is refused" timeout 300 mpirun --oversubscribe \
    -n 2 $MPI search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 5 -o "$TMP/mix.run" -t 1 : \
    -n 1 $MPI search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 6 -o "$TMP/mix.run" -t 1
like "$(cat "$TMP/err")" "rank 2 was given other options" "... the message names the rank"
fails "beir: a rank with another method is refused" timeout 300 mpirun --oversubscribe \
    -n 1 $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" --bm25-index "$TMP/ds.bm25" --method dense -t 1 : \
    -n 1 $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" --bm25-index "$TMP/ds.bm25" --method hybrid -t 1
like "$(cat "$TMP/err")" "rank 1 was given other options" "... the message names the rank"
is "$(ls "$TMP" | grep -c '^mix')" "0" "... and nothing was written by the refused commands"

# ---- a rank killed mid-index: non-zero exit naming it, no index, resumable to the same bytes
head -n 1500 "$SF/corpus.jsonl" >"$TMP/big.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big1.gtri"
checkpointed() { [ -f "$TMP/big2.gtri.ckpt" ]; }
kill_rank1 mid-index checkpointed 2 $MPI index -q -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big2.gtri" \
    --batch 2 --checkpoint 20 -t 1
is "$([ -e "$TMP/big2.gtri" ] && echo exists || echo absent)" "absent" "... and no index file"
ok "the same command resumes" run 2 $MPI index -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big2.gtri" --batch 2 --checkpoint 20 -t 1
like "$(cat "$TMP/err")" "from an interrupted build" "... from the checkpoint"
ok "... to the bytes of the uninterrupted single-process build" cmp "$TMP/big1.gtri" "$TMP/big2.gtri"

# GTR_CPU naming no kernel path: every rank refuses before any work, rank 0 alone says why
out=$(GTR_CPU=avx512+vnni run 3 $MPI index -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/cpu.gtri" 2>&1); st=$?
is "$([ $st -ne 0 ] && [ ! -e "$TMP/cpu.gtri" ] && echo refused)" "refused" "GTR_CPU=avx512+vnni: gtr-mpi fails, no index"
is "$(printf '%s\n' "$out" | grep -c '^gtr-mpi: GTR_CPU=avx512+vnni: not a kernel path')" "1" "... one line, from rank 0 only"

done_testing
