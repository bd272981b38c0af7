# make bench: psrenew next to its peers (docs/BENCHMARKS.md); not part of
# make check. Builds the three binaries it measures (optimised: the default
# CFLAGS are -O2), the p11fault shim and the floor programs of tests/bench
# in a build directory of its own (BENCH_B, default build-bench: a make in
# build/ going on at the same time is neither disturbed nor measured), then
# runs scripts/bench, which prints the table and writes
# $(BENCH_B)/bench/results-<timestamp>.json. About 10 minutes on 2 cores.
#   make bench                        every scenario
#   make bench BENCH='renew status'   some (renew bulk status fetch startup,
#                                     and those of tests/bench/scen-*.bash)

BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BINS := $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%) $(B)/bench/rssfloor-p11 \
	$(B)/bench/rssfloor-curl
BENCH ?=
BENCH_B ?= build-bench

.PHONY: bench bench-run bench-progs

bench-progs: $(BENCH_BINS)

# Floor programs: plain PKCS#11 through dlopen, nothing of libpsrenew.
$(B)/bench/%: tests/bench/%.c tests/bench/floor.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror \
		$(shell $(PKG_CONFIG) --cflags p11-kit-1) -o $@ $< -ldl

# The CMP polling floor also speaks HTTP, through libcurl.
$(B)/bench/cmpfloor: tests/bench/cmpfloor.c tests/bench/floor.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror \
		$(shell $(PKG_CONFIG) --cflags p11-kit-1 libcurl) -o $@ $< \
		$(shell $(PKG_CONFIG) --libs libcurl) -ldl

# The memory floor with one HTTPS exchange through libcurl added.
$(B)/bench/rssfloor-curl: tests/bench/rssfloor.c tests/bench/floor.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -DWITH_CURL \
		$(shell $(PKG_CONFIG) --cflags p11-kit-1 libcurl) -o $@ $< \
		$(shell $(PKG_CONFIG) --libs libcurl) -ldl

# The memory floor with libp11's list of the token's keys added.
$(B)/bench/rssfloor-p11: tests/bench/rssfloor.c tests/bench/floor.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -DWITH_LIBP11 \
		$(shell $(PKG_CONFIG) --cflags p11-kit-1) -o $@ $< -lp11 -lcrypto -ldl

bench:
	$(MAKE) B=$(BENCH_B) bench-run

bench-run: lib $(B)/bin/ps-status $(B)/bin/ps-renew $(B)/bin/ps-fetch \
		$(B)/tests/p11fault.so $(BENCH_BINS)
	@case ' $(CFLAGS) ' in *' -O2 '*|*' -O3 '*|*' -Os '*) ;; \
	*) echo "bench: WARNING: CFLAGS='$(CFLAGS)' is not an optimised build" >&2 ;; esac
	PSRENEW_BUILD=$(abspath $(B)) scripts/bench $(BENCH)
