#!/usr/bin/env bash
# cuda_cli.sh — the CUDA backend's error paths on a machine without a GPU (issue 15): asking
# for `--device cuda` without a driver, without a device, without the plugin, or with a
# broken plugin is one clear line and a non-zero exit, never a crash or a half-written
# output. Fake drivers / plugins (tiny C libraries built here) stand in for the real ones.
# The GPU itself is exercised by scripts/gpu-check.sh on a machine that has one.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh
M=$SHARED/models/gtr-tiny
plan 31
CC=${CC:-cc}
printf '%s\n' 'a short passage' 'another one' > "$TMP/t.txt"

# one_line NAME REGEX ENV... : gtr embed --device cuda fails with exactly one line matching REGEX
one_line() {
    local name=$1 re=$2; shift 2
    env "$@" $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/o.f32" -q --device "${DEV:-cuda}" >"$TMP/out" 2>"$TMP/err"
    local s=$?
    if [ $s -ne 0 ] && [ $s -lt 128 ]; then _tap_result 0 "$name: non-zero exit"; else _tap_result 1 "$name: exit $s"; fi
    is "$(wc -l < "$TMP/err")" "1" "$name: one line"
    like "$(cat "$TMP/err")" "$re" "$name: says so"
    [ -e "$TMP/o.f32" ] && echo "# $TMP/o.f32 left behind" && _tap_fail=$((_tap_fail+1))
    rm -f "$TMP/o.f32"
}

# fake drivers: cuInit / cuDeviceGetCount answering as configured
mkdrv() { # name init_result count
    printf 'int cuInit(unsigned f) { (void)f; return %s; }\nint cuDeviceGetCount(int *n) { *n = %s; return 0; }\n' "$2" "$3" > "$TMP/$1.c"
    $CC -shared -fPIC -o "$TMP/$1.so" "$TMP/$1.c"
}
mkdrv nodev 100 0
mkdrv zero 0 0
mkdrv one 0 1
printf 'int unrelated(void) { return 0; }\n' > "$TMP/empty.c" && $CC -shared -fPIC -o "$TMP/empty.so" "$TMP/empty.c"
# a plugin of another interface version, and one whose create fails
printf 'typedef struct { int abi; } api;\nstatic const api a = {999};\nconst api *gtr_cuda_plugin_api(void) { return &a; }\n' > "$TMP/oldabi.c"
$CC -shared -fPIC -o "$TMP/oldabi.so" "$TMP/oldabi.c"
cat > "$TMP/nocreate.c" <<'C'
#include <stdio.h>
#include "cuda/plugin_abi.h"
static void *create(const gtr_cuda_cfg *c, char *msg, size_t len) { snprintf(msg, len, "out of device memory (fake, d_model %d)", c->d_model); return NULL; }
static const gtr_cuda_api a = {GTR_CUDA_ABI, create, NULL, NULL, NULL, NULL};
const gtr_cuda_api *gtr_cuda_plugin_api(void) { return &a; }
C
$CC -shared -fPIC -Isrc -o "$TMP/nocreate.so" "$TMP/nocreate.c"

one_line "missing driver" "no CUDA driver: .*/none.so could not be loaded" GTR_CUDA_DRIVER="$TMP/none.so"
one_line "driver without a device" "no CUDA device \(the driver .*nodev.so found none\)" GTR_CUDA_DRIVER="$TMP/nodev.so"
one_line "zero devices" "no CUDA device \(the driver found none\)" GTR_CUDA_DRIVER="$TMP/zero.so"
DEV=cuda:3 one_line "ordinal past the devices" "no CUDA device 3 \(the driver found 1\)" GTR_CUDA_DRIVER="$TMP/one.so"
one_line "missing plugin" "CUDA plugin not found: .*nope.so" GTR_CUDA_DRIVER="$TMP/one.so" GTR_CUDA_PLUGIN="$TMP/nope.so"
one_line "plugin without the entry point" "CUDA plugin .*empty.so has no gtr_cuda_plugin_api" GTR_CUDA_DRIVER="$TMP/one.so" GTR_CUDA_PLUGIN="$TMP/empty.so"
one_line "stale plugin" "speaks interface 999" GTR_CUDA_DRIVER="$TMP/one.so" GTR_CUDA_PLUGIN="$TMP/oldabi.so"
one_line "plugin whose create fails" "cuda:0: out of device memory \(fake, d_model [0-9]+\)" GTR_CUDA_DRIVER="$TMP/one.so" GTR_CUDA_PLUGIN="$TMP/nocreate.so"
DEV=gpu one_line "unknown device" "device 'gpu': expected cpu, cuda or cuda:N"

# the real plugin (built where nvcc is) past a fake driver: cudart finds no GPU and says so
if [ -f lib/libgtr-cuda.so ]; then
    one_line "real plugin, no GPU" "^gtr embed: cuda:0: " GTR_CUDA_DRIVER="$TMP/one.so" GTR_CUDA_PLUGIN="$PWD/lib/libgtr-cuda.so" ASAN_OPTIONS=detect_leaks=0
else
    for i in 1 2 3; do _tap_n=$((_tap_n+1)); echo "ok $_tap_n # skip lib/libgtr-cuda.so not built (no nvcc)"; done
fi

# this machine as it is: without libcuda.so.1 the message names the driver
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    echo "ok 31 # skip libcuda.so.1 is installed here (a GPU machine): scripts/gpu-check.sh covers it"
    _tap_n=31
else
    # GTR_DEVICE reaches every command through the shared model options
    GTR_DEVICE=cuda $GTR embed -m "$M" -i "$TMP/t.txt" -o "$TMP/o.f32" -q >"$TMP/out" 2>"$TMP/err"
    like "$(cat "$TMP/err")" "no CUDA driver: libcuda.so.1 could not be loaded" "GTR_DEVICE=cuda here: no CUDA driver"
fi
exit $((_tap_fail > 0))
