# keygate: `make run` starts the demo gateway, `make test` runs every test.
# Both install what is missing (Debian packages, as root) and build first.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all setup configure build run test test-unit test-client bench sanitize clean

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD_DIR)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 600
	@scripts/client-tests.sh $(BUILD_DIR)

bench: build
	@bench/run.sh $(BUILD_DIR)

# Every test under AddressSanitizer and UndefinedBehaviorSanitizer (SANITIZE=thread for
# ThreadSanitizer), in its own build directory. Not part of `make test`: the build alone takes
# ~20 minutes on two cores. Reports of the gateway and mock processes the tests start are in
# $(SANITIZE_DIR)/logs.
SANITIZE ?= address,undefined
SANITIZE_DIR ?= build-$(subst $(comma),-,$(SANITIZE))
comma := ,
sanitize: setup
	@cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKEYGATE_SANITIZE=$(SANITIZE) >/dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@mkdir -p $(SANITIZE_DIR)/logs
	@cd $(SANITIZE_DIR) && ASAN_OPTIONS=log_path=$$PWD/logs/asan:detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 \
	  TSAN_OPTIONS=log_path=$$PWD/logs/tsan:suppressions=$(CURDIR)/tools/sanitizers/tsan.supp \
	  ctest --output-on-failure -j 2 --timeout 900
	@scripts/client-tests.sh $(SANITIZE_DIR)
	@if ls $(SANITIZE_DIR)/logs/* >/dev/null 2>&1; then \
	  echo "sanitizer reports in $(SANITIZE_DIR)/logs:"; ls $(SANITIZE_DIR)/logs; exit 1; fi

clean:
	rm -rf $(BUILD_DIR)
