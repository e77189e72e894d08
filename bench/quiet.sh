#!/usr/bin/env bash
# quiet.sh CMD... — run one timing measurement on a quiet machine, for a machine shared by several
# jobs (parallel builds and tests) whose work can wait: take a lock (BENCH_LOCK, default
# /tmp/gtr-bench.lock) so measurements never overlap, pause (SIGSTOP) every user process running
# at nice >= 10 (so run builds and tests under `nice -n 19`), run CMD at normal priority for at
# most BENCH_QUIET_MAX_S seconds (default 420), then resume what it paused, even when CMD fails
# or is interrupted. `uptime` before and after goes to stderr: RESULTS.md sections quote it.
# Why pausing and not only nice: on a 2-vCPU VM a niced job on the other vCPU still shares the
# core's caches and memory bandwidth (and, on SMT siblings, its FMA units), which moved 1-thread
# kernel timings by 10-20%. Paused tests may time out: keep each call to a few minutes.
# (bench/RESULTS.md calls it by the path it had on the build machine, /work/quiet-bench.sh.)
set -u
exec 9>"${BENCH_LOCK:-/tmp/gtr-bench.lock}"
flock 9
paused=()
resume() { [ ${#paused[@]} -gt 0 ] && kill -CONT "${paused[@]}" 2>/dev/null; paused=(); }
trap 'resume' EXIT INT TERM
me=$$
# user processes only: kernel threads (pid 2 and its children) ignore SIGSTOP anyway
for p in $(ps -eo pid=,ni=,ppid= | awk -v me="$me" '$2 >= 10 && $1 != me && $3 != 2 && $1 != 2 {print $1}'); do
    kill -STOP "$p" 2>/dev/null && paused+=("$p")
done
sleep 1
echo "# quiet.sh: paused ${#paused[@]} niced processes; $(uptime)" >&2
timeout "${BENCH_QUIET_MAX_S:-420}" "$@"
rc=$?
echo "# quiet.sh: done rc=$rc; $(uptime)" >&2
exit $rc
