# shellcheck shell=bash
# Common setup for the CLI tests of psrenew's binaries.
#   load ../lib/psrenew   (loads the fixture too)
load ../lib/fixture

PSRENEW_BUILD=${PSRENEW_BUILD:-$FIXTURE_ROOT/build}
PATH=$PSRENEW_BUILD/bin:$PATH
# PSRENEW_WRAP="CMD ARGS": every ps-* the tests run goes through CMD (e.g.
# valgrind, see tests/run --valgrind): wrappers in front of the build's bin.
if [[ -n ${PSRENEW_WRAP:-} ]]; then
	_ps_wrap=${BATS_RUN_TMPDIR:-${BATS_FILE_TMPDIR:-/tmp}}/psrenew-wrap
	if [[ ! -e $_ps_wrap/.done ]]; then
		mkdir -p "$_ps_wrap"
		for _ps_bin in "$PSRENEW_BUILD"/bin/ps-*; do
			printf '#!/bin/sh\n# shellcheck disable=SC2086\nexec $PSRENEW_WRAP %q "$@"\n' \
				"$_ps_bin" >"$_ps_wrap/${_ps_bin##*/}"
			chmod +x "$_ps_wrap/${_ps_bin##*/}"
		done
		touch "$_ps_wrap/.done"
	fi
	PATH=$_ps_wrap:$PATH
fi
P11FAULT=$PSRENEW_BUILD/tests/p11fault.so
LOCAL_SUBMIT=${LOCAL_SUBMIT:-/usr/lib/certmonger/local-submit}
SCRIPTED_HELPER=$FIXTURE_ROOT/tests/ca/scripted-helper
export PSRENEW_STATE_DIR PSRENEW_CONFIG=/dev/null
# New keys are RSA-2048 (fast on SoftHSM) unless a test is about the key
# size: the default (RSA-4096 where the token can) is keysize.bats' subject.
export PSRENEW_KEY_TYPE=rsa:2048

# Each test gets its own state directory and no configuration file.
psrenew_setup() {
	PSRENEW_STATE_DIR=$BATS_TEST_TMPDIR/state
	export PSRENEW_STATE_DIR
	unset PKCS11_MODULE
}

# renew_pending N CA BUNDLE: N pending requests to the channel CA (trust:
# BUNDLE) for demo_token's commercial certificate ($COMM_ID; new EC keys),
# made by one ps-renew --force run: exit 3 and N "pending" records.
renew_pending() {
	local n=$1 i
	ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json --quiet |
		jq -c --arg id "$COMM_ID" 'select(.id == $id)' >"$BATS_TEST_TMPDIR/cert.json"
	for ((i = 0; i < n; i++)); do cat "$BATS_TEST_TMPDIR/cert.json"; done \
		>"$BATS_TEST_TMPDIR/in.jsonl"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca "$2" --ca-bundle "$3" --key-type ec:prime256v1 --force \
		<"$BATS_TEST_TMPDIR/in.jsonl"
	[ "$status" -eq 3 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq "$n" ]
}

# jfield FIELD: FIELD of every JSON record on stdin, one per line.
jfield() {
	jq -r ".$1 // \"null\""
}

# records_valid: every line of $output is a JSON object with a "kind".
records_valid() {
	local line
	while IFS= read -r line; do
		[ -z "$line" ] && continue
		jq -e 'type == "object" and (.kind | type == "string")' \
			<<<"$line" >/dev/null || { echo "not a record: $line" >&2; return 1; }
	done <<<"$output"
}

# token_objects CLASS: how many objects of a class (privkey, pubkey, cert)
# pkcs11-tool sees on the current token, logged in.
token_objects() {
	local pat
	case $1 in
	privkey) pat='^Private Key Object' ;;
	pubkey) pat='^Public Key Object' ;;
	cert) pat='^Certificate Object' ;;
	esac
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O --type "$1" 2>/dev/null | grep -c "$pat" || true
}

# half_written KIND: an object file as SoftHSM's file store leaves it when
# the process is killed inside C_CreateObject: "none" without any attribute,
# not even a class; "pubkey" with a class and a key type only, "cert" with
# a class and a certificate type only (SoftHSM adds the empty defaults when
# it is read). The numbers are 64-bit big-endian:
# the generation, then per attribute its type, 2 (a number) and the value.
half_written() {
	local f=$TOKEN_DIR/$(cat /proc/sys/kernel/random/uuid) n0='\0\0\0\0\0\0\0'
	: >"$f.lock"
	{
		printf "$n0\1"
		if [[ $1 == pubkey ]]; then
			printf "$n0\0$n0\2$n0\2" # CKA_CLASS: CKO_PUBLIC_KEY
			printf '\0\0\0\0\0\0\1\0'"$n0\2$n0\0" # CKA_KEY_TYPE: CKK_RSA
		elif [[ $1 == cert ]]; then
			printf "$n0\0$n0\2$n0\1" # CKA_CLASS: CKO_CERTIFICATE
			printf "$n0\x80$n0\2$n0\0" # CKA_CERTIFICATE_TYPE: CKC_X_509
		fi
	} >"$f.object"
}
