#!/usr/bin/env bash
# memcheck_cli.sh — the memory check before a load, at the command line: with GTR_MAX_MEMORY
# (the memory a load may use; unset: MemAvailable or the cgroup's limit) below what --dtype f32
# needs, `gtr embed` and `gtr index` stop before loading with one line that says how much is
# needed, how much is available and which --dtype fits, and write nothing; that --dtype loads.
# The needs are read from the refusals themselves (nothing typed in): the limit is set between
# the f32 and the int8 estimate of gtr-small.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
M=$SHARED/models/gtr-small
SF=$SHARED/beir/scifact
need_shared -d "$M" -f "$SF/corpus.jsonl"
plan 16
printf '%s\n' "how much memory does this need" "a second text" > "$TMP/t.txt"
head -n 20 "$SF/corpus.jsonl" > "$TMP/c.jsonl"

fails "GTR_MAX_MEMORY=1M: nothing fits" env GTR_MAX_MEMORY=1M $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/none.f32" -q
is "$(wc -l < "$TMP/err" | tr -d ' ')" "1" "... one line"
like "$(cat "$TMP/err")" "loading as f32 needs about [0-9]+ MiB but 1 MiB is available \(the limit given to the loader: max_memory, GTR_MAX_MEMORY for gtr\); even --dtype int8 needs [0-9]+ MiB" \
     "... needed, available (and from where), and that even int8 does not fit"
need32=$(sed -n 's/.*loading as f32 needs about \([0-9]*\) MiB.*/\1/p' "$TMP/err")
need8=$(sed -n 's/.*even --dtype int8 needs \([0-9]*\) MiB.*/\1/p' "$TMP/err")
ok "... and no output file" test ! -e "$TMP/none.f32"
ok "f32 needs more than int8 ($need32 MiB > $need8 MiB, by more than rounding)" test "$need32" -gt $((need8 + 4))
mid=$(( (need32 + need8) / 2 ))M

fails "GTR_MAX_MEMORY=$mid: f32 refused" env GTR_MAX_MEMORY=$mid $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/f32.f32" -q
is "$(wc -l < "$TMP/err" | tr -d ' ')" "1" "... one line"
like "$(cat "$TMP/err")" "loading as f32 needs about $need32 MiB but [0-9]+ MiB is available .*--dtype int8 needs $need8 MiB and fits \(a \`gtr quantize --dtype\` copy" \
     "... naming the --dtype that fits and gtr quantize"
ok "... and no output file" test ! -e "$TMP/f32.f32"
ok "--dtype int8 under the same limit loads and embeds" env GTR_MAX_MEMORY=$mid $GTR embed -m "$M" --dtype int8 -i "$TMP/t.txt" -o "$TMP/i8.f32" -q

fails "gtr index under the limit stops before the build" env GTR_MAX_MEMORY=$mid $GTR index -q -m "$M" -c "$TMP/c.jsonl" -o "$TMP/a.gtri"
like "$(cat "$TMP/err")" "loading as f32 needs about $need32 MiB.*--dtype int8 needs $need8 MiB and fits" "... with the same line"
is "$(ls -d "$TMP"/a.gtri* 2>/dev/null | wc -l | tr -d ' ')" "0" "... and writes nothing"
ok "gtr index --dtype int8 under the limit builds" env GTR_MAX_MEMORY=$mid $GTR index -q -m "$M" --dtype int8 -c "$TMP/c.jsonl" -o "$TMP/b.gtri"

fails "GTR_MAX_MEMORY=lots is refused" env GTR_MAX_MEMORY=lots $GTR info -m "$M"
like "$(cat "$TMP/err")" "GTR_MAX_MEMORY must be a positive number of bytes" "... saying what it wants"
done_testing
