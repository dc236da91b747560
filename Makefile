# A thin wrapper around Meson: every target installs what it needs first.
#   make          build (./build)
#   make test     all suites (unit, cli), then the same suites under ASan+UBSan
#   make demo     run deployclaw's main job end to end on the embedded default
#   make asan     the whole suite under ASan+UBSan (./build-asan)
#   make fuzz     each libFuzzer target for 60 s (./build-fuzz, clang)
#   make format   clang-format every C file
#   make bench    the benchmarks in bench/

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60
MESON_FLAGS := $(if $(CI),-Dwerror=true,)
# The integration suite's PostgreSQL (a primary + a streaming replica), one per
# build tree and port, so that neither touches a sandbox started by hand
# (scripts/pg-sandbox, default port 54321).
TEST_PG_PORT ?= 54331
ASAN_PG_PORT ?= 54341

# with_sandbox DIR PORT CMD: runs CMD with DEPLOYCLAW_PRIMARY/REPLICA exported,
# and stops the sandbox afterwards, also when CMD fails or is interrupted.
with_sandbox = trap 'DEPLOYCLAW_SANDBOX_DIR=$(1) DEPLOYCLAW_SANDBOX_PORT=$(2) scripts/pg-sandbox down >/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	export DEPLOYCLAW_SANDBOX_DIR=$(1) DEPLOYCLAW_SANDBOX_PORT=$(2); \
	scripts/pg-sandbox up >/dev/null && eval "$$(scripts/pg-sandbox env)" && $(3)

.PHONY: all build deps test test-plain asan demo fuzz format bench clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS) >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD)

test-plain: build
	@$(call with_sandbox,$(abspath $(BUILD))/pg-sandbox,$(TEST_PG_PORT),meson test -C $(BUILD) --print-errorlogs)

test: test-plain asan

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) $(MESON_FLAGS) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all --buildtype=debug >/dev/null

asan: deps $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD)
	@$(call with_sandbox,$(abspath $(ASAN_BUILD))/pg-sandbox,$(ASAN_PG_PORT),meson test -C $(ASAN_BUILD) --print-errorlogs)

demo: build
	$(BUILD)/src/cli/deployclaw demo

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link \
		-Db_sanitize=address,undefined >/dev/null

fuzz: deps $(FUZZ_BUILD)/build.ninja
	@ninja -C $(FUZZ_BUILD)
	@for t in $(FUZZ_BUILD)/fuzz/fuzz_*; do \
		[ -f "$$t" ] && [ -x "$$t" ] || continue; \
		name=$$(basename $$t); mkdir -p fuzz/corpus-$$name; \
		echo "fuzz: $$name for $(FUZZ_TIME)s"; \
		$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 fuzz/corpus-$$name fuzz/seeds/$$name \
			2>fuzz/corpus-$$name.log || { tail -40 fuzz/corpus-$$name.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units' fuzz/corpus-$$name.log || true; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

bench: build
	@for b in bench/*.sh; do echo "== $$b"; bash $$b || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
