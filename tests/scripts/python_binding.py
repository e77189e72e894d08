#!/usr/bin/python3
"""python_binding.py — the Python package (python/gtr) over libgtr.so, with Debian's python3 and
numpy: embeddings identical to `gtr embed` (batch sizes, single texts, max_len), tokenize equal
to the reference ids, errors as gtr.GtrError, Index.search equal to `gtr search` and to a
numpy brute force, and `pip install` of python/ into a temporary venv (offline:
--no-index --no-build-isolation) giving a package that bundles its own libgtr.so. TAP output."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from taplib import check, exit_status, skip, tests_run


def run(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, stdout=subprocess.PIPE, **kw).stdout


PLAN = 37


def main():
    try:
        import numpy as np
    except ImportError:
        print("1..0 # SKIP numpy is not installed for this python3 (apt-get install python3-numpy)")
        return 0
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.chdir(repo)
    gtr_bin = os.environ.get("GTR", "bin/gtr")
    shared = os.environ.get("GTR_SHARED", "../shared")
    model_dir = os.path.join(shared, "models", "gtr-tiny")
    sys.path.insert(0, os.path.join(repo, "python"))
    print(f"1..{PLAN}")
    import gtr

    tmp = tempfile.mkdtemp(prefix="gtr-python-")
    try:
        if not os.environ.get("GTR_LIBRARY"):
            check(gtr.library_path == os.path.join(repo, "lib", "libgtr.so"), "libgtr.so found in the repository's lib/",
                  gtr.library_path)
        else:
            skip("libgtr.so found in the repository's lib/", "GTR_LIBRARY is set")
        m = gtr.Model(model_dir, threads=2)
        check(m.dim == 64 and m.max_len == 512 and m.get_sentence_embedding_dimension() == 64, "Model: dim and max_len")
        check(m.tokenize("Hello world") == [8774, 296, 1], "tokenize('Hello world') = [8774, 296, 1]", m.tokenize("Hello world"))

        import json
        texts_path = os.path.join(model_dir, "reference", "texts.jsonl")
        with open(texts_path, encoding="utf-8") as f:
            texts = [json.loads(line) for line in f]
        with open(os.path.join(model_dir, "reference", "tokens.jsonl"), encoding="utf-8") as f:
            tokens = [json.loads(line) for line in f]
        bad = [i for i, t in enumerate(texts) if m.tokenize(t) != tokens[i]]
        check(not bad, f"tokenize equals the reference ids for all {len(texts)} texts", f"differ: {bad[:10]}")

        ref_npy = os.path.join(tmp, "ref.npy")
        run(gtr_bin, "embed", "-m", model_dir, "-i", texts_path, "-o", ref_npy, "-q")
        ref = np.load(ref_npy)
        v = m.encode(texts)
        check(v.dtype == np.float32 and v.shape == (len(texts), 64), "encode -> float32 [n, dim]", f"{v.dtype} {v.shape}")
        check(np.array_equal(v, ref), "encode equals gtr embed exactly (66 texts, edge cases, truncation)",
              f"max diff {np.abs(v - ref).max()}")
        st = np.load(os.path.join(model_dir, "reference", "embeddings.npy"))
        check(np.abs(v - st).max() < 1e-5, "... and sentence-transformers' reference within 1e-5",
              f"max diff {np.abs(v - st).max()}")
        same = all(np.array_equal(m.encode(texts, batch_size=b), ref) for b in (1, 7, 100))
        check(same, "batch_size 1, 7, 100 give the same vectors")
        one = m.encode(texts[5])
        check(one.shape == (64,) and np.array_equal(one, ref[5]), "a single str gives a 1-D vector")
        check(m.encode([]).shape == (0, 64), "no texts give shape (0, dim)")
        check(np.array_equal(m.encode([texts[7].encode("utf-8")]), ref[7:8]), "bytes are taken as UTF-8")

        # encode from several Python threads at once: each call takes an encode context of its
        # own over the one model; every thread's vectors are gtr embed's
        import threading
        results, barrier = {}, threading.Barrier(4)

        def worker(t):
            barrier.wait()
            for r in range(3):
                idx = [i for i in range(len(texts)) if (i + r) % 4 == t]
                results[(t, r)] = (idx, m.encode([texts[i] for i in idx], batch_size=5))

        ths = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        check(len(results) == 12 and all(np.array_equal(v, ref[idx]) for idx, v in results.values()),
              "encode from 4 Python threads at once gives gtr embed's vectors")

        ref32_npy = os.path.join(tmp, "ref32.npy")
        run(gtr_bin, "embed", "-m", model_dir, "-i", texts_path, "-o", ref32_npy, "--max-len", "32", "-q")
        m32 = gtr.Model(model_dir, max_len=32)
        check(np.array_equal(m32.encode(texts), np.load(ref32_npy)) and len(m32.tokenize(texts[-1])) == 32,
              "max_len=32 equals gtr embed --max-len 32")
        m32.close()

        ties = ["x ---- 3", "a ------------------- b", "____ ___", "/AAA)"]
        ties_path = os.path.join(tmp, "ties.jsonl")
        with open(ties_path, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(t) + "\n" for t in ties))
        new_npy = os.path.join(tmp, "new.npy")
        run(gtr_bin, "embed", "-m", model_dir, "-i", ties_path, "-o", new_npy, "--spm-compat", "hf", "-q")
        m22 = gtr.Model(model_dir, spm_compat="hf")
        v22, v01 = m22.encode(ties), m.encode(ties)
        check(np.array_equal(v22, np.load(new_npy)) and not np.array_equal(v22, v01) and
              m22.tokenize(ties[0]) != m.tokenize(ties[0]),
              "spm_compat='hf' equals gtr embed --spm-compat hf (and differs from 0.1 on ties)")
        m22.close()
        try:
            gtr.Model(model_dir, spm_compat="two")
            check(False, "spm_compat='two' raises ValueError")
        except ValueError as e:
            check("hf" in str(e), "spm_compat='two' raises ValueError", str(e))

        try:
            gtr.Model(os.path.join(tmp, "no-such-model"))
            check(False, "a missing model directory raises GtrError")
        except gtr.GtrError as e:
            check("no-such-model" in str(e) and e.status == "not found", "a missing model directory raises GtrError naming it", str(e))
        # a mistyped GTR_CPU (the library alone would take it for the generic path) is refused
        # with the message gtr and gtr-mpi print; empty counts as unset
        cpu_env = os.environ.get("GTR_CPU")
        for bad in ("avx512+vnni", "AVX2"):
            os.environ["GTR_CPU"] = bad
            try:
                gtr.Model(model_dir)
                check(False, f"GTR_CPU={bad}: Model raises GtrError")
            except gtr.GtrError as e:
                check(f"GTR_CPU={bad}: not a kernel path" in str(e) and e.status == "invalid argument",
                      f"GTR_CPU={bad}: Model raises GtrError (invalid argument) naming it", str(e))
        os.environ["GTR_CPU"] = ""
        me = gtr.Model(model_dir)
        check(np.allclose(me.encode(["x"]), m.encode(["x"]), atol=1e-5), "GTR_CPU= (empty): loads, same vectors")
        me.close()
        if cpu_env is None:
            del os.environ["GTR_CPU"]
        else:
            os.environ["GTR_CPU"] = cpu_env
        try:
            m.encode(["fine", 42])
            check(False, "a non-string text raises TypeError")
        except TypeError as e:
            check("texts[1]" in str(e), "a non-string text raises TypeError naming it", str(e))

        # ---- Index -------------------------------------------------------------------------------
        corpus = os.path.join(tmp, "corpus.jsonl")
        with open(os.path.join(shared, "beir", "scifact", "corpus.jsonl"), encoding="utf-8") as f, \
                open(corpus, "w", encoding="utf-8") as out:
            for i, line in enumerate(f):
                if i == 30:
                    break
                out.write(line)
        index_path = os.path.join(tmp, "c.gtri")
        run(gtr_bin, "index", "-m", model_dir, "-c", corpus, "-o", index_path, "--quiet")
        ix = gtr.Index(index_path, threads=2)
        check(len(ix) == 30 and ix.dim == 64 and ix.model_hint is not None, "Index: count, dim, recorded model",
              repr(ix))
        query = "cancer cells and DNA damage"
        res = ix.search(query, k=5)  # the model recorded in the index, loaded on first use
        cli = run(gtr_bin, "search", "--index", index_path, "--query", query, "-k", "5").decode()
        cli_hits = [line.split()[:3] for line in cli.splitlines()]
        check(res.ids == [h[2] for h in cli_hits] and
              all(f"{s:.6f}" == h[1] for s, h in zip(res.scores.tolist(), cli_hits)),
              "search(text) equals gtr search --query (ids and scores)", f"{res}\n{cli}")
        qs = m.encode(texts[:4])
        batch = ix.search(qs, k=3, model=m)
        V = np.stack([ix.vector(i) for i in range(len(ix))])
        S = qs @ V.T
        brute = [[ix.doc_id(d) for d in np.argsort(-S[q], kind="stable")[:3]] for q in range(4)]
        check(batch.ids == brute and batch.scores.shape == (4, 3) and
              np.allclose(batch.scores, np.sort(S, axis=1)[:, ::-1][:, :3], atol=1e-6),
              "search(vectors) equals a numpy brute force", f"{batch.ids}\n{brute}")
        check(batch.docs[0][0] >= 0 and len(ix.snippet(batch.docs[0][0])) > 0, "snippet of a hit")
        # filter_ids: a numpy brute force over the allowed documents only (every other one)
        allowed = [d for d in range(len(ix)) if d % 2 == 1]
        Sf = np.full_like(S, -np.inf)
        Sf[:, allowed] = S[:, allowed]
        brute_f = [[ix.doc_id(d) for d in np.argsort(-Sf[q], kind="stable")[:3]] for q in range(4)]
        filt = ix.search(qs, k=3, filter_ids=[ix.doc_id(d) for d in allowed])
        check(filt.ids == brute_f and np.allclose(filt.scores, np.sort(Sf, axis=1)[:, ::-1][:, :3], atol=1e-6),
              "search(filter_ids=) equals a numpy brute force over those documents", f"{filt.ids}\n{brute_f}")
        # where=: metadata written with gtr index --fields-from, odd documents marked
        meta = os.path.join(tmp, "meta.jsonl")
        with open(meta, "w") as f:
            for d in range(len(ix)):
                f.write(json.dumps({"_id": ix.doc_id(d), "metadata": {"odd": d % 2 == 1, "n": d}}) + "\n")
        run(gtr_bin, "index", "-q", "--fields-from", meta, "-o", index_path)
        wh = ix.search(qs, k=3, where={"odd": True})
        check(wh.ids == brute_f and np.array_equal(wh.scores, filt.scores),
              "search(where=) equals the brute force over the matching documents", f"{wh.ids}\n{brute_f}")
        try:
            ix.search(qs, k=3, where={"nope": 1})
            check(False, "an unknown field is refused")
        except gtr.GtrError as e:
            check("nope" in str(e), "an unknown field is a GtrError naming it", str(e))
        try:
            ix.search(qs, k=3, filter_ids=[ix.doc_id(1), "no-such-doc"])
            check(False, "an unknown filter id is refused")
        except ValueError as e:
            check("no-such-doc" in str(e), "an unknown filter id is a ValueError naming it", str(e))
        try:
            ix.check_model(gtr.Model(os.path.join(shared, "models", "gtr-tiny-v11")))
            check(False, "another model is refused")
        except gtr.GtrError as e:
            check(e.status == "mismatch", "another model is refused with GtrError (mismatch)", str(e))
        # fingerprint=False: the same vectors, no fingerprint, and an index refuses the model
        mnf = gtr.Model(model_dir, threads=2, fingerprint=False)
        check(mnf.fingerprint is None and isinstance(m.fingerprint, int), "Model(fingerprint=False): .fingerprint is None",
              f"{mnf.fingerprint!r} {m.fingerprint!r}")
        check(np.array_equal(mnf.encode(texts[:5]), m.encode(texts[:5])), "Model(fingerprint=False) encodes the same bits")
        try:
            ix.check_model(mnf)
            check(False, "a model loaded with fingerprint=False is refused by an index")
        except gtr.GtrError as e:
            check("no_fingerprint" in str(e), "a model loaded with fingerprint=False is refused by an index, naming the option",
                  str(e))
        # with an IVF index (gtr ann-build): every list probed gives exact search's hits and
        # scores; a deleted document (gtr ann-delete) is never returned
        ivf = os.path.join(tmp, "c.ivf")
        run(gtr_bin, "ann-build", "--index", index_path, "-o", ivf, "--lists", "4")
        ax = gtr.Index(index_path, threads=2, ann=ivf, nprobe=4)
        approx = ax.search(qs, k=3)
        check(approx.ids == batch.ids and np.array_equal(approx.scores, batch.scores),
              "Index(ann=, nprobe=every list) equals exact search", f"{approx.ids}\n{batch.ids}")
        ax.close()
        ax = gtr.Index(index_path, threads=2, ann=ivf, nprobe=1)
        per = ax.search(qs, k=3, nprobe=4)
        check(per.ids == batch.ids and np.array_equal(per.scores, batch.scores),
              "search(nprobe=every list) on an Index(nprobe=1) equals exact search", f"{per.ids}\n{batch.ids}")
        ax.close()
        ids_file = os.path.join(tmp, "del.ids")
        with open(ids_file, "w") as f:
            f.write(batch.ids[0][0] + "\n")
        run(gtr_bin, "ann-delete", "--index", index_path, "--ann", ivf, ids_file)
        ax = gtr.Index(index_path, ann=ivf, nprobe=4)
        check(batch.ids[0][0] not in ax.search(qs[0], k=3).ids and ax.search(qs[0], k=3).ids[0] == batch.ids[0][1],
              "a deleted document is never returned", str(ax.search(qs[0], k=3)))
        ax.close()
        ix.close()
        m.close()

        # ---- pip install ---------------------------------------------------------------------------
        venv = os.path.join(tmp, "venv")
        src = os.path.join(tmp, "python")
        shutil.copytree(os.path.join(repo, "python"), src,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "libgtr.so*"))
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            skip("pip install ./python into a venv", "python3 -m venv is unavailable (apt-get install python3-venv)")
            skip("... the installed package bundles libgtr.so and embeds the same", "no venv")
        else:
            env = dict(os.environ)
            for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "GTR_LIBRARY"):
                env.pop(k, None)
            # bundle the library under test (setup.py would otherwise run `make lib` in the
            # checkout, rebuilding whatever else is being edited there)
            build_env = dict(env, GTR_LIBRARY=gtr.library_path)
            r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-index", "--no-build-isolation", src],
                               env=build_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            check(r.returncode == 0, "pip install --no-index --no-build-isolation ./python", r.stdout.decode(errors="replace"))
            out_npy = os.path.join(tmp, "pip.npy")
            prog = ("import sys, json, numpy as np, gtr\n"
                    "texts = [json.loads(l) for l in open(sys.argv[2], encoding='utf-8')]\n"
                    "np.save(sys.argv[3], gtr.Model(sys.argv[1]).encode(texts))\n"
                    "print(gtr.library_path)\n")
            r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", prog, os.path.abspath(model_dir),
                                os.path.abspath(texts_path), out_npy], cwd="/", env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            lib = r.stdout.decode(errors="replace").strip()
            check(r.returncode == 0 and lib.startswith(venv) and np.array_equal(np.load(out_npy), ref),
                  "... the installed package bundles libgtr.so and embeds the same", lib)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    while tests_run() < PLAN:
        check(False, "not reached")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
