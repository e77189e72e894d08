#!/usr/bin/env bash
# api_boundary.sh — bin/gtr (cli/) and bin/gtr-mpi (mpi/) are programs over the public API
# (issue 13): no file there includes a header of the library's src/, and every libgtr symbol
# their objects link is one that lib/libgtr.so exports (gtr.h's GTR_API), so no internal
# function is reached by declaring it by hand either. The Makefile compiles both folders
# without -Isrc as well. Each check is first shown to catch a planted violation.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
BUILD=${BUILD:-build/release}

# includes DIR...: print "file: #include ..." for every include in DIR/*.[ch] that reaches into
# src/: a quoted include that is neither gtr.h nor a file of cli/ or mpi/ (relative to the
# including file), or any include naming src/ or a path that exists under src/.
includes() {
    local f line h dir real
    for dir in "$@"; do
        for f in "$dir"/*.[ch]; do
            [ -e "$f" ] || continue
            while IFS= read -r line; do
                h=$(printf '%s' "$line" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]*)[">].*/\1/')
                case "$h" in */src/*|src/*) echo "$f: $line"; continue ;; esac
                real=$(realpath -m "src/$h")
                case "$real" in "$PWD"/src/*) if [ -e "$real" ]; then echo "$f: $line"; continue; fi ;; esac
                case "$line" in *'"'*)
                    [ "$h" = gtr.h ] && continue
                    real=$(realpath -m "$(dirname "$f")/$h")
                    case "$real" in "$PWD"/cli/*|"$PWD"/mpi/*) [ -e "$real" ] && continue ;; esac
                    echo "$f: $line" ;;
                esac
            done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$f")
        done
    done
}

# internal_symbols OBJ...: the libgtr symbols the objects use that libgtr.so does not export
internal_symbols() {
    comm -12 <(nm -u "$@" 2>/dev/null | awk 'NF >= 2 {print $NF}' | sort -u) \
             <(nm --defined-only "$BUILD_LIB_A" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | sort -u) |
        comm -23 - <(nm -D --defined-only lib/libgtr.so | awk '{print $3}' | sort -u)
}
BUILD_LIB_A=lib/libgtr.a
[ "$BUILD" = build/release ] || BUILD_LIB_A=$BUILD/lib/libgtr.a

plan 6

# 1-2: the include check catches a planted internal include, and passes on cli/ and mpi/
mkdir -p "$TMP/plant"
printf '#include "gtr.h"\n#include "core/core.h"\n#include <stdio.h>\n' > "$TMP/plant/bad.c"
like "$(includes "$TMP/plant")" 'bad.c: #include "core/core.h"' "the include check names a planted src/ include"
got=$(includes cli mpi)
is "$got" "" "cli/ and mpi/ include no header of src/"

# 3-4: the symbol check catches an object that calls an internal function, and passes on ours
printf 'extern void gtr_buf_free(void *);\nvoid probe(void *b) { gtr_buf_free(b); }\n' > "$TMP/plant/probe.c"
cc -c -o "$TMP/plant/probe.o" "$TMP/plant/probe.c" 2>"$TMP/cc.err"
is "$(internal_symbols "$TMP/plant/probe.o")" "gtr_buf_free" "the symbol check names an internal function a planted object calls"
objs=("$BUILD"/cli/*.o)
[ -e "${objs[0]}" ] || { echo "# no objects in $BUILD/cli: run make first"; objs=(); }
like "${#objs[@]}" '^[1-9]' "the CLI's objects are there to check"
is "$(internal_symbols "${objs[@]}")" "" "bin/gtr's objects link only symbols libgtr.so exports"

# 6: gtr-mpi likewise (built only where mpicc exists)
mobjs=("$BUILD"/mpi/*.o)
if [ -e "${mobjs[0]}" ]; then
    is "$(internal_symbols "${mobjs[@]}")" "" "bin/gtr-mpi's objects link only symbols libgtr.so exports"
else
    echo "ok 6 # SKIP no gtr-mpi build (no mpicc)"; _tap_n=$((_tap_n+1))
fi
done_testing
