#!/usr/bin/env python3
"""Cross-check `gtr eval` against pytrec_eval (trec_eval's own code) on random qrels and runs
with heavy score ties, graded/zero/negative judgments, judged queries without relevant
documents, unjudged run queries and partial query coverage.

Not part of `make test` (it needs pytrec_eval): run it by hand after changing src/eval/.

    python3 -m venv build/venv-pytrec && build/venv-pytrec/bin/pip install pytrec-eval-terrier
    build/venv-pytrec/bin/python tests/tools/eval_vs_pytrec_eval.py [--gtr bin/gtr] [--trials 200]

Every per-query value (-q) and every summary value is compared after trec_eval's %6.4f
formatting; exits non-zero on the first difference.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

import pytrec_eval

MEASURES = ["ndcg_cut.1,3,5,10,100", "map_cut.5,10,100", "recall.1,5,10,100", "P.1,5,10,100",
            "recip_rank", "map", "ndcg", "num_ret", "num_rel", "num_rel_ret"]


def random_case(rng):
    n_docs = rng.randint(5, 60)
    docs = ["d%d" % rng.randint(0, 3 * n_docs) for _ in range(n_docs)]
    docs = sorted(set(docs))
    queries = ["q%d" % i for i in range(rng.randint(1, 12))]
    qrels = {}
    for q in queries:
        judged = rng.sample(docs, rng.randint(1, min(len(docs), 12)))
        qrels[q] = {d: rng.choice([-1, 0, 0, 1, 1, 1, 2, 3]) for d in judged}
    run = {}
    for q in queries + ["unjudged%d" % i for i in range(rng.randint(0, 2))]:
        if q in qrels and rng.random() < 0.3:
            continue  # partial coverage
        k = rng.randint(1, len(docs))
        # few distinct scores: heavy ties, broken by document id
        run[q] = {d: float(rng.choice([0.5, 1.0, 1.0, 2.0, 3.25])) for d in rng.sample(docs, k)}
    if not any(q in qrels for q in run):
        q = queries[0]
        run[q] = {docs[0]: 1.0}
    return qrels, run


def write_case(tmp, qrels, run):
    qp, rp = os.path.join(tmp, "q.qrels"), os.path.join(tmp, "r.run")
    with open(qp, "w") as f:
        for q, ds in qrels.items():
            for d, rel in ds.items():
                f.write("%s 0 %s %d\n" % (q, d, rel))
    with open(rp, "w") as f:
        for q, ds in run.items():
            for i, (d, s) in enumerate(ds.items()):
                f.write("%s Q0 %s %d %r tag\n" % (q, d, i + 1, s))
    return qp, rp


def gtr_lines(gtr, qp, rp):
    cmd = [gtr, "eval", "--qrels", qp, "--run", rp, "-q"]
    for m in MEASURES:
        cmd += ["-m", m]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        name, qid, v = line.split("\t")
        vals[(name.strip(), qid)] = v
    return vals


def fmt(name, v):
    return "%d" % int(v) if name.startswith("num_") else "%6.4f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gtr", default="bin/gtr")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    names = set()
    for m in MEASURES:
        base, _, cuts = m.partition(".")
        names.update(["%s_%s" % (base, c) for c in cuts.split(",")] if cuts else [base])
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(a.trials):
            qrels, run = random_case(rng)
            qp, rp = write_case(tmp, qrels, run)
            ours = gtr_lines(a.gtr, qp, rp)
            ev = pytrec_eval.RelevanceEvaluator(qrels, {m.split(".")[0] for m in MEASURES} |
                                                {m for m in MEASURES if "." in m})
            theirs = ev.evaluate(run)
            sums = {}
            for q, ms in sorted(theirs.items()):
                for name in names:
                    want = fmt(name, ms[name])
                    got = ours.get((name, q))
                    if got != want:
                        sys.exit("trial %d: %s %s: gtr %s, pytrec_eval %s" % (t, name, q, got, want))
                    sums[name] = sums.get(name, 0.0) + ms[name]
                    checked += 1
            for name in names:
                # BEIR's averaging: the mean over the evaluated queries (counts are totals)
                v = sums[name] if name.startswith("num_") else sums[name] / len(theirs)
                if ours.get((name, "all")) != fmt(name, v):
                    sys.exit("trial %d: %s all: gtr %s, pytrec_eval %s" %
                             (t, name, ours.get((name, "all")), fmt(name, v)))
                checked += 1
    print("ok: %d values agree over %d random cases" % (checked, a.trials))


if __name__ == "__main__":
    main()
