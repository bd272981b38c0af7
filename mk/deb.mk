# The Debian binary package.
#
# make deb             build/deb/psrenew_VERSION-1_ARCH.deb: a make install
#                      DESTDIR= tree with PREFIX=/usr (built apart, in
#                      build/deb/build, with Debian's hardening flags from
#                      dpkg-buildflags) made into a package by scripts/mkdeb
#                      (dpkg-deb, dependencies from dpkg-shlibdeps, no
#                      network). Check it with lintian (make check-fleet
#                      does: tests/fleet/deb.bats); install it with dpkg -i
#                      (README, "Many workstations").

DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
DEB_VERSION := $(VERSION)-1
DEB_DIR := $(B)/deb
DEB_FILE := $(DEB_DIR)/psrenew_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_CFLAGS := $(shell dpkg-buildflags --get CFLAGS 2>/dev/null) \
	$(shell dpkg-buildflags --get CPPFLAGS 2>/dev/null)
DEB_LDFLAGS := $(shell dpkg-buildflags --get LDFLAGS 2>/dev/null)

.PHONY: deb

deb:
	@command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null || { \
		echo "deb: apt-get install dpkg-dev" >&2; exit 1; }
	rm -rf $(DEB_DIR)/root
	$(MAKE) --no-print-directory B=$(DEB_DIR)/build PREFIX=/usr \
		LIBDIR=/usr/lib/$(DEB_MULTIARCH) CFLAGS="$(DEB_CFLAGS)" \
		LDFLAGS="$(DEB_LDFLAGS)" DESTDIR=$(abspath $(DEB_DIR)/root) install
	scripts/mkdeb $(DEB_DIR)/root $(DEB_FILE) $(DEB_VERSION) $(DEB_ARCH) \
		$(DEB_MULTIARCH)
