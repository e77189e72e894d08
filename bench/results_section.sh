# results_section.sh — sourced by the bench scripts: results_section NAME TEXT replaces the
# "## NAME" section of bench/RESULTS.md (BENCH_RESULTS: another file) with TEXT, or appends it;
# the other sections stay as they are.
results_section() {
    local name=$1 section=$2 results=${BENCH_RESULTS:-bench/RESULTS.md} tmpf
    [ -f "$results" ] || printf '# Benchmark results\n\nWritten by `make bench` (bench/run.sh); each bench_*.sh owns its section.\n' > "$results"
    tmpf=$(mktemp)
    awk -v section="$section" -v head="## $name" '
        /^## / { if (skip) skip = 0; if ($0 == head) { print section; print ""; done = 1; skip = 1; next } }
        !skip { print }
        END { if (!done) { print ""; print section } }
    ' "$results" > "$tmpf"
    # drop blank lines doubled at the end of the replaced section
    cat -s "$tmpf" > "$results"
    rm -f "$tmpf"
}
