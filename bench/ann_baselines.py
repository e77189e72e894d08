"""ann_baselines.py KIND DIR THREADS — FAISS (IndexIVFFlat, IndexHNSWFlat, IndexIVFPQ + refine)
and hnswlib (PyPI) on the very vectors, queries and ground truth ann_bench wrote to DIR, in the
same run as gtr. Prints the Markdown rows of bench_ann.sh's table: recall@10, queries/s at
batch 1 and batch 256, build seconds, peak RSS of this process while that index was built and
searched (GB; it includes the float32 input array every build reads), and the index's own memory. Parameter grids per data set:
BENCH_ANN_IVF_<KIND> (nprobe), BENCH_ANN_EF_<KIND> (efSearch); build parameters:
BENCH_ANN_LISTS (IVF lists, default sqrt N), BENCH_ANN_HNSW_M (32) and BENCH_ANN_HNSW_EFC (100)
for both HNSW libraries, BENCH_ANN_REFINE_<KIND> (IVFPQ's refine k_factor grid, default 4).
BENCH_ANN_PQ_<KIND>: IVFPQ's nprobe grid (default BENCH_ANN_IVF_<KIND>).
BENCH_ANN_SKIP / BENCH_ANN_SKIP_<KIND>: baselines left out (ivfflat faiss-hnsw ivfpq hnswlib).
BENCH_ANN_BUILD_BUDGET_S: the HNSW builds (hnswlib, FAISS HNSWFlat; one at a time) add the vectors
in chunks of 100k and, once a call has spent that many seconds, save the partial graph to DIR and
stop without rows; the next call with the same settings loads it and goes on (so a build longer
than one hold of the shared benchmark lock is done in pieces). Its build seconds are the adds'
own, summed over the calls (saving and loading not counted). BENCH_ANN_KEEP_BUILT=1 also keeps a
finished HNSW build in DIR, and later calls with the same settings search it without building."""
import json
import os
import resource
import sys
import time

import numpy as np

kind, d, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = np.fromfile(f"{d}/queries.f32", dtype=np.float32)
truth = np.fromfile(f"{d}/truth.u32", dtype=np.uint32)
nq = truth.size // 10
dim = q.size // nq
q = q.reshape(nq, dim)
truth = truth.reshape(nq, 10)
x = np.fromfile(f"{d}/vectors.f32", dtype=np.float32).reshape(-1, dim)
n = x.shape[0]


def reset_peak():
    """Linux: writing 5 to clear_refs resets VmHWM, so each index's peak is its own (plus the
    input array every build needs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rss_gb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def recall(ids):
    return sum(len(set(ids[i]) & set(truth[i])) for i in range(nq)) / (nq * 10)


nq1 = min(nq, int(os.environ.get("BENCH_ANN_NQ1", "200")) or nq)


def measure(name, build_s, search, mem_gb):
    """batch 256 over every query (recall from it), batch 1 over the first nq1 (as ann_bench);
    mem_gb: the index's own memory (vectors, codes, graph), computed from its parameters."""
    t = time.perf_counter()
    ids = np.concatenate([search(q[b:b + 256]) for b in range(0, nq, 256)])
    qps256 = nq / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(nq1):
        search(q[i:i + 1])
    qps1 = nq1 / (time.perf_counter() - t)
    print(f"| {kind} | {n} | {name} | {recall(ids):.4f} | {qps1:.1f} | {qps256:.1f} | {build_s:.1f} | "
          f"{rss_gb():.2f} | {rss_gb():.2f} | {mem_gb:.2f} |", flush=True)


# BENCH_ANN_SKIP: baselines left out (faiss-hnsw, ivfpq, hnswlib), e.g. when their builds
# would not fit the time a loaded machine leaves
skip = (os.environ.get("BENCH_ANN_SKIP", "") + " " + os.environ.get(f"BENCH_ANN_SKIP_{kind.upper()}", "")).split()
hnsw_m = int(os.environ.get("BENCH_ANN_HNSW_M", "32"))
hnsw_efc = int(os.environ.get("BENCH_ANN_HNSW_EFC", "100"))


budget = float(os.environ.get("BENCH_ANN_BUILD_BUDGET_S", "0") or 0)
# BENCH_ANN_KEEP_BUILT=1: a finished HNSW build is saved to DIR/<name>.built, and a later call
# with the same settings searches it without building again (its build seconds are the saved
# ones), so a long build can run at low priority and the search be timed on a quiet machine.
keep_built = os.environ.get("BENCH_ANN_KEEP_BUILT", "0") == "1"


def chunked_build(name, create, add, save, load):
    """Builds an index by adding x in chunks of 100k. With a budget, pauses (saving the partial
    index to DIR, temp file then rename) once this call has used it, and returns None; a later
    call loads the saved index and adds the rest. Returns (index, build seconds)."""
    ckpt = f"{d}/{name}.partial"
    built = f"{d}/{name}.built"
    stamp = [kind, n, dim, hnsw_m, hnsw_efc]
    if os.path.exists(built + ".json") and json.load(open(built + ".json"))["stamp"] == stamp:
        secs = json.load(open(built + ".json"))["secs"]
        print(f"({name}: reusing the finished build in {built}, {secs:.1f} s of build)", file=sys.stderr, flush=True)
        return load(built), secs
    done, secs = 0, 0.0
    if os.path.exists(ckpt + ".json"):
        meta = json.load(open(ckpt + ".json"))
        if meta["stamp"] == stamp:
            done, secs = meta["done"], meta["secs"]
    t_call = time.perf_counter()
    if done:
        idx = load(ckpt)
        print(f"({name}: resumed at {done}/{n}, {secs:.1f} s of build so far)", file=sys.stderr, flush=True)
    else:
        t = time.perf_counter()
        idx = create()
        secs += time.perf_counter() - t
    while done < n:
        end = min(n, done + 100000)
        t = time.perf_counter()
        add(idx, done, end)
        secs += time.perf_counter() - t
        done = end
        print(f"({name}: {done}/{n} added, {secs:.1f} s)", file=sys.stderr, flush=True)
        if budget and done < n and time.perf_counter() - t_call > budget:
            save(idx, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            with open(ckpt + ".json.tmp", "w") as f:
                json.dump({"stamp": stamp, "done": done, "secs": secs}, f)
            os.replace(ckpt + ".json.tmp", ckpt + ".json")
            print(f"({name}: build paused at {done}/{n} after {secs:.1f} s; run again to go on)",
                  file=sys.stderr, flush=True)
            return None, secs
    for f in (ckpt, ckpt + ".json"):
        if os.path.exists(f):
            os.remove(f)
    if keep_built:
        save(idx, built + ".tmp")
        os.replace(built + ".tmp", built)
        with open(built + ".json.tmp", "w") as f:
            json.dump({"stamp": stamp, "secs": secs}, f)
        os.replace(built + ".json.tmp", built + ".json")
    return idx, secs


def grid(var, default):
    return [int(v) for v in os.environ.get(var, default).split()]


try:
    import faiss
    faiss.omp_set_num_threads(threads)
    lists = int(os.environ.get("BENCH_ANN_LISTS") or round(np.sqrt(n)))
    if "ivfflat" not in skip:
        reset_peak()
        t = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.train(x)
        ivf.add(x)
        b = time.perf_counter() - t
        for nprobe in grid(f"BENCH_ANN_IVF_{kind.upper()}", "1 2 4 8 16 32 64"):
            ivf.nprobe = nprobe
            measure(f"FAISS {faiss.__version__} IVFFlat lists={lists} nprobe={nprobe}", b,
                    lambda qq: ivf.search(qq, 10)[1], (n * (dim * 4 + 8) + lists * dim * 4) / 1e9)
        del ivf
    if "faiss-hnsw" not in skip:
        reset_peak()

        def faiss_hnsw():
            h = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            h.hnsw.efConstruction = hnsw_efc
            return h

        def faiss_load(path):
            h = faiss.read_index(path)
            h.hnsw.efConstruction = hnsw_efc
            return h

        hnsw, b = chunked_build("faiss-hnsw", faiss_hnsw, lambda h, s, e: h.add(x[s:e]),
                                lambda h, path: faiss.write_index(h, path), faiss_load)
        for ef in (grid(f"BENCH_ANN_EF_{kind.upper()}", "16 32 64 128 256") if hnsw is not None else []):
            hnsw.hnsw.efSearch = ef
            measure(f"FAISS HNSWFlat M={hnsw_m} efC={hnsw_efc} ef={ef}", b, lambda qq: hnsw.search(qq, 10)[1],
                    n * (dim * 4 + 2 * hnsw_m * 4) / 1e9)
        del hnsw
    if "ivfpq" not in skip:
        reset_peak()
        t = time.perf_counter()
        pq = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, lists, dim // 8, 8, faiss.METRIC_INNER_PRODUCT)
        pq.train(x)
        ref = faiss.IndexRefineFlat(pq)  # made before adding: it keeps its own flat copy in step
        ref.add(x)
        b = time.perf_counter() - t
        for kf in grid(f"BENCH_ANN_REFINE_{kind.upper()}", "4"):
            for nprobe in grid(f"BENCH_ANN_PQ_{kind.upper()}",
                               os.environ.get(f"BENCH_ANN_IVF_{kind.upper()}", "1 2 4 8 16 32 64")):
                faiss.extract_index_ivf(ref).nprobe = nprobe
                ref.k_factor = kf
                measure(f"FAISS IVFPQ m={dim // 8} + refine x{kf} nprobe={nprobe}", b,
                        lambda qq: ref.search(qq, 10)[1], n * (dim // 8 + 8 + dim * 4) / 1e9)
        del ref, pq
except ImportError:
    print("(faiss-cpu not installed: FAISS rows skipped)", file=sys.stderr)

try:
    if "hnswlib" in skip:
        raise ImportError
    import hnswlib
    reset_peak()

    def hnswlib_new():
        h = hnswlib.Index(space="ip", dim=dim)
        h.init_index(max_elements=n, M=hnsw_m, ef_construction=hnsw_efc)
        h.set_num_threads(threads)
        return h

    def hnswlib_load(path):
        h = hnswlib.Index(space="ip", dim=dim)
        h.load_index(path, max_elements=n)
        h.set_num_threads(threads)
        return h

    h, b = chunked_build("hnswlib", hnswlib_new, lambda h, s, e: h.add_items(x[s:e], np.arange(s, e)),
                         lambda h, path: h.save_index(path), hnswlib_load)
    for ef in (grid(f"BENCH_ANN_EF_{kind.upper()}", "16 32 64 128 256") if h is not None else []):
        h.set_ef(ef)
        measure(f"hnswlib M={hnsw_m} efC={hnsw_efc} ef={ef}", b,
                lambda qq: h.knn_query(qq, k=10)[0], n * (dim * 4 + 2 * hnsw_m * 4 + 8) / 1e9)
except ImportError:
    print("(hnswlib not installed or skipped: hnswlib rows left out)", file=sys.stderr)
