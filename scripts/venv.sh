#!/usr/bin/env bash
# venv.sh test|bench — Python virtual environments for scripted tests and benchmarks
# (git-ignored, under .venv-<name>/). C tests never need them.
#   test:  numpy, openai (drives gtr serve like a real OpenAI client)
#   bench: torch (CPU), transformers, sentence-transformers, onnx, onnxruntime, faiss-cpu,
#          pytrec_eval, sentencepiece, tokenizers — the references we measure against
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: venv.sh test|bench}
dir=.venv-$kind
py=${PYTHON:-/usr/bin/python3}
stamp=$dir/.installed
case $kind in
  test)  pkgs=(numpy openai) ;;
  bench) pkgs=(numpy torch transformers sentence-transformers onnx onnxruntime faiss-cpu
               pytrec_eval sentencepiece tokenizers) ;;
  *) echo "venv.sh: unknown kind $kind" >&2; exit 2 ;;
esac
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then exit 0; fi
[ -x "$dir/bin/python" ] || "$py" -m venv "$dir" >&2 || { echo "venv.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
extra=()
[ "$kind" = bench ] && extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
"$dir/bin/pip" install -q --upgrade pip >&2
"$dir/bin/pip" install -q "${extra[@]}" "${pkgs[@]}" >&2
echo "${pkgs[*]}" > "$stamp"
