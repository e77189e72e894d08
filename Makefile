# gtr — GTR dense retrieval in C.
#
#   make            library (lib/libgtr.a, lib/libgtr.so) and CLI (bin/gtr)
#   make test       dependencies check, build, all tests (release + ASan/UBSan builds)
#   make demo       the main job: BM25 / GTR / hybrid on BEIR SciFact
#   make bench      benchmarks (tables in bench/RESULTS.md)
#   make fuzz       short libFuzzer runs of every fuzz target (clang)
#   make install    PREFIX=/usr/local
#   make CC=clang   the same with clang
#
# One binary runs on every x86-64: ISA-specific kernels (*_avx2.c, *_avx512.c, *_amx.c) get their own
# flags and are chosen at run time from CPUID.

CC       ?= cc
PREFIX   ?= /usr/local
BUILD    ?= build/release
OPT      ?= -O2
SAN      ?=
SHARED   ?= ../shared
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)

# The libraries' flags (PKG_CFLAGS, PKG_LIBS) come from build/config.mk, which
# `scripts/deps.sh config` writes after installing (or asking for) the Debian packages. It is
# made by a rule, not read with $(shell pkg-config ...) at parse time: on a fresh machine the
# packages are not there yet when make parses this file. GNU make makes the fragment, then
# restarts. Goals that need no compiler skip it.
.DEFAULT_GOAL := all
CONFIG_MK := build/config.mk
NO_CONFIG_GOALS := clean uninstall deps check-deps
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(NO_CONFIG_GOALS),$(MAKECMDGOALS)),)
SKIP_CONFIG := 1
endif
endif
ifndef SKIP_CONFIG
include $(CONFIG_MK)
endif
$(CONFIG_MK): scripts/deps.sh
	@scripts/deps.sh config $@

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# Error messages are truncated on purpose (fixed-size gtr_error); gcc warns about that.
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
WARN     += -Wno-format-truncation
endif
CFLAGS_ALL = -std=c11 $(OPT) -g $(WARN) -fPIC -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS) \
             -fvisibility=hidden $(SAN) $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm $(LDLIBS)
# The programs over the public API (cli/, mpi/) compile without -Isrc: an include of a
# library-internal header there does not build. tests/scripts/api_boundary.sh checks their
# includes and that every libgtr symbol they link is one libgtr.so exports.
CFLAGS_PUB = $(filter-out -Isrc,$(CFLAGS_ALL))

ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mavx512vnni
ISA_AMX    := $(ISA_AVX512) -mamx-tile -mamx-bf16 -mamx-int8

SO_MAJOR := 0
SO_FULL  := 0.1.0

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_SUPPORT := $(sort $(wildcard tests/support/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
SUP_OBJ  := $(TEST_SUPPORT:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

# The release build goes to the well-known places; other builds stay inside $(BUILD).
ifeq ($(BUILD),build/release)
LIB_A   := lib/libgtr.a
LIB_SO  := lib/libgtr.so
GTR_BIN := bin/gtr
else
LIB_A   := $(BUILD)/lib/libgtr.a
LIB_SO  := $(BUILD)/lib/libgtr.so
GTR_BIN := $(BUILD)/bin/gtr
endif

.PHONY: all lib cli tests test test-release test-sanitize check-deps deps clean demo bench \
        fuzz install uninstall clang-check venv-test venv-bench

# ---------------------------------------------------------------------------- MPI (optional)
# bin/gtr-mpi (mpi/, issue 18) is built only where Open MPI's compiler wrapper exists, so MPI is
# never a dependency of libgtr or bin/gtr. OMPI_CC makes mpicc use the same compiler as the rest.
MPICC    ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) 2>/dev/null)
ifneq ($(HAVE_MPI),)
MPI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard mpi/*.c)))
MPI_CLI  := $(BUILD)/cli/common.o $(BUILD)/cli/progress.o $(BUILD)/cli/cmd_train.o
MPI_BIN  := $(dir $(GTR_BIN))gtr-mpi
$(BUILD)/mpi/%.o: mpi/%.c
	@mkdir -p $(dir $@)
	@echo "  MPICC   $<"
	$(Q)OMPI_CC=$(CC) $(MPICC) $(CFLAGS_PUB) -MMD -MP -c $< -o $@
$(MPI_BIN): $(MPI_OBJ) $(MPI_CLI) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)OMPI_CC=$(CC) $(MPICC) $(SAN) -o $@ $(MPI_OBJ) $(MPI_CLI) $(LIB_A) $(LDLIBS_ALL)
endif

# ---------------------------------------------------------------------------- CUDA (optional)
# lib/libgtr-cuda.so (src/cuda/plugin, issue 15) is built only where nvcc exists; libgtr never
# links CUDA but dlopens this plugin when asked for --device cuda (src/cuda/loader.c). sm_90
# machine code (Hopper: the H200 it is checked on) plus compute_90 PTX for newer GPUs.
NVCC      ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA_ARCH ?= -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
CUDA_SRC  := $(sort $(wildcard src/cuda/plugin/*.cu))
CUDA_SO   := $(dir $(LIB_SO))libgtr-cuda.so
.PHONY: cuda
cuda: $(if $(NVCC),$(CUDA_SO))
ifeq ($(NVCC),)
	@echo "  SKIP    $(CUDA_SO) (no nvcc: the optional CUDA backend is not built)"
endif
$(CUDA_SO): $(CUDA_SRC) src/cuda/plugin_abi.h
	@mkdir -p $(dir $@)
	@echo "  NVCC    $@"
	$(Q)$(NVCC) -O3 -std=c++17 $(CUDA_ARCH) -Isrc -shared -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror \
	    -Werror all-warnings -cudart shared -o $@ $(CUDA_SRC) -lcublas

all: lib cli $(MPI_BIN) $(if $(filter build/release,$(BUILD)),cuda)

lib: $(LIB_A) $(LIB_SO)
cli: $(GTR_BIN)
tests: $(TEST_BIN) $(GTR_BIN) $(MPI_BIN)


$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(ISA_AVX2) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(ISA_AVX512) -MMD -MP -c $< -o $@

$(BUILD)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(ISA_AMX) -MMD -MP -c $< -o $@

$(BUILD)/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_PUB) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# Public symbols are marked GTR_API (default visibility) in gtr.h; the static library keeps
# every symbol so tests can reach internals.
$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  AR      $@"
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,libgtr.so.$(SO_MAJOR) -Wl,--no-undefined $(SAN) -o $@.$(SO_FULL) $^ $(LDLIBS_ALL)
	$(Q)ln -sf libgtr.so.$(SO_FULL) $@.$(SO_MAJOR)
	$(Q)ln -sf libgtr.so.$(SO_FULL) $@

$(GTR_BIN): $(CLI_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN) -o $@ $(CLI_OBJ) $(LIB_A) $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUP_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN) -o $@ $< $(SUP_OBJ) $(LIB_A) $(LDLIBS_ALL) -lcmocka

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(MPI_OBJ:.o=.d) $(SUP_OBJ:.o=.d) $(TEST_BIN:=.d)

# ---------------------------------------------------------------------------- dependencies
deps:
	@scripts/deps.sh install

check-deps:
	@scripts/deps.sh check

# ---------------------------------------------------------------------------- tests
# Every test binary speaks TAP (cmocka with CMOCKA_MESSAGE_OUTPUT=TAP); prove runs them all
# (through scripts/tap-skip.sh, so a test skipped on this CPU counts as skipped, not failed)
# and prints the summary CI reads. The sanitizer build runs the same tests.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

test: check-deps
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SAN="$(SAN_FLAGS)" tests
	@scripts/run-tests.sh build/release build/asan

test-release: check-deps
	@$(MAKE) --no-print-directory all tests
	@scripts/run-tests.sh build/release

test-sanitize: check-deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SAN="$(SAN_FLAGS)" tests
	@scripts/run-tests.sh build/asan

clang-check:
	@$(MAKE) --no-print-directory CC=clang BUILD=build/clang tests

# ---------------------------------------------------------------------------- fuzzing
fuzz:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh

# ---------------------------------------------------------------------------- demo / bench
demo: check-deps all
	@scripts/demo.sh

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh

venv-test:
	@scripts/venv.sh test

venv-bench:
	@scripts/venv.sh bench

# ---- bench programs (kernels): bench/*.c, each one binary linked with libgtr.a; they may use
# internal headers (-Isrc). `make bench-progs` builds them into $(BUILD)/bench/.
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
.PHONY: bench-progs
bench-progs: $(BENCH_BIN)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(LIB_A) $(LDLIBS_ALL)
-include $(BENCH_BIN:=.d)
# ---- end bench programs

# ---------------------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	           $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 bin/gtr $(DESTDIR)$(PREFIX)/bin/gtr
	install -m 644 lib/libgtr.a $(DESTDIR)$(PREFIX)/lib/libgtr.a
	install -m 755 lib/libgtr.so.$(SO_FULL) $(DESTDIR)$(PREFIX)/lib/libgtr.so.$(SO_FULL)
	ln -sf libgtr.so.$(SO_FULL) $(DESTDIR)$(PREFIX)/lib/libgtr.so.$(SO_MAJOR)
	ln -sf libgtr.so.$(SO_FULL) $(DESTDIR)$(PREFIX)/lib/libgtr.so
	install -m 644 include/gtr.h $(DESTDIR)$(PREFIX)/include/gtr.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(SO_FULL)|g' -e 's|@PKG_LIBS@|$(PKG_LIBS)|g' \
	    docs/gtr.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gtr.pc
	install -m 644 docs/gtr.1 $(DESTDIR)$(PREFIX)/share/man/man1/gtr.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/gtr $(DESTDIR)$(PREFIX)/lib/libgtr.* \
	      $(DESTDIR)$(PREFIX)/include/gtr.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/gtr.pc \
	      $(DESTDIR)$(PREFIX)/share/man/man1/gtr.1

clean:
	rm -rf build bin lib
