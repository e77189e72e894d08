"""spm_compat.py — run by spm_compat.sh with .venv-test's Python; prints TAP.

Compares `gtr tokenize --spm-compat C` with the tokenizer implementations installed from PyPI,
computed in the same run:
- C = 0.2.2 against the SentencePiece release (0.1 when that release predates 0.2.2);
- C = hf against transformers' T5TokenizerFast (the Hugging Face tokenizers library, what
  sentence-transformers runs), on texts without literal special tokens ("</s>", "<pad>",
  "<unk>", "<extra_id_N>", which that tokenizer turns into their ids);
and checks that 0.1 and 0.2.2 differ exactly on the texts where the release differs from
../shared's SentencePiece 0.1.97 reference ids, so the flag cannot be a no-op.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import sentencepiece as spm

ap = argparse.ArgumentParser()
ap.add_argument("--gtr", required=True)
ap.add_argument("--shared", required=True)
a = ap.parse_args()

from taplib import check as ok, exit_status, tests_run


def version_tuple(v):
    return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())


model = os.path.join(a.shared, "spm", "t5-spiece.model")
sp = spm.SentencePieceProcessor(model_file=model)
new = version_tuple(spm.__version__) >= (0, 2, 2)
mode = "0.2.2" if new else "0.1"
print(f"# sentencepiece {spm.__version__} from PyPI: comparing with --spm-compat {mode}")


def read_jsonl(path, field=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                x = json.loads(line)
                out.append(x if field is None else x[field])
    return out


ref_texts = read_jsonl(os.path.join(a.shared, "tokenizer", "texts.jsonl"))
ref_ids = read_jsonl(os.path.join(a.shared, "tokenizer", "ids_full.jsonl"))
scifact = os.path.join(a.shared, "beir", "scifact")
sets = {
    "the reference texts": ref_texts,
    "SciFact corpus texts": read_jsonl(os.path.join(scifact, "corpus.jsonl"), "text"),
    "SciFact corpus titles": read_jsonl(os.path.join(scifact, "corpus.jsonl"), "title"),
    "SciFact queries": read_jsonl(os.path.join(scifact, "queries.jsonl"), "text"),
    # ties: runs of one repeated character, alone and between words
    "runs of repeated characters": [f"{w}{c * n}{w}" for c in "-_=*.~#+/A" for n in range(1, 41)
                                    for w in ("", " x ")],
    # ~0.5 MB: path scores pass -1e5 many times (0.2.2 re-bases them)
    "one long text": [" ".join(ref_texts)],
}


def gtr_ids(texts, version):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
        path = f.name
    try:
        r = subprocess.run([a.gtr, "tokenize", "--spm", model, "--spm-compat", version, "-i", path],
                           capture_output=True, text=True)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        return None, r.stderr
    return [[int(x) for x in line.split()] for line in r.stdout.splitlines()], ""


for name, texts in sets.items():
    got, err = gtr_ids(texts, mode)
    if got is None:
        ok(False, f"{name}: gtr tokenize --spm-compat {mode} runs", err)
        continue
    want = [sp.encode(t) + [1] for t in texts]
    bad = [i for i in range(len(texts)) if i >= len(got) or got[i] != want[i]]
    ok(len(got) == len(texts) and not bad,
       f"{name}: {len(texts)} texts, ids equal to sentencepiece {spm.__version__}",
       f"{len(bad)} differ, first: text {bad[0]}: {texts[bad[0]][:80]!r}" if bad else f"{len(got)} lines")

# hf: T5TokenizerFast converted from the same spiece.model
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" notice
try:
    import transformers
    from transformers import AutoTokenizer
    transformers.logging.set_verbosity_error()
except Exception as e:  # noqa: BLE001 - any import failure means: not available here
    AutoTokenizer = None
    print(f"# transformers unavailable ({e}): hf comparisons skipped")
if AutoTokenizer is not None:
    # as sentence-transformers loads it: a model directory with only spiece.model, converted
    fast = AutoTokenizer.from_pretrained(os.path.join(a.shared, "models", "gtr-tiny"))
    special = re.compile(r"</s>|<pad>|<unk>|<extra_id_\d+>")
    print(f"# transformers {transformers.__version__}: comparing {type(fast).__name__} with --spm-compat hf")
    for name, texts in sets.items():
        if name == "one long text":
            texts = [" ".join(t for t in ref_texts if not special.search(t))]
        texts = [t for t in texts if not special.search(t)]
        got, err = gtr_ids(texts, "hf")
        if got is None:
            ok(False, f"{name}: gtr tokenize --spm-compat hf runs", err)
            continue
        want = fast(texts, add_special_tokens=True)["input_ids"]
        bad = [i for i in range(len(texts)) if i >= len(got) or got[i] != want[i]]
        ok(len(got) == len(texts) and not bad,
           f"{name}: {len(texts)} texts, --spm-compat hf ids equal to {type(fast).__name__}",
           f"{len(bad)} differ, first: text {bad[0]}: {texts[bad[0]][:80]!r}" if bad else f"{len(got)} lines")

# The flag changes exactly the texts where the installed release departs from 0.1.97.
old, err1 = gtr_ids(ref_texts, "0.1")
cur, err2 = gtr_ids(ref_texts, "0.2.2")
if old is None or cur is None:
    ok(False, "both modes run", err1 + err2)
else:
    ok(old == ref_ids, "--spm-compat 0.1 equals the SentencePiece 0.1.97 reference ids")
    ref_diff = [i for i, t in enumerate(ref_texts) if sp.encode(t) + [1] != ref_ids[i]]
    mode_diff = [i for i in range(len(ref_texts)) if old[i] != cur[i]]
    if new:
        ok(mode_diff == ref_diff and len(mode_diff) > 0,
           f"0.1 and 0.2.2 differ on exactly the texts where sentencepiece {spm.__version__} "
           f"differs from 0.1.97 ({len(ref_diff)})", f"modes differ on {mode_diff}, releases on {ref_diff}")
    else:
        ok(ref_diff == [], f"sentencepiece {spm.__version__} equals the 0.1.97 reference ids")

print(f"1..{tests_run()}")
sys.exit(exit_status())
