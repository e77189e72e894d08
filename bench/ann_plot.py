"""ann_plot.py RESULTS.md OUT.png — the recall–QPS curves of bench_ann.sh's table: one panel per
data set and batch size, every method (gtr and each baseline) one line through its parameter
settings. Reads the table rows (| data | docs | method | recall@10 | q/s b1 | q/s b256 | ...)."""
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def family(method):
    if method.startswith("gtr"):
        return "gtr IVF-int8"
    for key, name in (("IVFFlat", "FAISS IVFFlat"), ("HNSWFlat", "FAISS HNSWFlat"),
                      ("IVFPQ", "FAISS IVFPQ + refine"), ("hnswlib", "hnswlib")):
        if key in method:
            return name
    return re.sub(r"\s+\S+=\S+", "", method)


# one colour per method in every panel (the default cycle gave gtr another colour wherever a
# panel had fewer baselines)
COLOR = {"gtr IVF-int8": "tab:red", "FAISS IVFFlat": "tab:orange", "FAISS HNSWFlat": "tab:blue",
         "FAISS IVFPQ + refine": "tab:green", "hnswlib": "tab:purple"}

rows = defaultdict(list)  # (data, family) -> [(recall, qps1, qps256)]
docs = {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 6 or cells[0] not in ("clustered", "uniform"):
        continue
    try:
        rec, q1, q256 = float(cells[3]), float(cells[4]), float(cells[5])
    except ValueError:
        continue
    rows[(cells[0], family(cells[2]))].append((rec, q1, q256))
    docs[cells[0]] = cells[1]

sets = [d for d in ("clustered", "uniform") if d in docs]
fig, axes = plt.subplots(len(sets), 2, figsize=(12, 4.5 * len(sets)), squeeze=False)
for i, data in enumerate(sets):
    for j, (col, label) in enumerate(((1, "batch 1"), (2, "batch 256"))):
        ax = axes[i][j]
        for (d, fam), pts in sorted(rows.items()):
            if d != data:
                continue
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[col] for p in pts], "o-", label=fam, color=COLOR.get(fam),
                    linewidth=2.5 if fam.startswith("gtr") else 1.2)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries/s")
        ax.set_title(f"{data}, {docs[data]} documents, {label}")
        for r in (0.95, 0.99):
            ax.axvline(r, color="grey", linestyle=":", linewidth=1)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
