# Quick start on a fresh Debian 12 machine:
#   make demo   installs dependencies, builds, runs the demo on loopback
#   make test   installs dependencies, builds, runs the whole suite (ctest)
# Other targets: build, asan, tsan, bench, fuzz, soak, clean.
BUILD       ?= build
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc)
CTEST_FLAGS ?= --output-on-failure --timeout 600
CMAKE_FLAGS ?=

comma := ,
ASAN_CMAKE := -DNPP_SANITIZE=address$(comma)undefined
TSAN_CMAKE := -DNPP_SANITIZE=thread

.PHONY: all deps deps-test build demo test asan tsan sanitizers bench fuzz soak clean

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

# build DIR TYPE EXTRA-FLAGS
define configure_and_build
	cmake -S . -B $(1) -G Ninja -DCMAKE_BUILD_TYPE=$(2) $(3) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(1) -j $(JOBS)
endef

build: deps
	$(call configure_and_build,$(BUILD),$(BUILD_TYPE),)

demo: build
	./$(BUILD)/nodeport-proxy demo

test: deps-test
	$(call configure_and_build,$(BUILD),$(BUILD_TYPE),)
	ctest --test-dir $(BUILD) $(CTEST_FLAGS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
asan: deps-test
	$(call configure_and_build,build-asan,RelWithDebInfo,$(ASAN_CMAKE))
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  NPP_SANITIZER=asan ctest --test-dir build-asan $(CTEST_FLAGS)

tsan: deps-test
	$(call configure_and_build,build-tsan,RelWithDebInfo,$(TSAN_CMAKE))
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 NPP_SANITIZER=tsan ctest --test-dir build-tsan $(CTEST_FLAGS)

sanitizers: asan tsan

# The shared loopback benchmark against HAProxy, nginx and socat (see bench/README.md).
bench: build
	@scripts/deps.sh bench
	bench/run.sh

# libFuzzer targets built with clang into build-fuzz, each run FUZZ_SECONDS (see fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh build sanitizers
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Random open/write/half-close/reset/reload/endpoint churn against the ASan+UBSan build for
# SOAK_MINUTES (see tests/soak/soak.py).
SOAK_MINUTES ?= 2
soak: deps-test
	$(call configure_and_build,build-asan,RelWithDebInfo,$(ASAN_CMAKE))
	NPP_BINARY=build-asan/nodeport-proxy /usr/bin/python3 tests/soak/soak.py --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
