#!/usr/bin/env bash
# fresh-check.sh — prove that the README's two commands succeed on their FIRST run on a fresh
# Debian 12, which CI cannot see (CI machines already have the packages).
#
#   sudo scripts/fresh-check.sh [--all] [--keep] [--rebuild-base]
#
# Builds a minimal bookworm root with debootstrap (--variant=minbase, the mirror apt uses here),
# installs only make, git and ca-certificates in it, clones the current commit into it with
# ../shared copied beside it (read-only), mounts /proc, /sys and /dev, gives it the host's
# package-index settings (/etc/pip.conf, the CA file PIP_CERT names, apt's configuration), and
# runs inside chroot, once each:
#   1. as a user without root or sudo: `make demo` and `make test` must fail (non-zero) with the
#      exact `apt-get install` line, and leave nothing built;
#   2. as root: `make demo`, then `make test`;
#   3. with --all also `make bench` (its dependencies and the bench programs built;
#      the timed runs themselves are left out), `make fuzz` (1 s per target)
#      and `pip install ./python` into a venv.
# Prints each step's result and exits non-zero if any failed. Takes several minutes (the base is
# cached in $WORK/base.tar.gz; --rebuild-base makes it again). --keep leaves the root for a look.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SHARED=$(cd "${GTR_SHARED:-../shared}" 2>/dev/null && pwd) || { echo "fresh-check: no ../shared (set GTR_SHARED)" >&2; exit 2; }
WORK=${GTR_FRESH_DIR:-/var/tmp/gtr-fresh-check}
ALL=0 KEEP=0 REBUILD=0
for a in "$@"; do
    case $a in
      --all) ALL=1 ;; --keep) KEEP=1 ;; --rebuild-base) REBUILD=1 ;;
      -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
      *) echo "fresh-check: unknown option $a" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
    || { echo "fresh-check: cannot install debootstrap" >&2; exit 2; }

# The mirror apt uses here (deb822 or one-line sources), else Debian's.
mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$WORK"
ROOT=$WORK/root
BASE=$WORK/base.tar.gz
cleanup() {
    for m in dev/pts dev sys proc; do mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"; done
    # Never delete through a mount (the host's /dev, /sys): only when nothing is mounted below.
    if grep -q " $ROOT/" /proc/mounts 2>/dev/null; then
        echo "fresh-check: mounts remain under $ROOT; not deleting it" >&2
        return
    fi
    [ "$KEEP" = 1 ] || rm -rf "$ROOT"
}
trap cleanup EXIT
cleanup

t0=$(date +%s)
if [ "$REBUILD" = 1 ] || [ ! -s "$BASE" ]; then
    echo "fresh-check: debootstrap --variant=minbase bookworm from $mirror" >&2
    rm -f "$BASE"
    debootstrap --variant=minbase bookworm "$ROOT" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { echo "fresh-check: debootstrap failed (see $WORK/debootstrap.log)" >&2; tail -n 5 "$WORK/debootstrap.log" >&2; exit 1; }
    tar -C "$ROOT" -czf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
else
    mkdir -p "$ROOT" && tar -C "$ROOT" -xzf "$BASE"
fi

# The host's package-index settings: apt sources and configuration, pip's, the CA bundle.
cp -a /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$ROOT/etc/apt/"
for f in /etc/apt/apt.conf.d/99*; do [ -f "$f" ] && cp "$f" "$ROOT/etc/apt/apt.conf.d/"; done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
CERT=${PIP_CERT:-}
if [ -n "$CERT" ] && [ -f "$CERT" ]; then
    mkdir -p "$ROOT/usr/local/share/gtr-fresh-check"
    cp "$CERT" "$ROOT/usr/local/share/gtr-fresh-check/ca.crt"
fi

mount -t proc proc "$ROOT/proc" && mount --rbind /sys "$ROOT/sys" && mount --rbind /dev "$ROOT/dev" \
    || { echo "fresh-check: cannot mount /proc, /sys, /dev in $ROOT" >&2; exit 1; }

# Inside: a login-like environment, with the host's pip settings (a CA file copied in).
in_root() {
    local envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
    [ -f "$ROOT/usr/local/share/gtr-fresh-check/ca.crt" ] && envs+=(PIP_CERT=/usr/local/share/gtr-fresh-check/ca.crt)
    [ -n "${PIP_INDEX_URL:-}" ] && envs+=(PIP_INDEX_URL="$PIP_INDEX_URL")
    [ -n "${PIP_DEFAULT_TIMEOUT:-}" ] && envs+=(PIP_DEFAULT_TIMEOUT="$PIP_DEFAULT_TIMEOUT")
    chroot "$ROOT" /usr/bin/env -i "${envs[@]}" "$@"
}

echo "fresh-check: installing only make git ca-certificates" >&2
in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make git ca-certificates' \
    >"$WORK/base-packages.log" 2>&1 || { echo "fresh-check: apt-get in the root failed (see $WORK/base-packages.log)" >&2; exit 1; }

# The current commit (committed work only, as a newcomer's clone would have it), ../shared beside.
commit=$(git -C "$REPO" rev-parse HEAD)
mkdir -p "$ROOT/src"
git clone -q "$REPO" "$ROOT/src/gtr" && git -C "$ROOT/src/gtr" checkout -q "$commit" \
    || { echo "fresh-check: cannot clone $REPO" >&2; exit 1; }
cp -a "$SHARED" "$ROOT/src/shared" && chmod -R a-w "$ROOT/src/shared"
echo "fresh-check: commit $commit, mirror $mirror" >&2

status=0
results=()
step() {   # step NAME EXPECT(0|fail) COMMAND...: run, time, record
    local name=$1 expect=$2 rc s
    shift 2
    s=$(date +%s)
    echo "fresh-check: --- $name" >&2
    "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    local secs=$(( $(date +%s) - s )) ok=0
    if [ "$expect" = 0 ]; then [ $rc = 0 ] && ok=1; else [ $rc != 0 ] && ok=1; fi
    local line="$name: exit $rc in ${secs}s"
    [ $ok = 1 ] && line="ok   $line" || { line="FAIL $line (log $WORK/$name.log)"; status=1; }
    results+=("$line")
    echo "fresh-check: $line" >&2
    tail -n 4 "$WORK/$name.log" | sed 's/^/    /' >&2
}

# 1. No root, no sudo: the exact apt-get line, a non-zero exit, nothing built.
in_root useradd -m newcomer >/dev/null 2>&1
in_root sh -c 'cp -a /src/gtr /home/newcomer/gtr && cp -a /src/shared /home/newcomer/shared && chown -R newcomer /home/newcomer/gtr'
for goal in demo test; do
    step "nosudo-make-$goal" fail in_root su newcomer -c "cd ~/gtr && make $goal"
    if ! grep -q 'apt-get install -y ' "$WORK/nosudo-make-$goal.log"; then
        results+=("FAIL nosudo-make-$goal: no apt-get install line"); status=1
    fi
    if [ -e "$ROOT/home/newcomer/gtr/lib/libgtr.a" ] || [ -e "$ROOT/home/newcomer/gtr/bin/gtr" ] \
       || [ -e "$ROOT/home/newcomer/gtr/build/config.mk" ]; then
        results+=("FAIL nosudo-make-$goal: left build output behind"); status=1
    fi
done

# 2. Root: the README's two commands, each once.
step make-demo 0 in_root sh -c 'cd /src/gtr && make demo'
step make-test 0 in_root sh -c 'cd /src/gtr && make test'

# 3. The other first runs.
if [ "$ALL" = 1 ]; then
    step make-bench-deps 0 in_root sh -c 'cd /src/gtr && scripts/deps.sh bench && make all bench-progs'
    step make-fuzz 0 in_root sh -c 'cd /src/gtr && FUZZ_SECONDS=1 make fuzz'
    step pip-install 0 in_root sh -c 'cd /src/gtr && python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -q ./python && /tmp/venv/bin/python -c "import gtr; print(gtr.__file__)"'
fi

echo "fresh-check: results (commit $commit, $(( $(date +%s) - t0 ))s in all):"
printf '  %s\n' "${results[@]}"
exit $status
