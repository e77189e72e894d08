"""search_faiss.py DIR THREADS K BATCH — FAISS IndexFlatIP (faiss-cpu) on the very vectors of the
index bench/search_bench.c built (read in place from the index file through numpy.memmap, at
the offset it wrote to DIR/layout.txt), with its queries (DIR/queries.npy): the same
measurements (single-query latency, batch throughput), then a check that FAISS's top-k equal
gtr's (DIR/hits_*.txt). Rankings may differ only where two scores are within float rounding
(FAISS sums in a different order), which is reported separately.

Prints "RESULT | ..." rows like search_bench and "CHECK ..." lines."""
import sys
import time

import numpy as np
import faiss


def read_hits(path):
    rows = []
    with open(path) as f:
        for line in f:
            rows.append([(int(a), float(b)) for a, b in (t.split(":") for t in line.split())])
    return rows


def compare(name, ours, ids, scores, k):
    """Top-k lists equal, or different only between documents whose scores are within 1e-5
    (the two libraries round differently), or really different."""
    same = rounding = other = 0
    for q, row in enumerate(ours):
        mine = [d for d, _ in row]
        theirs = [int(x) for x in ids[q][:k]]
        if mine == theirs:
            same += 1
            continue
        score = {int(i): float(s) for i, s in zip(ids[q][:k], scores[q][:k])}
        score.update(dict(row))
        # every position where the lists disagree holds two near-equal scores
        if all(abs(score[a] - score[b]) < 1e-5 for a, b in zip(mine, theirs) if a != b):
            rounding += 1
        else:
            other += 1
    print(f"CHECK {name}: {len(ours)} queries, identical top-{k}: {same}, "
          f"differing only within float rounding: {rounding}, otherwise differing: {other}")
    return other == 0


def main():
    d, threads, k, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    path, offset, n, dim = open(f"{d}/layout.txt").read().split()
    offset, n, dim = int(offset), int(n), int(dim)
    faiss.omp_set_num_threads(threads)
    xb = np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=(n, dim))
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(xb))
    t_add = time.perf_counter() - t0
    xq = np.load(f"{d}/queries.npy")
    ours1 = read_hits(f"{d}/hits_b1.txt")
    oursb = read_hits(f"{d}/hits_b{batch}.txt")
    nq = len(ours1)
    index.search(xq[:1], k)  # warm up
    lat = []
    ids1 = []
    sc1 = []
    for i in range(nq):
        a = time.perf_counter()
        s, ix = index.search(xq[i:i + 1], k)
        lat.append(time.perf_counter() - a)
        ids1.append(ix[0])
        sc1.append(s[0])
    lat.sort()
    print(f"RESULT | {n} | {dim} | {threads} | FAISS IndexFlatIP {faiss.__version__} | 1 | "
          f"{nq / sum(lat):.1f} | {1e3 * lat[nq // 2]:.2f} | {1e3 * lat[nq * 99 // 100]:.2f} |")
    best = 1e30
    for _ in range(3):
        a = time.perf_counter()
        sb, idb = index.search(xq[:batch], k)
        best = min(best, time.perf_counter() - a)
    print(f"RESULT | {n} | {dim} | {threads} | FAISS IndexFlatIP {faiss.__version__} | {batch} | "
          f"{batch / best:.1f} | {1e3 * best / batch:.2f} | - |")
    print(f"CHECK faiss add (copy into its own memory): {t_add:.2f} s")
    ok = compare("batch 1", ours1, ids1, sc1, k) & compare(f"batch {batch}", oursb, idb, sb, k)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
