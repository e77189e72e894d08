#!/usr/bin/env bash
# eval_cli.sh — `gtr eval` and `gtr bm25-index` from the command line: trec_eval parity on the
# shared references, stdin runs, exit codes and messages for bad input.
. "$(dirname "$0")/tap.sh"
plan 12
T=$SHARED/trec_eval
M="-m ndcg_cut.1,3,5,10,100,1000 -m map_cut.10,100,1000 -m recall.1,5,10,100,1000 -m P.1,5,10,100 -m recip_rank -m map -m ndcg -m num_q -m num_ret -m num_rel -m num_rel_ret"
ok "eval -q -c (partial run)" $GTR eval --qrels $T/scifact.qrels --run $T/scifact_partial.run -q -c $M
is "$(cmp -s "$TMP/out" $T/scifact_partial.expected_q.txt && echo same)" same "per-query output equals trec_eval's"
like "$(cat "$TMP/err")" "warning: 550 run queries without judgments ignored" "unjudged queries are reported"
ok "eval with default measures, run on stdin" sh -c "$GTR eval --qrels $T/tiny.qrels --run - < $T/tiny.run"
is "$(cmp -s "$TMP/out" $T/tiny.expected_beir.txt && echo same)" same "default measures are the reference set"
printf 'q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2\n' > "$TMP/bad.run"
fails "malformed run line" $GTR eval --qrels $T/tiny.qrels --run "$TMP/bad.run"
like "$(cat "$TMP/err")" "bad.run:2: expected 6 fields" "the error names file:line"
fails "unknown measure" $GTR eval --qrels $T/tiny.qrels --run $T/tiny.run -m bpref
fails "missing --run" $GTR eval --qrels $T/tiny.qrels
ok "bm25-index --analyze" $GTR bm25-index --analyze "The dogs' running"
is "$(cat "$TMP/out")" "dog run" "analyzer output"
head -50 $SHARED/beir/scifact/corpus.jsonl > "$TMP/c.jsonl"
ok "bm25-index builds" $GTR bm25-index -c "$TMP/c.jsonl" -o "$TMP/c.bm25" --quiet
done_testing
