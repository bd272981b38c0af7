#!/usr/bin/env bats
# Every binary has a man page that renders cleanly and documents every
# option its --help lists.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

# A page that warns: letters outside ASCII are written \[uXXXX] (groff
# reads its input as Latin-1), and letters the output device's fonts lack
# get a .fchar fallback (see man/psrenew.7).
@test "every man page renders without warnings: groff -ww -z -man, the UTF-8 device, man -l" {
	n=0
	for m in "$FIXTURE_ROOT"/man/*.[157]; do
		run --separate-stderr groff -ww -z -man "$m"
		[ "$status" -eq 0 ] && [ -z "$stderr" ] || { echo "groff -ww -z -man $m: $stderr"; false; }
		run --separate-stderr groff -k -ww -z -Tutf8 -man "$m"
		[ "$status" -eq 0 ] && [ -z "$stderr" ] || { echo "groff -Tutf8 $m: $stderr"; false; }
		run --separate-stderr env LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m"
		[ "$status" -eq 0 ] && [ -z "$stderr" ] || { echo "man -l $m: $stderr"; false; }
		[ -n "$output" ]
		n=$((n + 1))
	done
	[ "$n" -ge 8 ]
	# the check can fail: a C1 byte, as raw UTF-8 "č" gives groff
	printf '.TH X 1\n.SH NAME\nx \\- \xc4\x8desk\xc3\xa1\n' >"$BATS_TEST_TMPDIR/x.1"
	run --separate-stderr groff -ww -z -man "$BATS_TEST_TMPDIR/x.1"
	[[ "$stderr" == *"warning"* ]]
}

@test "the Czech words of the escaped pages come out as written" {
	text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.7" 2>/dev/null)
	for w in "následný certifikát" "Česká pošta" "orgán veřejné moci" "Stažení certifikátu" \
		"správa základních registrů"; do
		grep -qF "$w" <<<"$text" || { echo "missing: $w"; false; }
	done
	text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$FIXTURE_ROOT/man/ps-token-clean.1" 2>/dev/null)
	grep -qF "Vyčistit" <<<"$text"
}

@test "every binary has a man page documenting every option of --help" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		page=$FIXTURE_ROOT/man/$name.1
		[ -f "$page" ] || { echo "no man page for $name"; false; }
		text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
		for opt in $("$b" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
			grep -q -- "$opt" <<<"$text" || { echo "$name: $opt not in $page"; false; }
		done
	done
}

@test "every option of every binary's option table is in its man page and its --help" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		page=$FIXTURE_ROOT/man/$name.1
		text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
		table=$("$b" --completion-helper | sort)
		[ "$(wc -l <<<"$table")" -ge 12 ] || { echo "$name: no table"; false; }
		for opt in $table; do
			grep -q -- "$opt" <<<"$text" || { echo "$name: $opt not in $page"; false; }
		done
		help=$("$b" --help | grep -oE -- '^  (-[a-zA-Z], |    )--[a-z][a-z-]*' |
			grep -oE -- '--[a-z-]+' | sort)
		[ "$help" = "$table" ] || { echo "$name:"; diff <(echo "$table") <(echo "$help"); false; }
	done
	grep -q -- '--completion-helper' <<<"$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.7" 2>/dev/null)"
}

@test "psrenew(7) documents every exit status and the guide's abbreviations" {
	text=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.7" 2>/dev/null)
	for word in JIP KAAS AIS OVM SZR RAZR ROB ROVM RPP ZR DIA NIA "Error 621" "Error 622"; do
		grep -q "$word" <<<"$text" || { echo "missing $word"; false; }
	done
	for code in 0 1 2 3 4 5 6; do
		grep -qE "^ {7}$code +" <<<"$text" || { echo "exit $code"; false; }
	done
}
