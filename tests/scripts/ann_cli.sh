#!/usr/bin/env bash
# ann_cli.sh — `gtr ann-build` and `gtr search --ann` (issue 14) with gtr-tiny over part of
# SciFact: the IVF file is the same for any thread count, probing every list finds what exact
# search finds, fewer lists never find more, and a stale, corrupted or truncated IVF file is
# refused with a clear message.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

TINY=$SHARED/models/gtr-tiny
SF=$SHARED/beir/scifact
if [ ! -d "$TINY" ] || [ ! -f "$SF/corpus.jsonl" ]; then
    echo "1..0 # SKIP reference data not found in $SHARED"
    exit 0
fi
plan 17

head -n 1200 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 60 "$SF/queries.jsonl" >"$TMP/q.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/a.gtri" || exit 1

ok "ann-build builds" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/a.ivf" --lists 16 --seed 1 -t 2
ok "... again on one thread" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/b.ivf" --lists 16 --seed 1 -t 1
ok "... the same bytes" cmp "$TMP/a.ivf" "$TMP/b.ivf"

# (query, document) pairs a run shares with the exact run
pairs() { awk '{print $1, $3}' "$1" | sort; }
shared() { comm -12 <(pairs "$1") <(pairs "$TMP/exact") | wc -l | tr -d ' '; }
$GTR search --index "$TMP/a.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/exact" --quiet || exit 1
ok "search --ann --nprobe 16 (every list)" $GTR search --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/all" --quiet
is "$(shared "$TMP/all")" "$(wc -l <"$TMP/exact" | tr -d ' ')" "every list probed: the exact run's documents"
ok "search --ann --nprobe 2" $GTR search --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --nprobe 2 -q "$TMP/q.jsonl" -k 10 -o "$TMP/two" --quiet
ok "... -t 1 gives the same run" $GTR search -t 1 --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --nprobe 2 -q "$TMP/q.jsonl" -k 10 -o "$TMP/two1" --quiet
s2=$(shared "$TMP/two"); cmp -s "$TMP/two" "$TMP/two1"; same=$?
is "$same" 0 "... byte for byte"
is "$([ "$s2" -le "$(shared "$TMP/all")" ] && [ "$s2" -gt 0 ] && echo yes)" yes "fewer lists never find more ($s2 shared pairs)"

# ann-tune: a lower target never needs more lists; the reported recall meets the target
ok "ann-tune --recall 0.99" $GTR ann-tune --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --recall 0.99 --sample 100
hi=$(cat "$TMP/out")
$GTR ann-tune --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --recall 0.5 --sample 100 >"$TMP/lo" 2>&1
is "$(awk -v h="$(echo "$hi" | awk '{print $2}')" '{print ($2 <= h) ? "yes" : "no"}' "$TMP/lo")" yes "a lower target never needs more lists ($(cat "$TMP/lo") / $hi)"
like "$hi" "^nprobe [0-9]+ recall (0\.99|1\.0000)|every list" "the reported recall meets the target (or every list is probed)"

# stale, corrupted, truncated
head -n 1100 "$SF/corpus.jsonl" >"$TMP/sub2.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub2.jsonl" -o "$TMP/c.gtri" || exit 1
fails "an IVF file of another index is refused" $GTR search --index "$TMP/c.gtri" --ann "$TMP/a.ivf" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "built from another index" "... saying so"
cp "$TMP/a.ivf" "$TMP/bad.ivf"
printf '\377' | dd of="$TMP/bad.ivf" bs=1 seek=5000 conv=notrunc 2>/dev/null
fails "a corrupted IVF file is refused" $GTR search --index "$TMP/a.gtri" --ann "$TMP/bad.ivf" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" "bad.ivf: body checksum mismatch" "... naming the file and the damage"
head -c 3000 "$TMP/a.ivf" >"$TMP/short.ivf"
fails "a truncated IVF file is refused" $GTR search --index "$TMP/a.gtri" --ann "$TMP/short.ivf" -q "$TMP/q.jsonl" -o "$TMP/x"
done_testing
