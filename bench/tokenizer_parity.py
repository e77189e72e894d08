#!/usr/bin/python3
"""tokenizer_parity.py — compare `gtr tokenize` with the SentencePiece Python binding.

Run with Debian's /usr/bin/python3 (it has `sentencepiece`; the PATH python may not):

    /usr/bin/python3 bench/tokenizer_parity.py [--gtr bin/gtr] [--spm ../shared/spm/t5-spiece.model]
                                               [--n 20000] [--seed 1] [--keys N|-1] [--sweep]
                                               [--corpus F.jsonl]

Generates texts that stress every stage of the tokenizer — random code points from many
scripts and Unicode blocks (combining marks, full/half-width forms, compatibility characters,
emoji with ZWJ and variation selectors, C0/C1 controls, every kind of space, U+2581 itself,
U+FFFD, private use, unassigned code points), mixtures of those with English words, runs of
whitespace, long texts — and checks that ids (with </s>), pieces and decoded text agree
exactly. The keys of the model's precompiled charsmap (224,711 for T5, mostly multi-character
compositions) are tested in context: --keys N samples N of them (-1: all). --sweep also encodes
every Unicode scalar value in context (1.1M texts). --corpus adds the texts of a JSONL file.

Invalid UTF-8 is checked too: random byte strings (truncated, overlong and surrogate
sequences, stray continuation bytes, NUL) go through the CLI as plain lines and through the
binding as bytes.
Prints a summary and the first mismatches; exit status 1 if any text differs.
Not part of `make test` (it needs Python); run it after touching src/tokenizer/.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import sentencepiece as spm

BLOCKS = [  # (lo, hi) code point ranges, inclusive
    (0x20, 0x7E), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0xFF), (0x100, 0x24F), (0x250, 0x2AF),
    (0x2B0, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x52F), (0x530, 0x58F),
    (0x590, 0x5FF), (0x600, 0x6FF), (0x700, 0x74F), (0x780, 0x7BF), (0x900, 0x97F),
    (0x980, 0x9FF), (0xA00, 0xAFF), (0xB00, 0xBFF), (0xC00, 0xCFF), (0xD00, 0xD7F),
    (0xD80, 0xDFF), (0xE00, 0xE7F), (0xE80, 0xEFF), (0xF00, 0xFFF), (0x1000, 0x109F),
    (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1200, 0x137F), (0x13A0, 0x13FF), (0x1400, 0x167F),
    (0x1780, 0x17FF), (0x1800, 0x18AF), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F),
    (0x2070, 0x209F), (0x20A0, 0x20CF), (0x20D0, 0x20FF), (0x2100, 0x214F), (0x2150, 0x218F),
    (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x259F), (0x2600, 0x26FF),
    (0x2700, 0x27BF), (0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0x3000, 0x303F), (0x3040, 0x309F),
    (0x30A0, 0x30FF), (0x3100, 0x312F), (0x3130, 0x318F), (0x3200, 0x32FF), (0x3300, 0x33FF),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
    (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFB50, 0xFDFF), (0xFE00, 0xFE0F), (0xFE10, 0xFE6F),
    (0xFE70, 0xFEFF), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF), (0x10000, 0x1007F),
    (0x1D400, 0x1D7FF), (0x1F000, 0x1F0FF), (0x1F100, 0x1F2FF), (0x1F300, 0x1F6FF),
    (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF), (0x2F800, 0x2FA1F), (0xE0000, 0xE007F),
    (0xE0100, 0xE01EF), (0xF0000, 0xF00FF), (0x10FF00, 0x10FFFF),
]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u1680", "\u2000", "\u2002", "\u2003",
          "\u2009", "\u200a", "\u200b", "\u202f", "\u205f", "\u3000", "\ufeff", "\u2581", "\u2028",
          "\u0085", "\x0b", "\x0c", "\x1c"]
SPECIAL = ["\u0301", "\u0308", "\u0323", "\u200c", "\u200d", "\ufe0f", "\ufe0e", "\ufffd", "\u00ad",
           "\u2060", "\u0000", "\u001b", "\u007f", "\u0080", "\u009f", "\uff5e", "\u301c", "\u30fc",
           "\uff70", "\u1100\u1161", "\u1100\u1161\u11a8", "e\u0301", "A\u030a", "\U0001F468\u200d\U0001F469",
           "\U0001F44D\U0001F3FD", "\u2126", "\u212b", "\ufb01", "\u2460", "\u3392", "\u00bd",
           "\u2154", "\u01c4", "\u1e9b\u0323", "\u0390", "\u0958", "\u09dc", "\u0f73", "\u2fd5",
           "</s>", "<pad>", "<unk>", "<extra_id_0>", "\u2581\u2581", "...", "''", "``"]


# ---- The keys of the model's precompiled charsmap (a Darts-clone double array), read with a
# minimal protobuf walker: most keys are multi-character compositions (base + combining marks,
# Hangul jamo, ...), exactly where text in other scripts exercises the longest match.

def pb_varint(b, i):
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return x, i


def pb_fields(b):
    """(field, wire type, value) of a serialized protobuf message."""
    i = 0
    while i < len(b):
        tag, i = pb_varint(b, i)
        field, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = pb_varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = pb_varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        yield field, wt, v


def model_charsmap(model):
    """ModelProto.normalizer_spec (3) .precompiled_charsmap (2)."""
    for f, wt, v in pb_fields(model):
        if f == 3 and wt == 2:
            for f2, wt2, v2 in pb_fields(v):
                if f2 == 2 and wt2 == 2:
                    return v2
    return b""


def charsmap_keys(blob):
    """Every (key, replacement) of the double array: depth-first over Darts-clone units."""
    if len(blob) <= 4:
        return []
    size = struct.unpack("<I", blob[:4])[0]
    units = struct.unpack("<%dI" % (size // 4), blob[4:4 + size // 4 * 4])
    repl = blob[4 + size:]

    def offset(u):
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    out = []
    stack = [(offset(units[0]), b"")]
    while stack:
        node, key = stack.pop()
        for c in range(1, 256):
            child = node ^ c
            if child >= len(units) or (units[child] & 0x800000FF) != c:
                continue
            u = units[child]
            nxt = child ^ offset(u)
            k = key + bytes([c])
            if (u >> 8) & 1:
                v = units[nxt] & 0x7FFFFFFF
                out.append((k, repl[v:repl.index(b"\0", v)]))
            stack.append((nxt, k))
    return out


def load_words(shared):
    words = []
    with open(os.path.join(shared, "tokenizer", "texts.jsonl"), encoding="utf-8") as f:
        for line in f:
            words.extend(json.loads(line).split())
    return words or ["hello", "world"]


def rand_char(rng):
    lo, hi = rng.choice(BLOCKS)
    while True:
        c = rng.randint(lo, hi)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def gen_text(rng, words):
    kind = rng.random()
    parts = []
    if kind < 0.25:  # random code points from random blocks, with spaces
        for _ in range(rng.randint(1, 40)):
            parts.append(rand_char(rng))
            if rng.random() < 0.2:
                parts.append(rng.choice(SPACES))
    elif kind < 0.45:  # one script-ish run: many characters from the same block
        lo, hi = rng.choice(BLOCKS)
        for _ in range(rng.randint(1, 60)):
            c = rng.randint(lo, hi)
            parts.append(" " if 0xD800 <= c <= 0xDFFF or rng.random() < 0.1 else chr(c))
    elif kind < 0.75:  # English words with special characters and spaces mixed in
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.6:
                parts.append(rng.choice(words))
            elif r < 0.75:
                parts.append(rng.choice(SPECIAL))
            elif r < 0.9:
                parts.append(rand_char(rng))
            if rng.random() < 0.8:
                parts.append(rng.choice(SPACES) if rng.random() < 0.3 else " ")
    elif kind < 0.85:  # whitespace and specials only
        for _ in range(rng.randint(0, 12)):
            parts.append(rng.choice(SPACES + SPECIAL[:20]))
    elif kind < 0.95:  # words with characters glued inside
        for _ in range(rng.randint(1, 15)):
            w = rng.choice(words)
            i = rng.randint(0, len(w))
            parts.append(w[:i] + rng.choice(SPECIAL + [rand_char(rng)]) + w[i:] + " ")
    else:  # long text
        parts = [rng.choice(words) + rng.choice([" ", " ", " ", "\n", "  "]) for _ in range(rng.randint(200, 2000))]
    return "".join(parts)


def run_gtr(gtr, model, texts, extra):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
        path = f.name
    try:
        out = subprocess.run([gtr, "tokenize", "--spm", model, "-i", path] + extra,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        sys.exit("gtr tokenize failed: " + out.stderr.decode("utf-8", "replace"))
    lines = out.stdout.decode("utf-8").split("\n")
    assert lines[-1] == "", "output must end with a newline"
    return lines[:-1]


def gen_bytes(rng):
    """A line of bytes with invalid UTF-8 mixed into valid text (no \\n or \\r: lines)."""
    parts = []
    for _ in range(rng.randint(1, 20)):
        r = rng.random()
        if r < 0.3:
            parts.append(rng.choice([b"a", b"the ", b" ", b"x", b"\xc3\xa9", b"\xe2\x96\x81", b"\x00"]))
        elif r < 0.5:
            parts.append(bytes([rng.randint(0x80, 0xFF)]))
        elif r < 0.65:  # a valid character cut short
            c = rand_char(rng).encode("utf-8")
            parts.append(c[: rng.randint(1, len(c))])
        elif r < 0.75:
            parts.append(rng.choice([b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                                     b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xef\xbf\xbd"]))
        else:
            parts.append(rand_char(rng).encode("utf-8"))
    return b"".join(parts).replace(b"\n", b" ").replace(b"\r", b" ")


def run_gtr_bytes(gtr, model, lines, extra):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        for b in lines:
            f.write(b + b"\n")
        path = f.name
    try:
        out = subprocess.run([gtr, "tokenize", "--spm", model, "--format", "plain", "-i", path] + extra,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        sys.exit("gtr tokenize failed: " + out.stderr.decode("utf-8", "replace"))
    return out.stdout.split(b"\n")[:-1]


def run_gtr_decode(gtr, model, id_lists):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for ids in id_lists:
            f.write(" ".join(map(str, ids)) + "\n")
        path = f.name
    try:
        out = subprocess.run([gtr, "tokenize", "--spm", model, "--decode", "-i", path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        sys.exit("gtr tokenize --decode failed: " + out.stderr.decode("utf-8", "replace"))
    return out.stdout.decode("utf-8").split("\n")[:-1]


def compare(name, texts, want, got, shown, limit=8):
    bad = 0
    if len(want) != len(got):
        print(f"{name}: {len(got)} output lines for {len(want)} texts")
        return len(want)
    for t, w, g in zip(texts, want, got):
        if w != g:
            bad += 1
            if shown[0] < limit:
                shown[0] += 1
                print(f"MISMATCH {name}: text={t[:120]!r}\n  sentencepiece: {w[:300]}\n  gtr:           {g[:300]}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    shared = os.environ.get("GTR_SHARED", os.path.join(root, "..", "shared"))
    ap.add_argument("--gtr", default=os.path.join(root, "bin", "gtr"))
    ap.add_argument("--spm", default=os.path.join(shared, "spm", "t5-spiece.model"))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sweep", action="store_true", help="also every code point in context")
    ap.add_argument("--keys", type=int, default=20000,
                    help="charsmap keys to test in context (-1: all of them; default 20000)")
    ap.add_argument("--corpus", action="append", default=[],
                    help="also every text of this JSONL file (strings, or objects: title and text)")
    a = ap.parse_args()

    sp = spm.SentencePieceProcessor(model_file=a.spm)
    rng = random.Random(a.seed)
    words = load_words(shared)
    texts = [gen_text(rng, words) for _ in range(a.n)]
    if a.sweep:
        for c in range(0x110000):
            if 0xD800 <= c <= 0xDFFF:
                continue
            ch = chr(c)
            texts.append(rng.choice(["", "a", "x ", "The "]) + ch + rng.choice(["", "b", " y", "\u0301", ch]))
    with open(a.spm, "rb") as f:
        ks = [k.decode("utf-8") for k, _ in charsmap_keys(model_charsmap(f.read()))]
    sample = ks if a.keys < 0 or a.keys >= len(ks) else rng.sample(ks, a.keys)
    marks = ["", "\u0301", "\u0308", "\u0323", "\u3099", "\uff9e", "\u093c", "\u0bbe", " "]
    for k in sample:
        texts.append(k)
        texts.append(rng.choice(["a", "x ", "\u00e9", ""]) + k + rng.choice(marks) + rng.choice(ks))
    for path in a.corpus:
        with open(path, encoding="utf-8") as f:
            for line in f:
                v = json.loads(line)
                if isinstance(v, str):
                    texts.append(v)
                else:
                    texts.extend(x for x in (v.get("title"), v.get("text")) if isinstance(x, str) and x)
    # Lines are the unit of the CLI: a text is one JSON line, so any character may appear.
    want_ids = [" ".join(map(str, sp.encode(t) + [1])) for t in texts]
    want_pieces = [" ".join(sp.encode(t, out_type=str)) for t in texts]
    ids_lists = [sp.encode(t) + [1] for t in texts]
    want_dec = [sp.decode(ids) for ids in ids_lists]
    # decoded text may contain newlines; compare escaped forms
    shown = [0]
    bad_ids = compare("ids", texts, want_ids, run_gtr(a.gtr, a.spm, texts, ["--max-len", "0"]), shown)
    bad_pcs = compare("pieces", texts, want_pieces, run_gtr(a.gtr, a.spm, texts, ["--pieces"]), shown)
    dec_ok = [i for i, d in enumerate(want_dec) if "\n" not in d and "\r" not in d]
    got_dec = run_gtr_decode(a.gtr, a.spm, [ids_lists[i] for i in dec_ok])
    bad_dec = compare("decode", [texts[i] for i in dec_ok], [want_dec[i] for i in dec_ok], got_dec, shown)
    # invalid UTF-8 (bytes in, bytes out)
    blines = [gen_bytes(rng) for _ in range(max(1, a.n // 4))]
    want_bids = [" ".join(map(str, sp.encode(b) + [1])).encode() for b in blines]
    want_bpcs = [b" ".join(sp.encode(b, out_type=str)) for b in blines]
    bad_bytes = compare("bytes ids", blines, want_bids, run_gtr_bytes(a.gtr, a.spm, blines, ["--max-len", "0"]), shown)
    bad_bytes += compare("bytes pieces", blines, want_bpcs, run_gtr_bytes(a.gtr, a.spm, blines, ["--pieces"]), shown)
    total_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"parity: {len(texts)} texts ({total_bytes} bytes, seed {a.seed}{', sweep' if a.sweep else ''}): "
          f"ids mismatches {bad_ids}, pieces mismatches {bad_pcs}, decode mismatches {bad_dec} "
          f"(of {len(dec_ok)}); {len(sample)} charsmap keys in context; {len(blines)} byte strings with invalid UTF-8: mismatches {bad_bytes}")
    return 1 if bad_ids or bad_pcs or bad_dec or bad_bytes else 0


if __name__ == "__main__":
    sys.exit(main())
