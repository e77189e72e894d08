#!/usr/bin/env bash
# filter_cli.sh — metadata filters (issue 14): gtr index keeps each document's metadata fields in
# INDEX.fields; gtr search --where FIELD=VALUE (and /search "where") returns what an index of
# only the matching documents returns, exact and --ann alike; numbers match by value; the
# fields follow gtr index --add; an unknown field, a damaged or stale fields file are refused.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

TINY=$SHARED/models/gtr-tiny
SF=$SHARED/beir/scifact
need_shared -d "$TINY" -f "$SF/corpus.jsonl"
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }
plan 23

# 400 SciFact documents with metadata: year 2000..2004 (an integer), source a|b|c (a string),
# open (a boolean), and a top-level "lang" field; queries from SciFact
head -n 400 "$SF/corpus.jsonl" | awk '{
    y = 2000 + NR % 5; s = substr("abc", NR % 3 + 1, 1); o = (NR % 2 ? "true" : "false")
    sub(/"metadata": \{\}/, "\"metadata\": {\"year\": " y ", \"source\": \"" s "\", \"open\": " o "}, \"lang\": \"en\"")
    print }' >"$TMP/c.jsonl"
head -n 40 "$SF/queries.jsonl" >"$TMP/q.jsonl"
grep -c '"year": 2002' "$TMP/c.jsonl" >/dev/null || { echo "Bail out! the corpus has no metadata to rewrite"; exit 1; }
# an index of only the matching documents (the independent computation): awk over the lines
subset() { awk -v pat="$1" 'index($0, pat)' "$TMP/c.jsonl" >"$TMP/$2.jsonl"; $GTR index -q -m "$TINY" -c "$TMP/$2.jsonl" -o "$TMP/$2.gtri" &&
           $GTR search --index "$TMP/$2.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/$2.run" --quiet; }
ok "gtr index writes INDEX.fields" $GTR index -m "$TINY" -c "$TMP/c.jsonl" -o "$TMP/c.gtri"
like "$(cat "$TMP/err")" "metadata fields -> .*c.gtri.fields" "... saying so"
subset '"year": 2002,' y2002 || exit 1
ok "search --where year=2002" $GTR search --index "$TMP/c.gtri" --where year=2002 -q "$TMP/q.jsonl" -k 10 -o "$TMP/w.run" --quiet
ok "... the run of an index holding only those documents" cmp "$TMP/y2002.run" "$TMP/w.run"
$GTR search --index "$TMP/c.gtri" --where year=2002.0 -q "$TMP/q.jsonl" -k 10 -o "$TMP/w2.run" --quiet
ok "... year=2002.0 too (numbers match by value)" cmp "$TMP/y2002.run" "$TMP/w2.run"
awk 'index($0, "\"year\": 2002,") && index($0, "\"source\": \"b\"")' "$TMP/c.jsonl" >"$TMP/yb.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/yb.jsonl" -o "$TMP/yb.gtri" && $GTR search --index "$TMP/yb.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/yb.run" --quiet || exit 1
$GTR search --index "$TMP/c.gtri" --where year=2002 --where source=b -q "$TMP/q.jsonl" -k 10 -o "$TMP/w3.run" --quiet
ok "two --where conditions: both hold" cmp "$TMP/yb.run" "$TMP/w3.run"
subset '"open": true' open || exit 1
$GTR search --index "$TMP/c.gtri" --where open=true --where lang=en -q "$TMP/q.jsonl" -k 10 -o "$TMP/w4.run" --quiet
ok "a boolean and a top-level field" cmp "$TMP/open.run" "$TMP/w4.run"
$GTR ann-build --index "$TMP/c.gtri" -o "$TMP/c.ivf" --lists 8 >/dev/null 2>&1 || exit 1
$GTR search --index "$TMP/c.gtri" --ann "$TMP/c.ivf" --nprobe 8 --where year=2002 -q "$TMP/q.jsonl" -k 10 -o "$TMP/wa.run" --quiet
is "$(cut -d' ' -f1,3,5 "$TMP/wa.run")" "$(cut -d' ' -f1,3,5 "$TMP/y2002.run")" "--ann (every list) --where: the same documents and scores"
fails "an unknown field is refused" $GTR search --index "$TMP/c.gtri" --where yaer=2002 -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" '^gtr search: no document has a field "yaer"$' "... in one line naming it"
fails "--where without = is refused" $GTR search --index "$TMP/c.gtri" --where year -q "$TMP/q.jsonl" -o "$TMP/x"
# --add: the base's fields stay, the added documents bring theirs
head -n 300 "$TMP/c.jsonl" >"$TMP/c300.jsonl"; tail -n 100 "$TMP/c.jsonl" >"$TMP/c100.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/c300.jsonl" -o "$TMP/d.gtri" && $GTR index -q -m "$TINY" --add "$TMP/c100.jsonl" -o "$TMP/d.gtri" || exit 1
$GTR search --index "$TMP/d.gtri" --where year=2002 -q "$TMP/q.jsonl" -k 10 -o "$TMP/wd.run" --quiet
ok "after gtr index --add: the fields of both parts" cmp "$TMP/y2002.run" "$TMP/wd.run"
ok "gtr index --fields-from rewrites INDEX.fields" $GTR index --fields-from "$TMP/c.jsonl" -o "$TMP/d.gtri"
ok "... the same bytes as a fresh build's" cmp "$TMP/c.gtri.fields" "$TMP/d.gtri.fields"
# damaged, truncated, stale
cp "$TMP/c.gtri.fields" "$TMP/keep.fields"
printf '\377' | dd of="$TMP/c.gtri.fields" bs=1 seek=100 conv=notrunc 2>/dev/null
fails "a corrupted fields file is refused" $GTR search --index "$TMP/c.gtri" --where year=2002 -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "c.gtri.fields: checksum mismatch" "... naming it"
head -c 30 "$TMP/keep.fields" >"$TMP/c.gtri.fields"
fails "a truncated fields file is refused" $GTR search --index "$TMP/c.gtri" --where year=2002 -q "$TMP/q.jsonl" -o "$TMP/x"
cp "$TMP/keep.fields" "$TMP/y2002.gtri.fields"
fails "the fields file of another index is refused" $GTR search --index "$TMP/y2002.gtri" --where year=2002 -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "fields of another index" "... saying so"
cp "$TMP/keep.fields" "$TMP/c.gtri.fields"
# /search "where"
$GTR serve -m "$TINY" --index "$TMP/c.gtri" --port 0 --port-file "$TMP/port" 2>"$TMP/serve.log" &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 200); do [ -s "$TMP/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$TMP/port")
Q="cancer cells and DNA damage"
want=$($GTR search --index "$TMP/y2002.gtri" --query "$Q" -k 5 | awk '{print $3, $2}')
post() { curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/search" -H 'Content-Type: application/json' -d "$1"; }
post "{\"query\": \"$Q\", \"k\": 5, \"where\": {\"year\": 2002}}" >/dev/null
is "$(python3 -c 'import json, sys; [print(h["id"], "%.6f" % h["score"]) for h in json.load(sys.stdin)["hits"]]' <"$TMP/resp")" "$want" \
   "/search \"where\": the hits of an index of only the matching documents"
is "$(post '{"query": "x", "where": {"yaer": 2002}}')" 400 "/search: an unknown field is a 400"
like "$(cat "$TMP/resp")" '"code":"unknown_field"' "... code unknown_field"
is "$(post '{"query": "x", "where": {"year": [2002]}}')" 400 "/search: a non-scalar value is a 400"
kill -TERM $PID
wait $PID
done_testing
