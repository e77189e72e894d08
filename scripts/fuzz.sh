#!/usr/bin/env bash
# fuzz.sh — `make fuzz`: build every fuzz/fuzz_*.c as a libFuzzer target (clang, ASan+UBSan)
# against the library sources and run each for FUZZ_SECONDS (default 20) from its seed corpus
# fuzz/seeds/<name>/ (copied to a scratch corpus, so runs never modify the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)"; exit 1; }
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
make --no-print-directory CC=clang BUILD=build/fuzz OPT=-O1 SAN="$san" build/fuzz/lib/libgtr.a >/dev/null
# The libraries' flags as the library build got them: build/config.mk, written by
# scripts/deps.sh config (the make above made it), so the list of libraries lives in one place.
mkvar() { sed -n "s/^$1 *:= *//p" build/config.mk; }
pkg_cflags=$(mkvar PKG_CFLAGS)
pkg_libs=$(mkvar PKG_LIBS)
fails=0; n=0
for src in fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    bin=build/fuzz/$name
    clang -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc $pkg_cflags \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        "$src" build/fuzz/lib/libgtr.a $pkg_libs -lpthread -lm -o "$bin"
    corpus=build/fuzz/corpus-$name
    rm -rf "$corpus"; mkdir -p "$corpus"
    [ -d fuzz/seeds/${name#fuzz_} ] && cp -r fuzz/seeds/${name#fuzz_}/. "$corpus"/
    n=$((n+1))
    echo "fuzz: $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 "$corpus" \
            >build/fuzz/$name.log 2>&1; then
        echo "fuzz: $name FAILED (see build/fuzz/$name.log)"; tail -30 build/fuzz/$name.log; fails=$((fails+1))
    fi
done
echo "$((n-fails)) passed, $fails failed"
[ $fails -eq 0 ]
