# libsako — build, test, install. Honours CC, CFLAGS, LDFLAGS, PREFIX, DESTDIR.
.SUFFIXES:

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build

VERSION_MAJOR := $(shell sed -n 's/^\#define SAKO_VERSION_MAJOR \([0-9]*\).*/\1/p' include/sako.h)
VERSION       := $(shell sed -n 's/^\#define SAKO_VERSION_STRING "\(.*\)".*/\1/p' include/sako.h)

SQLITE_CFLAGS := $(shell pkg-config --cflags sqlite3)
SQLITE_LIBS   := $(shell pkg-config --libs sqlite3)
CHECK_CFLAGS  := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS    := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)

# Flags the build needs whatever the user passes in CFLAGS.
SAKO_CFLAGS := -std=c99 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -fvisibility=hidden \
               -Iinclude -Ilibsako $(SQLITE_CFLAGS)
SAKO_LIBS   := $(SQLITE_LIBS) -lm -lpthread

LIB_SRC  := $(wildcard libsako/*.c)
LIB_OBJ  := $(LIB_SRC:libsako/%.c=$(BUILD)/obj/%.o)
LIB_HDR  := include/sako.h $(wildcard libsako/*_internal.h)
TEST_SRC := $(wildcard tests/check_*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)

STATIC := $(BUILD)/libsako.a
SHARED := $(BUILD)/libsako.so.$(VERSION)
SONAME := libsako.so.$(VERSION_MAJOR)

all: $(STATIC) $(SHARED) $(BUILD)/libsako.pc

$(BUILD)/obj/%.o: libsako/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(SAKO_CFLAGS) $(CFLAGS) -c -o $@ $<

$(STATIC): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(CFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJ) $(SAKO_LIBS)
	ln -sf libsako.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libsako.so.$(VERSION) $(BUILD)/libsako.so

$(BUILD)/libsako.pc: libsako.pc.in include/sako.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' libsako.pc.in > $@

# ---------------------------------------------------------------- tests
$(BUILD)/check_sako: $(TEST_SRC) tests/check_sako.h $(STATIC)
	$(CC) $(SAKO_CFLAGS) $(CHECK_CFLAGS) -Wno-error=unused-parameter $(CFLAGS) -o $@ $(TEST_SRC) \
	    $(STATIC) $(LDFLAGS) $(CHECK_LIBS) $(SAKO_LIBS)

check: $(BUILD)/check_sako
	SAKO_TEST_TMP=$(BUILD)/tmp $(BUILD)/check_sako
	sh tests/layers.sh $(BUILD)/obj

# AddressSanitizer + UndefinedBehaviorSanitizer over the whole C suite.
asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" check

# ThreadSanitizer over the concurrency tests: the engine's stress test (threads
# suite), the pruned sampler's concurrent readers (pruned/structure), the retrain
# policy's status readers against a writer (policy/concurrent), the online backup
# taken while a writer runs (backup) and readers racing decay's epochs and rebases
# (decay/threads, with a retrain and a background refresh across rebases),
# compactions while threads update and recommend (compact/threads), model
# versions activated back and forth while readers recommend (versions/threads), and
# matrix-factorisation trainings with 4 threads each, two at once (mf/threads).
TSAN_FLAGS := CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread"
tsan:
	$(MAKE) BUILD=build-tsan $(TSAN_FLAGS) build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=threads build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=pruned CK_RUN_CASE=structure build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=policy CK_RUN_CASE=concurrent build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=backup build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=decay CK_RUN_CASE=threads build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=compact CK_RUN_CASE=threads build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=versions CK_RUN_CASE=threads build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=factors CK_RUN_CASE=threads build-tsan/check_sako
	SAKO_TEST_TMP=build-tsan/tmp CK_RUN_SUITE=mf CK_RUN_CASE=threads build-tsan/check_sako

# ------------------------------------------------------------ benchmark
$(BUILD)/bench_sako: $(BENCH_SRC) $(STATIC)
	$(CC) $(SAKO_CFLAGS) -O3 -g -o $@ $(BENCH_SRC) $(STATIC) $(SAKO_LIBS)

bench: $(BUILD)/bench_sako
	$(BUILD)/bench_sako

# Stalls of recommend and durable updates during a retrain, 50k and 1M items with
# 10M events in the log (docs/benchmarks.md; ~10 min). STALL_ARGS=--quick: 50k, 1M events.
bench-stall: $(BUILD)/bench_sako
	nice $(BUILD)/bench_sako --only stall $(STALL_ARGS)
# The matrix factorisation: recommend with and without factors, the retrain's training
# time, the index's recall (docs/benchmarks.md; 50k and 1M items). FACTORS_ARGS=--quick: 50k.
bench-factors: $(BUILD)/bench_sako
	nice $(BUILD)/bench_sako --only factors $(FACTORS_ARGS)
# What an online backup costs writers (docs/benchmarks.md, "Online backup").
BACKUP_ARGS ?= 50000 2000000
$(BUILD)/backup_stall: tests/backup_stall.c $(STATIC)
	$(CC) $(SAKO_CFLAGS) -Ilibsako -O2 -g -o $@ tests/backup_stall.c $(STATIC) $(SAKO_LIBS)

bench-backup: $(BUILD)/backup_stall
	@mkdir -p $(BUILD)/tmp
	$(BUILD)/backup_stall $(BACKUP_ARGS) $(BUILD)/tmp
# What a log compaction costs writers and saves at open (docs/operations.md).
COMPACT_ARGS ?= 50000 2000000
$(BUILD)/compact_stall: tests/compact_stall.c $(STATIC)
	$(CC) $(SAKO_CFLAGS) -Ilibsako -O2 -g -o $@ tests/compact_stall.c $(STATIC) $(SAKO_LIBS)

bench-compact: $(BUILD)/compact_stall
	@mkdir -p $(BUILD)/tmp
	$(BUILD)/compact_stall $(COMPACT_ARGS) $(BUILD)/tmp
.PHONY: bench-compact
# Implicit ALS against implicit's, side by side, and fold-in (docs/benchmarks.md, "Matrix
# factorisation"; ~1 h on 2 shared CPUs at the default 1M x 100k x 50M generated matrix).
# MF_ARGS="--synthetic 200000,20000,10000000" for a smaller generated matrix.
MF_ARGS ?=
$(BUILD)/mf_foldin_bench: tests/mf_foldin_bench.c $(STATIC)
	$(CC) $(SAKO_CFLAGS) -O2 -g -o $@ tests/mf_foldin_bench.c $(STATIC) $(SAKO_LIBS)

bench-mf: venv $(BUILD)/mf_foldin_bench
	$(BUILD)/mf_foldin_bench 200 64 3000
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) bindings/python/bench/mf_speed.py $(MF_ARGS)
.PHONY: bench-mf

# ------------------------------------------------------------- examples
$(BUILD)/cold_start: examples/cold_start.c $(STATIC)
	$(CC) $(SAKO_CFLAGS) $(CFLAGS) -o $@ examples/cold_start.c $(STATIC) $(SAKO_LIBS)

example: $(BUILD)/cold_start
	$(BUILD)/cold_start

# -------------------------------------------------------------- install
install: all
	mkdir -p $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	cp include/sako.h $(DESTDIR)$(PREFIX)/include/
	cp $(STATIC) $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libsako.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf libsako.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libsako.so
	cp $(BUILD)/libsako.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

# ------------------------------------------------ crash test (kill -9)
# The crash test links its own copy of the library, built in $(BUILD)/kp/ with the
# named kill points on (-DSAKO_KILL_POINTS: SIGKILL where SAKO_KILL_AT names the
# point) and a checkpoint every 2,000 events instead of 500,000, so that checkpoints
# are killed too. The list of points is read from the SAKO_KILL_POINT calls in
# libsako/*.c: a point added there is tested without touching the test.
KP_CFLAGS := -DSAKO_KILL_POINTS -DSAKO_CHECKPOINT_EVENTS=2000 -DSAKO_CHECKPOINT_ROWS=600
KP_OBJ    := $(LIB_SRC:libsako/%.c=$(BUILD)/kp/obj/%.o)

$(BUILD)/kp/obj/%.o: libsako/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(SAKO_CFLAGS) $(KP_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/kp/libsako.a: $(KP_OBJ)
	rm -f $@
	ar rcs $@ $(KP_OBJ)

$(BUILD)/kp/points: $(LIB_SRC)
	@mkdir -p $(@D)
	grep -h 'SAKO_KILL_POINT(' $(LIB_SRC) | grep -o '"[a-z0-9_]*\.[a-z0-9_.]*"' | tr -d '"' | sort -u > $@

# Operations of the workload that exist only once the library has them.
KILL9_FEATURES := $(if $(shell grep -lw sako_version_activate include/sako.h),-DKILL9_VERSIONS) \
                  $(if $(shell grep -lw sako_compact include/sako.h),-DKILL9_COMPACT)

$(BUILD)/kill9: tests/crash/kill9.c $(BUILD)/kp/libsako.a $(BUILD)/kp/points
	$(CC) $(SAKO_CFLAGS) $(KILL9_FEATURES) $(CFLAGS) -o $@ tests/crash/kill9.c $(BUILD)/kp/libsako.a \
	    $(LDFLAGS) $(SAKO_LIBS)

# The short run (in `make test`, about two minutes): KILLS kills at random moments
# and every named point POINT_KILLS times. The long run: `make crashtest-long`
# (docs/operations.md, "Crash safety", has its last figures).
KILLS       ?= 40
POINT_KILLS ?= 3
crashtest: $(BUILD)/kill9 $(BUILD)/kp/points
	$(BUILD)/kill9 -r $(KILLS) -p $(BUILD)/kp/points -n $(POINT_KILLS) -d $(BUILD)/tmp

LONG_KILLS       ?= 500
LONG_POINT_KILLS ?= 50
crashtest-long: $(BUILD)/kill9 $(BUILD)/kp/points
	$(BUILD)/kill9 -r $(LONG_KILLS) -p $(BUILD)/kp/points -n $(LONG_POINT_KILLS) -d $(BUILD)/tmp

# ------------------------------------------ fault injection (tests/faults)
# Allocation failures (the C allocator through --wrap, SQLite's through its config),
# I/O failures and power loss (a VFS shim) over every public function
# (docs/reliability.md). `make faults`: the short sweep under ASan+UBSan (part of
# `make test`); `make faults-full`: every fault point, persistent faults too.
FAULTS_SRC  := $(wildcard tests/faults/*.c)
FAULTS_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=posix_memalign \
               -Wl,--wrap=open,--wrap=fopen,--wrap=fread,--wrap=ferror,--wrap=fclose,--wrap=stat \
               -Wl,--wrap=lstat,--wrap=fstat,--wrap=access,--wrap=flock,--wrap=fsync,--wrap=link \
               -Wl,--wrap=mkstemp
ASAN_FLAGS  := CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
               LDFLAGS="-fsanitize=address,undefined"
FAULTS_ARGS ?=

$(BUILD)/faults: $(FAULTS_SRC) $(wildcard tests/faults/*.h) $(STATIC)
	$(CC) $(SAKO_CFLAGS) -Itests/faults $(CFLAGS) -o $@ $(FAULTS_SRC) $(STATIC) $(LDFLAGS) \
	    $(FAULTS_WRAP) $(SAKO_LIBS)

faults:
	$(MAKE) BUILD=build-asan $(ASAN_FLAGS) build-asan/faults
	build-asan/faults $(FAULTS_ARGS) build-asan/tmp/faults

faults-full:
	$(MAKE) BUILD=build-asan $(ASAN_FLAGS) build-asan/faults
	build-asan/faults --full $(FAULTS_ARGS) build-asan/tmp/faults-full

# ------------------------------------------------- fuzzing (tests/fuzz)
# libFuzzer targets built with clang: fuzz_api (call sequences on one engine),
# fuzz_open (arbitrary bytes as a database file), fuzz_eventlog (a logged batch's row).
# Seeds are generated by tests/fuzz/seeds.c; what a run finds accumulates in
# build-fuzz/corpus/<target>. make fuzz FUZZ_SECONDS=600 runs each target that long
# (FUZZ_TARGETS="open" for one); crashes are written as build-fuzz/crash-* files.
FUZZ_TARGETS ?= api open eventlog
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(LIB_SRC) $(LIB_HDR)
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" \
	    LDFLAGS="-fsanitize=address,undefined" build-fuzz/libsako.a
	clang $(SAKO_CFLAGS) -Itests/fuzz $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< \
	    build-fuzz/libsako.a $(SAKO_LIBS)

$(BUILD)/fuzz_seeds: tests/fuzz/seeds.c $(STATIC)
	$(CC) $(SAKO_CFLAGS) $(CFLAGS) -o $@ tests/fuzz/seeds.c $(STATIC) $(LDFLAGS) $(SAKO_LIBS)

fuzz-deps:
	SAKO_WITH_CLANG=1 sh tests/install-deps.sh

fuzz-build: fuzz-deps
	$(MAKE) $(FUZZ_TARGETS:%=build-fuzz/fuzz_%) $(BUILD)/fuzz_seeds

fuzz: fuzz-build
	rm -rf build-fuzz/seeds && $(BUILD)/fuzz_seeds build-fuzz/seeds
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build-fuzz/corpus/$$t; \
	    case $$t in open) maxlen=131072;; *) maxlen=4096;; esac; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$maxlen \
	        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
	        build-fuzz/corpus/$$t build-fuzz/seeds/$$t > build-fuzz/fuzz_$$t.log 2>&1 \
	        || { tail -60 build-fuzz/fuzz_$$t.log; exit 1; }; \
	    grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss" build-fuzz/fuzz_$$t.log; \
	done

# The short fuzz run of `make test`, without clang: each target's seeds and
# FUZZ_REPLAY_MUTATIONS fixed-seed byte mutations of each (tests/fuzz/replay.c), built
# with $(CC) under ASan+UBSan.
FUZZ_REPLAY_MUTATIONS ?= 300
build-asan/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(wildcard tests/fuzz/*.h) build-asan/libsako.a
	$(CC) $(SAKO_CFLAGS) -Itests/fuzz -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	    -fno-sanitize-recover=all -o $@ $< tests/fuzz/replay.c build-asan/libsako.a $(SAKO_LIBS)

fuzz-replay:
	$(MAKE) BUILD=build-asan $(ASAN_FLAGS) build-asan/libsako.a build-asan/fuzz_seeds
	$(MAKE) build-asan/replay_api build-asan/replay_open build-asan/replay_eventlog
	rm -rf build-asan/fuzz-seeds && build-asan/fuzz_seeds build-asan/fuzz-seeds
	@for t in api open eventlog; do printf "replay_$$t: "; \
	    build-asan/replay_$$t $(FUZZ_REPLAY_MUTATIONS) build-asan/fuzz-seeds/$$t \
	        $$(test -d tests/fuzz/regressions/$$t && echo tests/fuzz/regressions/$$t) || exit 1; done

# atheris over the service's request bodies (bindings/python/fuzz/fuzz_http.py); atheris
# is installed into the venv here only, not by `make venv`.
fuzz-python: venv
	$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install --quiet 'atheris>=2.3'
	$(PY) bindings/python/fuzz/fuzz_http.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

# ------------------------------------------------ the two README commands
VENV ?= .venv
PY   := $(VENV)/bin/python

deps:
	sh tests/install-deps.sh

venv: deps
	bash bindings/python/setup_venv.sh $(abspath $(VENV))

python: venv

# The main job: the service on 127.0.0.1:$(PORT) over var/sako.db (created with the
# demo catalog on first start). API keys come from SAKO_CLIENT_KEYS/SAKO_ADMIN_KEYS,
# or from var/api-keys, generated on first start and printed.
PORT ?= 8000
serve: venv
	@mkdir -p var
	@if [ -z "$${SAKO_CLIENT_KEYS:-}$${SAKO_ADMIN_KEYS:-}" ] && [ ! -f var/api-keys ]; then \
	    umask 077; $(PY) -c 'import secrets; print("client:" + secrets.token_urlsafe(24)); print("admin:" + secrets.token_urlsafe(24))' > var/api-keys; \
	fi
	@if [ -f var/api-keys ] && [ -z "$${SAKO_CLIENT_KEYS:-}$${SAKO_ADMIN_KEYS:-}" ]; then \
	    client=$$(sed -n 's/^client://p' var/api-keys | head -1); \
	    echo ""; echo "libsako service on http://127.0.0.1:$(PORT)  (API docs: http://127.0.0.1:$(PORT)/docs)"; \
	    echo "keys in var/api-keys. Try:"; \
	    echo "  curl -s -X POST http://127.0.0.1:$(PORT)/v1/recommendations -H 'X-API-Key: '$$client -H 'Content-Type: application/json' -d '{\"user_id\": 1, \"k\": 5}'"; \
	    echo ""; \
	    exec $(VENV)/bin/sako serve --db var/sako.db --port $(PORT) --keys-file var/api-keys; \
	else \
	    exec $(VENV)/bin/sako serve --db var/sako.db --port $(PORT); \
	fi

# The whole test suite: C (plain, ASan+UBSan, TSan), fault injection (short sweep),
# kill -9 crash test, Python binding, service and evaluation-harness tests.
test: deps
	$(MAKE) all check
	$(MAKE) asan
	$(MAKE) faults
	$(MAKE) fuzz-replay
	$(MAKE) tsan
	$(MAKE) crashtest
	bash bindings/python/setup_venv.sh $(abspath $(VENV))
	$(PY) -m pytest -q -p no:cacheprovider bindings/python/tests

# The long convergence test of replicated mode (docs/operations.md, "Replication"): the
# bounded one of `make test` with more clients, batches and kills.
CONVERGE_BATCHES ?= 3000
CONVERGE_CLIENTS ?= 6
CONVERGE_KILLS   ?= 12
converge-long: venv
	SAKO_CONVERGE_BATCHES=$(CONVERGE_BATCHES) SAKO_CONVERGE_CLIENTS=$(CONVERGE_CLIENTS) \
	SAKO_CONVERGE_KILLS=$(CONVERGE_KILLS) $(PY) -m pytest -q -s -p no:cacheprovider \
	    bindings/python/tests/test_replication.py -k convergence

# The evaluation harness (docs/evaluation.md and docs/figures/, ~6-12 min here).
eval: venv
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) -m sako.eval all --out docs

# The chronological replay of a real grocery year (dunnhumby's Complete Journey, issue 8's
# protocol): every policy, both scoring splits, NDCG@20 by month. The default policies include
# three libsako 0.2 engines (0.1 rule, population-only, personal): ~1 h on 2 shared CPUs, most
# of it libsako's early updates (docs/journey/summary.md); the weekly ALS and the discover mode
# by key (JOURNEY_ARGS="--policies als"), runs side by side joined with --merge.
# JOURNEY_ARGS=--quick for a 400-household run.
JOURNEY_ARGS ?=
eval-journey: venv
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) -m sako.eval journey --out docs/journey $(JOURNEY_ARGS)

# Decay and the retrain policy on the Complete Journey (issue 9 item 9; docs/journey/lifecycle.md):
# a grid tuned on the quick subset's odd ids, reported on the full year's even ids (~25 min here).
eval-lifecycle: venv
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) -m sako.eval.lifecycle --out docs/journey

# Matrix factors: quality (issue 10; docs/journey/mf_quality.md, docs/evaluation.md section 8):
# reruns the report with the parameters chosen on the tuning splits (kept in
# docs/journey/mf_quality.json by the tuning commands `python -m sako.eval.mfeval journey-tune
# --households 200 --jobs 2` and `... ranking-tune`): the Complete Journey quick subset's even
# ids (MF_HOUSEHOLDS households; 0 = the full year) and ml-100k / Instacart's even users, seeds
# 1-3 (~45 min on 2 shared CPUs at 200 households).
MF_HOUSEHOLDS ?= 200
MF_JOBS ?= 3
eval-mf: venv
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) -m sako.eval.mfeval report --seeds 1 2 3 --households $(MF_HOUSEHOLDS) --jobs $(MF_JOBS) --out docs/journey

# Decay and retraining against a simulated preference shift (docs/evaluation.md section 6).
eval-drift: venv
	$(PY) -m pip install --quiet -r bindings/python/requirements-eval.txt
	$(PY) -m sako.eval.drift --out docs

# The Python/service benchmark (docs/benchmarks-python.md, ~4 min, needs wrk).
bench-python: venv
	SAKO_WITH_WRK=1 sh tests/install-deps.sh
	bash bindings/python/bench/run.sh

# Line and branch coverage of libsako/*.c (gcov): by the C suite, then with the fault
# sweep added (tests/faults: the short sweep's modes, but at most ~COVERAGE_FAULT_POINTS
# fault points per step and mode instead of 40, so that the later allocations of each
# call fail too; the sweep took 22 min at load 13-20 on 2 vCPUs). Tables in build-cov/coverage-{check,faults}.txt.
# SAKO_MF_NO_CLONES: one copy of the matrix kernels, not an AVX2 and a default clone
# of which a machine runs one (the other's branches could never be taken).
COVERAGE_FAULT_POINTS ?= 200
coverage:
	rm -f build-cov/obj/*.gcda
	$(MAKE) BUILD=build-cov CFLAGS="-O0 -g --coverage -DSAKO_MF_NO_CLONES" LDFLAGS="--coverage" \
	    check build-cov/faults
	sh tests/coverage_table.sh build-cov/obj | tee build-cov/coverage-check.txt
	build-cov/faults --no-powerloss --points $(COVERAGE_FAULT_POINTS) build-cov/tmp/faults > build-cov/faults.log
	sh tests/coverage_table.sh build-cov/obj | tee build-cov/coverage-faults.txt

clean:
	rm -rf build build-asan build-tsan build-cov build-fuzz

.PHONY: converge-long bench-replication
# Replicated mode's figures (docs/benchmarks-python.md, "Replication"; ~6 min, needs wrk).
bench-replication: venv
	SAKO_WITH_WRK=1 sh tests/install-deps.sh
	$(PY) bindings/python/bench/replication.py $(REPL_BENCH_ARGS)
.PHONY: all check asan tsan bench bench-stall bench-factors bench-backup example install clean crashtest crashtest-long faults faults-full fuzz fuzz-replay fuzz-build fuzz-deps fuzz-python deps venv python serve test coverage eval eval-journey eval-lifecycle eval-drift eval-mf bench-python
