#!/usr/bin/env bash
# bench_serve.sh — load test of `gtr serve` on loopback: bench/serve_load.c (threads + libcurl,
# one keep-alive connection per client) sends a bounded number of POST /v1/embeddings requests
# from 1 to 64 concurrent clients; every answer is checked (status 200, one embedding per
# input). Reports throughput, p50/p99 latency, failures, the server's resident memory after
# warm-up, after the runs and after as many requests again (it must stay flat), the mean batch
# the dynamic batcher formed, and `gtr embed`'s throughput on the same texts in the same run
# (the better of one run before and one after the server's).
# Updates the "Server" section of bench/RESULTS.md.
#
#   bench/bench_serve.sh    BENCH_THREADS (encoder threads, default all cores),
#                           BENCH_SERVE_REQUESTS (per run, default 1000),
#                           BENCH_SERVE_CLIENTS (default "1 4 16 64"),
#                           BENCH_SERVE_MODELS (model directories; default ../shared/models/gtr-small
#                           and, when bench_encoder.sh has made it, build/bench/gtr-base)
# Texts: the 1109 BEIR SciFact queries (short texts, what a search service embeds), one per
# request; plus one run with 8 texts per request.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${BENCH_THREADS:-$(nproc)}
requests=${BENCH_SERVE_REQUESTS:-1000}
clients_list=${BENCH_SERVE_CLIENTS:-"1 4 16 64"}
out=build/bench
mkdir -p "$out"
models=${BENCH_SERVE_MODELS:-}
if [ -z "$models" ]; then
    models=../shared/models/gtr-small
    [ -f build/bench/gtr-base/config.json ] && models="$models build/bench/gtr-base"
fi

make -s all >&2
CC=${CC:-cc}
# shellcheck disable=SC2046
$CC -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE bench/serve_load.c -o "$out/serve_load" \
    $(pkg-config --cflags --libs jansson libcurl) -lpthread
texts=$out/serve_queries.jsonl
python3 -c '
import json, sys
with open(sys.argv[2], "w") as o:
    for line in open(sys.argv[1], encoding="utf-8"):
        o.write(json.dumps(json.loads(line)["text"]) + "\n")
' ../shared/beir/scifact/queries.jsonl "$texts"
n_texts=$(wc -l < "$texts")

results=$out/serve_results.jsonl
: > "$results"
load_start=$(cut -d' ' -f1 /proc/loadavg)
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
load() { "$out/serve_load" --url "http://127.0.0.1:$port/v1/embeddings" --texts "$texts" "$@"; }
# gtr embed's texts/s on the same texts (encoding only, model loading excluded)
embed_rate() {
    bin/gtr embed -m "$1" -i "$texts" -o "$out/serve_embed.npy" --threads "$threads" -q -v 2>&1 |
        sed -n 's/.*(\([0-9.]*\) texts\/s).*/\1/p' | tail -1
}
batch_counts() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^gtr_batch_inputs_(sum|count) / {printf "%s ", $2}'; }
# run: one load run, its JSON line tagged with the model, gtr embed's rate and the mean batch
run() {
    local before after line
    before=$(batch_counts)
    line=$(load "$@")
    after=$(batch_counts)
    mean=$(echo "$before $after" | awk '{d = $4 - $2; printf "%.1f", (d > 0 ? ($3 - $1) / d : 0)}')
    echo "$line" | sed "s/^{/{\"model\":\"$name\",\"mean_batch\":$mean,/" >> "$results"
}

for model in $models; do
    name=$(basename "$model")
    echo "bench_serve: $name: gtr embed on the same $n_texts texts" >&2
    embed_before=$(embed_rate "$model")
    rm -f "$out/serve.port"
    bin/gtr serve -m "$model" --threads "$threads" --port 0 --port-file "$out/serve.port" -q &
    pid=$!
    for _ in $(seq 1 600); do [ -s "$out/serve.port" ] && break; sleep 0.1; done
    port=$(cat "$out/serve.port")
    # warm-up at the highest concurrency: connection threads, malloc arenas, buffers, page cache
    max_c=$(printf '%s\n' $clients_list | sort -n | tail -1)
    load --clients "$max_c" --requests "$((4 * max_c))" > /dev/null
    rss0=$(rss_mib $pid)
    for c in $clients_list; do
        echo "bench_serve: $name: $c clients x $requests requests" >&2
        run --clients "$c" --requests "$requests"
    done
    run --clients 16 --requests "$((requests / 4))" --per-request 8
    rss1=$(rss_mib $pid)
    for c in $clients_list; do load --clients "$c" --requests "$requests" > /dev/null; done
    rss2=$(rss_mib $pid)
    metrics=$(curl -s "http://127.0.0.1:$port/metrics")
    kill -TERM $pid
    rc=0
    wait $pid || rc=$?
    embed_after=$(embed_rate "$model")
    python3 -c '
import json, sys
m = dict(l.split(" ", 1) for l in sys.argv[1].splitlines() if l and not l.startswith("#"))
batch = float(m["gtr_batch_inputs_sum"]) / max(1.0, float(m["gtr_batch_inputs_count"]))
print(json.dumps({"model": sys.argv[2], "rss_warm_mib": float(sys.argv[3]), "rss_after_mib": float(sys.argv[4]),
                  "rss_again_mib": float(sys.argv[5]), "mean_batch": round(batch, 2),
                  "rejected": int(m["gtr_rejected_total"]), "exit": int(sys.argv[6]),
                  "embed_tps": max(float(sys.argv[7]), float(sys.argv[8]))}))
' "$metrics" "$name" "$rss0" "$rss1" "$rss2" "$rc" "$embed_before" "$embed_after" >> "$results"
done

report=$(python3 - "$results" "$threads" "$requests" "$n_texts" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
threads, requests, n_texts = sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = [r for r in rows if "clients" in r]
mem = {r["model"]: r for r in rows if "rss_warm_mib" in r}
print("| model | clients | texts/request | requests | failed | requests/s | texts/s | vs gtr embed | p50 ms | p99 ms | texts per batch |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    e = mem[r["model"]]["embed_tps"]
    ratio = r["texts_per_s"] / e if e else 0
    print(f"| {r['model']} | {r['clients']} | {r['per_request']} | {r['requests']} | {r['failed']} | "
          f"{r['requests_per_s']:.1f} | {r['texts_per_s']:.1f} | {ratio:.2f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
          f"{r['mean_batch']} |")
print()
print("| model | gtr embed texts/s | 503s | server RSS after warm-up | after the runs | after as many again | exit on SIGTERM |")
print("|---|---|---|---|---|---|---|")
for name, m in mem.items():
    e = m["embed_tps"]
    print(f"| {name} | {e:.1f} | {m['rejected']} | {m['rss_warm_mib']} MiB | "
          f"{m['rss_after_mib']} MiB | {m['rss_again_mib']} MiB | {m['exit']} |")
EOF
)
echo "$report"

# Replace (or append) the "## Server" section of bench/RESULTS.md; other sections stay.
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
load_end=$(cut -d' ' -f1 /proc/loadavg)
section=$(printf '## Server\n\n`bench/bench_serve.sh`, %s, %s (%s cores; load average %s at the start, %s at the end:\nthe machine is shared, so ratios are indicative), encoder threads %s, loopback; the load generator\nruns on the same cores.\nTexts: the %s BEIR SciFact queries, sent round-robin, one per request (and one run with 8 per\nrequest); each run is %s requests (the 8-text run %s), every answer checked (status 200, one\nembedding per input); base64 encoding, as the openai client asks. "vs gtr embed": served texts/s\nover `gtr embed`'"'"'s texts/s on the same texts, same threads, same run (model loading excluded;\nthe better of a run before the server starts and one after it stops).\n"texts per batch": the mean encoder batch the dynamic batcher formed during the run (closed-loop\nclients: while one batch encodes, the clients it answered are sending their next requests).\nServer RSS must stay flat once every connection thread and the largest batch have been seen.\n\n%s\n' \
    "$(date -u +%Y-%m-%d)" "${cpu:-unknown CPU}" "$(nproc)" "$load_start" "$load_end" "$threads" "$n_texts" "$requests" "$((requests / 4))" "$report")
. bench/results_section.sh
results_section Server "$section"
