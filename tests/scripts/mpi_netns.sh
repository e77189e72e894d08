#!/usr/bin/env bash
# mpi_netns.sh — gtr-mpi across "hosts": two network namespaces made here (ip netns, one veth
# pair, addresses 10.77.0.1 and 10.77.0.2 that exist only inside them), Open MPI's TCP transport
# between them, and its launcher told to start the remote daemon with a command that enters the
# other namespace (and its own hostname) instead of ssh. Index (single file and one shard per
# host), search (queries and documents split), BEIR metrics and a trained model (data-parallel
# training) are compared byte for byte with the single-process commands. Needs root (CAP_NET_ADMIN); skipped
# otherwise. Only the namespaces made here are touched, and they are deleted at exit.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

. tests/scripts/mpi_setup.sh.inc
A=gtrmpi$$a B=gtrmpi$$b
cleanup() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; rm -rf "$TMP"; }
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "$A" 2>/dev/null; then
    echo "1..0 # SKIP cannot make network namespaces (needs root and iproute2)"
    exit 0
fi
trap cleanup EXIT
ip netns add "$B"
ip link add "v$$a" type veth peer name "v$$b"
ip link set "v$$a" netns "$A"
ip link set "v$$b" netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev "v$$a"
ip -n "$B" addr add 10.77.0.2/24 dev "v$$b"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "v$$a" up
ip -n "$B" link set "v$$b" up

# the ssh stand-in: "agent HOST COMMAND..." runs COMMAND in HOST's namespace, under its own name
cat >"$TMP/agent" <<AGENT
#!/bin/sh
host=\$1; shift
case \$host in 10.77.0.1) ns=$A ;; 10.77.0.2) ns=$B ;; *) echo "agent: not a test host: \$host" >&2; exit 1 ;; esac
exec ip netns exec \$ns unshare --uts sh -c "hostname \$ns; \$*"
AGENT
chmod +x "$TMP/agent"
# mpirun itself runs on host A; one rank per host, TCP only, on the test's addresses only
hosts() {
    timeout 300 ip netns exec "$A" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$A" \
        mpirun --host 10.77.0.1:1,10.77.0.2:1 -n 2 --mca plm_rsh_agent "$TMP/agent" \
        --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 "$@"
}
plan 15

head -n 300 "$SF/corpus.jsonl" >"$TMP/sub.jsonl"
head -n 30 "$SF/queries.jsonl" >"$TMP/q.jsonl"
$GTR index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/one.gtri" -t 1
$GTR search --index "$TMP/one.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/one.run" --quiet

ok "the two hosts are two ranks on two hostnames" hosts sh -c 'echo "$(hostname) $OMPI_COMM_WORLD_RANK"'
is "$(sort "$TMP/out" | tr '\n' ' ')" "$A 0 $B 1 " "... rank 0 on host A, rank 1 on host B"
ok "gtr-mpi index across the hosts" hosts $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" -o "$TMP/two.gtri" --batch 5 -t 1
ok "... the bytes of gtr index" cmp "$TMP/one.gtri" "$TMP/two.gtri"
ok "gtr-mpi search across the hosts" hosts $MPI search --index "$TMP/two.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/two.run" -t 1
ok "... the run of gtr search" cmp "$TMP/one.run" "$TMP/two.run"
ok "gtr-mpi index --shards across the hosts (one shard per host)" hosts $MPI index -q -m "$TINY" -c "$TMP/sub.jsonl" \
    -o "$TMP/sh.gtri" --shards -t 1
ok "... gtr search over its manifest: the run of the single file" sh -c "$GTR search --index '$TMP/sh.gtri' \
    -q '$TMP/q.jsonl' -k 10 -o '$TMP/sh.run' --quiet && cmp '$TMP/one.run' '$TMP/sh.run'"
ok "gtr-mpi search --split docs across the hosts (each host its shard)" hosts $MPI search --split docs \
    --index "$TMP/sh.gtri" -q "$TMP/q.jsonl" -k 10 -o "$TMP/shd.run" -t 1
ok "... the run of gtr search" cmp "$TMP/one.run" "$TMP/shd.run"
# BEIR: a small dataset folder (200 documents and the judged ones of 40 qrels lines)
small_beir "$TMP/ds"
$GTR beir -q -d "$TMP/ds" -m "$TINY" --json --cache "$TMP/cache" >"$TMP/one.json"
$GTR index -q -m "$TINY" -c "$TMP/ds/corpus.jsonl" -o "$TMP/ds.gtri" -t 1
ok "gtr-mpi beir across the hosts" hosts $MPI beir -d "$TMP/ds" --index "$TMP/ds.gtri" --json -t 1
cp "$TMP/out" "$TMP/two.json"
ok "... the metrics of gtr beir, byte for byte" cmp "$TMP/one.json" "$TMP/two.json"
TRAIN=(--init "$TINY" -d "$SF" --steps 3 --batch 8 --micro-batch 4 --passage-max-len 32 --query-max-len 16 -t 1 -q)
$GTR train "${TRAIN[@]}" -o "$TMP/train1"
ok "gtr-mpi train across the hosts" hosts $MPI train "${TRAIN[@]}" -o "$TMP/train2"
ok "... the model of gtr train, byte for byte" sh -c "cmp '$TMP/train1/model.safetensors' '$TMP/train2/model.safetensors' && cmp '$TMP/train1/2_Dense/model.safetensors' '$TMP/train2/2_Dense/model.safetensors'"
ip netns del "$A"; ip netns del "$B"
is "$(ip netns list | grep -c "gtrmpi$$")" "0" "the namespaces are gone"

done_testing
