#!/usr/bin/env bash
# venv.sh test|bench — Python virtual environments for scripted tests and benchmarks
# (git-ignored, under .venv-<name>/). C tests never need them.
#   test:  numpy, openai (drives gtr serve like a real OpenAI client); sentencepiece, and
#          transformers + tokenizers + protobuf (no torch: T5TokenizerFast only), the current
#          tokenizer implementations that `gtr tokenize --spm-compat 0.2.2 / hf` must equal
#   bench: torch, transformers, sentence-transformers, onnx(+onnxscript for the exporter),
#          onnxruntime, faiss-cpu, pytrec-eval-terrier (wheels of `import pytrec_eval`; the
#          original sdist downloads trec_eval from GitHub while building, which fails offline),
#          sentencepiece, tokenizers, hnswlib (bench_ann.sh's HNSW baseline), psutil — the
#          references we measure against, from PyPI; matplotlib draws bench_ann.sh's plot.
#
# About torch: only PyPI is reachable here (the CPU-only wheel index of the PyTorch project is
# not), and PyPI's Linux x86-64 torch wheel is the CUDA build whose import needs the CUDA
# runtime packages it depends on (cuBLAS, cuDNN, NCCL, ... about 3 GB). Its CPU code is the same
# as the CPU-only build's (the CPU kernels live in libtorch_cpu.so in both), so we install the
# current wheel as `pip install torch` gives it to users; it simply never finds a GPU here.
# Override with TORCH_SPEC (e.g. TORCH_SPEC='torch==2.15.0') to pin a version.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: venv.sh test|bench}
dir=.venv-$kind
py=${PYTHON:-/usr/bin/python3}
stamp=$dir/.installed
case $kind in
  test)  pkgs=(numpy openai sentencepiece transformers tokenizers protobuf) ;;
  bench) pkgs=(numpy "${TORCH_SPEC:-torch}" transformers sentence-transformers onnx onnxscript
               onnxruntime faiss-cpu pytrec-eval-terrier sentencepiece tokenizers psutil hnswlib
               matplotlib) ;;
  *) echo "venv.sh: unknown kind $kind" >&2; exit 2 ;;
esac
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then exit 0; fi
# Scripted tests run in parallel (prove -j) and several may make the same venv at once: one
# upgrading pip while another runs it broke the other's pip. Serialise on a lock, then look again.
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then exit 0; fi
[ -x "$dir/bin/python" ] || "$py" -m venv "$dir" >&2 || { echo "venv.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
"$dir/bin/pip" install -q --upgrade pip >&2
"$dir/bin/pip" install -q "${pkgs[@]}" >&2
echo "${pkgs[*]}" > "$stamp"
