#!/usr/bin/env bats
# After cron installed the certificates: ps-status --unregistered gives the
# cert records JIP has not confirmed yet, for ps-jip-setserial; ps-fetch ID
# of an installed request prints its cert record (issue 15, item 21).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	eval "$("$FIXTURE_ROOT/tests/jip/jip-start" "$BATS_FILE_TMPDIR/portal" "$PKI")"
	export JIP_URL JIP_TLS_CA PKI
}

teardown_file() {
	"$FIXTURE_ROOT/tests/jip/jip-stop" "$BATS_FILE_TMPDIR/portal"
}

setup() {
	psrenew_setup
	demo_token
	PORTAL=$BATS_FILE_TMPDIR/portal
	cp "$FIXTURE_ROOT/tests/jip/portal-default.json" "$PORTAL/portal.json"
	: >"$PORTAL/log"
	(umask 077 && printf 'Heslo-123' >"$BATS_TEST_TMPDIR/pw")
	QUAL_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")
	COMM_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	# JIP has the current certificates; the old commercial one logs in
	cat >"$PORTAL/accounts.json" <<EOF_ACC
{"session_timeout_seconds": 1200, "users": [
 {"name": "jnovak", "password": "Heslo-123", "role": "user", "office": "MV",
  "certificates": [{"type": "kvalifikovaný", "ca": "PostSignum", "serial": "$QUAL_SERIAL"},
                   {"type": "komerční", "ca": "PostSignum", "serial": "$COMM_SERIAL"}]}]}
EOF_ACC
	P11=(--module "$PKCS11_MODULE" --token "$TOKEN_URI")
	PINOPT=(--pin "file:$PIN_FILE")
	# renewed, and installed by cron: nothing of it printed anywhere
	CA=$BATS_TEST_TMPDIR/ca
	rm -rf "$CA" && mkdir -p "$CA"
	ln -sfn "$PKI" "$CA/pki"
	printf 'pending\npending\npki\n' >"$CA/answers"
	ps-status "${P11[@]}" --expiring 30 2>/dev/null |
		ps-renew "${PINOPT[@]}" --ca "helper:$SCRIPTED_HELPER $CA" >/dev/null 2>&1 || true
	ps-fetch "${P11[@]}" "${PINOPT[@]}" --pending --now --quiet >/dev/null 2>&1
	[ "$(cat "$PSRENEW_STATE_DIR"/requests/*.json | jq -s 'map(select(.state == "installed")) | length')" -eq 2 ]
}

# unregistered [OPTION]...: ps-status --unregistered on the test token.
unregistered() {
	run --separate-stderr ps-status "${P11[@]}" --unregistered --json "$@"
}

@test "ps-status --unregistered: the certificates cron installed, as cert records for ps-jip-setserial" {
	unregistered "${PINOPT[@]}"
	[ "$status" -eq 0 ]
	records_valid
	[ "$(jfield kind <<<"$output" | sort -u)" = cert ]
	[ "$(wc -l <<<"$output")" -eq 2 ]
	# the new ones: valid, their keys on the token, from their requests
	[ "$(jfield type <<<"$output" | sort | tr '\n' ' ')" = "commercial qualified " ]
	[ "$(jfield state <<<"$output" | sort -u)" = valid ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = true ]
	[ "$(jfield replaces_serial_hex <<<"$output" | sort | tr '\n' ' ')" = \
		"$(printf '%s\n' "$QUAL_SERIAL" "$COMM_SERIAL" | sort | tr '\n' ' ')" ]
	for id in $(jfield request_id <<<"$output"); do
		[ "$(jq -r .new_serial_hex "$PSRENEW_STATE_DIR/requests/$id.json")" = \
			"$(jq -r --arg id "$id" 'select(.request_id == $id) | .serial_hex' <<<"$output")" ]
	done
	# neither the old ones nor a valid certificate psrenew did not install
	! grep -q "$QUAL_SERIAL\|$COMM_SERIAL" <<<"$(jfield serial_hex <<<"$output")"
	fresh=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem")
	! grep -q "$fresh" <<<"$output"
	# the README's pipeline registers both
	run --separate-stderr bash -c "ps-status --module '$PKCS11_MODULE' --token '$TOKEN_URI' \
		--pin 'file:$PIN_FILE' --unregistered |
		ps-jip-setserial --login cert --module '$PKCS11_MODULE' --token '$TOKEN_URI' \
			--pin 'file:$PIN_FILE' --profile '$FIXTURE_ROOT/tests/jip/profile-test.json' \
			--jip-url '$JIP_URL' --ca-bundle '$JIP_TLS_CA' --user jnovak \
			--password 'file:$BATS_TEST_TMPDIR/pw'"
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"jip"' <<<"$output")" -eq 2 ]
	[ "$(jfield result <<<"$output" | sort -u)" = set ]
	[ "$(jq -r '.users[0].certificates | length' "$PORTAL/accounts.json")" -eq 4 ]
	# then nothing is left to register: the qualified confirmation counts too
	unregistered "${PINOPT[@]}"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "ps-status --unregistered: a confirmation counts only for its own type" {
	unregistered "${PINOPT[@]}"
	new=$(jq -r 'select(.type == "qualified") | .serial_hex' <<<"$output")
	[ -n "$new" ]
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/jip"
	conf() { # conf TYPE: a confirmation of $new as a certificate of TYPE
		jq -cn --arg s "$new" --arg t "$1" '{kind: "jip", serial_hex: $s, type: $t,
			result: "set", ca: "PostSignum", confirmed_at: "2026-01-01T00:00:00Z"}' \
			>"$PSRENEW_STATE_DIR/jip/$new.json"
	}
	conf commercial
	unregistered "${PINOPT[@]}"
	[ "$status" -eq 0 ]
	[ "$(jfield serial_hex <<<"$output" | grep -c "$new")" -eq 1 ]
	conf qualified
	unregistered "${PINOPT[@]}"
	[ "$status" -eq 0 ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
	[ "$(jfield type <<<"$output")" = commercial ]
}

@test "ps-status --unregistered without a login lists nothing and says why" {
	unregistered
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ $stderr == *"2 installed certificate(s) left out"*"--pin"* ]]
}

@test "ps-status --unregistered reports a damaged request file (exit 1)" {
	echo '{"state": "installed", "request_id": ' >"$PSRENEW_STATE_DIR/requests/20260101-000000-deadbeef.json"
	unregistered "${PINOPT[@]}"
	[ "$status" -eq 1 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = state-damaged ]
	[ "$(jq -r 'select(.kind == "cert") | .kind' <<<"$output" | wc -l)" -eq 2 ]
}

@test "ps-status --unregistered with --expiring is a usage error" {
	unregistered --expiring 30
	[ "$status" -eq 2 ]
	[[ $stderr == *"--unregistered and --expiring do not go together"* ]]
}

@test "ps-fetch ID of an installed request prints its cert record, as ps-fetch(1) says" {
	for id in $(cd "$PSRENEW_STATE_DIR/requests" && ls | sed 's/\.json$//'); do
		run --separate-stderr ps-fetch "${P11[@]}" "${PINOPT[@]}" "$id" --json
		[ "$status" -eq 0 ]
		[ "$(jfield kind <<<"$output")" = cert ]
		[ "$(jfield request_id <<<"$output")" = "$id" ]
		[ "$(jfield already_installed <<<"$output")" = true ]
		[ "$(jfield serial_hex <<<"$output")" = \
			"$(jq -r .new_serial_hex "$PSRENEW_STATE_DIR/requests/$id.json")" ]
		[ "$(jfield replaces_serial_hex <<<"$output")" = \
			"$(jq -r .old_serial_hex "$PSRENEW_STATE_DIR/requests/$id.json")" ]
	done
}
