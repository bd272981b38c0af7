# psrenew — renew certificates on PKCS#11 tokens.
# make            build the library and the binaries into build/
# make check      install missing Debian packages, build, run every test
# make demo       the guide's whole renewal on a demo token (scripts/demo)
# make tests      build the unit tests and test tools too (what check runs)
# make install    PREFIX=/usr/local DESTDIR= (binaries, library, public
#                 headers, pkg-config file, man pages, data: units, JIP
#                 profile, example configuration, Ansible role)
# make uninstall  remove what make install put there
# make lint       cppcheck, clang-format, scripts/checksrc (house rules,
#                 the export list against the PS_API declarations)
# make format     clang-format the sources in place
# make clean      remove build/
# make help       this list, and the targets of mk/*.mk

VERSION := $(shell sed -n 's/.*PSRENEW_VERSION "\(.*\)"/\1/p' lib/psrenew/version.h)
SOVERSION := 0

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/psrenew
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions

B ?= build
CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
P11KIT_PROXY := $(shell $(PKG_CONFIG) --variable=proxy_module p11-kit-1 2>/dev/null)
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags libssl libcrypto libp11 libcurl libxml-2.0 jansson inih p11-kit-1 gmime-3.0 2>/dev/null)
# libp11, libcurl, libxml2 and GMime are not linked: lib/lazy.c and
# lib/lazy_gmime.c load them when a run first needs them (start-up time
# and RSS of every binary).
DEP_LIBS := $(shell $(PKG_CONFIG) --libs libssl libcrypto jansson inih 2>/dev/null) -ldl -pthread
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -Ilib $(DEP_CFLAGS) $(WARN) $(CFLAGS) \
	-DPSRENEW_DATADIR='"$(DATADIR)"' \
	$(if $(P11KIT_PROXY),-DPS_P11KIT_PROXY='"$(P11KIT_PROXY)"')

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB_HDR := $(wildcard lib/psrenew/*.h)
# The public API (docs/API.md): the headers make install installs, which
# include only each other, and the functions lib/libpsrenew.map exports
# (those declared PS_API in them). Every other header is internal.
PUB_HDR := $(addprefix lib/psrenew/,psrenew.h export.h version.h err.h \
	record.h cert.h uri.h config.h token.h inventory.h state.h ca.h \
	install.h renew.h fetch.h clean.h pfx.h pfx_read.h http.h jip.h)
LIB_MAP := lib/libpsrenew.map
CMD_SRC := $(wildcard cmd/ps-*.c)
BINS := $(CMD_SRC:cmd/%.c=$(B)/bin/%)
# What the binaries share and the library does not have: options, messages,
# progress lines (cmd/common/). Linked into every binary, never installed.
CMD_COMMON_SRC := $(wildcard cmd/common/*.c)
CMD_COMMON_OBJ := $(CMD_COMMON_SRC:%.c=$(B)/obj/%.o)
SONAME := libpsrenew.so.$(SOVERSION)
SOLIB := $(B)/lib/libpsrenew.so.$(VERSION)
ALIB := $(B)/lib/libpsrenew.a
# Every object, hidden symbols included: what the binaries and the unit
# tests link (they use internal functions). Not installed.
INT_ALIB := $(B)/lib/libpsrenew-int.a
LD ?= ld
OBJCOPY ?= objcopy
PCFILE := $(B)/lib/pkgconfig/psrenew.pc
MANS := $(wildcard man/*.[157])
# systemd units and crontab lines for ps-fetch and ps-status (@BINDIR@ set);
# the Prometheus alert rules go beside them (data/prometheus)
DATA_TIMERS := $(patsubst data/%,%,$(wildcard data/systemd/psrenew-* \
	data/cron/psrenew.*))
# the Ansible role and playbooks (README, "Many workstations")
DATA_ANSIBLE := $(patsubst data/%,%,$(wildcard data/ansible/*.yml \
	data/ansible/filter_plugins/*.py data/ansible/roles/psrenew/*/*.yml \
	data/ansible/roles/psrenew/templates/*.j2))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TEST_TOOLS := $(B)/tests/p11fault.so $(B)/tests/cmp-ca

.PHONY: all lib bins tests check demo install uninstall lint clean format \
	help print-pub-hdr

all: lib bins $(B)/share/psrenew/jip-czechpoint.json

# The data files beside the binaries, as installed (BINDIR/../share/psrenew):
# the binaries find them when they run from the build tree.
$(B)/share/psrenew/%: data/%
	@mkdir -p $(dir $@)
	cp $< $@

lib: $(SOLIB) $(B)/lib/$(SONAME) $(B)/lib/libpsrenew.so $(ALIB) $(INT_ALIB) \
	$(PCFILE)

bins: $(BINS)

# Each object depends on the headers it includes (-MMD -MP: the .d files
# beside the objects, read at the end of this file).
DEPFLAGS = -MMD -MP -MF $(B)/dep/$(patsubst $(B)/%,%,$@).d -MT $@

# Hidden unless declared PS_API (lib/psrenew/export.h). The Makefile is a
# prerequisite: a change of flags (visibility, defines) rebuilds the objects.
$(B)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@) $(dir $(B)/dep/$(patsubst $(B)/%,%,$@))
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(SOLIB): $(LIB_OBJ) $(LIB_MAP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined \
		-Wl,--version-script=$(LIB_MAP) \
		-o $@ $(LIB_OBJ) $(DEP_LIBS) $(LDFLAGS)

$(B)/lib/$(SONAME): $(SOLIB)
	ln -sf $(notdir $(SOLIB)) $@

$(B)/lib/libpsrenew.so: $(B)/lib/$(SONAME)
	ln -sf $(SONAME) $@

# The installed static library: the objects linked into one (ld -r) whose
# hidden symbols are then made local, so that only the public API is
# visible from it: neither the internal ps_* functions nor lib/lazy.c's
# forwarders, which bear libcurl's, libxml2's and libp11's names (a
# program linking libpsrenew.a and the real libcurl gets the real one).
$(ALIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(LD) -r -o $(B)/obj/libpsrenew.o $(LIB_OBJ)
	$(OBJCOPY) --localize-hidden $(B)/obj/libpsrenew.o
	rm -f $@
	ar rcs $@ $(B)/obj/libpsrenew.o

$(INT_ALIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

# Paths under the prefix are written relative to it, so that
# pkg-config --define-prefix works for a relocated (DESTDIR) tree. The
# public headers include OpenSSL's, jansson's and p11-kit's. libcurl,
# libxml2 and libp11 are not linked (lib/lazy.c loads them).
define write_pc
	printf '%s\n' 'prefix=$(PREFIX)' \
		'libdir=$(patsubst $(PREFIX)%,$${prefix}%,$(LIBDIR))' \
		'includedir=$(patsubst $(PREFIX)%,$${prefix}%,$(INCLUDEDIR))' '' \
		'Name: psrenew' \
		'Description: renew certificates on PKCS#11 tokens' \
		'Version: $(VERSION)' \
		'Requires: libcrypto jansson p11-kit-1' \
		'Requires.private: libssl inih' \
		'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lpsrenew' \
		'Libs.private: -ldl -pthread' > $(1)
endef

$(PCFILE): Makefile lib/psrenew/version.h
	@mkdir -p $(dir $@)
	$(call write_pc,$@)

# The binaries use internal functions: they link the internal archive, as
# git's commands link libgit.a (the installed library is not theirs).
$(B)/bin/%: cmd/%.c $(CMD_COMMON_OBJ) $(INT_ALIB)
	@mkdir -p $(dir $@) $(dir $(B)/dep/$(patsubst $(B)/%,%,$@))
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(CMD_COMMON_OBJ) $(INT_ALIB) \
		$(DEP_LIBS) $(LDFLAGS)

# Tests -----------------------------------------------------------------
tests: all $(UNIT_BINS) $(TEST_TOOLS)

$(B)/tests/test_%: tests/unit/test_%.c $(INT_ALIB)
	@mkdir -p $(dir $@) $(dir $(B)/dep/$(patsubst $(B)/%,%,$@))
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(INT_ALIB) $(DEP_LIBS) \
		-lcmocka $(LDFLAGS)

$(B)/tests/p11fault.so: tests/p11fault/p11fault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared \
		$(shell $(PKG_CONFIG) --cflags p11-kit-1) -o $@ $< -ldl

$(B)/tests/cmp-ca: tests/cmp/cmp-ca.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g \
		$(shell $(PKG_CONFIG) --cflags libcrypto) -pthread -o $@ $< \
		$(shell $(PKG_CONFIG) --libs libcrypto)

# The one test command (README, .ci/run): packages, build, every test;
# then every test again against the ASan+UBSan build and the binaries' tests
# under valgrind (mk/fuzz.mk). Any sanitizer or valgrind report fails.
# Then the fleet stage (mk/fleet.mk: Ansible, the Debian package).
# Every stage runs even when one fails; the last line is the total of the
# four runs (also in $(B)/summary, which .ci/run prints last).
check:
	scripts/install-deps
	$(MAKE) tests
	@mkdir -p $(B); t=$(abspath $(B))/totals; rm -f $$t $(B)/summary; rc=0; \
	PSRENEW_TOTALS=$$t PSRENEW_BUILD=$(abspath $(B)) tests/run || rc=1; \
	PSRENEW_TOTALS=$$t $(MAKE) --no-print-directory check-san || rc=1; \
	PSRENEW_TOTALS=$$t $(MAKE) --no-print-directory check-valgrind || rc=1; \
	PSRENEW_TOTALS=$$t $(MAKE) --no-print-directory check-fleet || rc=1; \
	touch $$t; \
	awk -v rc=$$rc '{ p += $$1; f += $$2; s += $$3; \
		printf "  %s: %d passed, %d failed\n", $$4, $$1, $$2 } \
		END { if (rc && !f) f = 1; \
		print p " passed, " f " failed" (s ? ", " s " skipped" : "") }' \
		$$t > $$t.out; \
	cat $$t.out; tail -n 1 $$t.out > $(B)/summary; \
	exit $$rc

demo:
	scripts/install-deps
	$(MAKE) all $(B)/tests/p11fault.so
	PSRENEW_BUILD=$(abspath $(B)) scripts/demo

# Install -----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR)/psrenew $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(SOLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SOLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libpsrenew.so
	install -m 0644 $(ALIB) $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(PUB_HDR) $(DESTDIR)$(INCLUDEDIR)/psrenew/
	$(call write_pc,$(DESTDIR)$(PKGCONFIGDIR)/psrenew.pc)
	for m in $(MANS); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -d $(DESTDIR)$(DATADIR)
	install -m 0644 data/jip-czechpoint.json data/psrenew.conf.example \
		$(DESTDIR)$(DATADIR)/
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	for b in $(notdir $(BINS)); do install -m 0644 \
		data/completions/psrenew.bash $(DESTDIR)$(BASHCOMPDIR)/$$b; done
	install -m 0644 data/completions/_psrenew $(DESTDIR)$(ZSHCOMPDIR)/
	install -d $(DESTDIR)$(DATADIR)/systemd $(DESTDIR)$(DATADIR)/cron
	for f in $(DATA_TIMERS); do \
		sed 's|@BINDIR@|$(BINDIR)|g' data/$$f >$(DESTDIR)$(DATADIR)/$$f; \
		chmod 0644 $(DESTDIR)$(DATADIR)/$$f; done
	install -d $(DESTDIR)$(DATADIR)/prometheus
	install -m 0644 data/prometheus/psrenew-rules.yml \
		$(DESTDIR)$(DATADIR)/prometheus/
	for f in $(DATA_ANSIBLE); do \
		install -D -m 0644 data/$$f $(DESTDIR)$(DATADIR)/$$f; done

uninstall:
	rm -f $(BINS:$(B)/bin/%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/$(notdir $(SOLIB)) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libpsrenew.so \
		$(DESTDIR)$(LIBDIR)/libpsrenew.a \
		$(DESTDIR)$(PKGCONFIGDIR)/psrenew.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/psrenew
	rm -f $(DESTDIR)$(DATADIR)/jip-czechpoint.json \
		$(DESTDIR)$(DATADIR)/psrenew.conf.example \
		$(DATA_TIMERS:%=$(DESTDIR)$(DATADIR)/%) \
		$(DESTDIR)$(DATADIR)/prometheus/psrenew-rules.yml
	-rmdir $(DESTDIR)$(DATADIR)/systemd $(DESTDIR)$(DATADIR)/cron \
		$(DESTDIR)$(DATADIR)/prometheus 2>/dev/null
	rm -rf $(DESTDIR)$(DATADIR)/ansible
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null
	rm -f $(BINS:$(B)/bin/%=$(DESTDIR)$(BASHCOMPDIR)/%) \
		$(DESTDIR)$(ZSHCOMPDIR)/_psrenew
	for m in $(MANS); do s=$${m##*.}; \
		rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done

# Style -------------------------------------------------------------------
lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
		--inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -Ilib \
		--include=/usr/include/jansson.h \
		lib cmd tests/unit tests/p11fault tests/cmp
	clang-format --dry-run -Werror lib/*.c lib/psrenew/*.h cmd/*.c \
		cmd/common/*.[ch]
	PUB_HDR='$(PUB_HDR)' LIB_MAP=$(LIB_MAP) scripts/checksrc

print-pub-hdr:
	@echo $(PUB_HDR)

format:
	clang-format -i lib/*.c lib/psrenew/*.h cmd/*.c cmd/common/*.[ch]

clean:
	rm -rf $(B)

# The "# make TARGET  what it does" lines at the top of this file and of
# mk/*.mk.
help:
	@awk '/^# +make[^:]*  / { on = 1; sub(/^# +/, ""); print; next } \
		on && /^#      / { sub(/^# /, ""); print; next } { on = 0 }' \
		Makefile $(wildcard mk/*.mk)

# Further targets (bench, fuzz, ...), one file each.
-include $(wildcard mk/*.mk)

-include $(patsubst $(B)/%,$(B)/dep/%.d,$(LIB_OBJ) $(CMD_COMMON_OBJ) $(BINS) \
	$(UNIT_BINS))
