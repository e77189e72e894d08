"""ann_baselines.py KIND DIR THREADS — FAISS (IndexIVFFlat, IndexHNSWFlat, IndexIVFPQ + refine)
and hnswlib (PyPI) on the very vectors, queries and ground truth ann_bench wrote to DIR, in the
same run as gtr. Prints the Markdown rows of bench_ann.sh's table: recall@10, queries/s at
batch 1 and batch 256, build seconds, peak RSS of this process while that index was built and
searched (GB; it includes the float32 input array every build reads), and the index's own memory. Parameter grids per data set:
BENCH_ANN_IVF_<KIND> (nprobe), BENCH_ANN_EF_<KIND> (efSearch); build parameters:
BENCH_ANN_LISTS (IVF lists, default sqrt N), BENCH_ANN_HNSW_M (32) and BENCH_ANN_HNSW_EFC (100)
for both HNSW libraries, BENCH_ANN_REFINE_<KIND> (IVFPQ's refine k_factor grid, default 4).
BENCH_ANN_PQ_<KIND>: IVFPQ's nprobe grid (default BENCH_ANN_IVF_<KIND>).
BENCH_ANN_SKIP / BENCH_ANN_SKIP_<KIND>: baselines left out (ivfflat faiss-hnsw ivfpq hnswlib)."""
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
        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = hnsw_efc
        hnsw.add(x)
        b = time.perf_counter() - t
        for ef in grid(f"BENCH_ANN_EF_{kind.upper()}", "16 32 64 128 256"):
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
    t = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=dim)
    h.init_index(max_elements=n, M=hnsw_m, ef_construction=hnsw_efc)
    h.set_num_threads(threads)
    h.add_items(x)
    b = time.perf_counter() - t
    for ef in grid(f"BENCH_ANN_EF_{kind.upper()}", "16 32 64 128 256"):
        h.set_ef(ef)
        measure(f"hnswlib M={hnsw_m} efC={hnsw_efc} ef={ef}", b,
                lambda qq: h.knn_query(qq, k=10)[0], n * (dim * 4 + 2 * hnsw_m * 4 + 8) / 1e9)
except ImportError:
    print("(hnswlib not installed or skipped: hnswlib rows left out)", file=sys.stderr)
