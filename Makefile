# flotilla: GNU make, no autotools.  Everything is built under $(BUILD).
#
#   make            build/bin/flotilla, the plugins and the test programs
#   make deps       install missing Debian packages (root, apt-get)
#   make check      deps + build + every test (also under ASan/UBSan)
#   make asan       the same tree built with ASan/UBSan, in build/asan
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench      benchmarks, printed as ratios against a baseline
#   make demo       the end-to-end demo: a pipeline of ten jobs on a local fleet
#   make helper-image  the helper image tar (build/helper/)
#   make deb, rpm, packages  packages with the systemd unit (build/packages/)
#
# Sources are found by wildcard: a new lib/x.c joins libflotilla.a, a new
# manager/x.c joins the manager, a new tests/unit/test_x.c becomes the unit
# test build/tests/unit/test_x, a new tests/fuzz/fuzz_x.c a fuzz target.

BUILD ?= build
SAN ?=
CC ?= cc
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wimplicit-fallthrough -Werror
HARDEN = -D_FORTIFY_SOURCE=2 -fstack-protector-strong
OPT = -O2 -g
ifneq ($(SAN),)
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=$(SAN) -fno-sanitize-recover=undefined
HARDEN = -fstack-protector-strong
SANLD = -fsanitize=$(SAN)
endif

PKGS = jansson libevent libcurl libssh2 inih libxml-2.0 openssl libarchive libprotobuf-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

CPPFLAGS += -D_GNU_SOURCE -DFL_VERSION='"$(VERSION)"' -DFL_GIT_REV='"$(GIT_REV)"' \
	-Ilib -Imanager -I$(BUILD)/gen
CFLAGS += -std=c11 $(OPT) $(WARN) $(HARDEN) $(PKG_CFLAGS) -MMD -MP
LDFLAGS += -Wl,--as-needed $(SANLD)
LDLIBS += $(PKG_LIBS) -lm

LIB_SRC := $(wildcard lib/*.c)
MGR_SRC := $(filter-out manager/main.c,$(wildcard manager/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
TESTHELP_SRC := $(wildcard tests/helpers/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MGR_OBJ := $(MGR_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
TESTHELP_BIN := $(TESTHELP_SRC:tests/helpers/%.c=$(BUILD)/tests/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

LIBFL := $(BUILD)/lib/libflotilla.a
LIBMGR := $(BUILD)/lib/libmanager.a
BINS := $(BUILD)/bin/flotilla

# Plugins: each plugin-NAME/ folder with C files is one program,
# build/bin/fleeting-plugin-NAME (plugin-gcp is fleeting-plugin-googlecompute,
# the official plugin's name), linked with libflotilla.a (the plugin SDK).
PLUGIN_DIRS := $(patsubst %/,%,$(dir $(wildcard plugin-*/*.c)))
PLUGIN_DIRS := $(sort $(PLUGIN_DIRS))
plugin_bin = $(BUILD)/bin/fleeting-plugin-$(if $(filter plugin-gcp,$(1)),googlecompute,$(1:plugin-%=%))
define plugin_rule
$(call plugin_bin,$(1)): $$(patsubst %.c,$$(BUILD)/obj/%.o,$$(wildcard $(1)/*.c)) $$(LIBFL)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(PLUGIN_DIRS),$(eval $(call plugin_rule,$(d))))
BINS += $(foreach d,$(PLUGIN_DIRS),$(call plugin_bin,$(d)))

# The helper program that runs inside the helper container (helper/*.c),
# and its image: a docker-save tar assembled from the build machine's own
# Debian packages (no registry, no Docker engine needed to build it).
HELPER_SRC := $(wildcard helper/*.c)
HELPER_LIB_SRC := $(filter-out helper/main.c,$(HELPER_SRC))
LIBHELPER := $(if $(HELPER_LIB_SRC),$(BUILD)/lib/libhelper.a)
HELPER_BIN := $(BUILD)/bin/flotilla-helper
HELPER_TAR := $(BUILD)/helper/flotilla-helper-$(VERSION).tar
ifneq ($(HELPER_SRC),)
BINS += $(HELPER_BIN)
endif
$(HELPER_BIN): $(BUILD)/obj/helper/main.o $(LIBHELPER) $(LIBFL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/lib/libhelper.a: $(HELPER_LIB_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

helper-image: $(HELPER_TAR)
$(HELPER_TAR): $(HELPER_BIN) helper/build-image.sh VERSION
	@mkdir -p $(dir $@)
	sh helper/build-image.sh $(HELPER_BIN) $@ $(VERSION)

# The protobuf schemas (generated C joins libflotilla.a).
include proto/proto.mk

.PHONY: all deps check asan fuzz bench demo clean banned test unit-asan helper-image
.DEFAULT_GOAL := all

all: banned $(BINS) $(UNIT_BIN) $(TESTHELP_BIN) $(BUILD)/tests/toml-decoder

deps:
	@sh packaging/deps.sh

# The functions git's banned.h bans, refused at build time.
banned:
	@if grep -nE '(^|[^_a-zA-Z0-9.>])(strcpy|strcat|sprintf|vsprintf|gets|strncpy|strncat|strtok|asctime|ctime|gmtime|localtime)[ ]*\(' \
	    $$(find lib manager helper plugin-* tests bench -name '*.[ch]' 2>/dev/null); then \
		echo "banned function used (see above)" >&2; exit 1; fi

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBFL): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBMGR): $(MGR_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/flotilla: $(BUILD)/obj/manager/main.o $(LIBMGR) $(LIBFL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIBMGR) $(LIBHELPER) $(LIBFL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/helpers/%.o $(LIBMGR) $(LIBFL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/toml-decoder: $(BUILD)/obj/tests/toml-decoder.o $(LIBFL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets: clang, libFuzzer, ASan and UBSan, built from the sources
# directly so the normal build needs no clang.
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-D_GNU_SOURCE -DFL_VERSION='"$(VERSION)"' -DFL_GIT_REV='"$(GIT_REV)"' -Ilib -Imanager -I$(BUILD)/gen $(PKG_CFLAGS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(MGR_SRC) $(PROTO_C) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(MGR_SRC) $(PROTO_C) $(PKG_LIBS) -lm

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); corpus=$(BUILD)/fuzz/corpus-$$name; \
		mkdir -p $$corpus; \
		echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
		    -print_final_stats=1 $$corpus tests/fuzz/corpus/$$name \
		    >$(BUILD)/fuzz/$$name.log 2>&1 \
		    || { tail -40 $(BUILD)/fuzz/$$name.log; exit 1; }; \
		grep -E 'stat::number_of_executed_runs|Done' $(BUILD)/fuzz/$$name.log | head -2; \
	done

asan:
	$(MAKE) BUILD=build/asan SAN=address,undefined all

JOBS ?= 2
check: deps
	$(MAKE) -j$(JOBS) all $(if $(HELPER_SRC),helper-image)
	$(MAKE) -j$(JOBS) asan
	sh tests/run.sh --build $(BUILD) --asan build/asan

test: all
	sh tests/run.sh --build $(BUILD)

bench: all
	sh bench/run.sh --build $(BUILD)

demo: deps
	$(MAKE) -j$(JOBS) all helper-image
	sh tests/demo/run.sh $(BUILD)

# Packages (packaging/README.md): from the build's binaries and helper image.
PKG_OUT ?= $(BUILD)/packages
.PHONY: deb rpm packages
deb: $(BINS) $(HELPER_TAR)
	sh packaging/build-deb.sh $(VERSION) $(BUILD) $(PKG_OUT)
rpm: $(BINS) $(HELPER_TAR)
	sh packaging/build-rpm.sh $(VERSION) $(BUILD) $(PKG_OUT)
packages: deb rpm

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
