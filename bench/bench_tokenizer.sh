#!/usr/bin/env bash
# bench_tokenizer.sh — tokenizer throughput, gtr next to the SentencePiece library measured in
# the same run, one thread each, on ../shared/tokenizer/texts.jsonl (578 texts) as plain lines
# (BENCH_TOK_REPS copies, default 20, so a run takes long enough to time):
#   - command line: `gtr tokenize --spm M --max-len 0` vs `spm_encode --model M --output_format=id`
#     (both read the file, tokenize, print ids; best CPU time of 5 runs)
#   - in process:   gtr_tokenizer_encode() (bench/bench_tokenizer.c) vs the Python binding's
#                   encode(lines, num_threads=1) (best pass of >= 2 s of CPU time)
# MB/s counts input bytes, tokens/s SentencePiece ids (without </s>). Pinned to one core with
# taskset when available. Updates the "Tokenizer" section of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GTR_SHARED:-../shared}
MODEL=$SHARED/spm/t5-spiece.model
REPS=${BENCH_TOK_REPS:-20}
PY=/usr/bin/python3

[ -x bin/gtr ] && [ -f lib/libgtr.a ] || make -s all
[ -x /usr/bin/time ] || { echo "bench_tokenizer: /usr/bin/time missing (apt-get install time)"; exit 1; }
command -v spm_encode >/dev/null || { echo "bench_tokenizer: spm_encode missing (apt-get install sentencepiece)"; exit 1; }
pin=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    pin=(taskset -c "$(( $(nproc) - 1 ))")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gtr-bench-tok-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p build/bench
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc $(pkg-config --cflags jansson) bench/bench_tokenizer.c \
    lib/libgtr.a $(pkg-config --libs jansson libcurl libzip) -lpthread -lm -o build/bench/bench_tokenizer
build/bench/bench_tokenizer plain "$SHARED/tokenizer/texts.jsonl" "$tmp/texts.txt" "$REPS"
bytes=$(stat -c %s "$tmp/texts.txt")

# Best CPU time (user + system, nanoseconds) of 5 runs of a command, stdin from $tmp/texts.txt,
# stdout to a file. CPU time, not wall time: the machine may be shared, and the question is
# the speed per core.
best_of() {
    local best=""
    for _ in 1 2 3 4 5; do
        /usr/bin/time -f "%U %S" -o "$tmp/time" "${pin[@]}" "$@" < "$tmp/texts.txt" > "$tmp/out.txt"
        local dt
        dt=$(awk '{ printf "%d", ($1 + $2) * 1e9 }' "$tmp/time")
        if [ -z "$best" ] || [ "$dt" -lt "$best" ]; then best=$dt; fi
    done
    echo "$best"
}

t_gtr=$(best_of bin/gtr tokenize --spm "$MODEL" --max-len 0 --format plain)
gtr_words=$(wc -w < "$tmp/out.txt")
t_spm=$(best_of spm_encode --model "$MODEL" --output_format=id)
tokens=$(wc -w < "$tmp/out.txt")
lines=$(wc -l < "$tmp/texts.txt")
# the same ids: gtr adds one </s> per line
if [ "$gtr_words" -ne $(( tokens + lines )) ]; then
    echo "bench_tokenizer: gtr and spm_encode disagree on the token count ($gtr_words vs $tokens + $lines)"
    exit 1
fi

read -r _ tok_lib t_lib < <("${pin[@]}" build/bench/bench_tokenizer run "$MODEL" "$tmp/texts.txt" 2)
py_line=""
if $PY -c 'import sentencepiece' 2>/dev/null; then
    py_line=$("${pin[@]}" $PY - "$MODEL" "$tmp/texts.txt" <<'EOF'
import sys, time
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
data = open(sys.argv[2], "rb").read()
lines = data.decode("utf-8").split("\n")[:-1]
best, total, passes = 1e30, 0.0, 0
while total < 2.0 or passes < 3:
    t0 = time.process_time()
    r = sp.encode(lines, num_threads=1)
    dt = time.process_time() - t0
    best, total, passes = min(best, dt), total + dt, passes + 1
print(len(data), sum(len(x) for x in r), "%.6f" % best)
EOF
)
fi

awk_fmt() { awk -v b="$bytes" -v tk="$1" -v s="$2" 'BEGIN { printf "%.1f | %.2f", b / s / 1e6, tk / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", b / a }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
s_gtr=$(awk -v n="$t_gtr" 'BEGIN { print n / 1e9 }')
s_spm=$(awk -v n="$t_spm" 'BEGIN { print n / 1e9 }')

report=$(
    echo "Tokenizer throughput, 1 thread ($cpu), $lines lines = texts.jsonl x $REPS, $bytes bytes, $tokens SentencePiece tokens"
    echo
    echo "| what | tool | MB/s | M tokens/s | gtr speed-up |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| command line | gtr tokenize | $(awk_fmt "$tokens" "$s_gtr") | |"
    echo "| command line | spm_encode (Debian sentencepiece $(dpkg-query -W -f '${Version}' sentencepiece 2>/dev/null || echo '?')) | $(awk_fmt "$tokens" "$s_spm") | $(ratio "$s_gtr" "$s_spm") |"
    echo "| in process | gtr_tokenizer_encode | $(awk_fmt "$tok_lib" "$t_lib") | |"
    if [ -n "$py_line" ]; then
        read -r _ tok_py t_py <<<"$py_line"
        echo "| in process | Python sentencepiece encode(num_threads=1) | $(awk_fmt "$tok_py" "$t_py") | $(ratio "$t_lib" "$t_py") |"
    fi
    echo
    echo "Same ids from both (checked: the token counts agree). Command-line rows include loading the"
    echo "model and printing; in-process rows time encoding only. All times are CPU time (user +"
    echo "system) of one thread, best of several runs, so a busy machine disturbs them little."
)
echo "$report"

# Replace (or append) the "## Tokenizer" section of bench/RESULTS.md; other sections stay.
. bench/results_section.sh
results_section Tokenizer "$(printf '## Tokenizer\n\n`bench/bench_tokenizer.sh`, %s.\n\n%s\n' "$(date -u +%Y-%m-%d)" "$report")"
