#!/usr/bin/env bash
# tokenize_cli.sh — `gtr tokenize` end to end (TAP): the reference ids through the CLI, the
# default max length from a model directory, --no-eos, --pieces, --decode, --normalize,
# -o files, 10 MB lines, and clean failures (exit status and message).
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
plan 46

SPM=$SHARED/spm/t5-spiece.model
TXT=$SHARED/tokenizer/texts.jsonl
# JSON arrays of ids -> space-separated lines
ids_lines() { sed -e 's/^\[//' -e 's/\]$//' -e 's/, */ /g' "$1"; }
# same NAME GOT_FILE WANT_FILE: byte-identical files (a short diff on failure)
same() {
    if cmp -s "$2" "$3"; then _tap_result 0 "$1"
    else _tap_result 1 "$1"; diff "$2" "$3" | head -6 | cut -c1-200 | sed 's/^/# /'; fi
}

ok "--help" $GTR tokenize --help
like "$(cat "$TMP/out")" "--max-len" "--help lists the options"

ids_lines "$SHARED/tokenizer/ids_full.jsonl" > "$TMP/full.txt"
ids_lines "$SHARED/tokenizer/ids_512.jsonl" > "$TMP/512.txt"
ids_lines "$SHARED/tokenizer/ids_32.jsonl" > "$TMP/32.txt"
sed -E 's/(^| )1$//' "$TMP/full.txt" > "$TMP/bare.txt"

ok "--spm on texts.jsonl" $GTR tokenize --spm "$SPM" -i "$TXT"
cp "$TMP/out" "$TMP/got"; same "--spm: no truncation by default = ids_full" "$TMP/got" "$TMP/full.txt"

ok "-m model dir" $GTR tokenize -m "$SHARED/models/gtr-tiny" -i "$TXT"
cp "$TMP/out" "$TMP/got"; same "-m: max_seq_length 512 = ids_512" "$TMP/got" "$TMP/512.txt"

ok "--max-len 32" $GTR tokenize --spm "$SPM" --max-len 32 -i "$TXT"
cp "$TMP/out" "$TMP/got"; same "--max-len 32 = ids_32" "$TMP/got" "$TMP/32.txt"

ok "--no-eos" $GTR tokenize --spm "$SPM" --no-eos -i "$TXT"
cp "$TMP/out" "$TMP/got"; same "--no-eos drops </s>" "$TMP/got" "$TMP/bare.txt"

# --pieces on the first texts (their JSON has no escapes, so sed can unwrap it)
head -2 "$TXT" > "$TMP/two.jsonl"
ok "--pieces" $GTR tokenize --spm "$SPM" --pieces -i "$TMP/two.jsonl"
is "$(cat "$TMP/out")" "$(head -2 "$SHARED/tokenizer/pieces_full.jsonl" | sed -e 's/^\["//' -e 's/"\]$//' -e 's/", "/ /g')" "--pieces = pieces_full"

# plain text on stdin, decode back
ids=$(echo "Hello world" | $GTR tokenize --spm "$SPM")
is "$(echo "$ids" | $GTR tokenize --spm "$SPM" --decode)" "Hello world" "ids decode back to the text"
is "$(echo "[${ids// /, }]" | $GTR tokenize --spm "$SPM" --decode)" "Hello world" "--decode reads JSON arrays"
is "$(echo " 8774 ,296, 1 " | $GTR tokenize --spm "$SPM" --decode)" "Hello world" "--decode: commas with spaces"
for bad in "[8774, 296, 1" "8774,296,,1" ",8774" "8774," "8774 296]" "[8774 x]" "8774-296" "[]]"; do
    printf '%s\n' "$bad" > "$TMP/bad_ids.txt"
    fails "--decode refuses '$bad'" $GTR tokenize --spm "$SPM" --decode -i "$TMP/bad_ids.txt"
done
is "$(printf '  x \t y  \n' | $GTR tokenize --spm "$SPM" --normalize)" "▁x▁y" "--normalize: whitespace rules and ▁"

# a write error says where and why
echo "Hello world" | $GTR tokenize --spm "$SPM" > /dev/full 2> "$TMP/err"
is "$?" "1" "writing to a full device fails"
like "$(cat "$TMP/err")" "standard output: write failed: No space left on device" "the error says where and why"

# -o writes the same lines, atomically
ok "-o FILE" $GTR tokenize --spm "$SPM" -i "$TXT" -o "$TMP/ids.txt"
same "-o FILE content" "$TMP/ids.txt" "$TMP/full.txt"
printf '"fine"\n{"no_text": 1}\n' > "$TMP/bad.jsonl"
fails "an object without text fails" $GTR tokenize --spm "$SPM" -i "$TMP/bad.jsonl" -o "$TMP/never.txt"
like "$(cat "$TMP/err")" "bad.jsonl:2" "the error names the line"
is "$(ls "$TMP" | grep -c never)" "0" "a failed run leaves no output file"

# a 10 MB line (one text) finishes and gives one line
yes "Hello world, this is a long line." | head -c 10000000 | tr -d '\n' > "$TMP/long.txt"
echo >> "$TMP/long.txt"
ok "10 MB line" $GTR tokenize --spm "$SPM" --max-len 512 -i "$TMP/long.txt"
is "$(wc -l < "$TMP/out") $(wc -w < "$TMP/out")" "1 512" "10 MB line: one line of 512 ids"

# failures: exit status and a one-line message naming the problem
fails "missing model file" $GTR tokenize --spm "$TMP/nope.model" -i "$TXT"
like "$(cat "$TMP/err")" "nope.model" "missing model: the message names the file"
head -c 100000 "$SPM" > "$TMP/cut.model"
fails "truncated model" $GTR tokenize --spm "$TMP/cut.model" -i "$TXT"
like "$(cat "$TMP/err")" "cut.model.*(corrupt|truncated)" "truncated model: a clear message"
$GTR tokenize -m "$SHARED/models/gtr-tiny" --spm "$SPM" </dev/null >/dev/null 2>&1
is "$?" "2" "-m and --spm together: usage error"
$GTR tokenize --spm "$SPM" --max-len -3 </dev/null >/dev/null 2>&1
is "$?" "2" "negative --max-len: usage error"

# --spm-compat / GTR_SPM_COMPAT: which implementation's rounding decides ties
printf 'x ---- 3\n' > "$TMP/tie.txt"
pcs() { $GTR tokenize --spm "$SPM" --pieces -i "$TMP/tie.txt" "$@"; }
ok "a tie: the default and --spm-compat hf segment differently" test "$(pcs)" != "$(pcs --spm-compat hf)"
is "$(pcs | tr ' ' '\n' | sort)" "$(pcs --spm-compat hf | tr ' ' '\n' | sort)" "... into the same pieces, in another order"
is "$(pcs --spm-compat 0.1.97)" "$(pcs)" "--spm-compat 0.1.97 is the default"
is "$(GTR_SPM_COMPAT=hf pcs)" "$(pcs --spm-compat hf)" "GTR_SPM_COMPAT=hf is --spm-compat hf"
is "$(GTR_SPM_COMPAT=hf pcs --spm-compat 0.1)" "$(pcs)" "... and --spm-compat overrides it"
fails "--spm-compat 2: usage error" $GTR tokenize --spm "$SPM" --spm-compat 2 -i "$TMP/tie.txt"
GTR_SPM_COMPAT=bogus $GTR embed -m "$SHARED/models/gtr-tiny" -i "$TMP/tie.txt" -o "$TMP/tie.npy" 2>"$TMP/err"
is "$?:$(test -e "$TMP/tie.npy" && echo written):$(grep -c GTR_SPM_COMPAT "$TMP/err")" "2::1" "GTR_SPM_COMPAT=bogus: gtr embed exits 2 naming the variable, writes nothing"
done_testing
