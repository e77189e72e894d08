# tap.sh — sourced by tests/scripts/*.sh: a tiny TAP producer for CLI-level tests.
#   plan N; ok "name" cmd...; is "got" "want" "name"; done_testing
# Scripts run from the repository root; GTR=bin/gtr, SHARED=${GTR_SHARED:-../shared}.
GTR=${GTR:-bin/gtr}
SHARED=${GTR_SHARED:-../shared}
_tap_n=0
_tap_fail=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gtr-script-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
plan() { echo "1..$1"; }
_tap_result() { # status name
    _tap_n=$((_tap_n+1))
    if [ "$1" = 0 ]; then echo "ok $_tap_n - $2"; else echo "not ok $_tap_n - $2"; _tap_fail=$((_tap_fail+1)); fi
}
# ok NAME CMD...: passes when CMD exits 0 (output goes to $TMP/out, $TMP/err)
ok() { local name=$1; shift; "$@" >"$TMP/out" 2>"$TMP/err"; local s=$?; _tap_result $s "$name"; [ $s = 0 ] || { sed 's/^/# /' "$TMP/err" | head -20; }; return 0; }
# fails NAME CMD...: passes when CMD exits non-zero without crashing (status < 128)
fails() { local name=$1; shift; "$@" >"$TMP/out" 2>"$TMP/err"; local s=$?; if [ $s -ne 0 ] && [ $s -lt 128 ]; then _tap_result 0 "$name"; else _tap_result 1 "$name (exit $s)"; fi; return 0; }
# is GOT WANT NAME
is() { if [ "$1" = "$2" ]; then _tap_result 0 "$3"; else _tap_result 1 "$3"; echo "#   got: $1"; echo "#  want: $2"; fi; }
# like TEXT REGEX NAME
like() { if printf '%s' "$1" | grep -Eq -- "$2"; then _tap_result 0 "$3"; else _tap_result 1 "$3"; echo "#   got: $1"; echo "#  want match: $2"; fi; }
done_testing() { [ $_tap_fail = 0 ]; }
# need_shared TEST PATH [TEST PATH ...]: skip the whole script (a TAP "1..0 # SKIP" plan, exit 0)
# unless `test TEST PATH` holds for each pair, e.g. need_shared -d "$M" -f "$SF/corpus.jsonl"
need_shared() {
    while [ $# -ge 2 ]; do
        test "$1" "$2" || { echo "1..0 # SKIP reference data not found in $SHARED"; exit 0; }
        shift 2
    done
}
