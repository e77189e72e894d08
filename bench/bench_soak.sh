#!/usr/bin/env bash
# bench_soak.sh — soak of `gtr serve` under hostile clients, on loopback (bench/soak.py): legitimate
# keep-alive clients post /v1/embeddings (8 SciFact queries each) for BENCH_SOAK_SECONDS (default
# 90); in the middle third other loopback addresses attack (slow connections that trickle a byte a
# second, malformed requests, 4 MB bodies). Reports per phase: requests, failures, throughput,
# latency, /health probe latency, and the server's RSS over time; then SIGTERM and the exit time.
# Updates the "Soak" section of bench/RESULTS.md.
#
#   bench/bench_soak.sh    BENCH_SOAK_SECONDS (90), BENCH_SOAK_CLIENTS (8),
#                          BENCH_SOAK_MODEL (../shared/models/gtr-small), BENCH_THREADS (all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SOAK_SECONDS:-90}
clients=${BENCH_SOAK_CLIENTS:-8}
model=${BENCH_SOAK_MODEL:-../shared/models/gtr-small}
threads=${BENCH_THREADS:-$(nproc)}
out=build/bench
mkdir -p "$out"
make -s all >&2
texts=$out/soak_queries.jsonl
python3 -c '
import json, sys
with open(sys.argv[2], "w") as o:
    for line in open(sys.argv[1], encoding="utf-8"):
        o.write(json.dumps(json.loads(line)["text"]) + "\n")
' ../shared/beir/scifact/queries.jsonl "$texts"
load_start=$(cut -d' ' -f1 /proc/loadavg)
# limits small enough that the attack reaches them within the run
opts=(-t "$threads" --max-connections 128 --max-client-connections 32 --request-timeout 10 --max-body 8388608
      --max-pending-bytes 67108864)
python3 bench/soak.py bin/gtr "$model" "$texts" "$seconds" "$clients" "${opts[@]}" > "$out/soak.json"
load_end=$(cut -d' ' -f1 /proc/loadavg)

report=$(python3 - "$out/soak.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("| phase | requests | failed | requests/s | p50 ms | p99 ms | /health probes | failed | /health p50 ms | /health max ms | RSS min–max MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in ("calm", "attack", "recovery"):
    p = r["phases"][name]
    print(f"| {name} | {p['requests']} | {p['failed']} | {p['requests_per_s']} | {p['p50_ms']} | {p['p99_ms']} | "
          f"{p['health_probes']} | {p['health_failed']} | {p['health_p50_ms']} | {p['health_max_ms']} | "
          f"{p['rss_min_mib']}–{p['rss_max_mib']} |")
a = r["attack"]
print()
print(f"Attack: {a['slow']} slow connections opened, {a['malformed']} malformed requests and {a['oversized']} "
      f"4 MB bodies sent; their answers by status: " +
      ", ".join(f"{k}: {v}" for k, v in sorted(a["answers"].items())) + ".")
rss = r["rss_mib"]
step = max(1, len(rss) // 12)
print()
print("RSS over time (s: MiB): " + ", ".join(f"{t:g}: {m}" for t, m in rss[::step]) + ".")
print()
print(f"SIGTERM after the run: exit status {r['exit']} in {r['exit_s']} s.")
EOF
)
echo "$report"

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
section=$(printf '## Soak\n\n`bench/bench_soak.sh`, %s, %s (%s cores; load average %s at the start, %s at the end: the\nmachine is shared and the clients and attackers run on the same cores, so figures are indicative),\nmodel %s, encoder threads %s, %s s in three equal phases, %s legitimate keep-alive clients (8 SciFact\nqueries per request, base64); attack phase: 5 loopback addresses hold up to 40 slow connections each\n(a byte a second), one sends malformed requests, one posts 4 MB bodies. Server options: %s.\n\n%s\n' \
    "$(date -u +%Y-%m-%d)" "${cpu:-unknown CPU}" "$(nproc)" "$load_start" "$load_end" "$(basename "$model")" "$threads" \
    "$seconds" "$clients" "${opts[*]}" "$report")
. bench/results_section.sh
results_section Soak "$section"
