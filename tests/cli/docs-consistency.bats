#!/usr/bin/env bats
# The README and the man pages agree with each other and with the tools:
# options, record fields, error codes, table headers, the installed data
# files and the tree's layout.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
}

# A page or the README as plain text with the options spelled out: roff's
# \- and font escapes removed, no line breaks inside a word.
plain() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\%//g' "$1"
}

# Every option of every binary (its --completion-helper), one a line.
all_options() {
	local b
	for b in "$PSRENEW_BUILD"/bin/ps-*; do "$b" --completion-helper; done | sort -u
}

# Section SECTION of a page, plain: a .SH section with its sub-sections,
# or one .SS sub-section.
section() {
	awk -v s="$2" '
	/^\.SH / { t = $0; sub(/^\.SH /, "", t); p = (t == s); sh = p }
	/^\.SS / { t = $0; sub(/^\.SS /, "", t); p = sh || (t == s) }
	p' "$1" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g'
}

# Lines with the blanks around and between words squeezed to one space.
squeeze() {
	sed -e 's/^ *//' -e 's/ *$//' -e 's/  */ /g'
}

# The table headers of lib/record.c, one line per table, words joined by
# one space ("TOKEN TYPE SERIAL NOT AFTER ...").
table_headers() {
	awk '/static const struct column [a-z_]+\[\]/ { h = ""; on = 1; next }
	on { l = $0
	     while (match(l, /"[A-Z][A-Z ]*"/)) {
		h = h (h == "" ? "" : " ") substr(l, RSTART + 1, RLENGTH - 2)
		l = substr(l, RSTART + RLENGTH) } }
	on && /NULL, NULL/ { print h; on = 0 }' "$FIXTURE_ROOT/lib/record.c"
}

@test "every option of a binary's --help is in the OPTIONS section of its man page" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		opts=$(section "$FIXTURE_ROOT/man/$name.1" OPTIONS)
		[ -n "$opts" ] || { echo "$name.1: no OPTIONS"; false; }
		for o in $("$b" --completion-helper); do
			grep -qE -- "(^|[^a-z-])$o([^a-z-]|\$)" <<<"$opts" ||
				{ echo "$name: $o not in OPTIONS of $name.1"; false; }
		done
	done
}

@test "every --option the man pages and the README name is an option of a psrenew binary, or of the other tool the line runs" {
	all=$(all_options)
	# other programs' options the texts run: systemctl, certtool,
	# pkcs11-tool, softhsm2-util, pkg-config, ansible, git; --mod is
	# psrenew(7)'s example of an abbreviation, --completion-helper the
	# hidden option of every binary
	others='--failed --to-p12 --write-object --read-object --keypairgen
		--token-label --so-pin --init-token --free --cflags --libs
		--ask-vault-pass --check --stdin-name --git-completion-helper
		--mod --completion-helper'
	bad=
	for f in "$FIXTURE_ROOT"/man/*.[157] "$FIXTURE_ROOT/README"; do
		for o in $(plain "$f" | grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' |
			grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
			grep -qx -- "$o" <<<"$all" && continue
			grep -qw -- "$o" <<<"$others" && continue
			bad+="${f##*/}: $o"$'\n'
		done
	done
	[ -z "$bad" ] || { echo "$bad"; false; }
}

@test "the fields of the records the tools print are in psrenew(7) under their kind and in the command's RECORDS" {
	demo_token
	recs=$BATS_TEST_TMPDIR/records.jsonl
	{
		ps-status --json --expiring 30,21,7 --pin "file:$PIN_FILE" || true
		ps-status --modules --json || true
		ps-token-clean --json --pin "file:$PIN_FILE" || true
		ps-renew --all-expiring 30 --dry-run --json </dev/null || true
	} >"$recs" 2>/dev/null
	for kind in cert module removable space request; do
		[ "$(jq -c "select(.kind==\"$kind\")" "$recs" | wc -l)" -ge 1 ] ||
			{ echo "no $kind record"; false; }
	done
	page7=$FIXTURE_ROOT/man/psrenew.7
	check() { # KIND TEXT WHERE
		local k
		for k in $(jq -r "select(.kind==\"$1\") | keys[]" "$recs" | sort -u); do
			[ "$k" = kind ] && continue
			grep -qw -- "$k" <<<"$2" || { echo "$1: $k not in $3"; return 1; }
		done
	}
	check cert "$(section "$page7" cert)" "psrenew(7) cert"
	check module "$(section "$page7" module)" "psrenew(7) module"
	check removable "$(section "$page7" 'removed, removable')" "psrenew(7) removed"
	check space "$(section "$page7" space)" "psrenew(7) space"
	check request "$(section "$page7" request)" "psrenew(7) request"
	check cert "$(section "$FIXTURE_ROOT/man/ps-status.1" RECORDS)" "ps-status(1) RECORDS"
	check request "$(section "$FIXTURE_ROOT/man/ps-renew.1" RECORDS)" "ps-renew(1) RECORDS"
	check removable "$(section "$FIXTURE_ROOT/man/ps-token-clean.1" RECORDS)" "ps-token-clean(1) RECORDS"
	check space "$(section "$FIXTURE_ROOT/man/ps-token-clean.1" RECORDS)" "ps-token-clean(1) RECORDS"
}

@test "every table a man page shows has the header the tool prints, and its rows line up under it" {
	headers=$(table_headers)
	[ "$(wc -l <<<"$headers")" -ge 8 ] || { echo "headers: $headers"; false; }
	n=0
	for f in "$FIXTURE_ROOT"/man/*.[157]; do
		text=$(LC_ALL=C.UTF-8 MANWIDTH=250 man -l "$f" 2>/dev/null)
		# a header line: its words joined by one space are a header of lib/record.c
		while IFS= read -r line; do
			words=$(squeeze <<<"$line")
			grep -qxF -- "$words" <<<"$headers" || continue
			n=$((n + 1))
			printf '%s\n' "$text" | python3 -c '
import re, sys
head, lines = sys.argv[1], sys.stdin.read().split("\n")
i = lines.index(head)
starts = [m.start() for m in re.finditer(r"(?<!\S)\S+(?: \S+)*", head)]
for row in lines[i + 1:]:
    if not row.strip() or re.match(r"^\s*[A-Z]+ {2,}[A-Z]", row) or "$" in row:
        break
    for s in starts:
        if len(row) <= s or row[s] == " " or (s and row[s - 1] != " "):
            sys.exit("%s: row not under its header:\n%s\n%s" % (sys.argv[2], head, row))
' "$line" "${f##*/}"
		done < <(grep -E '^ +(TOKEN|MODULE|USER|REQUEST) {2,}[A-Z]' <<<"$text")
		# a line that looks like a table header but is none of the tool's
		while IFS= read -r line; do
			words=$(squeeze <<<"$line")
			grep -qxF -- "$words" <<<"$headers" ||
				{ echo "${f##*/}: not a header the tools print: $words"; false; }
		done < <(grep -E '^ +(TOKEN|MODULE|USER|REQUEST) {2,}[A-Z]+( [A-Z]+)* {2,}[A-Z]' <<<"$text")
	done
	[ "$n" -ge 5 ]
}

@test "the tables ps-status, ps-status --modules and ps-token-clean print are the ones their pages show" {
	demo_token
	hdr() { head -1 | squeeze; }
	st=$(ps-status --human | hdr)
	mod=$(ps-status --modules --human | hdr)
	clean=$(ps-token-clean --human --pin "file:$PIN_FILE" 2>/dev/null)
	for pair in "ps-status:$st" "ps-status:TOKEN TYPE SERIAL NOT AFTER DAYS KEY STATE HOLDER" \
		"ps-token-clean:$(head -1 <<<"$clean" | squeeze)" \
		"ps-token-clean:$(grep '^TOKEN *OBJECTS' <<<"$clean" | squeeze)"; do
		page=${pair%%:*} want=${pair#*:}
		[ -n "$want" ] || { echo "$page: no table"; false; }
		LC_ALL=C.UTF-8 MANWIDTH=250 man -l "$FIXTURE_ROOT/man/$page.1" 2>/dev/null |
			grep -E '^ +[A-Z]+ {2,}[A-Z]' | squeeze | grep -qxF -- "$want" ||
			{ echo "$page(1) does not show: $want"; false; }
	done
	# --modules finds no module here but still prints its header (or none)
	[ -z "$mod" ] || [ "$mod" = "MODULE VENDOR USED ALLOWED PATH" ]
}

@test "psrenew(7)'s ERROR CODES name only codes the tools can emit" {
	codes=$(section "$FIXTURE_ROOT/man/psrenew.7" 'ERROR CODES' |
		grep -E '^\.BR? [a-z]' | awk '{print $2}' | grep -E '^[a-z][a-z0-9-]+$' | sort -u)
	[ "$(wc -l <<<"$codes")" -ge 100 ]
	for c in $codes; do
		[ "$c" = code ] && continue
		grep -rqF -- "\"$c\"" "$FIXTURE_ROOT/lib" "$FIXTURE_ROOT/cmd" ||
			{ echo "psrenew(7) lists $c, no source emits it"; false; }
	done
}

@test "README's Layout names every directory of the tree, every lib/ module and every tests/ directory" {
	layout=$(sed -n '/^Layout$/,/^Dependencies$/p' "$FIXTURE_ROOT/README")
	[ -n "$layout" ]
	for d in "$FIXTURE_ROOT"/*/; do
		d=${d%/}
		d=${d##*/}
		case $d in build | build-*) continue ;; esac # build trees (.gitignore)
		grep -qE "^    $d/" <<<"$layout" || { echo "Layout: no $d/"; false; }
	done
	for f in "$FIXTURE_ROOT"/lib/*.c; do
		m=${f##*/}
		m=${m%.c}
		grep -qw -- "$m" <<<"$layout" || { echo "Layout: no lib module $m"; false; }
	done
	for d in "$FIXTURE_ROOT"/tests/*/; do
		d=${d%/}
		d=${d##*/}
		case $d in cli | unit) continue ;; esac # "CLI tests (bats)", "unit tests (cmocka)"
		grep -qF "tests/$d" <<<"$layout" || { echo "Layout: no tests/$d"; false; }
	done
}

@test "the installed files the pages name are in data/, and their unit files and crontab lines are data/'s" {
	texts=$(for f in "$FIXTURE_ROOT"/man/*.[157] "$FIXTURE_ROOT/README"; do plain "$f"; done)
	n=0
	while read -r p; do
		compgen -G "$FIXTURE_ROOT/data/${p#share/psrenew/}" >/dev/null ||
			{ echo "no data/${p#share/psrenew/} for $p"; false; }
		n=$((n + 1))
	done < <(grep -oE 'share/psrenew/[A-Za-z0-9._/*-]*[A-Za-z0-9*]' <<<"$texts" | sort -u)
	[ "$n" -ge 5 ]
	while read -r u; do
		[ -f "$FIXTURE_ROOT/data/systemd/$u" ] || { echo "no data/systemd/$u"; false; }
	done < <(grep -oE 'psrenew-[a-z]+\.(timer|service)' <<<"$texts" | sort -u)
	# the crontab lines the pages show are those of data/cron
	cron=$(grep -v '^#' "$FIXTURE_ROOT/data/cron/psrenew.crontab" | sed 's#@BINDIR@/##')
	for page in ps-fetch ps-status; do
		shown=$(MANWIDTH=1000 man -l "$FIXTURE_ROOT/man/$page.1" 2>/dev/null |
			grep -E '^ +[0-9*/]+ +[0-9*]+ +\* +\* +\* +ps-' | sed 's/^ *//')
		[ -n "$shown" ] || { echo "$page(1): no crontab line"; false; }
		while IFS= read -r l; do
			grep -qxF -- "$l" <<<"$cron" || { echo "$page(1) shows a crontab line data/cron has not: $l"; false; }
		done <<<"$shown"
	done
	# ps-fetch(1)'s "[Service]" is the unit's, installed under /usr/local
	exec_line=$(sed -n 's#^ExecStart=@BINDIR@#ExecStart=/usr/local/bin#p' "$FIXTURE_ROOT/data/systemd/psrenew-fetch.service")
	plain "$FIXTURE_ROOT/man/ps-fetch.1" | grep -qxF -- "$exec_line"
}

@test "README's psrenew_* names are Ansible variables of data/ansible or metrics ps-status writes" {
	n=0
	while read -r v; do
		grep -rqw -- "$v" "$FIXTURE_ROOT/data/ansible" "$FIXTURE_ROOT/lib/metrics.c" ||
			{ echo "README names $v: neither a variable nor a metric"; false; }
		n=$((n + 1))
	done < <(grep -oE '\bpsrenew_[a-z_]+' "$FIXTURE_ROOT/README" | sort -u)
	[ "$n" -ge 10 ]
}

@test "--help gives the defaults the tools use: --module's search, --key-type's RSA-4096" {
	help=$(ps-status --help)
	grep -E -- '--module PATH .*psrenew\.conf.*PKCS11_MODULE.*found' <<<"$help"
	grep -E -- '--key-type TYPE .*default: rsa:4096' <<<"$(ps-renew --help)"
	# the same in ps-status(1)
	plain "$FIXTURE_ROOT/man/ps-status.1" | sed -n '/^\.BI --module /,/^\.TP/p' |
		tr '\n' ' ' | grep -qE -- 'psrenew\.conf\(5\).*PKCS11_MODULE.*--modules'
}
