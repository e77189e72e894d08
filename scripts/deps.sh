#!/usr/bin/env bash
# deps.sh — check or install the Debian packages gtr needs.
#   scripts/deps.sh check     verify; install them when running as root (CI, fresh machines)
#   scripts/deps.sh install   install (needs root or sudo)
#   scripts/deps.sh bench     also the packages the benchmarks use
#   scripts/deps.sh fuzz      also clang and its sanitizer runtimes (libFuzzer)
#   scripts/deps.sh config F  check (installing as above), then write the compiler and linker
#                             flags of the libraries (pkg-config) to the make fragment F
#
# Why `config`: the Makefile must not ask pkg-config for flags while it is being parsed, because
# on a fresh machine the -dev packages are not installed yet at that moment (the first `make`
# would link without libraries). The Makefile includes build/config.mk and has a rule that runs
# this script to make it; GNU make then restarts with the flags in place.
set -euo pipefail

# CORE: build + `make test` (the C library and its tests; python3 with numpy/venv only for the
# scripted tests of the Python binding and of the OpenAI client against `gtr serve`).
# python3-wheel: `pip install --no-build-isolation ./python` (offline) builds a wheel with the
# system's setuptools, which needs the wheel package; a venv made by Debian's python3 lacks it.
CORE=(gcc make pkg-config perl libjansson-dev libcurl4-openssl-dev libzip-dev
      libcmocka-dev zlib1g-dev zip unzip python3 python3-numpy
      python3-venv python3-wheel python3-setuptools curl man-db
      openmpi-bin libopenmpi-dev)
# openmpi-bin, libopenmpi-dev: bin/gtr-mpi and its tests (issue 18). Optional for building:
# without mpicc the Makefile skips gtr-mpi and everything else builds and runs as before.
# The libraries the Makefile links, as pkg-config names and the Debian package providing each.
PKGCONFIG=(jansson:libjansson-dev libcurl:libcurl4-openssl-dev libzip:libzip-dev zlib:zlib1g-dev)
# BENCH: references measured in the same run (SentencePiece, Debian PyTorch + OpenBLAS), clang
# for `make fuzz`.
BENCH=(clang sentencepiece python3-sentencepiece python3-torch libopenblas0-pthread hyperfine)

FUZZ=(clang libclang-rt-14-dev)

mode=${1:-check}
case $mode in
  check|install|bench|fuzz) ;;
  config) [ -n "${2:-}" ] || { echo "usage: deps.sh config FILE" >&2; exit 2; } ;;
  *) echo "deps.sh: unknown mode '$mode' (check, install, bench, fuzz, config FILE)" >&2; exit 2 ;;
esac
want=("${CORE[@]}")
[ "$mode" = bench ] && want+=("${BENCH[@]}")
[ "$mode" = fuzz ] && want+=("${FUZZ[@]}")

# write_config FILE: the flags of every library, or one line naming the package that is missing.
write_config() {
    local out=$1 names=() entry name pkg
    if ! command -v pkg-config >/dev/null; then
        echo "deps: pkg-config is not installed; run:  sudo apt-get install -y pkg-config" >&2
        exit 1
    fi
    for entry in "${PKGCONFIG[@]}"; do
        name=${entry%%:*} pkg=${entry#*:}
        if ! pkg-config --exists "$name"; then
            echo "deps: pkg-config cannot find the library '$name' (Debian package $pkg); run:  sudo apt-get install -y $pkg" >&2
            exit 1
        fi
        names+=("$name")
    done
    mkdir -p "$(dirname "$out")"
    local tmp=$out.tmp.$$
    {
        echo "# written by scripts/deps.sh config: the flags of the libraries gtr links (pkg-config)"
        echo "PKG_CFLAGS := $(pkg-config --cflags "${names[@]}")"
        echo "PKG_LIBS   := $(pkg-config --libs "${names[@]}")"
    } > "$tmp" && mv -f "$tmp" "$out"
}

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    [ "$mode" = config ] && write_config "$2"
    exit 0
fi

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
[ "$mode" = config ] && write_config "$2"
exit 0
