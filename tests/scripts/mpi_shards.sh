#!/usr/bin/env bash
# mpi_shards.sh — sharded indexes (issue 18): `mpirun -n 1|2|3 gtr-mpi index --shards` writes a
# manifest and one shard per rank; every command opens the manifest as one index with the ids,
# snippets, order and vectors of `gtr index`'s single file (compared through the Python
# binding), so gtr search, gtr beir, gtr serve, gtr ann-build, gtr-mpi search (--split docs: each
# rank opens only its shards) and gtr-mpi beir give the single-file results byte for byte. A
# shard missing, truncated or from another build is refused with one line; a rank killed
# mid-build fails the job naming it, leaves no manifest, and the same command resumes.
# Approximate search per shard: gtr-mpi ann-build writes one IVF file per shard (gtr ann-build's
# file of that shard; a shard build killed midway resumes to the same file), and gtr-mpi search --split docs --ann gives, on 1, 2, 3 and 5 ranks, the
# per-shard gtr search --ann runs merged by score (exact search when every list is probed and
# every candidate re-ranked; with one shard, gtr search --ann over the single file).
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

. tests/scripts/mpi_setup.sh.inc
PY=
for p in .venv-test/bin/python /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then echo "1..0 # SKIP no Python with numpy for the binding"; exit 0; fi
same() { PYTHONPATH=python GTR_LIBRARY=lib/libgtr.so "$PY" tests/tools/index_same.py "$@"; }
plan 91

head -n 300 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 30 "$SF/queries.jsonl" >"$TMP/q.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/one.gtri" -t 1 || exit 1
$GTR bm25-index -c "$TMP/sub.jsonl" -o "$TMP/sub.bm25" --quiet 2>/dev/null || exit 1
$GTR search --method hybrid --index "$TMP/one.gtri" --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 300 \
    -o "$TMP/one.hybrid.run" --quiet
$GTR search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 300 -o "$TMP/one.run" --quiet
$GTR search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 20 -o "$TMP/x20.run" --quiet
$GTR search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 100 -o "$TMP/x100.run" --quiet

# ---- build on 1, 2, 3 ranks: one shard per rank, opened as the single-file index
for n in 1 2 3; do
    ok "gtr-mpi index --shards on $n ranks" run $n $MPI index -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/s$n.gtri" \
        --shards --batch 7 -t 1
    is "$(head -n 1 "$TMP/s$n.gtri") $(ls "$TMP" | grep -c "^s$n\.gtri\.shard-[0-9]*-of-$n\$")" "gtr-sharded-index 1 $n" \
        "... a manifest and $n shard files"
    ok "... the Python Index reads the ids, snippets and vectors of gtr index's file ($n shards)" \
        same "$TMP/one.gtri" "$TMP/s$n.gtri"
done
ok "gtr search over the 3-shard manifest" $GTR search --index "$TMP/s3.gtri" -q "$TMP/q.jsonl" -k 300 \
    -o "$TMP/s3.run" --quiet
ok "... the run of the single file, byte for byte" cmp "$TMP/one.run" "$TMP/s3.run"
ok "gtr search --method hybrid over the 2-shard manifest" $GTR search --method hybrid --index "$TMP/s2.gtri" \
    --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 300 -o "$TMP/s2.hybrid.run" --quiet
ok "... the same run" cmp "$TMP/one.hybrid.run" "$TMP/s2.hybrid.run"

# ---- gtr-mpi search --split docs: each rank opens only its shards (or shares one)
for n in 1 2 3 5; do
    ok "gtr-mpi search --split docs over 3 shards on $n ranks" run $n $MPI search --split docs \
        --index "$TMP/s3.gtri" -q "$TMP/q.jsonl" -k 300 -o "$TMP/m$n.run" -t 1
    ok "... the run of gtr search over the single file ($n ranks)" cmp "$TMP/one.run" "$TMP/m$n.run"
done
ok "gtr-mpi search --split docs --method hybrid over 3 shards on 2 ranks" run 2 $MPI search --split docs \
    --method hybrid --index "$TMP/s3.gtri" --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 300 -o "$TMP/mh.run" -t 1
ok "... the hybrid run of gtr search over the single file" cmp "$TMP/one.hybrid.run" "$TMP/mh.run"
ok "gtr-mpi search (queries split) over the 2-shard manifest on 3 ranks" run 3 $MPI search --method hybrid \
    --index "$TMP/s2.gtri" --bm25-index "$TMP/sub.bm25" -q "$TMP/q.jsonl" -k 300 -o "$TMP/mq.run" -t 1
ok "... the same hybrid run" cmp "$TMP/one.hybrid.run" "$TMP/mq.run"

# ---- gtr ann-build over a manifest: the IVF file of the single index
ok "gtr ann-build over the 3-shard manifest" $GTR ann-build --index "$TMP/s3.gtri" -o "$TMP/s3.ivf" --lists 4 -t 1
$GTR ann-build --index "$TMP/one.gtri" -o "$TMP/one.ivf" --lists 4 -t 1 >/dev/null 2>&1
ok "... the same bytes as over the single file" cmp "$TMP/one.ivf" "$TMP/s3.ivf"

# ---- one IVF index per shard (gtr-mpi ann-build), searched per rank under --split docs --ann
ok "gtr-mpi ann-build over the 3-shard manifest on 2 ranks" run 2 $MPI ann-build --index "$TMP/s3.gtri" \
    -o "$TMP/p3.ivf" --lists 4 -t 1
is "$(ls "$TMP" | grep -c '^p3\.ivf\.shard-[0-2]-of-3$')" 3 "... one IVF file per shard"
for s in 0 1 2; do
    $GTR ann-build --index "$TMP/s3.gtri.shard-$s-of-3" -o "$TMP/g$s.ivf" --lists 4 -t 1 >/dev/null 2>&1
    $GTR search --index "$TMP/s3.gtri.shard-$s-of-3" --ann "$TMP/g$s.ivf" --nprobe 2 -q "$TMP/q.jsonl" -k 20 \
        -o "$TMP/g$s.run" --quiet >/dev/null 2>&1
done
ok "... each the file gtr ann-build writes from that shard alone" sh -c "cmp '$TMP/g0.ivf' '$TMP/p3.ivf.shard-0-of-3' &&
    cmp '$TMP/g1.ivf' '$TMP/p3.ivf.shard-1-of-3' && cmp '$TMP/g2.ivf' '$TMP/p3.ivf.shard-2-of-3'"
# resume: shard 1's build killed by the file size limit (SIGXFSZ) halfway through its vectors,
# as when its rank dies; gtr-mpi ann-build resumes it from its checkpoint (and builds the
# others) to the files of the uninterrupted run, and removes the work files
lim=$(( $(stat -c %s "$TMP/p3.ivf.shard-1-of-3") / 2 / 1024 ))
(ulimit -f "$lim"; $GTR ann-build --index "$TMP/s3.gtri.shard-1-of-3" -o "$TMP/k3.ivf.shard-1-of-3" --lists 4 -t 1 \
    --checkpoint 20 -q) 2>/dev/null
ok "a shard build killed mid-build leaves its checkpoint" test -s "$TMP/k3.ivf.shard-1-of-3.ckpt" \
    -a ! -e "$TMP/k3.ivf.shard-1-of-3"
ok "gtr-mpi ann-build --checkpoint 20 on 2 ranks" run 2 $MPI ann-build --index "$TMP/s3.gtri" -o "$TMP/k3.ivf" \
    --lists 4 -t 1 --checkpoint 20
like "$(cat "$TMP/err")" "shard 1: [1-9][0-9]* documents from an interrupted build" "... resumes shard 1 from its checkpoint"
ok "... to the files of the uninterrupted run" sh -c "cmp '$TMP/p3.ivf.shard-0-of-3' '$TMP/k3.ivf.shard-0-of-3' &&
    cmp '$TMP/p3.ivf.shard-1-of-3' '$TMP/k3.ivf.shard-1-of-3' && cmp '$TMP/p3.ivf.shard-2-of-3' '$TMP/k3.ivf.shard-2-of-3'"
is "$(ls "$TMP" | grep -c '^k3\.ivf.*\.\(ckpt\|partial\)$')" 0 "... and removes the work files"
# the reference: the three single-process searches (gtr search --ann on each shard) merged here,
# per query by score, equal scores by id descending, the best 20
python3 - "$TMP"/g0.run "$TMP"/g1.run "$TMP"/g2.run >"$TMP/g.run" <<'PY'
import sys
runs, order = {}, []
for f in sys.argv[1:]:
    for line in open(f):
        q, _, d, _, s, tag = line.split()
        if q not in runs: runs[q] = []; order.append(q)
        runs[q].append((float(s), d, s, tag))
for q in order:
    best = sorted(runs[q], key=lambda h: (h[0], h[1]), reverse=True)[:20]
    for r, (_, d, s, tag) in enumerate(best, 1): print(q, "Q0", d, r, s, tag)
PY
[ "$(wc -l <"$TMP/g.run")" = 600 ] || echo "# the merged reference run has $(wc -l <"$TMP/g.run") lines"
for n in 1 2 3 5; do
    ok "gtr-mpi search --split docs --ann --nprobe 2 over 3 shards on $n ranks" run $n $MPI search --split docs \
        --index "$TMP/s3.gtri" --ann "$TMP/p3.ivf" --nprobe 2 -q "$TMP/q.jsonl" -k 20 -o "$TMP/a$n.run" -t 1
    ok "... the per-shard gtr search --ann runs, merged ($n ranks)" cmp "$TMP/g.run" "$TMP/a$n.run"
done
ok "... (which differ from exact search: approximate)" sh -c "! cmp -s '$TMP/g.run' '$TMP/x20.run'"
# every list probed and every candidate re-ranked (4 x k >= a shard's documents): exact search
ok "gtr-mpi search --split docs --ann --nprobe 4 -k 100 on 2 ranks" run 2 $MPI search --split docs \
    --index "$TMP/s3.gtri" --ann "$TMP/p3.ivf" --nprobe 4 -q "$TMP/q.jsonl" -k 100 -o "$TMP/a100.run" -t 1
ok "... the exact run of gtr search over the single file" cmp "$TMP/x100.run" "$TMP/a100.run"
# one shard: the single-process IVF search over the same documents, dense and hybrid
ok "gtr-mpi ann-build of the 1-shard index: gtr ann-build's file of the single index" sh -c \
    "timeout 300 mpirun --oversubscribe -n 1 $MPI ann-build --index '$TMP/s1.gtri' -o '$TMP/p1.ivf' --lists 4 -t 1 \
     2>/dev/null && cmp '$TMP/one.ivf' '$TMP/p1.ivf.shard-0-of-1'"
for m in dense hybrid; do
    $GTR search --method $m --index "$TMP/one.gtri" --bm25-index "$TMP/sub.bm25" --ann "$TMP/one.ivf" --nprobe 2 \
        -q "$TMP/q.jsonl" -k 20 -o "$TMP/o.$m.run" --quiet >/dev/null 2>&1
    ok "gtr-mpi search --split docs --ann --method $m, 1 shard on 2 ranks" run 2 $MPI search --split docs \
        --method $m --index "$TMP/s1.gtri" --bm25-index "$TMP/sub.bm25" --ann "$TMP/p1.ivf" --nprobe 2 \
        -q "$TMP/q.jsonl" -k 20 -o "$TMP/a1.$m.run" -t 1
    ok "... the run of gtr search --ann over the single file ($m)" cmp "$TMP/o.$m.run" "$TMP/a1.$m.run"
done
ok "gtr-mpi search --ann FILE (queries split) on 3 ranks" run 3 $MPI search --index "$TMP/one.gtri" \
    --ann "$TMP/one.ivf" --nprobe 2 -q "$TMP/q.jsonl" -k 20 -o "$TMP/aq.run" -t 1
ok "... the run of gtr search --ann" cmp "$TMP/o.dense.run" "$TMP/aq.run"
ok "gtr-mpi search --split docs --ann --method hybrid over 3 shards on 1 and 3 ranks" sh -c "
    timeout 300 mpirun --oversubscribe -n 1 $MPI search --split docs --method hybrid --index '$TMP/s3.gtri' \
        --bm25-index '$TMP/sub.bm25' --ann '$TMP/p3.ivf' --nprobe 2 -q '$TMP/q.jsonl' -k 20 -o '$TMP/h1.run' -t 1 &&
    timeout 300 mpirun --oversubscribe -n 3 $MPI search --split docs --method hybrid --index '$TMP/s3.gtri' \
        --bm25-index '$TMP/sub.bm25' --ann '$TMP/p3.ivf' --nprobe 2 -q '$TMP/q.jsonl' -k 20 -o '$TMP/h3.run' -t 1"
ok "... the same run" cmp "$TMP/h1.run" "$TMP/h3.run"
# refused with one line: no IVF file of a shard, the IVF file of another shard, one index file
mkdir -p "$TMP/badivf"
cp "$TMP"/p3.ivf.shard-0-of-3 "$TMP"/p3.ivf.shard-2-of-3 "$TMP/badivf/"
fails "--split docs --ann without shard 1's IVF file is refused" run 3 $MPI search --split docs \
    --index "$TMP/s3.gtri" --ann "$TMP/badivf/p3.ivf" -q "$TMP/q.jsonl" -k 5 -o "$TMP/bad.run" -t 1
like "$(grep -c 'gtr-mpi search: rank 1:' "$TMP/err") $(grep 'gtr-mpi search: rank 1:' "$TMP/err")" \
    "^1 gtr-mpi search: rank 1: .*p3.ivf.shard-1-of-3: no IVF file of shard 1 of 3" "... in one line naming it"
cp "$TMP/p3.ivf.shard-0-of-3" "$TMP/badivf/p3.ivf.shard-1-of-3"
fails "the IVF file of another shard is refused" run 3 $MPI search --split docs \
    --index "$TMP/s3.gtri" --ann "$TMP/badivf/p3.ivf" -q "$TMP/q.jsonl" -k 5 -o "$TMP/bad.run" -t 1
like "$(grep 'gtr-mpi search: rank' "$TMP/err")" "^gtr-mpi search: rank 1: .*p3.ivf.shard-1-of-3: " "... naming it"
fails "--split docs --ann over one index file is refused" run 2 $MPI search --split docs \
    --index "$TMP/one.gtri" --ann "$TMP/p3.ivf" -q "$TMP/q.jsonl" -k 5 -o "$TMP/bad.run" -t 1
like "$(cat "$TMP/err")" "needs a sharded index" "... saying what it needs"
is "$([ -e "$TMP/bad.run" ] && echo exists || echo absent)" "absent" "... and no run written"

# ---- gtr beir and gtr-mpi beir: a small dataset folder, its cached index replaced by shards
small_beir "$TMP/ds"
$GTR beir -q -d "$TMP/ds" -m "$TINY" --json --cache "$TMP/c1" >"$TMP/one.json" || exit 1
cached=$(cd "$TMP/c1" && ls beir/*/dense-*.gtri)
mkdir -p "$TMP/c2/$(dirname "$cached")"
ok "gtr-mpi index --shards of the BEIR corpus on 3 ranks (as gtr beir's cached index)" run 3 $MPI index -q \
    -m "$TINY" -c "$TMP/ds/corpus.jsonl" -o "$TMP/c2/$cached" --shards -t 1
ok "gtr beir over the cached manifest" sh -c "$GTR beir -d '$TMP/ds' -m '$TINY' --json --cache '$TMP/c2' >'$TMP/s.json'"
ok "... the metrics of the single file, byte for byte" cmp "$TMP/one.json" "$TMP/s.json"
is "$(head -n 1 "$TMP/c2/$cached")" "gtr-sharded-index 1" "... which it used, not rebuilt"
ok "gtr-mpi beir over the manifest on 2 ranks" run 2 $MPI beir -d "$TMP/ds" --index "$TMP/c2/$cached" --json -t 1
cp "$TMP/out" "$TMP/m.json"
ok "... the same metrics" cmp "$TMP/one.json" "$TMP/m.json"
ok "gtr-mpi beir --split-by docs over the manifest on 2 ranks (each opens its shards)" run 2 $MPI beir \
    -d "$TMP/ds" --index "$TMP/c2/$cached" --split-by docs --json -t 1
cp "$TMP/out" "$TMP/md.json"
ok "... the same metrics" cmp "$TMP/one.json" "$TMP/md.json"

# ---- gtr serve --index MANIFEST: /search answers as over the single file
hits() { # serve INDEX, print the hits of one query
    rm -f "$TMP/port"
    $GTR serve -m "$TINY" --index "$1" --port 0 --port-file "$TMP/port" 2>"$TMP/serve.log" &
    local pid=$!
    for _ in $(seq 1 200); do [ -s "$TMP/port" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    curl -s "http://127.0.0.1:$(cat "$TMP/port" 2>/dev/null)/search" -H 'Content-Type: application/json' \
        -d '{"query": "cancer cells and DNA damage", "k": 20}' |
        python3 -c 'import json, sys; [print(h["id"], repr(h["score"])) for h in json.load(sys.stdin)["hits"]]'
    kill -TERM $pid 2>/dev/null
    wait $pid 2>/dev/null
}
if command -v curl >/dev/null; then
    want=$(hits "$TMP/one.gtri")
    like "$want" "^[^ ]+ [0-9.e-]+" "gtr serve --index FILE answers /search"
    is "$(hits "$TMP/s3.gtri")" "$want" "gtr serve --index MANIFEST: the same hits and scores"
else
    for _ in 1 2; do _tap_n=$((_tap_n+1)); echo "ok $_tap_n # SKIP curl is not installed"; done
fi

# ---- refused with one line: a shard missing, truncated, from another build; a damaged manifest
mkdir -p "$TMP/bad"
head -n 299 "$TMP/sub.jsonl" >"$TMP/sub299.jsonl"
run 3 $MPI index -q -m "$TINY" -c "$TMP/sub299.jsonl" -o "$TMP/bad/other.gtri" --shards -t 1 || exit 1
refused() { # name: gtr search over $TMP/bad/s3.gtri fails with one line matching regex
    fails "$1" $GTR search --index "$TMP/bad/s3.gtri" -q "$TMP/q.jsonl" -k 5 -o "$TMP/bad.run" --quiet
    like "$(wc -l <"$TMP/err") $(cat "$TMP/err")" "^1 gtr search: .*$2" "... in one line naming it"
}
cp "$TMP"/s3.gtri* "$TMP/bad/"
rm "$TMP/bad/s3.gtri.shard-1-of-3"
refused "a missing shard is refused" "shard 1 of 3.*No such file"
head -c 20000 "$TMP/s3.gtri.shard-1-of-3" >"$TMP/bad/s3.gtri.shard-1-of-3"
refused "a truncated shard is refused" "shard 1 of 3.*truncated"
cp "$TMP/bad/other.gtri.shard-2-of-3" "$TMP/bad/s3.gtri.shard-2-of-3"
cp "$TMP/s3.gtri.shard-1-of-3" "$TMP/bad/"
refused "a shard of another build is refused" "shard 2 of 3 .*another build"
cp "$TMP"/s3.gtri* "$TMP/bad/"
sed -i 's/^documents 300$/documents 301/' "$TMP/bad/s3.gtri"
refused "a damaged manifest is refused" "manifest"

# ---- a duplicate id across shards: refused naming the corpus lines, no manifest
cp "$TMP/sub.jsonl" "$TMP/dup.jsonl"
head -n 1 "$TMP/sub.jsonl" >>"$TMP/dup.jsonl"
fails "a document id in two shards is refused" run 3 $MPI index -q -m "$TINY" -c "$TMP/dup.jsonl" -o "$TMP/dup.gtri" \
    --shards -t 1
like "$(cat "$TMP/err")" "dup.jsonl:301: duplicate document id .* \(first on line 1\)" "... naming both corpus lines"
is "$([ -e "$TMP/dup.gtri" ] && echo exists || echo absent)" "absent" "... and no manifest"

# ---- a rank killed mid-build: non-zero exit naming it, no manifest; the same command resumes
head -n 1500 "$SF/corpus.jsonl" >"$TMP/big.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big1.gtri" -t 1 || exit 1
checkpointed() { [ -f "$TMP/big2.gtri.shard-1-of-2.ckpt" ]; }
kill_rank1 mid-build checkpointed 2 $MPI index -q -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big2.gtri" --shards \
    --batch 2 --checkpoint 20 -t 1
is "$([ -e "$TMP/big2.gtri" ] && echo exists || echo absent)" "absent" "... and no manifest"
ok "the same command resumes" run 2 $MPI index -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big2.gtri" --shards \
    --batch 2 --checkpoint 20 -t 1
like "$(cat "$TMP/err")" "[1-9][0-9]* kept from earlier runs" "... from shard 1's checkpoint"
ok "... to the documents and vectors of the single-process build" same "$TMP/big1.gtri" "$TMP/big2.gtri"
ok "a rerun keeps both finished shards" run 2 $MPI index -m "$TINY" -c "$TMP/big.jsonl" -o "$TMP/big2.gtri" --shards \
    --batch 2 --checkpoint 20 -t 1
like "$(cat "$TMP/err")" "\(0 encoded now, 1500 kept" "... encoding nothing"
done_testing
