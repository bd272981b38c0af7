#!/usr/bin/env bats
# Every binary has a man page that renders cleanly and documents every
# option its --help lists.

load ../lib/psrenew

@test "every man page renders without warnings" {
	for m in "$FIXTURE_ROOT"/man/*.[157]; do
		run groff -k -ww -z -Tutf8 -man "$m"
		[ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$m: $output"; false; }
	done
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

@test "psrenew(7) documents every exit status and the guide's abbreviations" {
	text=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.7" 2>/dev/null)
	for word in JIP KAAS AIS OVM SZR RAZR ROB ROVM RPP ZR DIA NIA "Error 621" "Error 622"; do
		grep -q "$word" <<<"$text" || { echo "missing $word"; false; }
	done
	for code in 0 1 2 3 4 5 6; do
		grep -qE "^ {7}$code +" <<<"$text" || { echo "exit $code"; false; }
	done
}
