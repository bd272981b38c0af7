# Fuzzing (libFuzzer) and the sanitizer build of every test.
#
# make fuzz-build      the harnesses of tests/fuzz (one .c each), built with
#                      clang -fsanitize=fuzzer,address,undefined against the
#                      lib/*.c sources, into build/fuzz/NAME
# make fuzz            runs each harness for FUZZ_SECONDS (default 60) from
#                      its seeds (tests/fuzz/corpus/NAME, copied to
#                      build/fuzz/corpus-NAME, which keeps what the fuzzer
#                      finds across runs), after replaying
#                      tests/fuzz/regress/NAME-*; prints executions, exec/s
#                      and crashes per harness; fails when anything crashed.
#                      FUZZ=NAME... runs some harnesses only.
# make check-san       builds the whole tree with ASan+UBSan into build-san
#                      and runs every test against it (tests/run --san:
#                      any sanitizer report fails the run).
# make check-valgrind  the binaries' CLI tests (a subset of each file, see
#                      tests/run) with every ps-* under valgrind memcheck
#                      (tests/run --valgrind: any report fails the run).
# See tests/fuzz/README.md.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_DIR := build/fuzz
FUZZ_ALL := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*.c))
FUZZ ?= $(FUZZ_ALL)
FUZZ_BINS := $(FUZZ_ALL:%=$(FUZZ_DIR)/%)

# Longest input per harness: a little above each input's own limit where it
# is small (serial 256, URI 4096, secret 1024 bytes), a few real inputs
# otherwise.
FUZZ_MAXLEN_record := 16384
FUZZ_MAXLEN_config := 4096
FUZZ_MAXLEN_uri := 4200
FUZZ_MAXLEN_serial := 300
FUZZ_MAXLEN_certs := 8192
FUZZ_MAXLEN_secret := 2100
FUZZ_MAXLEN_helper-output := 8192
FUZZ_MAXLEN_est-body := 8192
FUZZ_MAXLEN_cmp-response := 12288
FUZZ_MAXLEN_jip-html := 16384
FUZZ_MAXLEN_mail-template := 4096
FUZZ_MAXLEN_pfx := 8192
fuzz_opts = -max_len=$(or $(FUZZ_MAXLEN_$(1)),4096) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=2048

# The Makefile's flags, plus the sanitizers; UB aborts, so the fuzzer sees it.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Ilib $(DEP_CFLAGS) $(WARN) -g -O1 \
	$(FUZZ_SAN) -DPSRENEW_DATADIR='"$(DATADIR)"' \
	$(if $(P11KIT_PROXY),-DPS_P11KIT_PROXY='"$(P11KIT_PROXY)"')
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
# A harness may call libxml2 or libcurl itself (lib/lazy.c loads them for
# the library only): link them.
FUZZ_LIBS := $(DEP_LIBS) $(shell $(PKG_CONFIG) --libs libxml-2.0 libcurl libp11 2>/dev/null)
# An archive, so that a harness that includes a lib/*.c file (to reach its
# static functions) takes that file's symbols from itself, not twice.
FUZZ_ALIB := $(FUZZ_DIR)/libpsrenew-fuzz.a

.PHONY: fuzz fuzz-build fuzz-tools check-san check-valgrind

fuzz-build: $(FUZZ_BINS) $(FUZZ_ALL:%=$(FUZZ_DIR)/%.options)

# clang and its libFuzzer runtime, or a message naming the packages
# (checked on every build: an order-only prerequisite).
fuzz-tools:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
		echo "fuzz: $(FUZZ_CC) not found: apt-get install clang libclang-rt-14-dev" >&2; \
		exit 1; }
	@rt=$$($(FUZZ_CC) -print-file-name=libclang_rt.fuzzer-$$(uname -m).a); \
	rtdir=$$($(FUZZ_CC) --print-runtime-dir 2>/dev/null); \
	[ -f "$$rt" ] || [ -f "$$rtdir/libclang_rt.fuzzer-$$(uname -m).a" ] || { \
		echo "fuzz: $(FUZZ_CC) has no libFuzzer runtime: apt-get install libclang-rt-14-dev" >&2; \
		exit 1; }

$(FUZZ_DIR)/obj/%.o: %.c $(LIB_HDR) | fuzz-tools
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_ALIB): $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJ)

# A harness may include the lib/*.c file it tests: depend on all of them.
$(FUZZ_DIR)/%: tests/fuzz/%.c $(FUZZ_ALIB) $(LIB_SRC) $(LIB_HDR) \
		tests/jip/profile-test.json | fuzz-tools
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer \
		-DPSRENEW_FUZZ_JIP_PROFILE='"$(abspath tests/jip/profile-test.json)"' \
		-o $@ $< $(FUZZ_ALIB) $(FUZZ_LIBS)

# The libFuzzer options of each harness, for tests/cli/fuzz.bats.
$(FUZZ_DIR)/%.options: mk/fuzz.mk | fuzz-tools
	@echo '$(call fuzz_opts,$*)' > $@

# Runs one harness ($1): regressions, then FUZZ_SECONDS of fuzzing; prints
# one line; appends the harness's name to $(FUZZ_DIR)/crashed on a crash.
define fuzz_run
	n=$(1); bin=$(FUZZ_DIR)/$$n; log=$(FUZZ_DIR)/log-$$n.txt; \
	corpus=$(FUZZ_DIR)/corpus-$$n; arts=$(FUZZ_DIR)/artifacts; \
	mkdir -p $$corpus $$arts; \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1}; export UBSAN_OPTIONS; \
	cp tests/fuzz/corpus/$$n/* $$corpus/ 2>/dev/null; \
	regress=$$(ls tests/fuzz/regress/$$n-* 2>/dev/null); rstate=none; \
	if [ -n "$$regress" ]; then rstate=ok; \
		$$bin $(call fuzz_opts,$(1)) $$regress > $$log.regress 2>&1 || \
			rstate="CRASH (see $$log.regress)"; \
	fi; \
	before=$$(ls $$arts | grep -c "^$$n-" ); \
	t0=$$(date +%s); \
	$$bin $(call fuzz_opts,$(1)) -max_total_time=$(FUZZ_SECONDS) \
		-print_final_stats=1 -artifact_prefix=$$arts/$$n- $$corpus \
		> $$log 2>&1; rc=$$?; \
	t=$$(( $$(date +%s) - t0 )); \
	execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log); \
	if [ -z "$$execs" ]; then \
		last=$$(grep -E '^#[0-9]+' $$log | tail -n 1); \
		execs=$$(echo "$$last" | sed -E 's/^#([0-9]+).*/\1/'); \
		rate=$$(echo "$$last" | sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p'); \
	fi; \
	after=$$(ls $$arts | grep -c "^$$n-" ); \
	new=$$(( after - before )); \
	if [ $$rc -ne 0 ] && [ $$new -eq 0 ]; then new=1; fi; \
	crashes=$$new; \
	printf 'fuzz %-14s %10s executions %7s exec/s %2d crashes  (%d s, corpus %d files; regressions: %s)\n' \
		$$n "$${execs:-?}" "$${rate:-?}" $$crashes $$t $$(ls $$corpus | wc -l) "$$rstate"; \
	case $$rstate in CRASH*) echo $$n >> $(FUZZ_DIR)/crashed;; esac; \
	if [ $$crashes -gt 0 ]; then \
		echo $$n >> $(FUZZ_DIR)/crashed; \
		grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)|runtime error' $$log | head -n 8 | sed 's/^/    /'; \
		echo "    full log: $$log"; \
	fi
endef

fuzz: fuzz-build
	@rm -f $(FUZZ_DIR)/crashed
	@echo "fuzz: $(words $(FUZZ)) harnesses, $(FUZZ_SECONDS) s each"
	@$(foreach n,$(FUZZ),$(call fuzz_run,$(n));)
	@if [ -s $(FUZZ_DIR)/crashed ]; then \
		echo "fuzz: crashes in: $$(sort -u $(FUZZ_DIR)/crashed | tr '\n' ' ')(new inputs in" \
			"$(FUZZ_DIR)/artifacts: keep each as tests/fuzz/regress/NAME-WHAT)"; exit 1; \
	else echo "fuzz: no crash"; fi

# Every test against an ASan+UBSan build (a separate tree: build-san).
check-san:
	scripts/install-deps
	$(MAKE) B=build-san \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
		LDFLAGS="-fsanitize=address,undefined" tests
	PSRENEW_BUILD=$(abspath build-san) tests/run --san

check-valgrind:
	scripts/install-deps
	$(MAKE) tests
	PSRENEW_BUILD=$(abspath $(B)) tests/run --valgrind
