#!/usr/bin/env bats
# PKCS#11 calls of a renewal do not grow with the other objects on the
# token: on a USB token each call is a round trip of 5-30 ms. Counted by
# tests/p11fault (P11FAULT_COUNT_FILE) on tokens holding 0, 20 and 60 other
# certificates, each with its key pair (the fixture's
# token_fill_keyed_certs), made once in setup_file and copied per run.
#
# The floor is tests/bench/renewfloor.c: the fewest calls the job takes,
# as ps-renew and ps-fetch are two processes. Per process: C_GetSlotList
# twice, C_GetTokenInfo (the token's slot), C_OpenSession, C_Login,
# C_CloseSession = 6. Renewal: find the certificate by CKA_CLASS + CKA_ID
# (C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal = 3), read it (1),
# find leftovers with one template (3), C_GenerateKeyPair (1), read the
# public key (1), set CKA_ID on both halves (2), C_SignInit + C_Sign (2) =
# 13, 19 in all. Install: find the private key by CKA_ID (3), find
# leftovers (3), C_CreateObject (1) = 7, 13 in all. Floor: 32, measured
# below with the program rather than trusted.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

FLOOR=32 # the derivation above; the test checks the program agrees

setup_file() {
	local n
	export CALLS_DIR=$BATS_FILE_TMPDIR
	cc -std=c11 -Wall -Wextra -Werror -O2 $(pkg-config --cflags p11-kit-1) \
		-o "$CALLS_DIR/renewfloor" "$FIXTURE_ROOT/tests/bench/renewfloor.c" -ldl
	mkdir -p "$CALLS_DIR/ca"
	for n in 0 20 60; do
		BATS_TEST_TMPDIR=$CALLS_DIR/snap-$n
		mkdir -p "$BATS_TEST_TMPDIR"
		softhsm_token "calls$n"
		token_cert commercial -300d +10d >"$CALLS_DIR/old-$n"
		token_fill_keyed_certs "$n"
	done
}

setup() {
	psrenew_setup
	COUNTS=$BATS_TEST_TMPDIR/counts
	export P11FAULT_MODULE=$SOFTHSM_MODULE P11FAULT_COUNT_FILE=$COUNTS
	CA="helper:$LOCAL_SUBMIT -d $CALLS_DIR/ca"
}

# use_token N: a copy of the token with N other certificates, made current
# (TOKEN_LABEL, TOKEN_URI, PIN_FILE, SOFTHSM2_CONF, OLD_ID).
use_token() {
	local snap=$CALLS_DIR/snap-$1 dir=$BATS_TEST_TMPDIR/tok-$1
	rm -rf "$dir"
	cp -a "$snap/softhsm" "$dir"
	printf '%s\n' "directories.tokendir = $dir/tokens" 'objectstore.backend = file' \
		'log.level = ERROR' >"$dir/softhsm2.conf"
	export SOFTHSM2_CONF=$dir/softhsm2.conf TOKEN_LABEL=calls$1 PIN=1234
	export TOKEN_URI="pkcs11:token=calls$1" PIN_FILE=$dir/pin
	OLD_ID=$(<"$CALLS_DIR/old-$1")
	export PSRENEW_STATE_DIR=$BATS_TEST_TMPDIR/state-$1
}

# count KEY: KEY's count (total, C_GetAttributeValue, ...) of the last run.
count() {
	awk -v k="$1" '$1 == k { n = $2 } END { print n + 0 }' "$COUNTS"
}

# renew_install N: one renewal and its install on a copy of token N; prints
# the calls of both runs together.
renew_install() {
	local r f
	use_token "$1"
	rm -f "$COUNTS"
	ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$OLD_ID" --ca "$CA" --quiet >"$BATS_TEST_TMPDIR/req-$1" ||
		{ echo "ps-renew failed at $1" >&2; return 1; }
	r=$(count total)
	rm -f "$COUNTS"
	ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" --quiet \
		<"$BATS_TEST_TMPDIR/req-$1" >"$BATS_TEST_TMPDIR/cert-$1" ||
		{ echo "ps-fetch failed at $1" >&2; return 1; }
	f=$(count total)
	[ "$(jq -r .kind "$BATS_TEST_TMPDIR/cert-$1")" = cert ] || return 1
	echo "$((r + f))"
}

# floor N: the floor program's renewal and install on a copy of token N.
floor() {
	local r f key
	use_token "$1"
	rm -f "$COUNTS"
	key=$("$CALLS_DIR/renewfloor" renew "$P11FAULT" "$TOKEN_LABEL" "$PIN_FILE" "$OLD_ID") ||
		return 1
	r=$(count total)
	openssl x509 -in "$CALLS_DIR/snap-$1/certs/$OLD_ID.pem" -outform DER \
		-out "$BATS_TEST_TMPDIR/c.der" || return 1
	rm -f "$COUNTS"
	"$CALLS_DIR/renewfloor" install "$P11FAULT" "$TOKEN_LABEL" "$PIN_FILE" "$key" \
		"$BATS_TEST_TMPDIR/c.der" || return 1
	f=$(count total)
	echo "$((r + f))"
}

@test "one renewal and its install make the same PKCS#11 calls at 0, 20 and 60 other certificates" {
	local c0 c20 c60 lo hi c
	c0=$(renew_install 0)
	c20=$(renew_install 20)
	c60=$(renew_install 60)
	echo "calls: $c0 at 0, $c20 at 20, $c60 at 60" >&3
	lo=$c0 hi=$c0
	for c in "$c20" "$c60"; do
		((c < lo)) && lo=$c
		((c > hi)) && hi=$c
	done
	# within a few (was 69, 309 and 789)
	[ $((hi - lo)) -le 3 ]
}

@test "one renewal and its install take at most 1.5 times the floor's PKCS#11 calls" {
	local f0 f60 c60
	f0=$(floor 0)
	f60=$(floor 60)
	[ "$f0" -eq "$FLOOR" ]
	[ "$f60" -eq "$FLOOR" ]
	c60=$(renew_install 60)
	echo "psrenew $c60, floor $FLOOR" >&3
	[ $((c60 * 2)) -le $((FLOOR * 3)) ]
}

# status_reads N [--pin ...]: ps-status on a copy of token N; prints
# "READS OTHER" (C_GetAttributeValue calls, every other call).
status_reads() {
	local n=$1
	shift
	use_token "$n"
	rm -f "$COUNTS"
	ps-status --module "$P11FAULT" --token "$TOKEN_URI" --json "$@" >"$BATS_TEST_TMPDIR/st" ||
		return 1
	[ "$(grep -c '"kind":"cert"' "$BATS_TEST_TMPDIR/st")" -eq $((n + 1)) ] || return 1
	echo "$(count C_GetAttributeValue) $(($(count total) - $(count C_GetAttributeValue)))"
}

@test "ps-status reads each object once, plus a constant" {
	local r20 r60 o20 o60
	# logged in: N + 1 certificates, private and public keys
	read -r r20 o20 < <(status_reads 20 --pin "file:$PIN_FILE")
	read -r r60 o60 < <(status_reads 60 --pin "file:$PIN_FILE")
	echo "logged in: $r20 reads + $o20 at 20, $r60 + $o60 at 60" >&3
	[ "$r20" -le $((3 * 21 + 2)) ]
	[ "$r60" -le $((3 * 61 + 2)) ]
	[ "$o20" -eq "$o60" ]
	# without a login: the certificates and the public keys
	read -r r20 o20 < <(status_reads 20)
	read -r r60 o60 < <(status_reads 60)
	echo "public: $r20 reads + $o20 at 20, $r60 + $o60 at 60" >&3
	[ "$r20" -le $((2 * 21 + 2)) ]
	[ "$r60" -le $((2 * 61 + 2)) ]
	[ "$o20" -eq "$o60" ]
}
