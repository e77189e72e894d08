"""index_same.py A B: exit 0 when the indexes at A and B (files or sharded-index manifests,
opened through the Python binding) hold the same documents in the same order: ids, snippets
and every vector's bytes; else one line saying where they first differ and exit 1."""
import sys

import numpy as np

import gtr


def main(a_path, b_path):
    a, b = gtr.Index(a_path), gtr.Index(b_path)
    if len(a) != len(b) or a.dim != b.dim:
        print(f"{len(a)} x {a.dim} documents against {len(b)} x {b.dim}")
        return 1
    for d in range(len(a)):
        if a.doc_id(d) != b.doc_id(d):
            print(f"document {d}: id {a.doc_id(d)!r} against {b.doc_id(d)!r}")
            return 1
        if a.snippet(d) != b.snippet(d):
            print(f"document {d} ({a.doc_id(d)}): snippets differ")
            return 1
        if a.vector(d).astype(np.float32).tobytes() != b.vector(d).astype(np.float32).tobytes():
            print(f"document {d} ({a.doc_id(d)}): vectors differ")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
