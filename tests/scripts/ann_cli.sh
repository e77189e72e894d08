#!/usr/bin/env bash
# ann_cli.sh — `gtr ann-build` and `gtr search --ann` (issue 14) with gtr-tiny over part of
# SciFact: the IVF file is the same for any thread count, probing every list finds what exact
# search finds, fewer lists never find more, and a stale, corrupted or truncated IVF file is
# refused with a clear message; ann-delete (deleted documents never returned, the deletion file
# checked), ann-build --add after gtr index --add (lists and deletions kept, recall as a fresh
# build's); crash and resume of ann-build (killed, failed write, --restart, other options).
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

TINY=$SHARED/models/gtr-tiny
SF=$SHARED/beir/scifact
need_shared -d "$TINY" -f "$SF/corpus.jsonl"
plan 75

head -n 1200 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 60 "$SF/queries.jsonl" >"$TMP/q.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/a.gtri" || exit 1

ok "ann-build builds" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/a.ivf" --lists 16 --seed 1 -t 2
ok "... again on one thread" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/b.ivf" --lists 16 --seed 1 -t 1
ok "... the same bytes" cmp "$TMP/a.ivf" "$TMP/b.ivf"
# a build killed before its rename leaves "<out>.tmp.<pid>" and the old file; the rerun
# tidies the dead process's temp file and writes the same bytes
sh -c 'exit 0' & dead=$!; wait $dead
head -c 5000 "$TMP/a.ivf" >"$TMP/b.ivf.tmp.$dead"
ok "a rerun after a killed build" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/b.ivf" --lists 16 --seed 1 -t 2
is "$([ ! -e "$TMP/b.ivf.tmp.$dead" ] && cmp -s "$TMP/a.ivf" "$TMP/b.ivf" && echo yes)" yes "... removes the dead build's temp file and gives the same bytes"

# crash and resume: a checkpoint every 100 documents (blocks of 100: the same bytes); a build
# killed by the kernel (SIGXFSZ: the file size limit falls in the middle of the vectors) keeps
# its work files and no output; a build whose write fails (the same limit with SIGXFSZ
# ignored, as a full disk) says so in one line and keeps them too; the same command resumes to
# the bytes of the uninterrupted build and removes them
ok "--checkpoint 100 gives the same bytes" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/k0.ivf" --lists 16 --seed 1 --checkpoint 100 -q
is "$(cmp -s "$TMP/a.ivf" "$TMP/k0.ivf" && echo yes)" yes "... as the default build"
size=$(stat -c %s "$TMP/a.ivf")
build_k() { $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/k.ivf" --lists 16 --seed 1 --checkpoint 100 "$@"; }
(ulimit -f $((size / 2 / 1024)); build_k -q) 2>/dev/null
is "$?" 153 "a build past the file size limit is killed by SIGXFSZ"
ok "... leaving its checkpoint and partial file, no output" test -s "$TMP/k.ivf.ckpt" -a -s "$TMP/k.ivf.partial" -a ! -e "$TMP/k.ivf"
(ulimit -f $((size * 3 / 4 / 1024)); trap '' XFSZ; build_k -q) >"$TMP/out" 2>"$TMP/err"
is "$?" 1 "a build whose write fails exits 1"
like "$(head -1 "$TMP/err")" '^gtr ann-build: .*k\.ivf\.partial: cannot write: File too large$' "... one line naming the file and the error"
like "$(tail -1 "$TMP/err")" 'checkpointed in .*k\.ivf\.ckpt: the same command resumes' "... and how to resume"
ok "the same command resumes" build_k
like "$(cat "$TMP/err")" "1200 documents in .*k\.ivf.* \(([6-9]|1[01])00 from an interrupted build\)" "... from the last checkpoint"
is "$(cmp -s "$TMP/a.ivf" "$TMP/k.ivf" && echo yes)" yes "... to the bytes of the uninterrupted build"
ok "... and removes the work files" test ! -e "$TMP/k.ivf.ckpt" -a ! -e "$TMP/k.ivf.partial"
(ulimit -f $((size / 2 / 1024)); build_k -q) 2>/dev/null
ok "--restart discards an interrupted build" build_k --restart
like "$(cat "$TMP/err")" "note: discarded an interrupted build as asked" "... saying so"
is "$(cmp -s "$TMP/a.ivf" "$TMP/k.ivf" && echo yes)" yes "... the same bytes"
(ulimit -f $((size / 2 / 1024)); build_k -q) 2>/dev/null
ok "an interrupted build with other options is not resumed" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/k.ivf" --lists 16 --seed 2
like "$(cat "$TMP/err")" "note: an interrupted build had other vectors or options; started over" "... saying so"
ok "... the bytes of a fresh build with those options" $GTR ann-build --index "$TMP/a.gtri" -o "$TMP/k2.ivf" --lists 16 --seed 2 -q
is "$(cmp -s "$TMP/k2.ivf" "$TMP/k.ivf" && echo yes)" yes "... byte for byte"

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

# --filter-ids: exact search over every 3rd document gives the run of an index holding only
# them, byte for byte; --ann with every list probed the same documents; unknown ids refused
awk 'NR % 3 == 1' "$TMP/sub.jsonl" >"$TMP/third.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/third.jsonl" -o "$TMP/third.gtri" || exit 1
sed 's/^{"_id": "\([^"]*\)".*/\1/' "$TMP/third.jsonl" >"$TMP/third.ids"
$GTR search --index "$TMP/third.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/third.run" --quiet || exit 1
ok "search --filter-ids" $GTR search --index "$TMP/a.gtri" --filter-ids "$TMP/third.ids" -q "$TMP/q.jsonl" -k 10 -o "$TMP/filt.run" --quiet
ok "... the run of an index holding only those documents" cmp "$TMP/third.run" "$TMP/filt.run"
ok "search --ann --nprobe 16 --filter-ids" $GTR search --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --nprobe 16 --filter-ids "$TMP/third.ids" -q "$TMP/q.jsonl" -k 10 -o "$TMP/filta.run" --quiet
is "$(cut -d' ' -f1,3 "$TMP/filta.run")" "$(cut -d' ' -f1,3 "$TMP/third.run")" "... every list probed: the same documents"
{ head -n 5 "$TMP/third.ids"; echo "no-such-doc"; } >"$TMP/bad.ids"
fails "an unknown id in --filter-ids is refused" $GTR search --index "$TMP/a.gtri" --filter-ids "$TMP/bad.ids" -q "$TMP/q.jsonl" -o "$TMP/x"
like "$(cat "$TMP/err")" '^gtr search: .*bad.ids: id "no-such-doc" is not in the index \(1 of 6 ids unknown\)$' "... in one line naming it"
fails "--filter-ids with bm25 is refused" $GTR search --method bm25 --bm25-index "$TMP/none" --filter-ids "$TMP/third.ids" -q "$TMP/q.jsonl"
fails "a missing --filter-ids file is refused" $GTR search --index "$TMP/a.gtri" --filter-ids "$TMP/nothere" -q "$TMP/q.jsonl" -o "$TMP/x"

# gtr index --add --replace: every 60th document re-indexed with a revised text; the run equals
# a fresh index of the final corpus (old vectors never returned), exact and --ann alike
awk 'NR % 60 == 0 { sub(/"text": "/, "\"text\": \"Revised. ") } 1' "$TMP/sub.jsonl" >"$TMP/final.jsonl"
awk 'NR % 60 == 0' "$TMP/final.jsonl" >"$TMP/upd.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/final.jsonl" -o "$TMP/final.gtri" || exit 1
$GTR search --index "$TMP/final.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/final.run" --quiet || exit 1
fails "--add of ids already indexed is refused without --replace" $GTR index -q -m "$TINY" --add "$TMP/upd.jsonl" --from "$TMP/a.gtri" -o "$TMP/r.gtri"
like "$(cat "$TMP/err")" 'duplicate document id .*--replace replaces it' "... pointing to --replace"
fails "--replace without --add is refused" $GTR index -q -m "$TINY" -c "$TMP/upd.jsonl" --replace -o "$TMP/r.gtri"
ok "gtr index --add --replace" $GTR index -q -m "$TINY" --add "$TMP/upd.jsonl" --from "$TMP/a.gtri" --replace -o "$TMP/r.gtri"
like "$($GTR index --info "$TMP/r.gtri")" "documents: +1220 \(20 replaced" "... 20 documents replaced (index --info)"
$GTR search --index "$TMP/r.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/r.run" --quiet || exit 1
ok "... search gives the run of a fresh index of the final corpus" cmp "$TMP/final.run" "$TMP/r.run"
is "$(cmp -s "$TMP/exact" "$TMP/final.run"; echo $?)" 1 "... (which the revised texts change)"
ok "ann-build --add after --replace" $GTR ann-build --index "$TMP/r.gtri" -o "$TMP/r.ivf" --add "$TMP/a.ivf"
$GTR search --index "$TMP/r.gtri" --ann "$TMP/r.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/ra.run" --quiet || exit 1
is "$(cut -d' ' -f1,3,5 "$TMP/ra.run")" "$(cut -d' ' -f1,3,5 "$TMP/final.run")" "... every list probed: the same documents and scores"

# gtr index --delete: the exact top-1 of every query deleted; the run equals that of an index
# built without them, exact and through the IVF file of the undeleted index
awk '$4 == 1 {print $3}' "$TMP/exact" | sort -u >"$TMP/gone.ids"
echo "no-such-doc" >>"$TMP/gone.ids"
grep -v -F -f <(sed 's/.*/"_id": "&"/' "$TMP/gone.ids") "$TMP/sub.jsonl" >"$TMP/kept.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/kept.jsonl" -o "$TMP/kept.gtri" && $GTR search --index "$TMP/kept.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/kept.run" --quiet || exit 1
ok "gtr index --delete" $GTR index --delete "$TMP/gone.ids" --from "$TMP/a.gtri" -o "$TMP/del.gtri"
like "$(cat "$TMP/err")" "deleted $(($(wc -l <"$TMP/gone.ids") - 1)) documents -> .*del.gtri \(1 ids not in the index\)" "... counting them and the unknown id"
$GTR search --index "$TMP/del.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/del.run" --quiet
ok "... the run of an index built without them" cmp "$TMP/kept.run" "$TMP/del.run"
cp "$TMP/a.ivf" "$TMP/del.ivf"
ok "... the IVF file of the index before the delete still opens" $GTR search --index "$TMP/del.gtri" --ann "$TMP/del.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/dela.run" --quiet
is "$(cut -d' ' -f1,3,5 "$TMP/dela.run")" "$(cut -d' ' -f1,3,5 "$TMP/kept.run")" "... and never returns them (every list: the same run)"

# ann-tune: a lower target never needs more lists; the reported recall meets the target
ok "ann-tune --recall 0.99" $GTR ann-tune --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --recall 0.99 --sample 100
hi=$(cat "$TMP/out")
$GTR ann-tune --index "$TMP/a.gtri" --ann "$TMP/a.ivf" --recall 0.5 --sample 100 >"$TMP/lo" 2>&1
is "$(awk -v h="$(echo "$hi" | awk '{print $2}')" '{print ($2 <= h) ? "yes" : "no"}' "$TMP/lo")" yes "a lower target never needs more lists ($(cat "$TMP/lo") / $hi)"
like "$hi" "^nprobe [0-9]+ recall (0\.99|1\.0000)|every list" "the reported recall meets the target (or every list is probed)"

# stale, corrupted, truncated: searching with FILE.ivf (and its .del) must fail
refused() { fails "$1" $GTR search --index "$2" --ann "$3" -q "$TMP/q.jsonl" -o "$TMP/x"; }
damage() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
head -n 1100 "$SF/corpus.jsonl" >"$TMP/sub2.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub2.jsonl" -o "$TMP/c.gtri" || exit 1
refused "an IVF file of another index is refused" "$TMP/c.gtri" "$TMP/a.ivf"
like "$(cat "$TMP/err")" "built from another index" "... saying so"
cp "$TMP/a.ivf" "$TMP/bad.ivf"
damage "$TMP/bad.ivf" 5000 '\377'
refused "a corrupted IVF file is refused" "$TMP/a.gtri" "$TMP/bad.ivf"
like "$(cat "$TMP/err")" "bad.ivf: body checksum mismatch" "... naming the file and the damage"
head -c 3000 "$TMP/a.ivf" >"$TMP/short.ivf"
refused "a truncated IVF file is refused" "$TMP/a.gtri" "$TMP/short.ivf"
# ann-build --add: the first 1100 documents, then 100 more appended with gtr index --add
tail -n +1101 "$TMP/sub.jsonl" >"$TMP/more.jsonl"
$GTR index -q -m "$TINY" --add "$TMP/more.jsonl" --from "$TMP/c.gtri" -o "$TMP/d.gtri" || exit 1
ok "ann-build of the first 1100" $GTR ann-build --index "$TMP/c.gtri" -o "$TMP/c.ivf" --lists 16 --seed 1
$GTR index -q -m "$TINY" -c "$TMP/more.jsonl" -o "$TMP/m.gtri" && $GTR ann-build --index "$TMP/m.gtri" -o "$TMP/m.ivf" --lists 4 || exit 1
fails "--add with a base of another index is refused" $GTR ann-build --index "$TMP/d.gtri" -o "$TMP/x.ivf" --add "$TMP/m.ivf"
like "$(cat "$TMP/err")" "not built from the first documents of this index" "... saying so"
ok "ann-build --add after gtr index --add" $GTR ann-build --index "$TMP/d.gtri" -o "$TMP/d.ivf" --add "$TMP/c.ivf"
ok "a fresh build of the extended index" $GTR ann-build --index "$TMP/d.gtri" -o "$TMP/f.ivf" --lists 16 --seed 1
$GTR search --index "$TMP/d.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/exact" --quiet || exit 1
$GTR search --index "$TMP/d.gtri" --ann "$TMP/d.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/dall" --quiet || exit 1
is "$(shared "$TMP/dall")" "$(wc -l <"$TMP/exact" | tr -d ' ')" "after --add, every list probed: the exact run's documents"
$GTR search --index "$TMP/d.gtri" --ann "$TMP/d.ivf" --nprobe 4 -q "$TMP/q.jsonl" -k 10 -o "$TMP/d4" --quiet || exit 1
$GTR search --index "$TMP/d.gtri" --ann "$TMP/f.ivf" --nprobe 4 -q "$TMP/q.jsonl" -k 10 -o "$TMP/f4" --quiet || exit 1
sa=$(shared "$TMP/d4"); sf=$(shared "$TMP/f4"); tot=$(wc -l <"$TMP/exact" | tr -d ' ')
# equal recall within three binomial standard deviations of the fresh build's, computed here
is "$(awk -v a="$sa" -v f="$sf" -v n="$tot" 'BEGIN{p=f/n; sd=sqrt(n*p*(1-p)); print (a >= f - 3*sd - 1) ? "yes" : "no"}')" yes \
   "--add recall as a fresh build's at nprobe 4 ($sa vs $sf of $tot pairs)"

# ann-delete: the exact top-1 of every query deleted, never returned; kept by --add
awk '$4 == 1 {print $3}' "$TMP/exact" | sort -u >"$TMP/del.ids"
echo "no-such-doc" >>"$TMP/del.ids"
ok "ann-delete" $GTR ann-delete --index "$TMP/d.gtri" --ann "$TMP/d.ivf" "$TMP/del.ids"
like "$(cat "$TMP/out")" "deleted $(($(wc -l <"$TMP/del.ids") - 1)) documents in total \(1 ids not in the index\)" "... counting them and the unknown id"
$GTR search --index "$TMP/d.gtri" --ann "$TMP/d.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/ddel" --quiet || exit 1
is "$(awk '{print $3}' "$TMP/ddel" | grep -cxFf "$TMP/del.ids")" 0 "deleted documents are never returned"
is "$(wc -l <"$TMP/ddel" | tr -d ' ')" "$tot" "... and every query still gets k hits"
$GTR index -q -m "$TINY" --add "$SF/corpus.jsonl" --from "$TMP/d.gtri" -o "$TMP/e.gtri" 2>/dev/null ||
    { head -n 1300 "$SF/corpus.jsonl" | tail -n 100 >"$TMP/more2.jsonl"; $GTR index -q -m "$TINY" --add "$TMP/more2.jsonl" --from "$TMP/d.gtri" -o "$TMP/e.gtri" || exit 1; }
ok "ann-build --add keeps the deletions" $GTR ann-build --index "$TMP/e.gtri" -o "$TMP/e.ivf" --add "$TMP/d.ivf"
$GTR search --index "$TMP/e.gtri" --ann "$TMP/e.ivf" --nprobe 16 -q "$TMP/q.jsonl" -k 10 -o "$TMP/edel" --quiet || exit 1
is "$(awk '{print $3}' "$TMP/edel" | grep -cxFf "$TMP/del.ids")" 0 "... still never returned"
cp "$TMP/d.ivf.del" "$TMP/keep.del"
damage "$TMP/d.ivf.del" 50 '\001'
refused "a corrupted deletion file is refused" "$TMP/d.gtri" "$TMP/d.ivf"
like "$(cat "$TMP/err")" "d.ivf.del: checksum mismatch" "... naming it"
head -c 40 "$TMP/keep.del" >"$TMP/d.ivf.del"
refused "a truncated deletion file is refused" "$TMP/d.gtri" "$TMP/d.ivf"
done_testing
