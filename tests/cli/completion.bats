#!/usr/bin/env bats
# Shell completions (data/completions): bash completes every option of every
# binary's --help, and values (token URIs of present tokens, modules, secret
# sources, CA names, request ids); zsh knows the same options; make install
# puts them where bash-completion and zsh look.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

BASH_COMP=$FIXTURE_ROOT/data/completions/psrenew.bash
ZSH_COMP=$FIXTURE_ROOT/data/completions/_psrenew

# comp LINE: what bash completes at the end of LINE (words split on
# spaces; a trailing space starts a new, empty word), one per line.
comp() {
	local line=$1
	bash -c '
		source "$1"
		read -ra COMP_WORDS <<<"$2"
		[[ $2 == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$2 COMP_POINT=${#2}
		_psrenew "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$BASH_COMP" "$line"
}

help_opts() {
	"$PSRENEW_BUILD/bin/$1" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u
}

setup() {
	psrenew_setup
}

@test "bash: the completion loads and registers every binary" {
	run bash -c 'source "$1" && complete -p' _ "$BASH_COMP"
	[ "$status" -eq 0 ]
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		grep -q "complete -F _psrenew .*${b##*/}" <<<"$output" || { echo "${b##*/} not registered"; false; }
	done
}

@test "bash: every option of every binary's --help is completed, and nothing else" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		want=$(help_opts "$name")
		got=$(comp "$name --" | sort -u)
		[ "$got" = "$want" ] || { echo "$name:"; diff <(echo "$want") <(echo "$got"); false; }
	done
	# a prefix narrows it
	[ "$(comp 'ps-token-clean --for')" = "--for-room
--force-valid" ] || [ "$(comp 'ps-token-clean --for' | sort)" = "--for-room
--force-valid" ]
	[ "$(comp 'ps-status --exp')" = --expiring ]
}

@test "bash: --token offers the URIs of the tokens present" {
	softhsm_token 'Token ME;2'
	demo_token
	got=$(comp "ps-status --module $PKCS11_MODULE --token ")
	grep -qx 'pkcs11:token=Token%20ME%3B2' <<<"$got" || { echo "$got"; false; }
	# what it offers is a URI ps-status takes
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token 'pkcs11:token=Token%20ME%3B2' --json
	[ "$status" -eq 0 ]
	[ "$(jfield token_label <<<"$output" | sort -u)" = 'Token ME;2' ]
	# --opt=value works too
	grep -qx 'pkcs11:token=Token%20ME%3B2' <<<"$(comp "ps-renew --module $PKCS11_MODULE --token=pkcs11:tok")"
}

@test "bash: values: secret sources, files, CA names, types, request ids" {
	[ "$(comp 'ps-status --pin ' | sort | tr '\n' ' ')" = "env: fd: file: pinpad prompt " ]
	[ "$(comp 'ps-jip-setserial --password ' | sort | tr '\n' ' ')" = "env: fd: file: prompt " ]
	touch "$BATS_TEST_TMPDIR/pin-file"
	[ "$(comp "ps-status --pin file:$BATS_TEST_TMPDIR/pin-f")" = "file:$BATS_TEST_TMPDIR/pin-file" ]
	[ "$(comp 'ps-renew --type ' | sort | tr '\n' ' ')" = "commercial qualified " ]
	[ "$(comp 'ps-jip-setserial --login c')" = cert ]
	printf '[ca.postsignum]\nchannel = mail:-\n[ca.office]\nchannel = helper:/bin/true\n' \
		>"$BATS_TEST_TMPDIR/p.conf"
	got=$(comp "ps-renew --config $BATS_TEST_TMPDIR/p.conf --ca ")
	grep -qx postsignum <<<"$got" && grep -qx office <<<"$got" && grep -qx 'est://' <<<"$got"
	mkdir -p "$PSRENEW_STATE_DIR/requests"
	echo '{}' >"$PSRENEW_STATE_DIR/requests/20261124-101010-0a1b2c3d.json"
	[ "$(comp 'ps-fetch 2026')" = 20261124-101010-0a1b2c3d ]
	touch "$BATS_TEST_TMPDIR/komercni.pfx" "$BATS_TEST_TMPDIR/other.txt"
	[ "$(comp "ps-pfx-import $BATS_TEST_TMPDIR/k")" = "$BATS_TEST_TMPDIR/komercni.pfx" ]
	[ -z "$(comp "ps-pfx-import $BATS_TEST_TMPDIR/o")" ]
}

@test "bash and zsh offer exactly the options of each binary's --completion-helper" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		want=$("$b" --completion-helper | sort -u)
		[ -n "$want" ]
		got=$(comp "$name --" | sort -u)
		[ "$got" = "$want" ] || { echo "bash, $name:"; diff <(echo "$want") <(echo "$got"); false; }
		specs=$(zsh_specs "$name")
		for opt in $want; do
			grep -qE -- "(^|[^a-z-])$opt([=[,}])" <<<"$specs" ||
				{ echo "zsh, $name: $opt not in $ZSH_COMP"; false; }
		done
		# and no option zsh offers is missing from the table
		for opt in $(grep -oE -- "[{,'(]--[a-z][a-z-]*" <<<"$specs" | sed 's/^.//' | sort -u); do
			grep -qx -- "$opt" <<<"$want" || { echo "zsh, $name: $opt is no option"; false; }
		done
	done
}

# zsh_specs NAME: the common option specs and those of NAME's branch.
zsh_specs() {
	awk -v n="$1" '
		/^\tcommon=\($/ { c = 1; next }
		c && /^\t\)$/ { c = 0 }
		$0 == "\t" n ")" { b = 1; next }
		b && /;;/ { b = 0 }
		c || b' "$ZSH_COMP"
}

@test "zsh: the completion names every option of every binary's --help" {
	grep -qx '#compdef ps-status ps-renew ps-fetch ps-jip-setserial ps-token-clean ps-pfx-import' "$ZSH_COMP"
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		name=${b##*/}
		specs=$(zsh_specs "$name")
		[ "$(grep -c "'" <<<"$specs")" -ge 11 ] || { echo "$name: no branch"; false; }
		for opt in $(help_opts "$name"); do
			grep -qE -- "(^|[^a-z-])$opt([=[,}])" <<<"$specs" ||
				{ echo "$name: $opt not in $ZSH_COMP"; false; }
		done
	done
}

@test "zsh: the completion loads and completes in zsh (when zsh is installed)" {
	command -v zsh >/dev/null || skip "zsh is not installed"
	run zsh -n "$ZSH_COMP"
	[ "$status" -eq 0 ]
	run zsh -fc '
		fpath=("${1%/*}" $fpath)
		autoload -Uz compinit && compinit -u -D
		[[ $_comps[ps-status] == _psrenew && $_comps[ps-pfx-import] == _psrenew ]]' _ "$ZSH_COMP"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "make install puts the completions where bash-completion and zsh look" {
	dest=$BATS_TEST_TMPDIR/dest
	make -C "$FIXTURE_ROOT" -s install B="$PSRENEW_BUILD" DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		f=$dest/opt/psr/share/bash-completion/completions/${b##*/}
		cmp "$BASH_COMP" "$f" || { echo "missing $f"; false; }
	done
	cmp "$ZSH_COMP" "$dest/opt/psr/share/zsh/site-functions/_psrenew"
	make -C "$FIXTURE_ROOT" -s uninstall B="$PSRENEW_BUILD" DESTDIR="$dest" PREFIX=/opt/psr >/dev/null
	[ -z "$(find "$dest" -type f -o -type l)" ]
}
