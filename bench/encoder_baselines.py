#!/usr/bin/env python3
"""encoder_baselines.py — the end-to-end baselines gtr's encoder is measured against.

Run with the bench venv (scripts/venv.sh bench), one baseline per process so peak RSS is its own:

  encoder_baselines.py st     --model DIR --texts T.jsonl --threads N --out emb.npy [--dtype D]
      sentence-transformers as GTR users run it: SentenceTransformer(DIR).encode(texts,
      batch_size=32) on the PyPI torch (CPU). --dtype bf16: the model loaded in bfloat16
      (model_kwargs={"torch_dtype": torch.bfloat16}, oneDNN's bf16 kernels); --dtype int8:
      PyTorch's standard CPU int8 route, torch.ao.quantization.quantize_dynamic on every
      nn.Linear (int8 weights, activations quantised per batch on the fly).
  encoder_baselines.py export --model DIR --onnx OUT_DIR
      the T5 encoder to ONNX (OUT_DIR/encoder.onnx) and its onnxruntime dynamic int8
      quantisation (OUT_DIR/encoder.int8.onnx: quantize_dynamic with its defaults).
  encoder_baselines.py ort    --model DIR --onnx FILE --texts T.jsonl --threads N --out emb.npy
      onnxruntime (intra-op threads N) on that encoder, with the same length-sorted batches of
      32 as sentence-transformers; mean pooling, Dense and L2 norm in numpy.
  encoder_baselines.py cmd    --model DIR --texts T.jsonl --runs R --name NAME -- COMMAND...
      times a whole command (e.g. `gtr embed`, model loading included) R times; peak RSS of
      the child; tokens counted as for the others.
  encoder_baselines.py cos    A.npy B.npy      per-text cosine of two embedding files

Each timed command prints one JSON line: tokens (real tokens incl. </s>, at most 512 per text),
seconds (median of --runs after one warm-up batch; tokenisation included, model loading not),
tokens_per_s, peak_rss_mb (whole process, ru_maxrss).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def read_texts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                v = json.loads(line)
                out.append(v if isinstance(v, str) else v["text"])
    return out


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(name, ntok, times, extra=None):
    sec = statistics.median(times)
    d = {"name": name, "tokens": ntok, "seconds": round(sec, 3), "tokens_per_s": round(ntok / sec, 1),
         "best_tokens_per_s": round(ntok / min(times), 1),
         "runs_seconds": [round(t, 3) for t in times], "peak_rss_mb": round(peak_rss_mb(), 1)}
    d.update(extra or {})
    print(json.dumps(d), flush=True)


def count_tokens(tok, texts, max_len=512):
    enc = tok(texts, truncation=True, max_length=max_len)
    return sum(len(ids) for ids in enc["input_ids"])


def cmd_st(a):
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer
    texts = read_texts(a.texts)
    # float32 spelled out: transformers loads a float16 checkpoint as float16 otherwise
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = SentenceTransformer(a.model, device="cpu", model_kwargs={"torch_dtype": dtype})
    if a.dtype == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    ntok = count_tokens(model.tokenizer, texts, model.max_seq_length)
    model.encode(texts[:32], batch_size=32)  # warm-up
    times, emb = [], None
    for _ in range(a.runs):
        t0 = time.perf_counter()
        emb = model.encode(texts, batch_size=32, convert_to_numpy=True)
        times.append(time.perf_counter() - t0)
    np.save(a.out, emb.astype(np.float32))
    name = {"f32": "fp32", "bf16": "bfloat16", "int8": "int8 (quantize_dynamic)"}[a.dtype]
    report(f"pytorch+sentence-transformers {name}", ntok, times,
           {"torch": torch.__version__, "threads": a.threads})



def cmd_export(a):
    import torch
    from transformers import T5EncoderModel
    from onnxruntime.quantization import QuantType, quantize_dynamic
    os.makedirs(a.onnx, exist_ok=True)
    enc = T5EncoderModel.from_pretrained(a.model).eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    w = Wrap(enc)
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    f32 = os.path.join(a.onnx, "encoder.onnx")
    kw = dict(input_names=["input_ids", "attention_mask"], output_names=["hidden"],
              dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"},
                            "hidden": {0: "b", 1: "s"}}, opset_version=17)
    with torch.inference_mode():
        try:  # the TorchScript exporter: dynamic axes, no extra dependencies
            torch.onnx.export(w, (ids, mask), f32, dynamo=False, **kw)
        except TypeError:
            torch.onnx.export(w, (ids, mask), f32, **kw)
    quantize_dynamic(f32, os.path.join(a.onnx, "encoder.int8.onnx"), weight_type=QuantType.QInt8)
    print(json.dumps({"exported": f32, "torch": torch.__version__}), flush=True)


def load_dense(model_dir):
    import numpy as np
    from safetensors.numpy import load_file
    p = os.path.join(model_dir, "2_Dense", "model.safetensors")
    return load_file(p)["linear.weight"].astype(np.float32)


def cmd_ort(a):
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer
    texts = read_texts(a.texts)
    tok = AutoTokenizer.from_pretrained(a.model)
    dense = load_dense(a.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    ntok = count_tokens(tok, texts)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # as sentence-transformers

    def encode(sel):
        out = np.zeros((len(sel), dense.shape[0]), np.float32)
        for s in range(0, len(sel), 32):
            idx = sel[s:s + 32]
            b = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=512, return_tensors="np")
            h = sess.run(None, {"input_ids": b["input_ids"].astype(np.int64),
                                "attention_mask": b["attention_mask"].astype(np.int64)})[0]
            m = b["attention_mask"].astype(np.float32)[:, :, None]
            pooled = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            v = pooled @ dense.T
            out[s:s + len(idx)] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return out

    encode(order[:32])  # warm-up
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        emb_sorted = encode(order)
        times.append(time.perf_counter() - t0)
    emb = np.zeros_like(emb_sorted)
    emb[order] = emb_sorted
    np.save(a.out, emb)
    report(a.name, ntok, times, {"onnxruntime": ort.__version__, "threads": a.threads})


def cmd_cmd(a):
    import subprocess
    # Count tokens in another process: this one must stay small, because a child's ru_maxrss
    # starts from its parent's resident size at the moment it is spawned.
    ntok = int(subprocess.run([sys.executable, os.path.abspath(__file__), "count", "--model", a.model,
                               "--texts", a.texts], check=True, capture_output=True, text=True).stdout)
    argv = a.command[1:] if a.command and a.command[0] == "--" else a.command
    times, rss = [], 0.0
    for _ in range(a.runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if a.child_json else subprocess.DEVNULL, text=True)
        out = p.stdout.read() if a.child_json else ""
        _, status, ru = os.wait4(p.pid, 0)  # this child's own rusage
        p.returncode = os.waitstatus_to_exitcode(status)
        times.append(time.perf_counter() - t0)
        rss = max(rss, ru.ru_maxrss / 1024.0)
        if p.returncode != 0:
            print(json.dumps({"name": a.name, "error": f"exit {p.returncode}"}), flush=True)
            return 1
    if a.child_json:  # the command timed itself (e.g. without model loading): keep its figures
        d = json.loads(out.strip().splitlines()[-1])
        d.update({"name": a.name, "peak_rss_mb": round(rss, 1)})
        if "runs_seconds" in d and "tokens" in d:
            d["best_tokens_per_s"] = round(d["tokens"] / min(d["runs_seconds"]), 1)
        print(json.dumps(d), flush=True)
        return 0
    sec = statistics.median(times)
    print(json.dumps({"name": a.name, "tokens": ntok, "seconds": round(sec, 3),
                      "tokens_per_s": round(ntok / sec, 1), "best_tokens_per_s": round(ntok / min(times), 1),
                      "runs_seconds": [round(t, 3) for t in times],
                      "peak_rss_mb": round(rss, 1)}), flush=True)
    return 0


def cmd_count(a):
    from transformers import AutoTokenizer
    print(count_tokens(AutoTokenizer.from_pretrained(a.model), read_texts(a.texts)))


def cmd_cos(a):
    import numpy as np
    x, y = np.load(a.a), np.load(a.b)
    c = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    print(json.dumps({"min_cos": round(float(c.min()), 6), "mean_cos": round(float(c.mean()), 6)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("st")
    e = sub.add_parser("export")
    o = sub.add_parser("ort")
    for p in (s, e, o):
        p.add_argument("--model", required=True)
    for p in (s, o):
        p.add_argument("--texts", required=True)
        p.add_argument("--threads", type=int, default=os.cpu_count())
        p.add_argument("--runs", type=int, default=1)
        p.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=["f32", "bf16", "int8"], default="f32")
    e.add_argument("--onnx", required=True)
    o.add_argument("--onnx", required=True)
    o.add_argument("--name", default="onnxruntime")
    m = sub.add_parser("cmd")
    m.add_argument("--model", required=True)
    m.add_argument("--texts", required=True)
    m.add_argument("--runs", type=int, default=1)
    m.add_argument("--name", default="command")
    m.add_argument("--child-json", action="store_true", help="report the JSON line the command prints (its own timing)")
    m.add_argument("command", nargs=argparse.REMAINDER)
    n = sub.add_parser("count")
    n.add_argument("--model", required=True)
    n.add_argument("--texts", required=True)
    c = sub.add_parser("cos")
    c.add_argument("a")
    c.add_argument("b")
    a = ap.parse_args()
    return {"st": cmd_st, "export": cmd_export, "ort": cmd_ort, "cmd": cmd_cmd, "count": cmd_count, "cos": cmd_cos}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
