#!/usr/bin/env bash
# pull_cli.sh — `gtr pull` and `gtr pull-dataset` against a local stand-in for the Hugging Face
# hub and the BEIR server (tests/scripts/hub_server.py on 127.0.0.1, a free port), serving
# ../shared/models/* in the hub's URL layout and a zip built from ../shared/beir/scifact:
# byte-identical results, redirects, safetensors -> pytorch_model.bin fallback, resume after a
# dropped connection (within a run and by running again), stale partial files, size and
# checksum mismatches, 404s with no half-written directory, tokens, network failure, zip slip.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

if ! command -v python3 >/dev/null; then
    echo "1..0 # SKIP python3 not found"
    exit 0
fi
# Nothing from the user's environment may leak into the tests (tokens, mirrors, homes).
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_TOKEN_PATH GTR_HOME GTR_BEIR_URL HF_ENDPOINT HF_HUB_OFFLINE HF_HUB_CACHE
export HF_HOME="$TMP/hf-home"
export no_proxy="*" NO_PROXY="*"
MODELS=$SHARED/models
SERVERS=""
cleanup() {
    for p in $SERVERS; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# serve NAME ARGS...: start a server, set URL (and LOG to its request log).
serve() {
    local name=$1
    shift
    python3 tests/scripts/hub_server.py --port-file "$TMP/$name.port" --log "$TMP/$name.log" \
        --idle-timeout 120 "$@" 2>"$TMP/$name.stderr" &
    SERVERS="$SERVERS $!"
    for _ in $(seq 200); do
        [ -s "$TMP/$name.port" ] && break
        sleep 0.05
    done
    URL="http://127.0.0.1:$(cat "$TMP/$name.port" 2>/dev/null)"
    LOG="$TMP/$name.log"
    touch "$LOG"
}

# same_files DIR REF FILE...: every FILE identical in DIR and REF
same_files() {
    local d=$1 r=$2 f
    shift 2
    for f in "$@"; do cmp -s "$d/$f" "$r/$f" || { echo "# differs or missing: $f"; return 1; }; done
}
# file_list DIR: relative paths of every file, sorted, one line
file_list() { (cd "$1" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' '); }
absent() { [ ! -e "$1" ]; }
size_of() { stat -c %s "$1" 2>/dev/null || echo missing; }
log_has() { grep -qF -- "$1" "$LOG"; }

TINY_FILES="config.json config_sentence_transformers.json modules.json sentence_bert_config.json
 special_tokens_map.json spiece.model tokenizer_config.json model.safetensors
 1_Pooling/config.json 2_Dense/config.json 2_Dense/model.safetensors"
# shellcheck disable=SC2086
TINY_LIST=$(echo $TINY_FILES | tr ' ' '\n' | sort | tr '\n' ' ')

# ---- usage ---------------------------------------------------------------------------
ok "pull --help" "$GTR" pull --help
like "$(cat "$TMP/out")" "HF_ENDPOINT" "pull --help documents HF_ENDPOINT"
ok "pull-dataset --help" "$GTR" pull-dataset --help
like "$(cat "$TMP/out")" "GTR_BEIR_URL" "pull-dataset --help documents GTR_BEIR_URL"
"$GTR" pull >/dev/null 2>&1
is "$?" 2 "pull without REPO_ID is a usage error"
fails "invalid repository id refused" "$GTR" pull "../etc" --dir "$TMP/x"
like "$(cat "$TMP/err")" "invalid repository id" "invalid repository id: message"

# ---- a plain pull ------------------------------------------------------------------------
serve hub --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --repo test-org/v11="$MODELS/gtr-tiny-v11" \
    --repo test-org/nospm="$MODELS/gtr-tiny" --hide test-org/nospm:spiece.model
export HF_ENDPOINT=$URL
ok "pull test-org/gtr-tiny" "$GTR" pull test-org/gtr-tiny --dir "$TMP/m"
is "$(cat "$TMP/out")" "$TMP/m" "pull prints the model directory"
# shellcheck disable=SC2086
ok "pulled files are byte-identical" same_files "$TMP/m" "$MODELS/gtr-tiny" $TINY_FILES
is "$(file_list "$TMP/m")" "$TINY_LIST" "exactly the files the layout needs (safetensors, no .bin)"
ok "no staging directory left" absent "$TMP/m.partial"
ok "large files came through the redirect" log_has "/cdn/test-org/gtr-tiny/resolve/model.safetensors"
ok "files after modules.json come from the resolved commit" \
    log_has "/resolve/0123456789abcdef0123456789abcdef01234567/spiece.model"
n_before=$(wc -l <"$LOG")
ok "pull into an existing directory succeeds" "$GTR" pull test-org/gtr-tiny --dir "$TMP/m"
like "$(cat "$TMP/err")" "already exists" "... and says it already exists"
is "$(wc -l <"$LOG")" "$n_before" "... without a request"
ok "pull --force downloads again" "$GTR" pull test-org/gtr-tiny --dir "$TMP/m" --force -q
# shellcheck disable=SC2086
ok "... into identical files" same_files "$TMP/m" "$MODELS/gtr-tiny" $TINY_FILES
ok "... with no leftover" absent "$TMP/m.partial"

ok "pull a repository without safetensors" "$GTR" pull test-org/v11 --dir "$TMP/v11"
ok "falls back to pytorch_model.bin (root and 2_Dense), byte-identical" same_files "$TMP/v11" \
    "$MODELS/gtr-tiny-v11" pytorch_model.bin 2_Dense/pytorch_model.bin config.json spiece.model
ok "no safetensors in the bin-only pull" absent "$TMP/v11/model.safetensors"

fails "a repository lacking spiece.model fails" "$GTR" pull test-org/nospm --dir "$TMP/nospm"
like "$(cat "$TMP/err")" "spiece.model.*HTTP 404.*$URL/test-org/nospm/resolve/[0-9a-f]+/spiece.model" \
    "... naming the file and its URL"
ok "... leaving no directory" absent "$TMP/nospm"
ok "... and no staging directory" absent "$TMP/nospm.partial"

fails "an unknown repository fails" "$GTR" pull test-org/missing --dir "$TMP/missing"
like "$(cat "$TMP/err")" "repository 'test-org/missing' not found.*$URL/test-org/missing/resolve/main/modules.json" \
    "... with a clear message and the URL"
ok "... leaving nothing behind" absent "$TMP/missing"
ok "... not even a staging directory" absent "$TMP/missing.partial"
fails "an unknown revision fails" "$GTR" pull test-org/gtr-tiny --revision v9 --dir "$TMP/v9"
like "$(cat "$TMP/err")" "revision 'v9' not found" "... saying so"

# ---- resume ---------------------------------------------------------------------------------
# ---- sharded checkpoints (as transformers saves big models) -------------------------------
python3 tests/scripts/shard_model.py "$MODELS/gtr-tiny" "$TMP/sharded-src" 3
SHARDS="model.safetensors.index.json model-00001-of-00003.safetensors model-00002-of-00003.safetensors model-00003-of-00003.safetensors"
serve shard --repo test-org/sharded="$TMP/sharded-src" --repo test-org/lostshard="$TMP/sharded-src" \
    --hide test-org/lostshard:model-00002-of-00003.safetensors
HUB_URL=$HF_ENDPOINT
export HF_ENDPOINT=$URL
# shellcheck disable=SC2086
ok "pull a sharded checkpoint" "$GTR" pull test-org/sharded --dir "$TMP/sh" -q
# shellcheck disable=SC2086
ok "... every shard the index names, byte-identical" same_files "$TMP/sh" "$TMP/sharded-src" $SHARDS config.json spiece.model
ok "... and no single-file checkpoint" absent "$TMP/sh/model.safetensors"
ok "the pulled shards load" "$GTR" info -m "$TMP/sh"
"$GTR" info -m "$MODELS/gtr-tiny" | grep fingerprint > "$TMP/fp1"
"$GTR" info -m "$TMP/sh" | grep fingerprint > "$TMP/fp2"
is "$(cat "$TMP/fp2")" "$(cat "$TMP/fp1")" "... as the same model (fingerprint)"
fails "a shard missing from the repository fails" "$GTR" pull test-org/lostshard --dir "$TMP/lost"
like "$(cat "$TMP/err")" "shard model-00002-of-00003.safetensors \(listed in model.safetensors.index.json\)" "... naming the shard and the index"
ok "... leaving no directory" absent "$TMP/lost"
# the pytorch_model-0000N-of-0000M.bin variant (transformers without safetensors)
python3 tests/scripts/shard_model.py --bin "$MODELS/gtr-tiny" "$TMP/binshard-src" 3
BSHARDS="pytorch_model.bin.index.json pytorch_model-00001-of-00003.bin pytorch_model-00002-of-00003.bin pytorch_model-00003-of-00003.bin"
# an index naming a shard outside the model directory
cp -r "$TMP/sharded-src" "$TMP/evil-src"
sed -i 's|"model-00002-of-00003.safetensors"|"../escape.safetensors"|' "$TMP/evil-src/model.safetensors.index.json"
serve shard2 --repo test-org/binshard="$TMP/binshard-src" --repo test-org/evil="$TMP/evil-src"
export HF_ENDPOINT=$URL
ok "pull sharded pytorch_model.bin" "$GTR" pull test-org/binshard --dir "$TMP/bsh" -q
# shellcheck disable=SC2086
ok "... every .bin shard the index names, byte-identical" same_files "$TMP/bsh" "$TMP/binshard-src" $BSHARDS
ok "... and no pytorch_model.bin" absent "$TMP/bsh/pytorch_model.bin"
"$GTR" info -m "$TMP/bsh" | grep fingerprint > "$TMP/fp3"
is "$(cat "$TMP/fp3")" "$(cat "$TMP/fp1")" "... loads as the same model (fingerprint)"
fails "an index naming ../escape.safetensors" "$GTR" pull test-org/evil --dir "$TMP/evil"
like "$(cat "$TMP/err")" "model.safetensors.index.json: tensor '.*': bad shard file name" "... is refused naming the index"
ok "... leaving no directory" absent "$TMP/evil"
ok "... and nothing outside it" absent "$TMP/escape.safetensors"
# a shard dropped mid-transfer is resumed; a corrupted shard fails its SHA-256
serve shard3 --repo test-org/sharded="$TMP/sharded-src" --drop-once model-00002-of-00003.safetensors:1000000
export HF_ENDPOINT=$URL
ok "a shard's dropped connection is resumed" "$GTR" pull test-org/sharded --dir "$TMP/shr" -q
ok "... with a Range request from the byte it stopped at" log_has '"range": "bytes=1000000-"'
# shellcheck disable=SC2086
ok "... into identical shards" same_files "$TMP/shr" "$TMP/sharded-src" $SHARDS
serve shard4 --repo test-org/sharded="$TMP/sharded-src" --corrupt model-00003-of-00003.safetensors
export HF_ENDPOINT=$URL
fails "a corrupted shard fails" "$GTR" pull test-org/sharded --dir "$TMP/shc"
like "$(cat "$TMP/err")" "model-00003-of-00003.safetensors: checksum mismatch: SHA-256" "... with a checksum mismatch naming the shard"
ok "... and no model directory" absent "$TMP/shc"
# into the Hugging Face cache: the shards as blobs + snapshot links, found by -m REPO_ID
serve shard5 --repo test-org/sharded="$TMP/sharded-src"
export HF_ENDPOINT=$URL
ok "pull --hf-cache a sharded checkpoint" env HF_HUB_CACHE="$TMP/hfcs" "$GTR" pull test-org/sharded --hf-cache -q
# shellcheck disable=SC2086
ok "... every shard in the snapshot" same_files "$(cat "$TMP/out")" "$TMP/sharded-src" $SHARDS
env HF_HUB_CACHE="$TMP/hfcs" HF_HUB_OFFLINE=1 "$GTR" info -m test-org/sharded | grep fingerprint > "$TMP/fp4"
is "$(cat "$TMP/fp4")" "$(cat "$TMP/fp1")" "... -m test-org/sharded (HF_HUB_OFFLINE=1) loads it"
export HF_ENDPOINT=$HUB_URL

# ---- the Hugging Face cache (shared with transformers) and HF_HUB_OFFLINE ------------------
HC=$TMP/hfc
ok "pull --hf-cache" env HF_HUB_CACHE="$HC" "$GTR" pull test-org/gtr-tiny --hf-cache -q
SNAP=$HC/models--test-org--gtr-tiny/snapshots/0123456789abcdef0123456789abcdef01234567
is "$(cat "$TMP/out")" "$SNAP" "prints the snapshot of the commit main resolved to"
is "$(cat "$HC/models--test-org--gtr-tiny/refs/main" 2>/dev/null)" "0123456789abcdef0123456789abcdef01234567" "refs/main names it"
# shellcheck disable=SC2086
ok "... byte-identical files" same_files "$SNAP" "$MODELS/gtr-tiny" $TINY_FILES
ok "... nothing staged left" absent "$HC/models--test-org--gtr-tiny/snapshots/.gtr-pull-main"
ok "-m REPO_ID loads it" env HF_HUB_CACHE="$HC" "$GTR" info -m test-org/gtr-tiny
# Python finds the copy gtr pulled (one copy for both): huggingface_hub resolves it offline and
# sees a sound cache, sentence-transformers loads it by repo id and gives gtr's vectors
PYV=.venv-bench/bin/python
if [ -x "$PYV" ] && "$PYV" -c "import sentence_transformers, huggingface_hub" >/dev/null 2>&1; then
    printf '%s\n' "one copy of the model" "shared by Python and gtr" > "$TMP/hc.txt"
    env HF_HUB_CACHE="$HC" "$GTR" embed -m test-org/gtr-tiny -i "$TMP/hc.txt" -o "$TMP/hc.npy" -q
    cat > "$TMP/hc.py" <<'PY'
import os, sys
import numpy as np
from huggingface_hub import scan_cache_dir, snapshot_download
from sentence_transformers import SentenceTransformer
hc, repo, snap, texts, emb = sys.argv[1:6]
p = snapshot_download(repo, cache_dir=hc, local_files_only=True)
assert os.path.realpath(p) == os.path.realpath(snap), (p, snap)
info = scan_cache_dir(hc)
assert not info.warnings, info.warnings
m = SentenceTransformer(repo, cache_folder=hc, device="cpu", local_files_only=True)
e = m.encode([l.rstrip("\n") for l in open(texts)], convert_to_numpy=True)
g = np.load(emb)
cos = (e * g).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(g, axis=1)
print("min cosine %.6f" % cos.min())
sys.exit(0 if cos.min() > 0.9999 else 1)
PY
    ok "huggingface_hub and sentence-transformers load gtr's --hf-cache copy offline (cosine > 0.9999)" \
       env HF_HUB_OFFLINE=1 HF_HUB_CACHE="$HC" "$PYV" "$TMP/hc.py" "$HC" test-org/gtr-tiny "$SNAP" "$TMP/hc.txt" "$TMP/hc.npy"
else
    _tap_n=$((_tap_n+1)); echo "ok $_tap_n # skip no .venv-bench with sentence-transformers (make venv-bench)"
fi
n_before=$(wc -l <"$LOG")
ok "a second pull --hf-cache finds it" env HF_HUB_CACHE="$HC" "$GTR" pull test-org/gtr-tiny --hf-cache
is "$(wc -l <"$LOG")" "$n_before" "... without a request"
fails "HF_HUB_OFFLINE=1 downloads nothing" env HF_HUB_OFFLINE=1 "$GTR" pull test-org/gtr-tiny --dir "$TMP/off"
like "$(cat "$TMP/err")" "HF_HUB_OFFLINE=1: not downloading 'test-org/gtr-tiny'" "... and says why"
is "$(wc -l <"$LOG")" "$n_before" "... without a request"
ok "HF_HUB_OFFLINE=1 with the model in the cache" env HF_HUB_OFFLINE=1 HF_HUB_CACHE="$HC" "$GTR" pull test-org/gtr-tiny --hf-cache -q

serve drop1 --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --drop-once model.safetensors:5000000
ok "a dropped connection is resumed within the run" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/r1"
ok "... with a Range request from the byte it stopped at" log_has '"range": "bytes=5000000-"'
# shellcheck disable=SC2086
ok "... into identical files" same_files "$TMP/r1" "$MODELS/gtr-tiny" $TINY_FILES

serve drop2 --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --drop-once model.safetensors:5000000
fails "with --retries 0 a dropped connection fails" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/r2" --retries 0
like "$(cat "$TMP/err")" "5000000 of 16715680 bytes.*run the same command again to resume" "... saying how to resume"
ok "... with no model directory" absent "$TMP/r2"
is "$(size_of "$TMP/r2.partial/model/model.safetensors.part")" 5000000 "... and the partial file kept"
ok "running again resumes" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/r2"
ok "... from the partial file" log_has '"range": "bytes=5000000-"'
# shellcheck disable=SC2086
ok "... into identical files" same_files "$TMP/r2" "$MODELS/gtr-tiny" $TINY_FILES
ok "... and removes the staging directory" absent "$TMP/r2.partial"

# A server that ignores Range answers 200 with the whole file: the partial data is replaced.
serve norange --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --drop-once model.safetensors:5000000 \
    --ignore-range model.safetensors
ok "a server ignoring Range after a drop still gives the right file" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/r0"
ok "... (it was asked for a range)" log_has '"range": "bytes=5000000-"'
# shellcheck disable=SC2086
ok "... identical files" same_files "$TMP/r0" "$MODELS/gtr-tiny" $TINY_FILES

# A partial file that no longer matches what the server has (the file changed between runs):
# the SHA-256 check after resuming catches it and the file is downloaded afresh.
mkdir -p "$TMP/chg" && cp -r "$MODELS/gtr-tiny/." "$TMP/chg/" && chmod -R u+w "$TMP/chg"
serve drop3 --repo test-org/chg="$TMP/chg" --drop-once model.safetensors:5000000
fails "interrupted pull of a file that then changes" env HF_ENDPOINT="$URL" "$GTR" pull test-org/chg --dir "$TMP/r3" --retries 0
printf 'XXXX' | dd of="$TMP/chg/model.safetensors" bs=1 seek=100 conv=notrunc 2>/dev/null
ok "resuming a stale partial file recovers" env HF_ENDPOINT="$URL" "$GTR" pull test-org/chg --dir "$TMP/r3"
like "$(cat "$TMP/err")" "checksum mismatch after resuming" "... by noticing the checksum mismatch"
ok "... and ends with the server's current file" same_files "$TMP/r3" "$TMP/chg" model.safetensors config.json

# ---- integrity -------------------------------------------------------------------------------
serve corrupt --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --corrupt model.safetensors
fails "a corrupted large file fails" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/c1"
like "$(cat "$TMP/err")" "model.safetensors: checksum mismatch: SHA-256" "... with a checksum mismatch"
ok "... and no model directory" absent "$TMP/c1"
serve lie --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --lie-size 2_Dense/model.safetensors
fails "a size that disagrees with the hub fails" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/c2"
like "$(cat "$TMP/err")" "2_Dense/model.safetensors: size mismatch: the hub says 16505 bytes, the server sends 16504" \
    "... with a size mismatch"
ok "... and no model directory" absent "$TMP/c2"

# ---- tokens ---------------------------------------------------------------------------------
# The CDN is named "localhost" while the hub is 127.0.0.1: another host, which must not get the token.
serve auth --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --require-token s3cret --cdn-host localhost
fails "a gated repository without a token fails" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/a1"
like "$(cat "$TMP/err")" "HTTP 401.*HF_TOKEN" "... and mentions HF_TOKEN"
ok "HF_TOKEN is sent as a bearer token" env HF_ENDPOINT="$URL" HF_TOKEN=s3cret "$GTR" pull test-org/gtr-tiny --dir "$TMP/a1"
# shellcheck disable=SC2086
ok "... and the files are identical" same_files "$TMP/a1" "$MODELS/gtr-tiny" $TINY_FILES
is "$(grep -c '"/cdn/.*"auth": "Bearer' "$LOG")" 0 "... never to the redirect's other host"
mkdir -p "$HF_HOME" && echo s3cret >"$HF_HOME/token"
ok "the token file of huggingface-cli login is used" env HF_ENDPOINT="$URL" "$GTR" pull test-org/gtr-tiny --dir "$TMP/a2" -q
rm -f "$HF_HOME/token"

# ---- network failure ----------------------------------------------------------------------
fails "an unreachable hub fails" env HF_ENDPOINT=http://127.0.0.1:1 "$GTR" pull test-org/gtr-tiny --dir "$TMP/n1"
like "$(cat "$TMP/err")" "network failure.*HF_ENDPOINT.*local copy" "... saying so and what to do"
ok "... leaving nothing" absent "$TMP/n1"

# ---- datasets ---------------------------------------------------------------------------------
# The zip (deflated, "scifact/..." entries as BEIR's) is built once and served by every server.
SCIFACT_ZIP=$TMP/scifact.zip
python3 tests/scripts/hub_server.py --build-zip scifact="$SHARED/beir/scifact":"$SCIFACT_ZIP"
serve data --dataset scifact="$SCIFACT_ZIP" --evil-dataset evil --drop-once scifact.zip:1000000
export GTR_BEIR_URL=$URL/datasets
ok "pull-dataset scifact (resuming a dropped connection)" "$GTR" pull-dataset scifact --dir "$TMP/d"
is "$(cat "$TMP/out")" "$TMP/d/scifact" "pull-dataset prints the dataset directory"
ok "... resumed with a Range request" log_has '"range": "bytes=1000000-"'
ok "unpacked files are identical to ../shared/beir/scifact" diff -r "$TMP/d/scifact" "$SHARED/beir/scifact"
ok "... with no staging directory left" absent "$TMP/d/scifact.partial"
ok "pull-dataset into an existing directory succeeds" "$GTR" pull-dataset scifact --dir "$TMP/d"
like "$(cat "$TMP/err")" "already exists" "... and says so"
fails "a zip with '../' entries is refused" "$GTR" pull-dataset evil --dir "$TMP/d"
like "$(cat "$TMP/err")" "unsafe entry name '../escape.txt'" "... naming the entry"
ok "... nothing escaped" absent "$TMP/d/escape.txt"
ok "... nothing escaped (2)" absent "$TMP/escape.txt"
ok "... no dataset directory" absent "$TMP/d/evil"
ok "... no staging directory" absent "$TMP/d/evil.partial"
fails "an unknown dataset fails" "$GTR" pull-dataset nope --dir "$TMP/d"
like "$(cat "$TMP/err")" "dataset 'nope' not found: HTTP 404 from $URL/datasets/nope.zip" "... naming the URL"
ok "... leaving nothing" absent "$TMP/d/nope.partial"
fails "an unreachable dataset server fails" env GTR_BEIR_URL=http://127.0.0.1:1 "$GTR" pull-dataset scifact --dir "$TMP/d2"
like "$(cat "$TMP/err")" "network failure.*GTR_BEIR_URL" "... saying so and what to do"

serve data2 --dataset scifact="$SCIFACT_ZIP" --drop-once scifact.zip:1000000
fails "pull-dataset --retries 0 fails on a dropped connection" env GTR_BEIR_URL="$URL/datasets" "$GTR" pull-dataset scifact --dir "$TMP/d3" --retries 0
is "$(size_of "$TMP/d3/scifact.partial/scifact.zip.part")" 1000000 "... keeping the partial zip"
ok "running again resumes and unpacks" env GTR_BEIR_URL="$URL/datasets" "$GTR" pull-dataset scifact --dir "$TMP/d3"
ok "... from the partial file" log_has '"range": "bytes=1000000-"'
ok "... identical to ../shared/beir/scifact" diff -r "$TMP/d3/scifact" "$SHARED/beir/scifact"

# ---- the same paths under AddressSanitizer (built by `make test`) -----------------------------
ASAN_GTR=build/asan/bin/gtr
# A sanitizer report also exits non-zero: a failure must be the intended one.
asan_fails() {
    local name=$1 s
    shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    s=$?
    if [ $s -ne 0 ] && [ $s -lt 128 ] && ! grep -q Sanitizer "$TMP/err"; then
        _tap_result 0 "$name"
    else
        _tap_result 1 "$name (exit $s)"
        sed 's/^/# /' "$TMP/err" | head -20
    fi
}
if [ -x "$ASAN_GTR" ]; then
    serve asan --repo test-org/gtr-tiny="$MODELS/gtr-tiny" --repo test-org/v11="$MODELS/gtr-tiny-v11" \
        --drop-once model.safetensors:5000000 --dataset scifact="$SCIFACT_ZIP" \
        --evil-dataset evil
    export HF_ENDPOINT=$URL GTR_BEIR_URL=$URL/datasets
    asan_fails "asan: interrupted pull" "$ASAN_GTR" pull test-org/gtr-tiny --dir "$TMP/s1" --retries 0
    ok "asan: resumed pull" "$ASAN_GTR" pull test-org/gtr-tiny --dir "$TMP/s1"
    # shellcheck disable=SC2086
    ok "asan: identical files" same_files "$TMP/s1" "$MODELS/gtr-tiny" $TINY_FILES
    ok "asan: bin fallback" "$ASAN_GTR" pull test-org/v11 --dir "$TMP/s2"
    asan_fails "asan: unknown repository" "$ASAN_GTR" pull test-org/missing --dir "$TMP/s3"
    ok "asan: pull-dataset" "$ASAN_GTR" pull-dataset scifact --dir "$TMP/s4"
    ok "asan: dataset identical" diff -r "$TMP/s4/scifact" "$SHARED/beir/scifact"
    asan_fails "asan: zip slip refused" "$ASAN_GTR" pull-dataset evil --dir "$TMP/s4"
    like "$(cat "$TMP/err")" "unsafe entry" "asan: zip slip message (no sanitizer report)"
fi

plan "$_tap_n"
done_testing
