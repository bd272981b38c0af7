#!/usr/bin/env bats
# make install / make uninstall: PREFIX and DESTDIR, library, header,
# pkg-config file, man pages; installed binaries run.

setup() {
	top=$BATS_TEST_DIRNAME/../..
	dest=$BATS_TEST_TMPDIR/dest
}

@test "make install puts everything under DESTDIR/PREFIX and the binaries run there" {
	make -C "$top" -s install DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	for f in bin/ps-status bin/ps-renew bin/ps-fetch lib/libpsrenew.a \
		lib/libpsrenew.so lib/libpsrenew.so.0 include/psrenew/cert.h \
		include/psrenew/token.h lib/pkgconfig/psrenew.pc \
		share/man/man1/ps-status.1 share/man/man7/psrenew.7 \
		share/man/man5/psrenew.conf.5; do
		[ -e "$dest/opt/psr/$f" ] || { echo "missing $f"; false; }
	done
	# soname and the library found next to the binaries
	objdump -p "$dest/opt/psr/lib/libpsrenew.so" | grep -q 'SONAME *libpsrenew.so.0'
	run "$dest/opt/psr/bin/ps-status" --version
	[ "$status" -eq 0 ]
	[[ "$output" == "ps-status (psrenew) "* ]]
	ldd "$dest/opt/psr/bin/ps-status" | grep -q "$dest/opt/psr/bin/../lib/libpsrenew.so.0"
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
