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

# AddressSanitizer + UndefinedBehaviorSanitizer over the whole C suite.
asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" check

# ThreadSanitizer over the suite (the concurrency stress test is the point).
tsan:
	$(MAKE) BUILD=build-tsan CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" check

# ------------------------------------------------------------ benchmark
$(BUILD)/bench_sako: $(BENCH_SRC) $(STATIC)
	$(CC) $(SAKO_CFLAGS) -O3 -g -o $@ $(BENCH_SRC) $(STATIC) $(SAKO_LIBS)

bench: $(BUILD)/bench_sako
	$(BUILD)/bench_sako

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

clean:
	rm -rf build build-asan build-tsan

.PHONY: all check asan tsan bench example install clean
