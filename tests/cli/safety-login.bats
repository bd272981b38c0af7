#!/usr/bin/env bats
# PIN tries: a TokenME locks after a few wrong PINs. At most one C_Login per
# token and process; a PIN source goes only to its own token; an empty PIN,
# an unattended final try and a missing PIN pad are refused before any try;
# --token narrows all work. Logins are counted per token by tests/p11fault
# (the "C_Login@LABEL N" lines of P11FAULT_COUNT_FILE).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	SH_DIR=$BATS_TEST_TMPDIR/script
	SH_CA="helper:$SCRIPTED_HELPER $SH_DIR"
	mkdir -p "$SH_DIR"
	COUNTS=$BATS_TEST_TMPDIR/counts
	BAD=$BATS_TEST_TMPDIR/bad.pin
	(umask 077 && printf 0000 >"$BAD")
	export P11FAULT_MODULE=$SOFTHSM_MODULE P11FAULT_COUNT_FILE=$COUNTS
}

# ----------------------------------------------------------------- helpers

# answers LINE...: the scripted helper's answers, one per call.
answers() {
	printf '%s\n' "$@" >"$SH_DIR/answers"
}

# logins [LABEL]: the C_Login calls of the last run (on token LABEL).
logins() {
	local key=C_Login${1:+@$1}
	[ -e "$COUNTS" ] || { echo 0; return; }
	awk -v k="$key" '$1 == k { n = $2 } END { print n + 0 }' "$COUNTS"
}

# p11run BIN ARGS...: BIN through the p11fault shim (counts reset), stderr apart.
p11run() {
	rm -f "$COUNTS"
	run --separate-stderr "$@"
}

# pending_requests N: N pending requests on the current (demo) token,
# made by ps-renew with the right PIN; their ids are added to REQS.
pending_requests() {
	local id
	answers pending
	for id in "$QUAL_ID" "$COMM_ID" "$FRESH_ID"; do
		run --separate-stderr ps-renew --module "$PKCS11_MODULE" \
			--pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$id" \
			--ca "$SH_CA" --force
		[ "$status" -eq 3 ] || { echo "ps-renew: $status $output $stderr"; return 1; }
		REQS+=("$(jq -r 'select(.kind == "request") | .request_id' <<<"$output")")
	done
	[ "${#REQS[@]}" -gt 0 ]
}

# two_tokens: tokens alpha and beta (demo certificates, PIN 1234), three
# pending requests each (REQS_A, REQS_B); the CA issues on the next call.
two_tokens() {
	softhsm_token alpha && demo_token || return 1
	REQS=()
	pending_requests || return 1
	REQS_A=("${REQS[@]}") URI_A=$TOKEN_URI
	softhsm_token beta && demo_token || return 1
	REQS=()
	pending_requests || return 1
	REQS_B=("${REQS[@]}") URI_B=$TOKEN_URI
	answers issue
	: >"$SH_DIR/calls"
}

# state ID: the state of request ID.
state() {
	jq -r .state "$PSRENEW_STATE_DIR/requests/$1.json"
}

# own_pins SOURCE: a configuration giving alpha and beta SOURCE as their
# own PIN source.
own_pins() {
	cat >"$BATS_TEST_TMPDIR/own.conf" <<EOF
[token.alpha]
uri = pkcs11:token=alpha
pin = $1

[token.beta]
uri = pkcs11:token=beta
pin = $1
EOF
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/own.conf
}

# ------------------------------------------------------- 1: one try a token

@test "item 1: ps-fetch with a wrong PIN tries each token once, whatever the number of requests" {
	softhsm_token alpha && demo_token
	REQS=()
	pending_requests
	answers issue
	p11run ps-fetch --module "$P11FAULT" --pin "file:$BAD" --pending --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output" | sort -u)" = pin-incorrect ]
	[ "$(jq -s 'map(select(.kind == "error")) | length' <<<"$output")" -eq 3 ]
	# nothing lost: the issued certificates wait in their requests
	for r in "${REQS[@]}"; do [ "$(state "$r")" = issued ]; done
	# request ids as arguments, a descriptor read once
	p11run ps-fetch --module "$P11FAULT" --pin fd:3 "${REQS[@]}" 3<"$BAD"
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ]
	p11run ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" --accept-type "${REQS[@]}"
	[ "$status" -eq 0 ]
	[ "$(logins alpha)" -eq 1 ]
	for r in "${REQS[@]}"; do [ "$(state "$r")" = installed ]; done
}

@test "item 1: two module handles of one token share its one try" {
	softhsm_token alpha && demo_token
	ln -s "$P11FAULT" "$BATS_TEST_TMPDIR/other-name.so"
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	# the same token, through two names of one module: two groups
	recs=$(jq -c --arg a "$P11FAULT" --arg b "$BATS_TEST_TMPDIR/other-name.so" \
		'select(.id == env.QUAL_ID) | .module = $a, .module = $b' <<<"$output")
	[ "$(grep -c . <<<"$recs")" -eq 2 ]
	rm -f "$COUNTS"
	# a module a person named (item 14: records alone choose none)
	PKCS11_MODULE=$P11FAULT run --separate-stderr ps-renew --pin "file:$BAD" \
		--ca "$SH_CA" --json <<<"$recs"
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ]
	[ "$(jq -s 'map(select(.code == "pin-incorrect")) | length' <<<"$output")" -eq 2 ]
}

# ------------------------------------------------------- 2: --token narrows

@test "item 2: ps-fetch --pending --token A works on A's requests only" {
	two_tokens
	p11run ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$URI_A" --pending --json -v \
		--accept-type
	[ "$status" -eq 0 ]
	[ "$(logins alpha)" -eq 1 ]
	[ "$(logins beta)" -eq 0 ]
	for r in "${REQS_A[@]}"; do [ "$(state "$r")" = installed ]; done
	# beta's requests were neither polled nor installed
	for r in "${REQS_B[@]}"; do [ "$(state "$r")" = pending ]; done
	[ "$(grep -c POLL "$SH_DIR/calls")" -eq 3 ]
	[ "$(jfield token_label <<<"$output" | sort -u)" = alpha ]
	[[ "$stderr" == *"3 unfinished request(s) of other tokens left alone"* ]]
}

@test "item 2: request records of another token are passed on, not worked on" {
	two_tokens
	p11run ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$URI_A" \
		--accept-type "${REQS_A[0]}" "${REQS_B[@]}"
	[ "$status" -eq 0 ]
	[ "$(logins beta)" -eq 0 ]
	[ "$(state "${REQS_A[0]}")" = installed ]
	for r in "${REQS_B[@]}"; do [ "$(state "$r")" = pending ]; done
	[ "$(jq -r 'select(.token_label == "beta") | .state' <<<"$output" | sort -u)" = pending ]
	[[ "$stderr" == *"3 request(s) of other tokens passed on"* ]]
	[ "$(grep -c POLL "$SH_DIR/calls")" -eq 1 ]
}

@test "item 2: ps-renew --token A passes B's cert records on" {
	softhsm_token alpha && demo_token
	softhsm_token beta && demo_token
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --expiring 30 --json
	[ "$status" -eq 3 ]
	[ "$(jfield token_label <<<"$output" | sort -u | tr '\n' ' ')" = "alpha beta " ]
	answers pending
	p11run ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token pkcs11:token=alpha \
		--ca "$SH_CA" --json <<<"$output"
	[ "$status" -eq 3 ]
	[ "$(logins beta)" -eq 0 ]
	[ "$(jq -r 'select(.kind == "request") | .token_label' <<<"$output" | sort -u)" = alpha ]
	[ "$(jq -r 'select(.kind == "cert") | .token_label' <<<"$output" | sort -u)" = beta ]
	[[ "$stderr" == *"2 certificate(s) of other tokens passed on"* ]]
}

# ------------------------------------------- 3: a PIN source and its token

@test "item 3: without --token, ps-status lists two tokens without trying one PIN on both" {
	softhsm_token alpha && demo_token
	softhsm_token beta && demo_token
	p11run ps-status --module "$P11FAULT" --pin "file:$PIN_FILE" --json
	[ "$status" -eq 0 ]
	[ "$(logins)" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 8 ]
	[[ "$stderr" == *"not logged in to token 'alpha'"*"--token 'pkcs11:"*"token=alpha'"* ]]
	[[ "$stderr" == *"not logged in to token 'beta'"* ]]
	# named with --token, the PIN goes to that token only
	p11run ps-status --module "$P11FAULT" --pin "file:$PIN_FILE" --token pkcs11:token=beta --json
	[ "$status" -eq 0 ]
	[ "$(logins alpha)" -eq 0 ]
	[ "$(logins beta)" -eq 1 ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = true ]
}

@test "item 3: an action needing a login fails without a try when the PIN's token is not known" {
	softhsm_token alpha && demo_token
	softhsm_token beta && demo_token
	answers pending
	p11run ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --all-expiring 30 --ca "$SH_CA" --json
	[ "$status" -eq 2 ]
	[ "$(logins)" -eq 0 ]
	[ "$(jfield code <<<"$output" | sort -u)" = pin-not-for-token ]
	[[ "$stderr" == *"--token URI"* ]]
	[ ! -e "$SH_DIR/calls" ]
	p11run ps-token-clean --module "$P11FAULT" --pin "file:$PIN_FILE" --expired --json
	[ "$(logins)" -eq 0 ]
	[ "$(jfield code <<<"$output" | grep -c pin-not-for-token)" -eq 2 ]
}

@test "item 3: a token's own PIN in psrenew.conf goes to that token only" {
	softhsm_token alpha && demo_token
	softhsm_token beta && demo_token
	cat >"$BATS_TEST_TMPDIR/one.conf" <<EOF
[token.alpha]
uri = pkcs11:token=alpha
pin = file:$PIN_FILE
EOF
	p11run ps-status --config "$BATS_TEST_TMPDIR/one.conf" --module "$P11FAULT" --json
	[ "$status" -eq 0 ]
	[ "$(logins alpha)" -eq 1 ]
	[ "$(logins beta)" -eq 0 ]
	[ "$(jq -r 'select(.token_label == "alpha") | .has_key' <<<"$output" | sort -u)" = true ]
	# a section without a pin is a configuration error
	printf '[token.x]\nuri = pkcs11:token=x\n' >"$BATS_TEST_TMPDIR/bad.conf"
	p11run ps-status --config "$BATS_TEST_TMPDIR/bad.conf" --module "$P11FAULT"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"[token.x] needs both uri and pin"* ]]
}

# ------------------------------------------------------ 4: an empty PIN

@test "item 4: an empty PIN is refused before any login, naming its source" {
	softhsm_token alpha && demo_token
	: >"$BATS_TEST_TMPDIR/empty.pin"
	chmod 600 "$BATS_TEST_TMPDIR/empty.pin" # a secret file others cannot read
	p11run ps-status --module "$P11FAULT" --pin "file:$BATS_TEST_TMPDIR/empty.pin" --json
	[ "$status" -eq 2 ]
	[ "$(logins)" -eq 0 ]
	[ "$(jfield code <<<"$output")" = pin-empty ]
	[[ "$stderr" == *"file:$BATS_TEST_TMPDIR/empty.pin is empty"* ]]
	p11run env EMPTY_PIN= ps-status --module "$P11FAULT" --pin env:EMPTY_PIN --json
	[ "$status" -eq 2 ]
	[ "$(logins)" -eq 0 ]
	[[ "$stderr" == *"env:EMPTY_PIN is empty"* ]]
	p11run ps-status --module "$P11FAULT" --pin fd:3 --json 3</dev/null
	[ "$status" -eq 2 ]
	[ "$(logins)" -eq 0 ]
}

# ------------------------------------------------- 5: the final try

@test "item 5: an unattended PIN source never spends the final try" {
	softhsm_token alpha && demo_token
	p11run env P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_FINAL_TRY ps-status --module "$P11FAULT" --pin "file:$PIN_FILE" --json
	[ "$status" -eq 6 ]
	[ "$(logins)" -eq 0 ]
	[ "$(jfield code <<<"$output")" = pin-final-try ]
	[[ "$stderr" == *"one try left before its PIN locks"* ]]
	[[ "$stderr" == *"--pin prompt"* ]]
	export P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_FINAL_TRY
	p11run ps-renew --module "$P11FAULT" --pin "env:PIN" --all-expiring 30 --ca "$SH_CA" --json
	[ "$status" -eq 6 ]
	[ "$(logins)" -eq 0 ]
}

# ------------------------------------------------------ 6: no PIN pad

@test "item 6: --pin pinpad on a token without a PIN pad is exit 6, untried" {
	softhsm_token alpha && demo_token
	p11run ps-status --module "$P11FAULT" --pin pinpad --json
	[ "$status" -eq 6 ]
	[ "$(logins)" -eq 0 ]
	[ "$(jfield code <<<"$output")" = no-pinpad ]
	[[ "$stderr" == *"token 'alpha' has no PIN pad"* ]]
	[[ "$stderr" == *"--pin prompt"* ]]
}

# ------------------------------ every binary, a wrong PIN, two tokens

@test "every binary with a wrong PIN against two tokens: at most one C_Login per token" {
	two_tokens
	own_pins "file:$BAD"
	P=(--module "$P11FAULT")

	p11run ps-status "${P[@]}" --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	p11run ps-renew "${P[@]}" --all-expiring 30 --ca "$SH_CA" --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	p11run ps-fetch "${P[@]}" "${REQS_A[@]}" "${REQS_B[@]}" --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	p11run ps-fetch "${P[@]}" --pending --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	for r in "${REQS_A[@]}" "${REQS_B[@]}"; do
		jq -c '{kind: "request", request_id: .request_id}' \
			"$PSRENEW_STATE_DIR/requests/$r.json"
	done >"$BATS_TEST_TMPDIR/records"
	p11run ps-fetch "${P[@]}" --json <"$BATS_TEST_TMPDIR/records"
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	p11run ps-token-clean "${P[@]}" --expired --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 1 ]

	# one token at a time: these act on the --token one only
	p11run ps-jip-setserial "${P[@]}" --token "$URI_A" --login cert --user jnovak \
		--serial 0A0B --type commercial --ca PostSignum --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 1 ] && [ "$(logins beta)" -eq 0 ]

	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/k.pem" \
		-subj /CN=pfx -days 30 -out "$BATS_TEST_TMPDIR/c.pem" 2>/dev/null
	openssl pkcs12 -export -inkey "$BATS_TEST_TMPDIR/k.pem" -in "$BATS_TEST_TMPDIR/c.pem" \
		-passout pass: -out "$BATS_TEST_TMPDIR/x.p12"
	p11run ps-pfx-import "${P[@]}" --token "$URI_B" "$BATS_TEST_TMPDIR/x.p12" --json
	[ "$status" -eq 6 ]
	[ "$(logins alpha)" -eq 0 ] && [ "$(logins beta)" -eq 1 ]

	# nothing was lost: every request is still there, none installed
	for r in "${REQS_A[@]}" "${REQS_B[@]}"; do
		[[ "$(state "$r")" == issued || "$(state "$r")" == pending ]]
	done
}
