# walden - top-level build.
#
#   make demo      install missing packages, build, run the demonstration
#   make test      install missing packages, build, run every test: the cmocka
#                  suites, then all of them again under ASan+UBSan, the
#                  concurrency suites under TSan, a clang -Werror build, and
#                  the planted-bug meta-test (MODE=plant)
#   make bench     the benchmarks (walden beside raw pread / LMDB)
#   make fuzz      build the libFuzzer targets (clang, ASan+UBSan) and run
#                  each FUZZ_SECONDS (default 60) on its corpus (fuzz/)
#   make fuzz-merge  fold what make fuzz found into fuzz/corpus, minimised
#                  to the inputs that keep every edge (-merge=1)
#   make fuzz-seed   write the seed corpus from a database a workload built
#   make install   PREFIX=/usr/local DESTDIR= : header, libraries, walden.pc,
#                  the walden binary
#   make clean
#
# One build directory per flavour: build/release, build/asan, build/tsan,
# build/clang, build/plant and build/fuzz. MODE selects the flavour of a
# sub-make. The plant flavour is release with -DWALDEN_PLANTS:
# WD_PLANTED(name) (storage/plant.h) then arms one known recovery bug named
# by $WALDEN_PLANT; it builds the library, the crashtest module and
# tests/unit/test_meta.c only. The fuzz flavour is clang with libFuzzer
# instrumentation, for make fuzz.

PREFIX  ?= /usr/local
DESTDIR ?=
MODE    ?= release
CC      ?= cc

VERSION := $(shell sed -n 's/^\#define WALDEN_VERSION_STRING "\(.*\)"/\1/p' include/walden.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

MODULES := storage bufmgr wal undo heap btree txn recovery
LIB_SRC := $(sort $(wildcard $(addsuffix /*.c,$(MODULES))))
BIN_SRC := $(sort $(wildcard tools/*.c bench/*.c))
# crashtest/ runs crash campaigns on top of the public API: linked into the
# walden binary and its test suite, not into the library.
CRASHTEST_SRC := $(sort $(wildcard crashtest/*.c))
# tests/lib/ioloop.c drives the crashtest module: linked into the suites
# that run the I/O-error loop only, the other helpers into every suite.
IOLOOP_SRC := tests/lib/ioloop.c
TESTLIB_SRC := $(filter-out $(IOLOOP_SRC),$(sort $(wildcard tests/lib/*.c)))
# test_meta.c, the planted-bug meta-test, is built in the plant flavour only.
META_SRC := tests/unit/test_meta.c
TEST_SRC := $(filter-out $(META_SRC),$(sort $(wildcard tests/unit/test_*.c)))
# Concurrency suites (also run under ThreadSanitizer) end in _conc.c.
CONC_SRC := $(filter %_conc.c,$(TEST_SRC))

O := build/$(MODE)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=gnu11 -g -pthread -fPIC -Iinclude -I. $(WARN) -MMD -MP
ifeq ($(MODE),release)
  MODE_CFLAGS := -O2
else ifeq ($(MODE),asan)
  MODE_CFLAGS := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
else ifeq ($(MODE),tsan)
  MODE_CFLAGS := -O1 -fsanitize=thread -fno-omit-frame-pointer
else ifeq ($(MODE),clang)
  CC := clang
  MODE_CFLAGS := -O2
else ifeq ($(MODE),plant)
  MODE_CFLAGS := -O2 -DWALDEN_PLANTS
else ifeq ($(MODE),fuzz)
  CC := clang
  MODE_CFLAGS := -O1 -fsanitize=fuzzer-no-link,address,undefined \
                 -fno-sanitize-recover=all -fno-omit-frame-pointer
else
  $(error MODE must be release, asan, tsan, clang, plant or fuzz)
endif
ALL_CFLAGS := $(BASE_CFLAGS) $(MODE_CFLAGS) $(CFLAGS)
LIBS := -lisal -lz -llmdb -lpthread
LDFLAGS_ALL := $(MODE_CFLAGS) -pthread $(LDFLAGS)

LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
BIN_OBJ := $(BIN_SRC:%.c=$(O)/%.o)
CRASHTEST_OBJ := $(CRASHTEST_SRC:%.c=$(O)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(O)/%.o)
IOLOOP_OBJ := $(IOLOOP_SRC:%.c=$(O)/%.o)
IOLOOP_BIN := $(patsubst tests/unit/%.c,$(O)/tests/%,$(wildcard tests/unit/test_ioerr_loop_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(O)/tests/%)
CONC_BIN := $(CONC_SRC:tests/unit/%.c=$(O)/tests/%)
# Fuzz targets (fuzz/README.md): each fuzz/fuzz_T.c is linked twice, with
# libFuzzer (build/fuzz/fuzz/fuzz_T, make fuzz) and with the corpus replay
# fuzz/replay.c (O/tests/fuzz_T, a cmocka suite every make test runs).
FUZZ_TARGETS := wal_record wal_segment page btree_check undo_chain control
FUZZ_UTIL_OBJ := $(O)/fuzz/fuzzutil.o
FUZZ_REPLAY_BIN := $(FUZZ_TARGETS:%=$(O)/tests/fuzz_%)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(O)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60
EXAMPLE_BIN := $(patsubst examples/%.c,$(O)/examples/%,$(wildcard examples/*.c))

STATIC_LIB := $(O)/libwalden.a
SHARED_LIB := $(O)/libwalden.so.$(VERSION)
WALDEN := $(O)/walden

.PHONY: all deps demo test test-mode test-plant bench crashtest-long install uninstall clean check-deps \
        build-tests examples fuzz fuzz-build fuzz-merge fuzz-seed

all: deps
	@$(MAKE) --no-print-directory build MODE=$(MODE)

build: $(STATIC_LIB) $(SHARED_LIB) $(WALDEN) $(O)/walden.pc

# ---- system packages ------------------------------------------------------
# Each required header, and the Debian package that provides it.
DEPS := /usr/include/zlib.h:zlib1g-dev \
        /usr/include/lmdb.h:liblmdb-dev \
        /usr/include/cmocka.h:libcmocka-dev \
        /usr/include/isa-l/crc.h:libisal-dev \
        /usr/bin/clang:clang
deps:
	@missing=""; for d in $(DEPS); do f=$${d%%:*}; p=$${d##*:}; \
	  [ -e "$$f" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq$$missing >/dev/null || exit 1; \
	  else \
	    echo "walden needs these Debian packages. Run:"; \
	    echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# ---- libraries and binary -------------------------------------------------
$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library exports the public API (wd_*) only; see walden.map.
$(SHARED_LIB): $(LIB_OBJ) walden.map
	$(CC) -shared -Wl,-soname,libwalden.so.$(SOMAJOR) \
	  -Wl,--version-script=walden.map $(LDFLAGS_ALL) -o $@ $(LIB_OBJ) $(LIBS)
	ln -sf libwalden.so.$(VERSION) $(O)/libwalden.so.$(SOMAJOR)
	ln -sf libwalden.so.$(SOMAJOR) $(O)/libwalden.so

$(WALDEN): $(BIN_OBJ) $(CRASHTEST_OBJ) $(STATIC_LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(BIN_OBJ) $(CRASHTEST_OBJ) $(STATIC_LIB) $(LIBS)

$(O)/walden.pc: walden.pc.in include/walden.h
	@mkdir -p $(O)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# ---- tests ------------------------------------------------------------------
$(O)/tests/%: tests/unit/%.c $(TESTLIB_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TESTLIB_OBJ) $(STATIC_LIB) $(LIBS) -lcmocka $(TEST_LDFLAGS)

# test_heap acts at exact steps of a change (a full WAL disk between the two
# records of a moved update, a checkpoint's view right after wal_insert): it
# intercepts the library's crash points with its own __wrap_ function.
$(O)/tests/test_heap: TEST_LDFLAGS := -Wl,--wrap=storage_crash_point
# test_txn_faults makes the log durable at txn-ddl-before-commit before it
# dies there (a loser table create or drop whose catalog change reached the
# disk, as another thread's group commit would carry it): the same wrap.
$(O)/tests/test_txn_faults: TEST_LDFLAGS := -Wl,--wrap=storage_crash_point
# test_recovery runs work inside a checkpoint (between its redo point and its
# dirty page table) at ckpt-after-flush: the same wrap.
$(O)/tests/test_recovery: TEST_LDFLAGS := -Wl,--wrap=storage_crash_point

# test_crashtest and test_ioerr drive the crashtest module, which the
# library leaves out.
$(O)/tests/test_crashtest $(O)/tests/test_ioerr: $(O)/tests/test_%: tests/unit/test_%.c \
		$(CRASHTEST_OBJ) $(TESTLIB_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CRASHTEST_OBJ) $(TESTLIB_OBJ) $(STATIC_LIB) $(LIBS) -lcmocka

# test_ioerr_loop_N: the parts of the I/O-error loop (tests/lib/ioloop.h).
$(IOLOOP_BIN): $(O)/tests/test_%: tests/unit/test_%.c $(IOLOOP_OBJ) $(CRASHTEST_OBJ) \
		$(TESTLIB_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(IOLOOP_OBJ) $(CRASHTEST_OBJ) $(TESTLIB_OBJ) $(STATIC_LIB) \
	  $(LIBS) -lcmocka

# test_meta runs crash campaigns, like test_crashtest (plant flavour only).
$(O)/tests/test_meta: tests/unit/test_meta.c $(CRASHTEST_OBJ) $(TESTLIB_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CRASHTEST_OBJ) $(TESTLIB_OBJ) $(STATIC_LIB) $(LIBS) -lcmocka

$(O)/examples/%: examples/%.c $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

# the shared test objects are prerequisites of a pattern rule only: keep
# make from deleting them as intermediates after each link
.SECONDARY: $(TESTLIB_OBJ) $(IOLOOP_OBJ) $(CRASHTEST_OBJ) $(FUZZ_UTIL_OBJ)

# The corpus replay of a fuzz target: a cmocka suite (fuzz/replay.c).
$(O)/tests/fuzz_%: fuzz/fuzz_%.c fuzz/replay.c $(FUZZ_UTIL_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< fuzz/replay.c $(FUZZ_UTIL_OBJ) $(STATIC_LIB) $(LIBS) -lcmocka

build-tests: $(TEST_BIN) $(FUZZ_REPLAY_BIN) $(WALDEN) $(EXAMPLE_BIN)

# Runs the suites of one MODE; SUITES=conc limits it to the concurrency ones.
test-mode: build-tests
	@WALDEN_BIN=$(WALDEN) tests/run.sh $(MODE) $(if $(filter conc,$(SUITES)),$(CONC_BIN),\
	  $(TEST_BIN) $(FUZZ_REPLAY_BIN) $(EXAMPLE_BIN) tests/check_docs.sh tests/check_demo.sh)

# The planted-bug meta-test: each known recovery bug planted in turn must
# fail a crash campaign (tests/unit/test_meta.c). Builds the plant flavour's
# library, crashtest module and that one suite.
test-plant:
	@$(MAKE) --no-print-directory MODE=plant build/plant/tests/test_meta
	@tests/run.sh plant build/plant/tests/test_meta

test: deps
	@$(MAKE) --no-print-directory test-mode MODE=release
	@$(MAKE) --no-print-directory test-mode MODE=asan
	@$(MAKE) --no-print-directory test-mode MODE=tsan SUITES=conc
	@$(MAKE) --no-print-directory build build-tests MODE=clang
	@$(MAKE) --no-print-directory test-plant
	@tests/summary.sh build/release build/asan build/tsan build/plant

# ---- demo and benchmarks ----------------------------------------------------
demo: all
	@rm -rf build/demo
	$(WALDEN) demo build/demo

bench: all
	$(WALDEN) bench pin
	$(WALDEN) bench pool
	$(WALDEN) bench commit
	$(WALDEN) bench walinsert
	$(WALDEN) bench tables

# The headline campaign: randomized power-loss states for ten minutes on
# both cores, every state checked against the LMDB oracle (crashtest/).
crashtest-long: all
	$(WALDEN) crashtest --workload random --fault power --threads 2 --minutes 10 --jobs 2 \
	  $(if $(wildcard /dev/shm/.),--dir /dev/shm)

# ---- fuzzing (fuzz/README.md) ----------------------------------------------
# Longest input libFuzzer makes per target: a segment is 64 KiB, a page up
# to 64 KiB, an index file 16 pages of 4 KiB.
FUZZ_MAXLEN_wal_record := 20000
FUZZ_MAXLEN_wal_segment := 65537
FUZZ_MAXLEN_page := 65537
FUZZ_MAXLEN_btree_check := 65537
FUZZ_MAXLEN_undo_chain := 65537
FUZZ_MAXLEN_control := 1024

$(O)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_UTIL_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_UTIL_OBJ) $(STATIC_LIB) $(LIBS)

$(O)/fuzz/seed: fuzz/seed.c $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

fuzz-build: $(FUZZ_BIN)

# Each target runs FUZZ_SECONDS on fuzz/corpus/T (read only); what it finds
# goes to build/fuzz/found/T, crashes to build/fuzz/crashes/.
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build MODE=fuzz
	@mkdir -p build/fuzz/crashes
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/found/$$t; \
	  echo "=== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  TMPDIR=$${TMPDIR:-/tmp} build/fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=$(FUZZ_MAXLEN_$$t) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crashes/$$t- \
	    build/fuzz/found/$$t fuzz/corpus/$$t || exit 1; \
	done

# Replaces fuzz/corpus/T by the smallest set of fuzz/corpus/T and
# build/fuzz/found/T that keeps every edge (-merge=1 -use_counters=0);
# crash-* reproducers are always kept.
fuzz-merge:
	@$(MAKE) --no-print-directory fuzz-build MODE=fuzz
	@for t in $(FUZZ_TARGETS); do \
	  rm -rf build/fuzz/min/$$t && mkdir -p build/fuzz/min/$$t build/fuzz/found/$$t && \
	  TMPDIR=$${TMPDIR:-/tmp} build/fuzz/fuzz/fuzz_$$t -merge=1 -use_counters=0 \
	    build/fuzz/min/$$t fuzz/corpus/$$t build/fuzz/found/$$t || exit 1; \
	  cp fuzz/corpus/$$t/crash-* build/fuzz/min/$$t/ 2>/dev/null; \
	  rm -rf fuzz/corpus/$$t && cp -r build/fuzz/min/$$t fuzz/corpus/$$t; \
	done

fuzz-seed: deps
	@$(MAKE) --no-print-directory $(O)/fuzz/seed
	$(O)/fuzz/seed fuzz/corpus

# ---- install ----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/walden.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libwalden.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libwalden.so.$(SOMAJOR)
	ln -sf libwalden.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libwalden.so
	install -m 644 $(O)/walden.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(WALDEN) $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/walden.h \
	  $(DESTDIR)$(PREFIX)/lib/libwalden.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/walden.pc $(DESTDIR)$(PREFIX)/bin/walden

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BIN_OBJ:.o=.d) $(TESTLIB_OBJ:.o=.d) $(IOLOOP_OBJ:.o=.d) \
  $(CRASHTEST_OBJ:.o=.d) $(FUZZ_UTIL_OBJ:.o=.d)
