# souk: plain GNU Make with pkg-config, no configure step.
#   make            build the kit, every service and the souk command
#   make run        set up, build, seed, and run the platform (souk up)
#   make run-scale  the same in the scale-out mode: PostgreSQL, RabbitMQ, two replicas of each
#   make test       set up, build, run unit, black-box (in three modes) and browser tests
#   make browser-test  the storefront in Debian's chromium (playwright-core) on the real platform
#   make bench      run the benchmark suite (bench/RESULTS.md; QUICK=1 for a 2-minute subset)
#   make bench-db   a keyed read's latency and CPU, SQLite beside PostgreSQL (docs/db.md)
#   make test-deploy   deploy/ as CI checks it: schemas, the platform across hosts, kube play (root)
#   make deploy-check  build the container images offline and validate deploy/ (slow)
#   make SANITIZE=address,undefined test   the same tree with sanitizers, in build/san
#   make e2e EVENTS=kafka   the black-box suite with every service on kafka (or amqp)
#   make e2e RPC=rest       ... with the services calling each other over REST, not gRPC
#   make e2e MODE=scale     the same suite in the scale-out mode (PostgreSQL, replicas)

SANITIZE ?=
ifeq ($(SANITIZE),)
B := build
else
B := build/san
endif

CC ?= cc
PKGS := libmicrohttpd jansson sqlite3 libpq libcurl libsodium librhonabwy librabbitmq libprotobuf-c rdkafka
# gRPC core without TLS (calls between services are plain, like their HTTP; ~3 MB less
# RSS than libgrpc, docs/grpc.md); as-needed so that the supervisor does not load it
GRPC_LIBS := -Wl,--push-state,--as-needed -lgrpc_unsecure -lgpr -Wl,--pop-state
GEN := $(B)/gen/proto
CPPFLAGS := -Ilib/include -I$(GEN) -I$(B)/gen -D_GNU_SOURCE
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# the back-ends' client libraries, loaded with dlopen only in the mode that uses them
# (lib/dl_int.h): their headers are compiled against, the programs never link them, so
# a process in another mode maps neither them nor their OpenSSL (bench/profile-notes.md)
DL_PKGS := librabbitmq rdkafka libpq
LDLIBS := $(shell pkg-config --libs $(filter-out $(DL_PKGS),$(PKGS)) 2>/dev/null) $(GRPC_LIBS) -pthread
ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB := $(B)/libsouk.a

# gRPC: protoc-c turns the contracts (api/proto/souk/…, into libsouk_proto.a) and the
# kit's own protos (health, reflection, the descriptor reader, into libsouk.a) into C
# under $(GEN), and writes their descriptor sets for reflection and for test clients.
KIT_PROTO := api/proto/grpc/health/v1/health.proto \
  api/proto/grpc/reflection/v1alpha/reflection.proto lib/proto/descriptor_view.proto
API_PROTO := $(sort $(wildcard api/proto/souk/*/v1/*.proto))
proto_c = $(patsubst %.proto,$(GEN)/%.pb-c.c,$(patsubst api/proto/%,%,$(patsubst lib/proto/%,%,$(1))))
KIT_PB_C := $(call proto_c,$(KIT_PROTO)) $(GEN)/kit_desc.c
API_PB_C := $(call proto_c,$(API_PROTO)) $(GEN)/souk_desc.c
LIB_OBJ += $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(KIT_PB_C))
PROTO_LIB := $(B)/libsouk_proto.a
PROTO_OBJ := $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(API_PB_C))
SERVICES := $(patsubst services/%/main.c,%,$(wildcard services/*/main.c))
TOOLS := $(patsubst tools/%.c,$(B)/bin/%,$(wildcard tools/*.c))
BINS := $(SERVICES:%=$(B)/bin/%) $(B)/bin/souk $(TOOLS)

# services.txt is the list of services (docs/adding-a-service.md): every directory
# with a main.c has its line there and every line its directory, or nothing builds.
# It becomes build/gen/services.h for the supervisor, the gateway and users.
LISTED := $(shell awk '$$1 == "service" || $$1 == "edge" { print $$2 }' services.txt)
ifneq ($(sort $(LISTED)),$(sort $(SERVICES)))
$(error services.txt lists [$(sort $(LISTED))] but services/*/main.c are [$(sort $(SERVICES))]: \
  one line in services.txt per service (docs/adding-a-service.md))
endif
GEN_SERVICES := $(B)/gen/services.h

UNIT_LIB_SRC := $(wildcard tests/unit/lib/*.c)
UNIT_SVC_SRC := $(wildcard tests/unit/services/*/*.c)
UNIT_BINS := $(UNIT_LIB_SRC:%.c=$(B)/%) $(UNIT_SVC_SRC:%.c=$(B)/%)

PYTEST := /usr/bin/python3 -m pytest
# sanitizer reports fail the run instead of scrolling by
export ASAN_OPTIONS ?= abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1

FUZZ_SECONDS ?= 20
FUZZ_DRIVERS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*.c))

.PHONY: all setup run run-scale test unit kit-check e2e e2e-gateway-uv e2e-modes browser-test bench soak bench-db clean fmt fmt-check fuzz \
  deploy-test test-deploy deploy-check
all: $(BINS)

# every object may include the generated list of services; -MMD records which do
$(B)/obj/%.o: %.c | $(GEN)/.stamp $(GEN_SERVICES)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(GEN_SERVICES): services.txt scripts/gen-services
	@mkdir -p $(@D)
	scripts/gen-services services.txt > $@.tmp && mv $@.tmp $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(GEN)/.stamp: $(KIT_PROTO) $(API_PROTO) scripts/embed-bytes
	@mkdir -p $(GEN)
	protoc-c -Iapi/proto -Ilib/proto --c_out=$(GEN) $(KIT_PROTO) $(API_PROTO)
	protoc-c -Iapi/proto --include_imports --descriptor_set_out=$(GEN)/kit.desc \
	  $(filter api/%,$(KIT_PROTO))
	protoc-c -Iapi/proto --include_imports --descriptor_set_out=$(GEN)/souk.desc $(API_PROTO)
	scripts/embed-bytes souk__grpc_kit_descriptors $(GEN)/kit.desc > $(GEN)/kit_desc.c
	scripts/embed-bytes souk_proto_descriptors $(GEN)/souk.desc > $(GEN)/souk_desc.c
	@touch $@
$(KIT_PB_C) $(API_PB_C): $(GEN)/.stamp
$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(PROTO_LIB): $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

# The gRPC test service and its contract (tests/grpc): what tests/e2e/test_grpc.py
# calls with a stock Python client; and a load generator for docs/grpc.md's numbers.
TGEN := $(B)/gen/test
GRPC_TEST_BINS := $(B)/tests/grpc/testsvc $(B)/tests/grpc/load
$(TGEN)/.stamp: tests/grpc/test.proto scripts/embed-bytes
	@mkdir -p $(TGEN)
	protoc-c -Itests/grpc --c_out=$(TGEN) tests/grpc/test.proto
	protoc-c -Itests/grpc --include_imports --descriptor_set_out=$(TGEN)/test.desc \
	  tests/grpc/test.proto
	scripts/embed-bytes souk_test_descriptors $(TGEN)/test.desc > $(TGEN)/test_desc.c
	@touch $@
$(TGEN)/test.pb-c.c $(TGEN)/test_desc.c: $(TGEN)/.stamp
$(B)/tests/grpc/%: tests/grpc/%.c $(TGEN)/test.pb-c.c $(TGEN)/test_desc.c $(LIB) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -I$(TGEN) $(CFLAGS) -Wno-missing-field-initializers $(LDFLAGS) -o $@ $^ \
	  $(LDLIBS)

# One service: its sources, its embedded migrations, the kit.
define service_rules
$(1)_OBJ := $$(patsubst %.c,$(B)/obj/%.o,$$(wildcard services/$(1)/*.c)) $(B)/obj/gen/$(1)/migrations.o
$(B)/gen/$(1)/migrations.c: $$(wildcard services/$(1)/migrations/*.sql) scripts/embed-migrations
	@mkdir -p $$(@D)
	scripts/embed-migrations services/$(1)/migrations > $$@
$(B)/obj/gen/$(1)/migrations.o: $(B)/gen/$(1)/migrations.c
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) $$(CFLAGS) -c -o $$@ $$<
$(B)/bin/$(1): $$($(1)_OBJ) $(LIB) $(PROTO_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) $$($(1)_LIBS)
# unit tests of the service link everything but its main()
$(B)/tests/unit/services/$(1)/%: tests/unit/services/$(1)/%.c $$(filter-out %/main.o,$$($(1)_OBJ)) $(LIB) $(PROTO_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) -Iservices/$(1) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) $$($(1)_LIBS) -lcmocka
endef
# the gateway's libuv engine (SOUK_GATEWAY_ENGINE=uv): libuv and Debian's http-parser,
# linked into the gateway alone
gateway_LIBS := $(shell pkg-config --libs libuv 2>/dev/null) -lhttp_parser
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

# the supervisor: its own files, plus three of the kit's: backoff (the restart delay),
# log and util (ECS lines, cli/log.c); no other part of the kit: it needs libsodium and
# jansson only
CLI_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard cli/*.c)) \
  $(B)/obj/lib/backoff.o $(B)/obj/lib/log.o $(B)/obj/lib/util.o
$(B)/bin/souk: $(CLI_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# tools/: small programs for tests and local runs (kafka-mock: librdkafka's mock cluster)
$(B)/bin/%: $(B)/obj/tools/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs rdkafka 2>/dev/null) -pthread
.SECONDARY: $(TOOLS:$(B)/bin/%=$(B)/obj/tools/%.o)

# a kit test may reach the module's internals (lib/<module>_int.h)
$(B)/tests/unit/lib/%: tests/unit/lib/%.c $(LIB) $(PROTO_LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Ilib $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# The kit's structure, checked: every public header compiles alone (it includes what
# it uses), and the kit's files include only their own layer and the ones below it
# (scripts/check-layers reads the layer table of lib/README.md).
HEADER_CHECKS := $(patsubst lib/include/souk/%.h,$(B)/headers/%.o,$(wildcard lib/include/souk/*.h))
$(B)/headers/%.o: lib/include/souk/%.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -x c -c -o $@ $<
kit-check: $(HEADER_CHECKS)
	@scripts/check-layers

setup:
	@scripts/setup test

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# EVENTS=amqp|kafka: every service the e2e tests start without a transport of its own uses
# that one (a private RabbitMQ node, or a kafka-mock cluster per test); default feed.
# RPC=rest: the services call each other over REST only; default gRPC where they can.
# MODE=scale: the scale-out mode (tests/e2e/conftest.py): every service on a PostgreSQL
# database of its own, two replicas of each in a platform, events on amqp by default
E2E_MODE := $(or $(MODE),$(SOUK_TEST_MODE),local)
E2E_EVENTS := $(or $(EVENTS),$(SOUK_TEST_EVENTS),$(if $(filter scale,$(E2E_MODE)),amqp,feed))
e2e: $(BINS) $(GRPC_TEST_BINS)
	SOUK_BUILD_DIR=$(abspath $(B)) SOUK_TEST_MODE=$(E2E_MODE) SOUK_TEST_EVENTS=$(E2E_EVENTS) \
	  SOUK_TEST_RPC=$(or $(RPC),$(SOUK_TEST_RPC),grpc) $(PYTEST) -q tests/e2e $(PYTEST_ARGS)

# The tests that start a gateway (alone or in a platform), with its public listener on
# the libuv engine (SOUK_GATEWAY_ENGINE=uv through SOUK_TEST_GATEWAY_ENGINE)
GATEWAY_E2E := $(wildcard tests/e2e/test_gateway*.py) $(addprefix tests/e2e/, \
  test_server_hardening.py test_storefront_headers.py test_pages.py test_login_throttling.py \
  test_signup_flood.py test_log_ecs.py test_secrets_in_logs.py test_tracing.py \
  test_outbound_ids.py test_platform.py test_orders.py test_grpc.py test_grpc_saga.py \
  test_service_config.py test_souk_cli.py test_users_seed.py)
e2e-gateway-uv: $(BINS) $(GRPC_TEST_BINS)
	SOUK_TEST_GATEWAY_ENGINE=uv SOUK_BUILD_DIR=$(abspath $(B)) SOUK_TEST_MODE=$(E2E_MODE) \
	  SOUK_TEST_EVENTS=$(E2E_EVENTS) SOUK_TEST_RPC=$(or $(RPC),$(SOUK_TEST_RPC),grpc) \
	  $(PYTEST) -q -n 2 $(GATEWAY_E2E) $(PYTEST_ARGS)

# The whole black-box suite again in the other modes make test covers: the scale-out
# mode (every service on PostgreSQL, two replicas of each in the platforms,
# tests/e2e/test_scale.py's crash and rolling-restart tests) with REST between the
# services and events over RabbitMQ; and gRPC with events over Kafka on SQLite, with
# the gateway's public listener on its other engine, libmicrohttpd (the first run is
# gRPC with the HTTP feed on SQLite; the first two take the gateway's default engine). make test runs each of the three
# with E2E_JOBS test files at once (pytest-xdist, a module's tests on one worker;
# `make e2e` alone runs one file at a time unless PYTEST_ARGS says otherwise): the
# tests wait on processes far more than they compute, and every test binds free ports
# and keeps to its own directory, database and broker.
E2E_JOBS ?= 3
E2E_XDIST = -p xdist -n $(E2E_JOBS) --dist loadfile
e2e-modes:
	@echo "== e2e: MODE=scale RPC=rest EVENTS=amqp"
	@$(MAKE) --no-print-directory e2e MODE=scale RPC=rest EVENTS=amqp \
	  PYTEST_ARGS="$(E2E_XDIST) $(PYTEST_ARGS)"
	@echo "== e2e: RPC=grpc EVENTS=kafka, the gateway on libmicrohttpd"
	@SOUK_TEST_GATEWAY_ENGINE=mhd $(MAKE) --no-print-directory e2e RPC=grpc EVENTS=kafka \
	  PYTEST_ARGS="$(E2E_XDIST) $(PYTEST_ARGS)"

test: setup
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory kit-check
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e PYTEST_ARGS="$(E2E_XDIST) $(PYTEST_ARGS)"
	@$(MAKE) --no-print-directory e2e-modes
	@$(MAKE) --no-print-directory deploy-test
	@$(MAKE) --no-print-directory browser-test

# The storefront as a person uses it (tests/browser, one test file at a time: the 100k catalog's seeding
# starved a platform started beside it; ~40-60 s): chromium from Debian,
# playwright-core from npm (tests/browser/package-lock.json); screenshots in build/screenshots.
browser-test: $(BINS)
	@scripts/setup browser
	cd tests/browser && npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	cd tests/browser && SOUK_BUILD_DIR=$(abspath $(B)) node --test \
	  $$(node --help | grep -q -- --test-concurrency && echo --test-concurrency=1)

# deploy/ checked without containers (compose, k8s manifests, Prometheus, Grafana; ~15 s);
# deploy-check adds the Kubernetes schemas and builds and runs the images (slow, root)
deploy-test: $(BINS)
	SOUK_BUILD_DIR=$(abspath $(B)) $(PYTEST) -q tests/deploy --ignore=tests/deploy/podman \
	  --ignore=tests/deploy/hosts $(PYTEST_ARGS)

# The deploy/ checks that need root and more time (CI runs them, .ci/run): every
# Kubernetes manifest against the schemas (kubernetes-models from npm, under build/),
# the platform across network namespaces with a partition (tests/deploy/hosts), and
# the rendered manifests played by `podman kube play` with a checkout through them
# (tests/deploy/podman/test_kube_play.py, 1-2 min: its images are made in seconds
# from build/bin and the libraries ldd names; the Dockerfile's own build is
# deploy-check's, test_images.py).
test-deploy:
	@scripts/setup deploy
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	tests/deploy/validate-schemas
	SOUK_BUILD_DIR=$(abspath $(B)) $(PYTEST) -q tests/deploy/hosts tests/deploy/podman/test_kube_play.py \
	  $(PYTEST_ARGS)

deploy-check:
	@scripts/setup deploy
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory deploy-test
	@tests/deploy/deploy-check

run:
	@scripts/setup build
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@scripts/run

# A private PostgreSQL cluster and RabbitMQ node under var/scale, a database and role per
# service, two replicas of every service (scripts/run-scale). Ctrl-C stops it all.
# CHECK=1: start it all, read the demo data through the gateway, stop (for fresh-check).
run-scale:
	@scripts/setup scale
	@$(MAKE) --no-print-directory -j$(shell nproc) all
	@scripts/run-scale $(if $(CHECK),--check)

# QUICK=1: a two-minute subset, reported to build/bench/RESULTS-quick.md
bench:
	@scripts/setup bench
	@$(MAKE) --no-print-directory all
	@BENCH_QUICK=$(QUICK) bench/run

# The checkout journey for SOAK_MINUTES (10), RSS, open fds and latency sampled each
# minute: bench/SOAK.md and bench/soak.svg (bench/soak).
SOAK_MINUTES ?= 10
soak:
	@scripts/setup bench
	@$(MAKE) --no-print-directory all
	@SOAK_MINUTES=$(SOAK_MINUTES) bench/soak

# One keyed read through the kit's db calls, SQLite beside PostgreSQL (a private
# cluster from scripts/pg): latency and CPU per read (docs/db.md).
$(B)/bench/db/%: bench/db/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs libpq)
bench-db: $(B)/bench/db/keyed_read
	@d=$$(mktemp -d /tmp/souk-bench-db.XXXXXX); trap 'scripts/pg destroy $$d/pg; rm -rf $$d' EXIT; \
	  $(B)/bench/db/keyed_read sqlite:$$d/bench.db $(READS) && scripts/pg start $$d/pg >/dev/null && \
	  $(B)/bench/db/keyed_read "$$(scripts/pg createdb $$d/pg bench --with-password)" $(READS)

# libFuzzer drivers for every parser of untrusted input (tests/fuzz/<name>.c: the
# JWT verifier, CloudEvents envelopes, traceparent, the OAuth form body, JSON
# bodies, routes, small text parsers), built with clang, ASan and UBSan into
# build/fuzz; each runs FUZZ_SECONDS from its committed seed corpus
# (tests/fuzz/corpus/<name>/) plus what earlier runs found (build/fuzz/corpus/).
# A driver links the kit; one for a service's parser also links that file alone.
FUZZ_CFLAGS = -O1 -g -std=gnu11 -Ilib -Iservices/users $(shell pkg-config --cflags $(PKGS))
FUZZ_GEN_OBJ := $(patsubst build/gen/%.c,build/fuzz/gen/%.o,$(filter build/gen/%,$(KIT_PB_C) $(API_PB_C)))
build/fuzz/obj/%.o: %.c | build/gen/proto/.stamp
	@mkdir -p $(@D)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<
build/fuzz/gen/%.o: build/gen/%.c
	@mkdir -p $(@D)
	clang $(CPPFLAGS) -O1 -g -std=gnu11 -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<
build/fuzz/%: tests/fuzz/%.c $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRC)) $(FUZZ_GEN_OBJ)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)
build/fuzz/oauth_form: build/fuzz/obj/services/users/form.o
build/fuzz/gw_request: build/fuzz/obj/services/gateway/uv_http.o
build/fuzz/gw_request: FUZZ_CFLAGS += -Iservices/gateway
build/fuzz/gw_request: LDLIBS += -lhttp_parser
fuzz:
	@scripts/setup fuzz
	@$(MAKE) --no-print-directory $(FUZZ_DRIVERS:%=build/fuzz/%)
	@for d in $(FUZZ_DRIVERS); do echo "== fuzz $$d ($(FUZZ_SECONDS) s)"; mkdir -p build/fuzz/corpus/$$d; \
	  build/fuzz/$$d -max_total_time=$(FUZZ_SECONDS) -timeout=10 build/fuzz/corpus/$$d tests/fuzz/corpus/$$d \
	    > build/fuzz/$$d.log 2>&1 || { tail -40 build/fuzz/$$d.log; exit 1; }; tail -1 build/fuzz/$$d.log; done
.SECONDARY: $(patsubst %.c,build/fuzz/obj/%.o,$(LIB_SRC) services/users/form.c services/gateway/uv_http.c) $(FUZZ_GEN_OBJ)

# every C file of ours (not the peers'), in the house format of .clang-format
FMT_FILES = $(shell find lib services cli tools tests/unit tests/fuzz tests/grpc bench/db -name '*.[ch]' | sort)
fmt:
	clang-format -i $(FMT_FILES)
fmt-check:
	@clang-format --dry-run -Werror $(FMT_FILES) && echo "format: ok"

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
