#!/usr/bin/env bats
# make install / make uninstall: PREFIX and DESTDIR, library, public
# headers, pkg-config file, man pages; installed binaries run; the
# library's boundary (docs/API.md): only the public API is exported, from
# the shared and the static library, and a program builds against it.

setup() {
	top=$BATS_TEST_DIRNAME/../..
	dest=$BATS_TEST_TMPDIR/dest
}

@test "make install puts everything under DESTDIR/PREFIX and the binaries run there" {
	make -C "$top" -s install DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	for f in bin/ps-status bin/ps-renew bin/ps-fetch lib/libpsrenew.a \
		lib/libpsrenew.so lib/libpsrenew.so.0 include/psrenew/cert.h \
		include/psrenew/token.h include/psrenew/psrenew.h \
		lib/pkgconfig/psrenew.pc \
		share/man/man1/ps-status.1 share/man/man7/psrenew.7 \
		share/man/man5/psrenew.conf.5; do
		[ -e "$dest/opt/psr/$f" ] || { echo "missing $f"; false; }
	done
	objdump -p "$dest/opt/psr/lib/libpsrenew.so" | grep -q 'SONAME *libpsrenew.so.0'
	# The binaries carry the internal archive: they run without the
	# shared library, which holds only the public API.
	run "$dest/opt/psr/bin/ps-status" --version
	[ "$status" -eq 0 ]
	[[ "$output" == "ps-status (psrenew) "* ]]
	run ldd "$dest/opt/psr/bin/ps-status"
	[[ "$output" != *libpsrenew* ]]
}

@test "make install installs the public headers only" {
	make -C "$top" -s install DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	want=$(make -C "$top" -s --no-print-directory print-pub-hdr | tr ' ' '\n' |
		sed 's|.*/||' | sort)
	have=$(ls "$dest/opt/psr/include/psrenew" | sort)
	[ "$have" = "$want" ]
	for h in cli.h secret.h keypair.h signer.h progress.h; do
		[ ! -e "$dest/opt/psr/include/psrenew/$h" ] || { echo "internal $h installed"; false; }
	done
}

@test "a program builds against the installed library with pkg-config" {
	make -C "$top" -s install DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	cat > "$BATS_TEST_TMPDIR/t.c" <<'C'
#include <stdio.h>
#include <psrenew/cert.h>
int main(void)
{
	char *hex;
	if (ps_serial_normalise("0a:1b", &hex, NULL))
		return 1;
	puts(hex);
	return 0;
}
C
	pc=$dest/opt/psr/lib/pkgconfig
	flags=$(PKG_CONFIG_PATH=$pc pkg-config --define-prefix --cflags --libs psrenew)
	cc -o "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/t.c" $flags \
		-Wl,-rpath,"$dest/opt/psr/lib"
	run "$BATS_TEST_TMPDIR/t"
	[ "$output" = 0A1B ]
}

@test "make uninstall removes what make install put there" {
	make -C "$top" -s install DESTDIR="$dest" PREFIX=/usr >/dev/null
	[ -x "$dest/usr/bin/ps-status" ]
	make -C "$top" -s uninstall DESTDIR="$dest" PREFIX=/usr >/dev/null
	[ -z "$(find "$dest" -type f -o -type l)" ]
}

# Installs once into $inst (the PREFIX itself: no DESTDIR, so that
# psrenew.pc is right without --define-prefix, which would move the
# prefix of p11-kit's .pc file too) for the boundary tests.
install_once() {
	inst=$BATS_FILE_TMPDIR/inst
	if [ ! -e "$inst/.done" ]; then
		make -C "$top" -s install PREFIX="$inst" >/dev/null
		touch "$inst/.done"
	fi
	export PKG_CONFIG_PATH=$inst/lib/pkgconfig
	map=$top/lib/libpsrenew.map
	# The names lib/libpsrenew.map exports, sorted.
	exported=$(sed -n '/^global:/,/^local:/p' "$map" |
		sed -n 's/^[[:space:]]*\([a-z_0-9]*\);.*/\1/p' | sort)
}

# A certificate to read: $BATS_TEST_TMPDIR/cert.der.
make_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -keyout "$BATS_TEST_TMPDIR/key.pem" -subj "/CN=Jan Novak" \
		-days 30 -outform DER -out "$BATS_TEST_TMPDIR/cert.der" 2>/dev/null
}

@test "the installed shared library exports lib/libpsrenew.map and nothing else" {
	install_once
	[ "$(echo "$exported" | wc -l)" -gt 50 ]
	# one PS_API declaration per exported function
	declared=$(cat "$top"/lib/psrenew/*.h | sed -n 's/^PS_API .*[ *]\([a-z_0-9]*\)(.*/\1/p' | sort)
	[ "$declared" = "$exported" ]
	have=$(nm -D --defined-only "$inst/lib/libpsrenew.so" | awk '{ print $3 }' |
		sed 's/@.*//' | sort)
	diff <(echo "$exported") <(echo "$have")
}

@test "the installed static library shows only the public API" {
	install_once
	# global symbols it defines (any kind in upper case but U)
	have=$(nm "$inst/lib/libpsrenew.a" | awk 'NF == 3 && $2 ~ /^[A-TV-Z]$/ { print $3 }' | sort)
	diff <(echo "$exported") <(echo "$have")
	# lib/lazy.c's forwarders are local to it, not libcurl's names
	run bash -c "nm '$inst/lib/libpsrenew.a' | grep -E ' [A-Z] (curl_|xml|html|PKCS11_)' | grep -v ' U '"
	[ -z "$output" ]
}

@test "a program built with pkg-config runs against the installed shared library" {
	install_once
	make_cert
	cc -std=c11 -Wall -Wextra -Werror -o "$BATS_TEST_TMPDIR/t" \
		"$top/tests/install/public-api.c" \
		$(pkg-config --cflags --libs psrenew) \
		-Wl,-rpath,"$inst/lib"
	ldd "$BATS_TEST_TMPDIR/t" | grep -q "$inst/lib/libpsrenew.so.0"
	run "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/cert.der"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "version $(sed -n 's/.*PSRENEW_VERSION "\(.*\)"/\1/p' "$top/lib/psrenew/version.h")" ]
	[[ "${lines[1]}" == "cert Jan Novak commercial ec:prime256v1 "* ]]
	[ "${lines[2]}" = "record error token-full 6" ]
}

@test "a program links the installed static library (pkg-config --static) and the real libcurl" {
	install_once
	make_cert
	# -Bstatic: libpsrenew.a, not the .so beside it
	flags=$(pkg-config --static --cflags --libs psrenew |
		sed 's/-lpsrenew/-Wl,-Bstatic -lpsrenew -Wl,-Bdynamic/')
	cc -std=c11 -Wall -Wextra -Werror -DWITH_CURL -o "$BATS_TEST_TMPDIR/t" \
		"$top/tests/install/public-api.c" $flags $(pkg-config --libs libcurl)
	run ldd "$BATS_TEST_TMPDIR/t"
	[[ "$output" != *libpsrenew* ]]
	[[ "$output" == *libcurl* ]]
	# curl_easy_init is libcurl's, not a copy from libpsrenew.a
	nm -D "$BATS_TEST_TMPDIR/t" | grep -Eq ' U curl_easy_init($|@)'
	run "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/cert.der"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = "record error token-full 6" ]
	[[ "${lines[3]}" == "curl "* ]]
}

@test "each installed public header compiles on its own, in C11 and C++; C++ links" {
	install_once
	cflags=$(pkg-config --cflags psrenew)
	n=0
	for h in "$inst"/include/psrenew/*.h; do
		printf '#include <psrenew/%s>\n' "${h##*/}" >"$BATS_TEST_TMPDIR/h.c"
		cc -std=c11 -Wall -Wextra -Werror -fsyntax-only $cflags \
			"$BATS_TEST_TMPDIR/h.c" || { echo "C: ${h##*/}"; false; }
		if command -v g++ >/dev/null; then
			g++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $cflags \
				-x c++ "$BATS_TEST_TMPDIR/h.c" || { echo "C++: ${h##*/}"; false; }
		fi
		n=$((n + 1))
	done
	[ "$n" -gt 10 ]
	# and a C++ program links (PS_API gives the functions C linkage)
	if command -v g++ >/dev/null; then
		make_cert
		g++ -std=c++11 -Wall -Wextra -Werror -o "$BATS_TEST_TMPDIR/t" \
			-x c++ "$top/tests/install/public-api.c" -x none \
			$(pkg-config --cflags --libs psrenew) -Wl,-rpath,"$inst/lib"
		run "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/cert.der"
		[ "$status" -eq 0 ]
		[ "${lines[2]}" = "record error token-full 6" ]
	fi
}
