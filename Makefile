# Front door. `make` builds, `make check` runs every test, `make demo` shows
# shoal exec against a private OpenSSH sshd on loopback.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=
CC_ASAN := $(shell command -v clang >/dev/null 2>&1 && echo clang || echo gcc)
FUZZ := $(shell [ "$(CC_ASAN)" = clang ] && echo ON || echo OFF)

PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build install check check-fast check-asan demo bench bench-serve bench-fanout clean fuzz fuzz-long

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# bin/shoal, libshoal (.so and .a), headers, pkg-config and CMake files,
# man pages and bash completion under $(DESTDIR)$(PREFIX).
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Everything: the normal build's tests, then the ASan+UBSan build's tests
# (unit, interop, fuzz smoke runs). Ends with ctest's summary line.
check: build
	@$(MAKE) --no-print-directory check-asan
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

check-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

check-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=$(CC_ASAN) \
	    -DSHOAL_SANITIZE=ON -DSHOAL_FUZZ=$(FUZZ) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) -- --no-print-directory
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS)

# Long fuzzing, not part of check (nor CI): every fuzz target for
# FUZZ_SECONDS seconds (600 = 10 minutes) from its corpus, JOBS at a time,
# in a clang ASan+UBSan+libFuzzer build of its own ($(FUZZ_BUILD)). New
# inputs go to $(FUZZ_BUILD)/fuzz/work_<name>, crashes to $(FUZZ_BUILD)/fuzz.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
fuzz-long: deps
	@command -v clang >/dev/null 2>&1 || { echo "fuzz-long needs clang (libFuzzer)"; exit 1; }
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DSHOAL_SANITIZE=ON \
	    -DSHOAL_FUZZ=ON -DSHOAL_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) -- --no-print-directory
	@cd $(FUZZ_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -L fuzz -j $(JOBS)

demo: build
	@sh scripts/demo.sh $(BUILD)/shoal

bench: build
	@sh bench/run.sh $(BUILD)/shoal

bench-serve: build
	@sh bench/serve_run.sh $(BUILD)/shoal

bench-fanout: build
	@sh bench/fanout_run.sh $(BUILD)/shoal

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
