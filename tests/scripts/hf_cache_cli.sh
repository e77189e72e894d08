#!/usr/bin/env bash
# hf_cache_cli.sh — `-m org/name[@revision]` finds a model in the Hugging Face cache layout
# transformers writes (models--org--name/{blobs,refs,snapshots}, files as symlinks into
# blobs/), under HF_HUB_CACHE, HF_HOME/hub and ~/.cache/huggingface/hub, and gives the same
# vectors as the directory itself. The cache tree is built here from gtr-tiny.
cd "$(dirname "$0")/../.." || exit 1
unset HF_HUB_OFFLINE
. tests/scripts/tap.sh
M=$SHARED/models/gtr-tiny
plan 14

C1=1111111111111111111111111111111111111111
C2=2222222222222222222222222222222222222222
# snapshot REPO_DIR COMMIT: copy the model's files as blobs (named by content hash) + symlinks
snapshot() {
    local repo=$1 commit=$2 f rel h
    mkdir -p "$repo/blobs" "$repo/snapshots/$commit" "$repo/refs"
    (cd "$M" && find . -type f ! -path './reference/*' ! -name pytorch_model.bin) | while read -r f; do
        rel=${f#./}; h=$(sha256sum "$M/$rel" | cut -d' ' -f1)
        cp "$M/$rel" "$repo/blobs/$h"
        mkdir -p "$(dirname "$repo/snapshots/$commit/$rel")"
        local up; up=$(echo "$rel" | sed 's|[^/]*/|../|g; s|[^/]*$||')
        ln -s "../../${up}blobs/$h" "$repo/snapshots/$commit/$rel"
    done
}
HUB=$TMP/hub
R=$HUB/models--sentence-transformers--gtr-t5-tiny
snapshot "$R" $C1
echo $C1 > "$R/refs/main"
echo "hello dense retrieval" > "$TMP/t.txt"
ok "embed from the directory" $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/dir.f32" -q
ok "embed by repo id (HF_HUB_CACHE)" env HF_HUB_CACHE="$HUB" $GTR embed -m sentence-transformers/gtr-t5-tiny -i "$TMP/t.txt" -o "$TMP/c.f32" -q
is "$(cmp "$TMP/dir.f32" "$TMP/c.f32" && echo same)" "same" "same vectors as the directory"
ok "HF_HOME/hub" env -u HF_HUB_CACHE HF_HOME="$TMP" HOME=/nonexistent $GTR info -m sentence-transformers/gtr-t5-tiny
mkdir -p "$TMP/home/.cache/huggingface" && ln -s "$HUB" "$TMP/home/.cache/huggingface/hub"
ok "~/.cache/huggingface/hub" env -u HF_HUB_CACHE -u HF_HOME -u XDG_CACHE_HOME HOME="$TMP/home" $GTR info -m sentence-transformers/gtr-t5-tiny
like "$(cat "$TMP/out")" "snapshots/$C1" "info names the snapshot refs/main points to"
ok "@commit" env HF_HUB_CACHE="$HUB" $GTR info -m sentence-transformers/gtr-t5-tiny@$C1
# a second revision behind a tag: refs/v2 -> C2
snapshot "$R" $C2
echo $C2 > "$R/refs/v2"
ok "@tag through refs/" env HF_HUB_CACHE="$HUB" $GTR info -m sentence-transformers/gtr-t5-tiny@v2
like "$(cat "$TMP/out")" "snapshots/$C2" "the tag's snapshot"
fails "missing revision" env HF_HUB_CACHE="$HUB" $GTR info -m sentence-transformers/gtr-t5-tiny@nope
like "$(cat "$TMP/err")" "revision 'nope' is not in the Hugging Face cache" "names the revision"
fails "missing repository" env HF_HUB_CACHE="$HUB" $GTR info -m sentence-transformers/gtr-t5-xxl
like "$(cat "$TMP/err")" "not in the Hugging Face cache .*models--sentence-transformers--gtr-t5-xxl.*gtr pull" "names where it looked and how to get it"
# a local directory with the same name wins over the cache
mkdir -p "$TMP/w/sentence-transformers" && cp -r "$M" "$TMP/w/sentence-transformers/gtr-t5-tiny"
(cd "$TMP/w" && HF_HUB_CACHE=/nonexistent "$OLDPWD/$GTR" info -m sentence-transformers/gtr-t5-tiny > "$TMP/out" 2>&1)
is "$?" "0" "a local path is used before the cache"
done_testing
