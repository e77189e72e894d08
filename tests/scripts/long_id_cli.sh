#!/usr/bin/env bash
# long_id_cli.sh — a 10,000-byte document id (issue 13: no id may be cut silently anywhere)
# through every stage: gtr index and gtr bm25-index, gtr search (dense, BM25, hybrid; the run
# file), gtr eval (judged relevant: found), gtr beir, and gtr serve's /search; each time the
# whole id comes back, byte for byte.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

TINY=$SHARED/models/gtr-tiny
need_shared -d "$TINY"
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }
command -v python3 >/dev/null || { echo "1..0 # SKIP python3 is not installed"; exit 0; }
plan 16

LONG=$(python3 -c 'print("L" + "0123456789" * 999 + "abcdefgh" + "Z")')
is "${#LONG}" "10000" "the long id has 10,000 bytes"
mkdir -p "$TMP/ds/qrels"
python3 - "$LONG" "$TMP/ds" <<'EOF'
import json, sys
long_id, d = sys.argv[1], sys.argv[2]
docs = [(long_id, "vitamin d and bone density in older adults")] + \
       [("d%d" % i, "unrelated passage number %d about topic %d" % (i, i % 7)) for i in range(30)]
with open(d + "/corpus.jsonl", "w") as f:
    for i, t in docs:
        f.write(json.dumps({"_id": i, "title": "", "text": t}) + "\n")
with open(d + "/queries.jsonl", "w") as f:
    f.write(json.dumps({"_id": "q1", "text": "vitamin d bone density"}) + "\n")
with open(d + "/qrels/test.tsv", "w") as f:
    f.write("query-id\tcorpus-id\tscore\nq1\t%s\t1\n" % long_id)
EOF

ok "gtr index takes the long id" $GTR index -q -m "$TINY" -c "$TMP/ds/corpus.jsonl" -o "$TMP/a.gtri"
ok "gtr bm25-index takes it" $GTR bm25-index --quiet -c "$TMP/ds/corpus.jsonl" -o "$TMP/a.bm25"

# the longest document id of a run, as "<bytes> <md5>" (failures then print 40 bytes, not 10 kB)
sig() { printf '%s' "$1" | md5sum | awk -v n="${#1}" '{ print n, $1 }'; }
longest() { sig "$(awk '{ if (length($3) > n) { n = length($3); id = $3 } } END { print id }' "$1")"; }
WANT=$(sig "$LONG")
for m in dense bm25 hybrid; do
    ok "gtr search --method $m" $GTR search --method $m --index "$TMP/a.gtri" --bm25-index "$TMP/a.bm25" \
        -q "$TMP/ds/queries.jsonl" -k 5 -o "$TMP/run.$m" --quiet
    is "$(longest "$TMP/run.$m")" "$WANT" "... the run holds the whole long id ($m)"
done

ok "gtr eval reads the run" $GTR eval --qrels "$TMP/ds/qrels/test.tsv" --run "$TMP/run.bm25" -m num_rel_ret
like "$(cat "$TMP/out")" "num_rel_ret[[:space:]]+all[[:space:]]+1" "... and matches the judged long id"

ok "gtr beir with the long id" $GTR beir -q -d "$TMP/ds" -m "$TINY" --method bm25,dense --cache "$TMP/cache" \
    --json --save-runs "$TMP/runs"
is "$(longest "$TMP/runs/bm25.trec")" "$WANT" "... its saved run holds the whole id"

# the server's /search
rm -f "$TMP/port"
$GTR serve -m "$TINY" --index "$TMP/a.gtri" --bm25-index "$TMP/a.bm25" --port 0 --port-file "$TMP/port" \
    2>"$TMP/serve.log" &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 200); do [ -s "$TMP/port" ] && break; kill -0 $PID 2>/dev/null || break; sleep 0.05; done
PORT=$(cat "$TMP/port" 2>/dev/null)
for m in bm25 hybrid; do
    curl -sf -H 'Content-Type: application/json' -d "{\"query\": \"vitamin d bone density\", \"k\": 5, \"method\": \"$m\"}" \
        "http://127.0.0.1:$PORT/search" >"$TMP/resp.$m"
    got=$(python3 -c 'import json, sys; print(max((h["id"] for h in json.load(open(sys.argv[1]))["hits"]), key=len))' \
        "$TMP/resp.$m" 2>/dev/null)
    is "$(sig "$got")" "$WANT" "/search ($m) answers the whole long id"
done
kill -TERM $PID
wait $PID
is "$?" 0 "the server stops cleanly"

done_testing
