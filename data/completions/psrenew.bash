# bash completion for the psrenew commands: ps-status, ps-renew, ps-fetch,
# ps-jip-setserial, ps-token-clean, ps-pfx-import.
#
# Installed once per command under bash-completion's completions directory
# (it loads the file named after the command); or source it from ~/.bashrc.
# Completes the options of each command and their values: token URIs of the
# tokens present (p11-kit's modules, or the --module of the command line),
# PKCS#11 modules, secret sources, CA channels of psrenew.conf, request ids
# of the state directory, files.
# shellcheck shell=bash disable=SC2207
# (SC2207: COMPREPLY=($(compgen ...)) splits words the way completion wants)

_psrenew_common_opts='--module --token --pin --json --human --quiet --verbose
--state-dir --config --help --version'

_psrenew_opts() {
	case $1 in
	ps-status) echo '--expiring --unregistered --metrics --metrics-file --modules' ;;
	ps-renew) echo '--ca --ca-type --cacerts --id --serial --type
		--all-expiring --key-type --key --dry-run --ca-bundle --force
		--sign-with' ;;
	ps-fetch) echo '--pending --wait --cert --ca-bundle --lenient-subject
		--accept-type --now --dry-run --maildir --imap --imap-pass' ;;
	ps-jip-setserial) echo '--login --user --password --otp --for --profile
		--jip-url --ca-bundle --cert --serial --type --ca --id
		--login-cert --verify-login --list --backend --jip-ws --ws-version
		--client-cert --client-key --client-key-password
		--remove-superseded' ;;
	ps-token-clean) echo '--yes --dry-run --expired --superseded --orphans
		--id --serial --force-valid --keep-keys --for-room
		--jip-confirmed' ;;
	ps-pfx-import) echo '--pass --with-chain --label' ;;
	esac
	echo "$_psrenew_common_opts"
}

# _psrenew_word OPTION: the value of OPTION on the command line so far.
_psrenew_word() {
	local i
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == "$1" ]]; then
			printf '%s\n' "${COMP_WORDS[i + 1]}"
			return
		elif [[ ${COMP_WORDS[i]} == "$1="* ]]; then
			printf '%s\n' "${COMP_WORDS[i]#*=}"
			return
		fi
	done
}

# _psrenew_pct LABEL: LABEL percent-encoded for a pkcs11: URI (RFC 7512).
_psrenew_pct() {
	local LC_ALL=C s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c"; out+=$c ;;
		esac
	done
	printf '%s\n' "$out"
}

# _psrenew_tokens CMD: pkcs11:token=LABEL for every token present: those of
# the command line's --module (or $PKCS11_MODULE) as ps-status sees them,
# and those of the modules registered with p11-kit.
_psrenew_tokens() {
	local module label
	module=$(_psrenew_word --module)
	module=${module:-${PKCS11_MODULE:-}}
	{
		if [[ -n $module ]] && command -v "$1" >/dev/null 2>&1; then
			"$1" --module "$module" --json --quiet 2>/dev/null </dev/null |
				sed -n 's/.*"token_label":"\([^"]*\)".*/\1/p'
		fi
		if command -v p11-kit >/dev/null 2>&1; then
			p11-kit list-modules 2>/dev/null | sed -n 's/^    token: //p'
		fi
	} | sort -u | while IFS= read -r label; do
		[[ -n $label ]] && printf 'pkcs11:token=%s\n' "$(_psrenew_pct "$label")"
	done
}

# _psrenew_modules: the PKCS#11 modules registered with p11-kit, as paths.
_psrenew_modules() {
	local dir=/usr/lib/x86_64-linux-gnu/pkcs11 m
	command -v p11-kit >/dev/null 2>&1 || return 0
	if command -v pkg-config >/dev/null 2>&1; then
		dir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null) || dir=
	fi
	p11-kit list-modules 2>/dev/null | sed -n 's/^[^ ][^:]*: //p' | while IFS= read -r m; do
		[[ $m == /* ]] || m=$dir/$m
		printf '%s\n' "$m"
	done
}

# _psrenew_module_words CUR: registered modules and files that match CUR.
_psrenew_module_words() {
	local m
	_psrenew_modules | while IFS= read -r m; do
		[[ $m == "$1"* ]] && printf '%s\n' "$m"
	done
	compgen -f -- "$1"
}

# _psrenew_pfx_words CUR: PFX files and directories that match CUR.
_psrenew_pfx_words() {
	compgen -f -X '!*.[pP][fF][xX]' -- "$1"
	compgen -f -X '!*.[pP]12' -- "$1"
	compgen -d -- "$1"
}

# _psrenew_ca_names: the [ca.NAME] sections of the configuration.
_psrenew_ca_names() {
	local conf
	conf=$(_psrenew_word --config)
	if [[ -z $conf ]]; then
		conf=${PSRENEW_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/psrenew/psrenew.conf}
		[[ -r $conf ]] || conf=/etc/psrenew/psrenew.conf
	fi
	[[ -r $conf ]] && sed -n 's/^\[ca\.\([^]]*\)\].*/\1/p' "$conf"
}

# _psrenew_requests: ids of the requests in the state directory.
_psrenew_requests() {
	local dir f
	dir=$(_psrenew_word --state-dir)
	dir=${dir:-${PSRENEW_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/psrenew}}
	for f in "$dir"/requests/*.json; do
		[[ -e $f ]] && { f=${f##*/}; printf '%s\n' "${f%.json}"; }
	done
}

# _psrenew_lines CMD...: COMPREPLY from CMD's lines (names with spaces).
_psrenew_lines() {
	mapfile -t COMPREPLY < <("$@")
}

_psrenew_files() {
	compopt -o filenames 2>/dev/null
	_psrenew_lines compgen -f -- "$1"
}

_psrenew_secret() { # prompt, env:VAR, file:PATH, fd:N (and pinpad)
	local cur=$1 extra=$2
	case $cur in
	file:*)
		compopt -o filenames 2>/dev/null
		_psrenew_lines compgen -f -P file: -- "${cur#file:}" ;;
	env:*) COMPREPLY=($(compgen -v -P env: -- "${cur#env:}")) ;;
	*)
		COMPREPLY=($(compgen -W "prompt $extra env: file: fd:" -- "$cur"))
		# env:, file:, fd: go on with their argument: no space after them
		[[ ${COMPREPLY[*]} == *: ]] && compopt -o nospace 2>/dev/null ;;
	esac
}

_psrenew() {
	local cmd=${1##*/} cur prev
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	# --opt=value
	if [[ $cur == --*=* ]]; then
		prev=${cur%%=*}
		cur=${cur#*=}
	fi
	case $prev in
	--token) COMPREPLY=($(compgen -W "$(_psrenew_tokens "$1")" -- "$cur")); return ;;
	--module)
		compopt -o filenames 2>/dev/null
		_psrenew_lines _psrenew_module_words "$cur"
		return ;;
	--pin) _psrenew_secret "$cur" pinpad; return ;;
	--password | --otp | --pass | --client-key-password | --imap-pass) _psrenew_secret "$cur" ''; return ;;
	--state-dir | --maildir)
		compopt -o filenames 2>/dev/null
		_psrenew_lines compgen -d -- "$cur"
		return ;;
	--config | --cert | --ca-bundle | --profile | --cacerts | --client-cert | --client-key | --metrics-file)
		_psrenew_files "$cur"; return ;;
	--type) COMPREPLY=($(compgen -W 'qualified commercial' -- "$cur")); return ;;
	--ca-type) COMPREPLY=($(compgen -W 'cmp est' -- "$cur")); return ;;
	--sign-with) COMPREPLY=($(compgen -W 'qualified current id: serial:' -- "$cur")); return ;;
	--login) COMPREPLY=($(compgen -W 'password cert otp nia' -- "$cur")); return ;;
	--backend) COMPREPLY=($(compgen -W 'html ws' -- "$cur")); return ;;
	--ws-version) COMPREPLY=($(compgen -W '1.0 1.1' -- "$cur")); return ;;
	--key-type)
		COMPREPLY=($(compgen -W 'rsa:2048 rsa:3072 rsa:4096 ec:prime256v1 ec:secp384r1' -- "$cur"))
		return ;;
	--ca)
		if [[ $cmd == ps-renew ]]; then
			compopt -o nospace 2>/dev/null
			COMPREPLY=($(compgen -W "$(_psrenew_ca_names)
helper: cmp:// est:// https:// mail:smtp:// mail:smtps:// mail:-" -- "$cur"))
		else
			COMPREPLY=($(compgen -W 'PostSignum I.CA eIdentity' -- "$cur"))
		fi
		return ;;
	--expiring | --all-expiring | --for-room | --wait | --id | --serial | --key | \
		--user | --for | --jip-url | --jip-ws | --login-cert | --jip-confirmed | --label | --imap)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_psrenew_opts "$cmd")" -- "$cur"))
		return
	fi
	case $cmd in
	ps-fetch) COMPREPLY=($(compgen -W "$(_psrenew_requests)" -- "$cur")) ;;
	ps-pfx-import)
		compopt -o filenames 2>/dev/null
		_psrenew_lines _psrenew_pfx_words "$cur" ;;
	esac
}

complete -F _psrenew ps-status ps-renew ps-fetch ps-jip-setserial ps-token-clean ps-pfx-import
