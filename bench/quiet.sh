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
# Niced processes that start while CMD runs (a job launched by another shell, not a child of a
# paused one) are paused too: a watcher rescans every 0.2 s, since one compiler run on the other
# vCPU halved a two-thread figure.
# (bench/RESULTS.md calls it by the path it had on the build machine, /work/quiet-bench.sh.)
set -u
exec 9>"${BENCH_LOCK:-/tmp/gtr-bench.lock}"
flock 9
list=$(mktemp /tmp/gtr-quiet.XXXXXX)
me=$$
pause_new() {   # stop every niced user process not stopped yet (but CMD's own, process group
    # $2), append its pid to $list; user processes only: kernel threads ignore SIGSTOP anyway
    for p in $(ps -eo pid=,ni=,ppid=,stat=,pgid= | awk -v me="$me" -v w="${1:-0}" -v g="${2:-0}" \
            '$2 >= 10 && $1 != me && $1 != w && $5 != g && $3 != 2 && $1 != 2 && $4 !~ /^T/ {print $1}'); do
        kill -STOP "$p" 2>/dev/null && echo "$p" >> "$list"
    done
}
watcher=
resume() {
    [ -n "$watcher" ] && kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null
    watcher=
    [ -s "$list" ] && xargs -r kill -CONT < "$list" 2>/dev/null
    rm -f "$list"
}
trap 'resume' EXIT INT TERM
pause_new
n=$(wc -l < "$list")
sleep 1
echo "# quiet.sh: paused $n niced processes; $(uptime)" >&2
# timeout puts CMD in a process group of its own (timeout's pid), which the watcher spares
timeout "${BENCH_QUIET_MAX_S:-420}" "$@" &
cmd=$!
( while :; do sleep 0.2; pause_new "$BASHPID" "$cmd"; done ) &
watcher=$!
wait "$cmd"
rc=$?
echo "# quiet.sh: done rc=$rc; paused $(wc -l < "$list") in all; $(uptime)" >&2
exit $rc
