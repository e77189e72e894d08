#!/usr/bin/env bash
# deps.sh — check or install the Debian packages gtr needs.
#   scripts/deps.sh check     verify; install them when running as root (CI, fresh machines)
#   scripts/deps.sh install   install (needs root or sudo)
#   scripts/deps.sh bench     also the packages the benchmarks use
#   scripts/deps.sh fuzz      also clang and its sanitizer runtimes (libFuzzer)
set -euo pipefail

# CORE: build + `make test` (the C library and its tests; python3 with numpy/venv only for the
# scripted tests of the Python binding and of the OpenAI client against `gtr serve`).
CORE=(gcc make pkg-config perl libjansson-dev libcurl4-openssl-dev libzip-dev
      libcmocka-dev zlib1g-dev zip unzip python3 python3-numpy
      python3-venv curl man-db)
# BENCH: references measured in the same run (SentencePiece, Debian PyTorch + OpenBLAS), clang
# for `make fuzz`.
BENCH=(clang sentencepiece python3-sentencepiece python3-torch libopenblas0-pthread hyperfine)

FUZZ=(clang libclang-rt-14-dev)

want=("${CORE[@]}")
[ "${1:-check}" = bench ] && want+=("${BENCH[@]}")
[ "${1:-check}" = fuzz ] && want+=("${FUZZ[@]}")

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "deps: installing ${missing[*]}" >&2
    sudo apt-get update -qq >&2 || true
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
