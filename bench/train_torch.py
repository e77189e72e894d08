#!/usr/bin/python3
"""PyTorch autograd baseline for `gtr train`: the same GTR training step (T5 encoder, mean
pooling, Dense, L2 norm; bidirectional in-batch softmax with hard negatives, tau 0.01;
Adafactor as GTR trains or AdamW) on the same model and batch, timed the same way.

  /usr/bin/python3 bench/train_torch.py --model ../shared/models/gtr-small --data batch.jsonl \
      --batch 32 --steps 5 --threads 2 [--optimizer adafactor|adamw] [--query-max-len 64]
      [--passage-max-len 256]

The batch: the first --batch lines of a JSON lines file {"query", "pos", "neg": [...]} (the
first negative of each line is used when --negatives 1). Every step trains on that same batch,
so `gtr train -d batch.jsonl --batch N` (whose one batch per step is the whole file, in a
shuffled order that does not change the loss) computes exactly the same losses: step 1's loss
must agree to ~1e-4 (float32 both), later steps closely.

Prints one JSON line: tokens per second of the whole step (forward + backward + optimizer) over
the steps after the first (median), tokens counting real tokens including </s> as gtr does
(PyTorch also computes the padding of each group), and the loss of every step.

Needs Debian's python3-torch, python3-numpy, python3-sentencepiece and libopenblas0-pthread
(without OpenBLAS torch falls back to the reference BLAS and is ~50x slower).
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import sentencepiece
import torch


# ---- loading a sentence-transformers GTR directory -------------------------------------------

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] == "BF16":
            a, b = info["data_offsets"]
            raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            a, b = info["data_offsets"]
            arr = np.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]).copy())
    return out


def read_weights(directory):
    st = os.path.join(directory, "model.safetensors")
    if os.path.exists(st):
        return read_safetensors(st)
    sd = torch.load(os.path.join(directory, "pytorch_model.bin"), map_location="cpu")
    return {k: v.float() for k, v in sd.items()}


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    W = read_weights(model_dir)
    if "shared.weight" not in W:
        W["shared.weight"] = W["encoder.embed_tokens.weight"]
    W.pop("encoder.embed_tokens.weight", None)
    with open(os.path.join(model_dir, "modules.json")) as f:
        modules = json.load(f)
    dense = [m["path"] for m in modules if m["type"].endswith("Dense")]
    if dense:
        W["dense"] = read_weights(os.path.join(model_dir, dense[0]))["linear.weight"]
    return cfg, {k: v.clone().requires_grad_() for k, v in W.items() if not k.startswith("decoder.")}


# ---- the model ------------------------------------------------------------------------------

def buckets(L, num_buckets, max_distance):
    """T5's bidirectional relative-position buckets of key - query, in float32 as transformers."""
    rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]
    half = num_buckets // 2
    out = (rel > 0).long() * half
    n = rel.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / torch.log(torch.tensor(max_distance / exact))
                     * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return out + torch.where(n < exact, n, large)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def encode(cfg, W, ids, mask):
    """[B, L] ids + mask -> [B, out] unit vectors (eval mode: no dropout)."""
    B, L = ids.shape
    H, dk, eps = cfg["num_heads"], cfg["d_kv"], cfg["layer_norm_epsilon"]
    gated = cfg.get("feed_forward_proj", "relu") == "gated-gelu"
    x = W["shared.weight"][ids]
    bias_tab = W["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    pos = bias_tab[buckets(L, cfg["relative_attention_num_buckets"],
                           cfg.get("relative_attention_max_distance", 128))].permute(2, 0, 1)[None]
    pos = pos + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}.layer."
        h = rms(x, W[p + "0.layer_norm.weight"], eps)
        q, k, v = (h @ W[p + f"0.SelfAttention.{n}.weight"].T for n in "qkv")
        q, k, v = (t.view(B, L, H, dk).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) + pos, dim=-1)  # no 1/sqrt(d_kv) in T5
        x = x + ((att @ v).transpose(1, 2).reshape(B, L, H * dk) @ W[p + "0.SelfAttention.o.weight"].T)
        h = rms(x, W[p + "1.layer_norm.weight"], eps)
        if gated:
            a = torch.nn.functional.gelu(h @ W[p + "1.DenseReluDense.wi_0.weight"].T, approximate="tanh")
            a = a * (h @ W[p + "1.DenseReluDense.wi_1.weight"].T)
        else:
            a = torch.relu(h @ W[p + "1.DenseReluDense.wi.weight"].T)
        x = x + a @ W[p + "1.DenseReluDense.wo.weight"].T
    x = rms(x, W["encoder.final_layer_norm.weight"], eps)
    m = mask[..., None].float()
    pooled = (x * m).sum(1) / m.sum(1)
    out = pooled @ W["dense"].T if "dense" in W else pooled
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def contrastive_loss(q, p, n, tau):
    y = torch.arange(q.shape[0])
    cols = torch.cat([p, n]) if n is not None else p
    ce = torch.nn.functional.cross_entropy
    return (ce(q @ cols.T / tau, y) + ce(p @ q.T / tau, y)) / 2


# ---- optimisers -----------------------------------------------------------------------------

class Adafactor:
    """Factored second moments, beta2_t = 1 - t^-0.8, update clipping at RMS 1, no momentum,
    no weight decay, fixed lr (transformers' Adafactor with scale_parameter=False,
    relative_step=False, beta1=None): what GTR trains with."""

    def __init__(self, params, lr, eps1=1e-30, clip=1.0, decay=-0.8):
        self.params, self.lr, self.eps1, self.clip, self.decay, self.t = params, lr, eps1, clip, decay, 0
        self.state = [{} for _ in params]

    @torch.no_grad()
    def step(self):
        self.t += 1
        beta2 = 1.0 - self.t ** self.decay
        for p, s in zip(self.params, self.state):
            g = p.grad
            g2 = g * g + self.eps1
            if g.dim() == 2:
                s["R"] = beta2 * s.get("R", 0.0) + (1 - beta2) * g2.mean(1)
                s["C"] = beta2 * s.get("C", 0.0) + (1 - beta2) * g2.mean(0)
                u = g * torch.rsqrt(s["R"] / s["R"].mean())[:, None] * torch.rsqrt(s["C"])[None, :]
            else:
                s["V"] = beta2 * s.get("V", 0.0) + (1 - beta2) * g2
                u = g * torch.rsqrt(s["V"])
            u /= max(1.0, (u.pow(2).mean().sqrt() / self.clip).item())
            p -= self.lr * u

    def zero_grad(self):
        for p in self.params:
            p.grad = None


# ---- data -----------------------------------------------------------------------------------

def tokenize(sp, texts, max_len):
    ids = [sp.encode(t)[: max_len - 1] + [1] for t in texts]
    L = max(len(x) for x in ids)
    out = torch.zeros(len(ids), L, dtype=torch.long)
    mask = torch.zeros(len(ids), L, dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return out, mask, sum(len(x) for x in ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--negatives", type=int, default=1, choices=[0, 1])
    ap.add_argument("--query-max-len", type=int, default=64)
    ap.add_argument("--passage-max-len", type=int, default=256)
    ap.add_argument("--tau", type=float, default=0.01)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, W = load(a.model)
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(a.model, "spiece.model"))
    with open(a.data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][: a.batch]
    pos = [r["pos"] if isinstance(r["pos"], str) else r["pos"][0] for r in rows]
    negs = [r["neg"][0] for r in rows if a.negatives and r.get("neg")]
    q = tokenize(sp, [r["query"] for r in rows], a.query_max_len)
    p = tokenize(sp, pos, a.passage_max_len)
    n = tokenize(sp, negs, a.passage_max_len) if negs else None
    tokens = q[2] + p[2] + (n[2] if n else 0)
    params = list(W.values())
    opt = (Adafactor(params, a.lr) if a.optimizer == "adafactor"
           else torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01))
    losses, seconds = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        eq, ep = encode(cfg, W, q[0], q[1]), encode(cfg, W, p[0], p[1])
        en = encode(cfg, W, n[0], n[1]) if n else None
        loss = contrastive_loss(eq, ep, en, a.tau)
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - t0)
        losses.append(loss.item())
    timed = seconds[1:] if len(seconds) > 1 else seconds
    print(json.dumps({"framework": f"torch {torch.__version__}", "threads": a.threads, "batch": len(rows),
                      "tokens_per_step": tokens,
                      "padded_tokens_per_step": int(q[0].numel() + p[0].numel() + (n[0].numel() if n else 0)),
                      "tokens_per_s": round(tokens / statistics.median(timed), 1),
                      "step_seconds": [round(s, 3) for s in seconds], "losses": [round(x, 6) for x in losses]}))


if __name__ == "__main__":
    sys.exit(main())
