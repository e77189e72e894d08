#!/usr/bin/env bash
# install.sh — `make install PREFIX=<tmp>` installs the tool, both libraries (versioned
# soname), the header, gtr.pc and the man page; a small C program builds against the
# installed copy through pkg-config, linked shared and static, and runs; the man page renders
# and documents every command `gtr --help` lists; `make uninstall` removes it all. Everything
# is written under the test's temporary directory.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

# Run from `make test`, the environment carries the parent make's jobserver: not ours.
unset MAKEFLAGS MFLAGS MAKELEVEL
P=$TMP/prefix
VERSION=$(sed -n 's/^#define GTR_VERSION_STRING "\(.*\)"/\1/p' include/gtr.h)
CC=${CC:-cc}
command -v "$CC" >/dev/null || CC=cc

ok "make install PREFIX=$P" make -s install PREFIX="$P"
for f in bin/gtr lib/libgtr.a "lib/libgtr.so.$VERSION" include/gtr.h lib/pkgconfig/gtr.pc share/man/man1/gtr.1; do
    ok "installs $f" test -f "$P/$f"
done
is "$(readlink "$P/lib/libgtr.so.0")" "libgtr.so.$VERSION" "libgtr.so.0 -> libgtr.so.$VERSION"
is "$(readlink "$P/lib/libgtr.so")" "libgtr.so.$VERSION" "libgtr.so -> libgtr.so.$VERSION"
is "$(readelf -d "$P/lib/libgtr.so.$VERSION" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" libgtr.so.0 \
    "the soname is libgtr.so.0"
others=$(nm -D --defined-only "$P/lib/libgtr.so.$VERSION" | awk '{print $3}' |
    grep -Ev '^(gtr_|_init$|_fini$|_edata$|_end$|__bss_start$)' | head -5 | tr '\n' ' ')
is "$others" "" "the shared library exports only gtr_* symbols"
ok "the installed gtr runs" "$P/bin/gtr" version
like "$(cat "$TMP/out")" "^gtr $VERSION" "... and reports version $VERSION"

# ---- pkg-config and a program built against the installed library ---------------------
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
is "$(pkg-config --modversion gtr)" "$VERSION" "pkg-config --modversion gtr = gtr.h's version"
is "$(pkg-config --variable=prefix gtr)" "$P" "gtr.pc names the prefix"
cat >"$TMP/prog.c" <<'EOF'
#include <gtr.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    gtr_error err;
    /* a failing call fills the error: the library is really linked and working */
    gtr_tokenizer *t = gtr_tokenizer_load("/nonexistent/spiece.model", NULL, &err);
    if (t || err.code == GTR_OK || !strstr(err.message, "/nonexistent/spiece.model")) return 1;
    gtr_download_options o = gtr_download_default_options();
    printf("gtr %s %s %d\n", gtr_version(), gtr_status_str(err.code), o.max_retries);
    return strcmp(gtr_version(), GTR_VERSION_STRING) != 0;
}
EOF
# shellcheck disable=SC2046
ok "builds against the shared library: pkg-config --cflags --libs gtr" \
    "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/prog_shared" "$TMP/prog.c" \
    $(pkg-config --cflags --libs gtr) -Wl,-rpath,"$P/lib"
ok "the shared build runs" "$TMP/prog_shared"
like "$(cat "$TMP/out")" "^gtr $VERSION " "... and prints the version"
like "$(ldd "$TMP/prog_shared")" "libgtr\.so\.0 => $P/lib/libgtr\.so\.0" "... loading the installed libgtr.so.0"
STATIC_LIBS=$(pkg-config --static --libs gtr | sed 's/-lgtr/-l:libgtr.a/')
# shellcheck disable=SC2046,SC2086
ok "builds against the static library: pkg-config --static --libs gtr" \
    "$CC" -std=c11 -Wall -Wextra -Werror -o "$TMP/prog_static" "$TMP/prog.c" \
    $(pkg-config --cflags gtr) $STATIC_LIBS
ok "the static build runs" "$TMP/prog_static"
like "$(cat "$TMP/out")" "^gtr $VERSION " "... and prints the version"
is "$(ldd "$TMP/prog_static" | grep -c libgtr)" 0 "... without needing libgtr.so"

# ---- the man page -----------------------------------------------------------------------------
render() { man -l "$1" 2>/dev/null || nroff -man "$1" 2>/dev/null; }
if command -v man >/dev/null || command -v nroff >/dev/null; then
    # plain text: no overstrike, tabs and justification runs as single spaces
    page=$(MANWIDTH=100 render "$P/share/man/man1/gtr.1" | sed 's/.\x08//g' | tr '\t' ' ' | tr -s ' ')
    like "$page" "gtr - GTR dense retrieval" "the man page renders"
    if command -v man >/dev/null; then
        is "$(MANPATH="$P/share/man" man -w gtr 2>/dev/null)" "$P/share/man/man1/gtr.1" "man gtr finds it under the prefix"
    fi
    missing=""
    for c in version tokenize embed info pull index search bm25-index eval beir pull-dataset \
        quantize train mine-negatives serve $("$P/bin/gtr" --help | awk '/^commands:/{f=1; next} f && NF {print $1}'); do
        printf '%s\n' "$page" | grep -Eq "^ +gtr $c( |$)" || missing="$missing $c"
    done
    is "$missing" "" "the man page documents every command (planned and in gtr --help)"
    like "$page" "HF_ENDPOINT" "... and the environment"
else
    echo "# man and nroff are missing: man page rendering not checked"
fi

# ---- DESTDIR staging, then uninstall ---------------------------------------------------------
ok "make install DESTDIR=... PREFIX=/usr" make -s install DESTDIR="$TMP/stage" PREFIX=/usr
ok "... stages under DESTDIR" test -f "$TMP/stage/usr/lib/pkgconfig/gtr.pc"
like "$(grep '^prefix=' "$TMP/stage/usr/lib/pkgconfig/gtr.pc")" "^prefix=/usr$" "... with the final prefix in gtr.pc"
ok "make uninstall PREFIX=..." make -s uninstall PREFIX="$P"
is "$(find "$P" -type f -o -type l | wc -l)" 0 "uninstall removes every installed file"

plan "$_tap_n"
done_testing
