# The protobuf schemas in proto/*.proto, compiled to C with protoc-c and
# archived into libflotilla.a; plus the gRPC C core on the link line for
# lib/rpc.c.  Included at the end of the top-level Makefile.
#
# For each proto/NAME.proto this makes, under $(BUILD)/gen/proto:
#   NAME.pb-c.h NAME.pb-c.c  messages and enums (#include "proto/NAME.pb-c.h")
#   NAME.rpc.h               method paths (#include "proto/NAME.rpc.h"):
#                            #define NAME_RPC_METHOD "/package.Service/Method"
# Generated files live only under $(BUILD) and are never committed.
#
# protoc-c is given a copy of the schema without its `service` blocks
# ($(BUILD)/gen/proto-src): the service stubs it would emit are for
# protobuf-c-rpc, which flotilla does not use (lib/rpc dispatches on the
# method path from NAME.rpc.h), and protoc-c 1.4 cannot compile a service
# with a method named Init (the method's stub collides with the service's
# own NAME__init function).  The filter drops from a line starting
# "service " to the next line starting "}", so write services that way.
#
# The generated C compiles cleanly under our full warning set, so it gets
# the same CFLAGS as everything else.

PROTOC_C ?= protoc-c

PROTO_SRC := $(wildcard proto/*.proto)
PROTO_GEN := $(BUILD)/gen/proto
PROTO_C := $(PROTO_SRC:proto/%.proto=$(PROTO_GEN)/%.pb-c.c)
PROTO_H := $(PROTO_SRC:proto/%.proto=$(PROTO_GEN)/%.pb-c.h) \
	$(PROTO_SRC:proto/%.proto=$(PROTO_GEN)/%.rpc.h)
PROTO_OBJ := $(PROTO_SRC:proto/%.proto=$(BUILD)/obj/gen/proto/%.pb-c.o)

# One protoc-c run writes both files (a grouped pattern rule).
$(PROTO_GEN)/%.pb-c.c $(PROTO_GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(PROTO_GEN) $(BUILD)/gen/proto-src
	awk '/^service[ \t]/ { skip = 1 } !skip { print } skip && /^}/ { skip = 0 }' \
	    $< >$(BUILD)/gen/proto-src/$*.proto
	$(PROTOC_C) -I$(BUILD)/gen/proto-src --c_out=$(PROTO_GEN) \
	    $(BUILD)/gen/proto-src/$*.proto

$(PROTO_GEN)/%.rpc.h: proto/%.proto proto/rpc-paths.awk
	@mkdir -p $(PROTO_GEN)
	awk -v name=$* -f proto/rpc-paths.awk $< >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/proto/%.pb-c.o: $(PROTO_GEN)/%.pb-c.c $(PROTO_GEN)/%.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The archive recipe uses $^, so these join libflotilla.a.
$(LIBFL): $(PROTO_OBJ)

# Any of our objects may include a generated header: none is compiled
# before all of them exist (order-only, so regenerating them does not
# rebuild everything; the -MMD dependencies take over after the first
# build).
PROTO_USERS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/*.c \
	manager/*.c tests/*.c tests/unit/*.c tests/helpers/*.c bench/*.c \
	plugin-*/*.c plugin-*/*/*.c))
$(PROTO_USERS): | $(PROTO_H)

# Naming the generated sources keeps make from deleting them as
# intermediate files.
.PHONY: proto
proto: $(PROTO_C) $(PROTO_H)

# lib/rpc.c uses the gRPC C core.  The pkg-config --libs of grpc lists
# dozens of abseil libraries that only the C++ side needs; libgrpc and libgpr
# are enough for the C API.  Added to PKG_LIBS rather than LDLIBS so the
# fuzz targets, which compile lib/*.c and link with $(PKG_LIBS), get them
# too; LDLIBS takes PKG_LIBS as it is when a recipe runs.  With the
# Makefile's -Wl,--as-needed only the programs that use lib/rpc.o keep them.
PKG_LIBS += -lgrpc -lgpr
