#!/usr/bin/env bash
# serve_cli.sh — `gtr serve` as a process: the README's curl examples against it (vectors equal
# to `gtr embed`'s JSON lines, text for text), usage errors, a busy port, and graceful shutdown:
# SIGTERM while a request waits in the batcher still answers it, then the process exits 0 and
# the port is closed; SIGINT likewise. --workers 3: concurrent requests encoded by three
# contexts over one model give gtr embed's vectors.
. "$(dirname "$0")/tap.sh"
plan 44
MODEL=$SHARED/models/gtr-tiny
command -v curl >/dev/null || { echo "1..0 # SKIP curl is not installed"; exit 0; }

PIDS=()
# start NAME ARGS...: run gtr serve in the background on a free port; sets PORT and PID
start() {
    local name=$1; shift
    rm -f "$TMP/$name.port"
    $GTR serve -m "$MODEL" --port 0 --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 200); do
        [ -s "$TMP/$name.port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    PORT=$(cat "$TMP/$name.port" 2>/dev/null)
}
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT

start main
ok "gtr serve starts and writes --port-file" test -n "$PORT"
like "$(cat "$TMP/main.log")" "listening on http://127\.0\.0\.1:$PORT \(model gtr-tiny, dim 64" "it says where it listens"
URL=http://127.0.0.1:$PORT

# ---- the README examples ----------------------------------------------------------------------
ok "curl /health" curl -sf "$URL/health"
like "$(cat "$TMP/out")" '"status":"ok"' "... status ok"
printf '%s\n' "what is dense retrieval?" "GTR: generalizable T5 retrievers" > "$TMP/texts.txt"
$GTR embed -m "$MODEL" -i "$TMP/texts.txt" --format jsonl -q > "$TMP/embed.jsonl"
ok "curl /v1/embeddings (README example)" curl -sf "$URL/v1/embeddings" -H 'Content-Type: application/json' \
    -d '{"input": ["what is dense retrieval?", "GTR: generalizable T5 retrievers"], "model": "gtr-tiny"}'
# the server writes each number with %.9g like gtr embed: the arrays are the same text
got=$(sed 's/"embedding":\[\([^]]*\)\]/\n[\1]\n/g' "$TMP/out" | grep '^\[' | sed 's/,/, /g')
is "$got" "$(cat "$TMP/embed.jsonl")" "... the vectors are gtr embed's, number for number"
like "$(cat "$TMP/out")" '"usage":\{"prompt_tokens":[0-9]+,"total_tokens":[0-9]+\}' "... with usage"
ok "curl without a Content-Type header" curl -s -o "$TMP/body" -w '%{http_code}' "$URL/v1/embeddings" -X POST \
    --data-binary '{"input": "hello"}' -H 'Content-Type:'
is "$(cat "$TMP/out")" 200 "... is taken as JSON"
ok "curl -d without -H (form content type)" curl -s -o "$TMP/body" -w '%{http_code}' "$URL/v1/embeddings" -d '{"input": "hello"}'
is "$(cat "$TMP/out")" 415 "... is 415"
like "$(cat "$TMP/body")" '"code":"unsupported_media_type"' "... with OpenAI's error shape"
ok "curl /metrics" curl -sf "$URL/metrics"
like "$(cat "$TMP/out")" 'gtr_http_requests_total\{route="/v1/embeddings",status="200"\} 2' "... counts the two embeddings requests"

# ---- usage errors and a busy port -------------------------------------------------------------
fails "no model" $GTR serve --port 0
like "$(cat "$TMP/err")" "-m MODEL_DIR is required" "... says so"
fails "bad --method" $GTR serve -m "$MODEL" --method splade
fails "--method bm25 without --bm25-index" $GTR serve -m "$MODEL" --method bm25
fails "the port is taken" $GTR serve -m "$MODEL" --port "$PORT" -q
like "$(cat "$TMP/err")" "cannot listen on 127\.0\.0\.1:$PORT: Address already in use" "... names the address"

# ---- SIGTERM finishes the request in flight, then exits 0 --------------------------------------
kill -TERM "$PID"
wait "$PID"
is "$?" 0 "SIGTERM on an idle server: exit 0"
start slow --max-wait-ms 1500 --drain-timeout 20
URL=http://127.0.0.1:$PORT
# a request that stalls after its headers keeps the batcher waiting for company (1.5 s): the
# curl request below is queued when SIGTERM arrives
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{' >&3
sleep 0.3
curl -s -o "$TMP/inflight" -w '%{http_code} %{time_total}' "$URL/v1/embeddings" -H 'Content-Type: application/json' \
    -d '{"input": "still answered"}' > "$TMP/inflight.code" &
CURL=$!
sleep 0.5
kill -TERM "$PID"
wait "$CURL"
like "$(cat "$TMP/inflight.code")" '^200 [1-9][0-9]*\.' "SIGTERM while a request waits in the batcher (>= 1 s): it is still answered"
like "$(cat "$TMP/inflight")" '"object":"embedding"' "... with its embedding"
exec 3>&- # the stalled client gives up: nothing is left in flight
wait "$PID"
is "$?" 0 "... and the server exits 0"
like "$(cat "$TMP/slow.log")" "SIGTERM: finishing the requests in flight" "... after saying it drains"
curl -s "$URL/health" >/dev/null
is "$?" 7 "... and no longer listens (curl: couldn't connect)"

start int
kill -INT "$PID"
wait "$PID"
is "$?" 0 "SIGINT: exit 0"

# ---- --workers: several encoder contexts over one model, same vectors -------------------------
start workers --workers 3 -t 3 --max-wait-ms 0
URL=http://127.0.0.1:$PORT
head -n 24 "$SHARED/beir/scifact/queries.jsonl" |
    python3 -c 'import json, sys; [print(json.loads(l)["text"]) for l in sys.stdin]' > "$TMP/wq.txt"
$GTR embed -m "$MODEL" -i "$TMP/wq.txt" --format jsonl -q > "$TMP/wq.jsonl"
n=0
CURLS=()
while IFS= read -r q; do
    n=$((n + 1))
    python3 -c 'import json, sys; print(json.dumps({"input": sys.argv[1]}))' "$q" > "$TMP/wreq.$n"
    curl -s -o "$TMP/wout.$n" "$URL/v1/embeddings" -H 'Content-Type: application/json' \
        --data-binary @"$TMP/wreq.$n" &
    CURLS+=("$!")
done < "$TMP/wq.txt"
wait "${CURLS[@]}"
got=$(for i in $(seq 1 $n); do
    sed 's/"embedding":\[\([^]]*\)\]/\n[\1]\n/g' "$TMP/wout.$i" | grep '^\[' | sed 's/,/, /g'; done)
is "$got" "$(cat "$TMP/wq.jsonl")" "--workers 3: $n concurrent requests get gtr embed's vectors"
kill -TERM "$PID"
wait "$PID"
is "$?" 0 "... and the server exits 0"
fails "--workers 0 is refused" $GTR serve -m "$MODEL" --workers 0

# ---- /search answers what gtr search answers, for each method ------------------------------------
head -n 60 "$SHARED/beir/scifact/corpus.jsonl" > "$TMP/c.jsonl"
$GTR index -m "$MODEL" -c "$TMP/c.jsonl" -o "$TMP/c.gtri" --quiet
$GTR bm25-index -c "$TMP/c.jsonl" -o "$TMP/c.bm25" --quiet
start search --index "$TMP/c.gtri" --bm25-index "$TMP/c.bm25"
URL=http://127.0.0.1:$PORT
Q="cancer cells and DNA damage"
for method in dense bm25 hybrid; do
    want=$($GTR search --index "$TMP/c.gtri" --bm25-index "$TMP/c.bm25" --method $method --query "$Q" -k 5 |
        awk '{print $3, $2}')
    got=$(curl -s "$URL/search" -H 'Content-Type: application/json' \
        -d "{\"query\": \"$Q\", \"k\": 5, \"method\": \"$method\"}" |
        python3 -c 'import json, sys; [print(h["id"], "%.6f" % h["score"]) for h in json.load(sys.stdin)["hits"]]')
    is "$got" "$want" "/search method $method: the hits and scores of gtr search --query"
done
kill -TERM "$PID"
wait "$PID"

# ---- --ann: /search through an IVF index (every list probed = exact; deletions apply) ----------
$GTR ann-build --index "$TMP/c.gtri" -o "$TMP/c.ivf" --lists 4 || exit 1
search_hits() {
    curl -s "$URL/search" -H 'Content-Type: application/json' -d "{\"query\": \"$Q\", \"k\": 5}" |
        python3 -c 'import json, sys; [print(h["id"], "%.6f" % h["score"]) for h in json.load(sys.stdin)["hits"]]'
}
want=$($GTR search --index "$TMP/c.gtri" --query "$Q" -k 5 | awk '{print $3, $2}')
start ann --index "$TMP/c.gtri" --ann "$TMP/c.ivf" --nprobe 4
URL=http://127.0.0.1:$PORT
is "$(search_hits)" "$want" "--ann --nprobe 4 (every list): /search gives exact search's hits and scores"
kill -TERM "$PID"
wait "$PID"
# per request: "nprobe" (every list = exact), "filter_ids" (= gtr search --filter-ids), bad
# values a 400 naming the field
start annreq --index "$TMP/c.gtri" --ann "$TMP/c.ivf" --nprobe 1
URL=http://127.0.0.1:$PORT
post() { curl -s -o "$TMP/resp" -w '%{http_code}' "$URL/search" -H 'Content-Type: application/json' -d "$1"; }
hits_of() { python3 -c 'import json, sys; [print(h["id"], "%.6f" % h["score"]) for h in json.load(sys.stdin)["hits"]]' <"$TMP/resp"; }
post "{\"query\": \"$Q\", \"k\": 5, \"nprobe\": 4}" >/dev/null
is "$(hits_of)" "$want" "/search \"nprobe\": 4 (every list) on a --nprobe 1 server: exact search's hits"
awk 'NR % 2 == 0' "$TMP/c.jsonl" | sed 's/^{"_id": "\([^"]*\)".*/\1/' >"$TMP/even.ids"
fids=$(python3 -c 'import json, sys; print(json.dumps([l.strip() for l in open(sys.argv[1])]))' "$TMP/even.ids")
wantf=$($GTR search --index "$TMP/c.gtri" --filter-ids "$TMP/even.ids" --query "$Q" -k 5 | awk '{print $3, $2}')
post "{\"query\": \"$Q\", \"k\": 5, \"nprobe\": 4, \"filter_ids\": $fids}" >/dev/null
is "$(hits_of)" "$wantf" "/search \"filter_ids\": the hits of gtr search --filter-ids"
is "$(post "{\"query\": \"x\", \"nprobe\": 0}")" 400 "\"nprobe\": 0 is a 400"
like "$(cat "$TMP/resp")" "'nprobe' must be an integer from 1 to 4" "... saying the range"
is "$(post "{\"query\": \"x\", \"filter_ids\": [\"no-such-doc\"]}")" 400 "an unknown filter id is a 400"
like "$(cat "$TMP/resp")" 'filter_ids\[0\] \\"no-such-doc\\" is not in the index' "... naming it"
is "$(post "{\"query\": \"x\", \"filter_ids\": \"abc\"}")" 400 "\"filter_ids\" not an array is a 400"
kill -TERM "$PID"
wait "$PID"
echo "$want" | head -n 1 | cut -d' ' -f1 > "$TMP/del.ids"
$GTR ann-delete --index "$TMP/c.gtri" --ann "$TMP/c.ivf" "$TMP/del.ids" >/dev/null || exit 1
start ann2 --index "$TMP/c.gtri" --ann "$TMP/c.ivf" --nprobe 4
URL=http://127.0.0.1:$PORT
got=$(search_hits)
is "$(echo "$got" | grep -c "^$(cat "$TMP/del.ids") ")" 0 "... a document deleted with gtr ann-delete is never returned"
is "$(echo "$got" | head -n 4)" "$(echo "$want" | tail -n 4)" "... the others keep their order"
kill -TERM "$PID"
wait "$PID"
fails "--ann without --index is refused" $GTR serve -m "$MODEL" --ann "$TMP/c.ivf"
done_testing
