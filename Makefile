# corral - GNU make with pkg-config.  `make check` is what CI runs.

CC ?= cc
PKGS := jansson sqlite3 libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libseccomp 2>/dev/null)
# --static: the binary is linked with -static-pie (below), so the archives'
# own dependencies (libsqlite3.a needs -lm -lz) must be named too.
PKG_LIBS := $(shell pkg-config --static --libs $(PKGS) 2>/dev/null)
SECCOMP_LIBS := $(shell pkg-config --libs libseccomp 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wno-unused-parameter -Werror=implicit-function-declaration -Werror=format-security \
	-Werror=incompatible-pointer-types -Werror=int-conversion -Werror=return-type
OPT ?= -O2 -g
CFLAGS ?=
override CFLAGS += -std=gnu11 $(OPT) $(WARN) -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	-Isrc $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS)
# Everything that links libcorral is bound at load (full RELRO): a
# sandbox's init drops its copy of the supervisor's anonymous memory, the
# dynamic loader's data with it, so no symbol may be left to bind lazily.
override LDFLAGS += -Wl,-z,relro,-z,now

BUILD ?= build
# seccomp.c (the policy, compiled with libseccomp) runs at build time in
# seccomp-gen; the binary carries the result and does not load libseccomp.
LIB_SRCS := $(wildcard src/util/*.c) $(wildcard src/store/*.c) $(filter-out src/sandbox/seccomp-gen.c src/sandbox/seccomp.c,$(wildcard src/sandbox/*.c))
LIB_SRCS += $(wildcard src/secrets/*.c)
LIB_SRCS += $(wildcard src/proxy/*.c)
GEN_SRCS := src/sandbox/seccomp-gen.c src/sandbox/seccomp.c src/util/util.c src/util/error.c
# The network side (the HTTP server with libmicrohttpd, the `exec` client
# with libcurl) is built into a second executable, corral-net, which
# `corral serve` and `corral exec` run in their place.  Linking those
# libraries (and the TLS stacks they pull in: 35 shared objects) into
# corral itself would make every `corral run` load them: measured, 8.7 ms
# instead of 3.6 for a trivial run.
NET_CLI_SRCS := src/cli-serve.c $(wildcard src/cli-exec.c)
NET_SRCS := $(wildcard src/server/*.c) $(wildcard src/egress/*.c) $(NET_CLI_SRCS)
CLI_SRCS := src/main.c $(filter-out $(NET_CLI_SRCS),$(wildcard src/cli-*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
NET_OBJS := $(NET_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/src/main-net.o
NET_PKGS := libmicrohttpd libcurl
NET_CFLAGS := $(shell pkg-config --cflags $(NET_PKGS) 2>/dev/null)
NET_LIBS := $(shell pkg-config --libs $(NET_PKGS) jansson sqlite3 libsodium 2>/dev/null) -lhttp_parser -lm -lpthread
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER := $(BUILD)/tests/sandbox-helper
CONCURRENT := $(BUILD)/tests/concurrent

PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all deps check unit integration asan fuzz bench clean format serve

all: $(BUILD)/corral $(BUILD)/corral-net

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(NET_SRCS:%.c=$(BUILD)/obj/%.o): override CFLAGS += $(NET_CFLAGS)

# main.c again, with the network commands run in-process.
$(BUILD)/obj/src/main-net.o: src/main.c $(wildcard src/cli-exec.c)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NET_CFLAGS) -DCORRAL_NET $(if $(wildcard src/cli-exec.c),-DCORRAL_HAVE_EXEC) -MMD -MP -c $< -o $@

# The seccomp policy is compiled by libseccomp at build time and embedded.
$(BUILD)/seccomp-gen: $(GEN_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(GEN_SRCS) $(SECCOMP_LIBS)

$(BUILD)/gen/seccomp-bpf.h: $(BUILD)/seccomp-gen
	@mkdir -p $(dir $@)
	$(BUILD)/seccomp-gen > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/src/sandbox/seccomp-embedded.o: override CFLAGS += -I$(BUILD)/gen
$(BUILD)/obj/src/sandbox/seccomp-embedded.o: $(BUILD)/gen/seccomp-bpf.h

$(BUILD)/libcorral.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The binary is linked statically (as a PIE): without the dynamic loader a
# `corral run` starts about 0.3 ms sooner, a tenth of a whole sandbox.
# Sanitizer builds link dynamically (STATIC=).
STATIC ?= -static-pie
$(BUILD)/corral: $(CLI_OBJS) $(BUILD)/libcorral.a
	$(CC) $(CFLAGS) $(STATIC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/corral-net: $(NET_OBJS) $(filter-out $(BUILD)/obj/src/main.o,$(CLI_OBJS)) $(BUILD)/libcorral.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(NET_LIBS)

# Unit tests link the library (and the CLI's pure parts).
$(BUILD)/tests/test-%: tests/unit/test-%.c tests/unit/unit.h $(BUILD)/libcorral.a $(BUILD)/obj/src/sandbox/seccomp.o $(filter-out $(BUILD)/obj/src/main.o,$(CLI_OBJS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(filter-out $(BUILD)/obj/src/main.o,$(CLI_OBJS)) $(BUILD)/obj/src/sandbox/seccomp.o $(BUILD)/libcorral.a $(LDLIBS) $(SECCOMP_LIBS)

# A static program the integration tests copy into sandboxes: escape
# attempts and probes that do not depend on what the image contains.
$(HELPER): tests/helper/sandbox-helper.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -static -o $@ $<

# Drives the library directly: many sandboxes from one runtime.
$(CONCURRENT): tests/integration/concurrent.c $(BUILD)/libcorral.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libcorral.a $(LDLIBS)

# The credential broker end to end in one process: the egress service and
# broker, a local upstream on a thread, libcurl as the sandbox's client.
# `make egress-test` builds and runs it alone; `make unit` runs it too.
EGRESS_TEST := $(BUILD)/tests/egress-broker
EGRESS_OBJS := $(filter $(BUILD)/obj/src/egress/%.o,$(NET_OBJS))
$(EGRESS_TEST): tests/egress/test-broker.c tests/unit/unit.h $(EGRESS_OBJS) $(BUILD)/libcorral.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NET_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(EGRESS_OBJS) \
		$(BUILD)/libcorral.a $(NET_LIBS)

.PHONY: egress-test
egress-test: $(EGRESS_TEST)
	$(EGRESS_TEST)

deps:
	scripts/install-deps

check: deps
	$(MAKE) all $(UNIT_BINS) $(EGRESS_TEST) $(HELPER) $(CONCURRENT)
	$(MAKE) unit
	$(MAKE) integration

# Every unit binary runs, then the target fails if any did.
unit: $(UNIT_BINS) $(EGRESS_TEST)
	@fail=0; for t in $(UNIT_BINS) $(EGRESS_TEST); do $$t || fail=1; done; exit $$fail

integration: $(BUILD)/corral $(HELPER) $(CONCURRENT)
	CORRAL=$(abspath $(BUILD)/corral) HELPER=$(abspath $(HELPER)) CONCURRENT=$(abspath $(CONCURRENT)) \
		$(PYTEST) -q -p no:cacheprovider tests/integration

# Address and undefined-behaviour sanitizers over the unit tests and a
# subset of the integration tests.
asan:
	$(MAKE) BUILD=build-asan STATIC= OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
		LDFLAGS="-fsanitize=address,undefined" all $(UNIT_BINS:$(BUILD)/%=build-asan/%) \
		build-asan/tests/egress-broker build-asan/tests/sandbox-helper
	@fail=0; for t in $(UNIT_BINS:$(BUILD)/%=build-asan/%) build-asan/tests/egress-broker; do \
		$$t || fail=1; done; exit $$fail
	CORRAL=$(abspath build-asan/corral) HELPER=$(abspath build-asan/tests/sandbox-helper) \
		ASAN_OPTIONS=detect_leaks=1 $(PYTEST) -q -p no:cacheprovider tests/integration -k "not concurrent"

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz-%.c,build-fuzz/fuzz-%,$(wildcard tests/fuzz/fuzz-*.c))
# The proxy's request parser is pure and needs only libhttp_parser.
FUZZ_SRCS := $(LIB_SRCS) $(filter-out src/main.c,$(CLI_SRCS)) src/egress/request.c
build-fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_SRCS) $(BUILD)/gen/seccomp-bpf.h
	@mkdir -p build-fuzz
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) -o $@ $< \
		$(FUZZ_SRCS) $(PKG_LIBS) -lhttp_parser

# Each fuzz target runs for FUZZ_SECONDS (default 30) from its seed corpus.
FUZZ_SECONDS ?= 30
fuzz: $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do \
		n=$${f##*/fuzz-}; mkdir -p build-fuzz/corpus-$$n; \
		$$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/ \
			build-fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

# corral on its embedded defaults: SQLite, the host-composed image, state
# in ./corral-data, http://127.0.0.1:8080.
serve: deps
	$(MAKE) all
	$(BUILD)/corral serve --listen 127.0.0.1:8080 --state-dir ./corral-data

bench: all
	bench/run.sh $(abspath $(BUILD)/corral)
	bench/api.sh $(abspath $(BUILD)/corral)
	bench/egress.sh $(abspath $(BUILD)/corral)

format:
	clang-format -i src/*.c src/*/*.c src/*.h src/*/*.h

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
