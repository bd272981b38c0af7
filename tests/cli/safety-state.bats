#!/usr/bin/env bats
# Safety of the state store and of the CA's answers: a damaged state file is
# reported, never skipped; one certificate has one pending request even with
# runs at once; an issued certificate is never dropped; files are written
# through the safe writer; every CA answer is checked before it changes a
# request; a CMP certificate for another key is a key mismatch.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	P11=(--module "$PKCS11_MODULE" --pin "file:$PIN_FILE")
	LS_CA="helper:$LOCAL_SUBMIT -d $BATS_TEST_TMPDIR/ca"
	SH_DIR=$BATS_TEST_TMPDIR/script
	SH_CA="helper:$SCRIPTED_HELPER $SH_DIR"
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$BATS_TEST_TMPDIR/ca" "$SH_DIR" "$W"
	REQS=$PSRENEW_STATE_DIR/requests
}

teardown() {
	stop_servers
}

# answers LINE...: the scripted helper's answers, one per call.
answers() {
	printf '%s\n' "$@" >"$SH_DIR/answers"
}

# renew CERT_ID CA [EXIT]: ps-renew for one certificate; sets REQ and KEY.
renew() {
	local want=${3:-0}
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$1" --ca "$2"
	[ "$status" -eq "$want" ] ||
		{ echo "ps-renew: exit $status, want $want: $output $stderr"; return 1; }
	REQ=$(jq -r 'select(.kind == "request") | .request_id' <<<"$output")
	KEY=$(jq -r 'select(.kind == "request") | .key_id' <<<"$output")
	[ -f "$REQS/$REQ.json" ]
}

# req FIELD [ID]: a field of a request's state file (default: $REQ).
req() {
	jq -r ".$1 // \"null\"" "$REQS/${2:-$REQ}.json"
}

# sel FILTER: the records of $output that FILTER selects (jq).
sel() {
	jq -c "select($1)" <<<"$output"
}

# requests_for CERT_ID: how many request files renew that certificate.
requests_for() {
	local serial f n=0
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$1.pem")
	for f in "$REQS"/*.json; do
		[[ -f $f ]] || continue
		[[ $(jq -r .old_serial_hex "$f") == "$serial" ]] && n=$((n + 1))
	done
	echo "$n"
}

# damage_store: five request files psrenew cannot read, one of each kind.
damage_store() {
	mkdir -p -m 700 "$REQS"
	printf '{"kind":"request","request_id":"20990101-000000-aaaaaaaa","sta' \
		>"$REQS/20990101-000000-aaaaaaaa.json"
	echo '{"kind":"request","request_id":"20990101-000000-bbbbbbbb"}' \
		>"$REQS/20990101-000000-bbbbbbbb.json"
	echo '{"kind":"request","state":"half-done"}' >"$REQS/20990101-000000-cccccccc.json"
	echo '{"kind":"request","state":"pending"}' >"$W/elsewhere.json"
	ln -s "$W/elsewhere.json" "$REQS/20990101-000000-dddddddd.json"
	mkdir "$REQS/20990101-000000-eeeeeeee.json"
	DAMAGED="aaaaaaaa bbbbbbbb cccccccc dddddddd eeeeeeee"
}

# ------------------------------------------------ damaged state files (10)

@test "ps-fetch --pending reports every damaged request file by name, and still does the others" {
	renew "$QUAL_ID" "$LS_CA"
	damage_store
	run --separate-stderr ps-fetch "${P11[@]}" --accept-type --pending
	[ "$status" -eq 1 ]
	records_valid
	# the readable request was done
	[ "$(req state)" = installed ]
	[ "$(sel '.kind == "cert"' | jfield request_id)" = "$REQ" ]
	# each unreadable file: an error record naming it, and a message
	[ "$(sel '.kind == "error"' | wc -l)" -eq 5 ]
	for d in $DAMAGED; do
		f=$REQS/20990101-000000-$d.json
		[ "$(sel ".file == \"$f\"" | jfield code)" = state-damaged ]
		[ "$(sel ".file == \"$f\"" | jfield status)" = 1 ]
		[[ $stderr == *"$f"* ]]
	done
	[[ $stderr == *symlink* ]]
	# nothing was followed or rewritten
	[ "$(cat "$W/elsewhere.json")" = '{"kind":"request","state":"pending"}' ]
}

@test "ps-fetch REQUEST-ID of a damaged file: state-damaged with the file named" {
	damage_store
	run --separate-stderr ps-fetch "${P11[@]}" 20990101-000000-bbbbbbbb
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = state-damaged ]
	[ "$(jfield file <<<"$output")" = "$REQS/20990101-000000-bbbbbbbb.json" ]
	[[ $stderr == *"no \"state\""* ]]
}

@test "ps-renew refuses a certificate an unreadable request file might be for, and reports the file" {
	keys=$(token_objects privkey)
	mkdir -p -m 700 "$REQS"
	printf '{"kind":"request","old_sha256":"00' >"$REQS/20990101-000000-aaaaaaaa.json"
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA"
	[ "$status" -eq 1 ]
	records_valid
	[ "$(sel '.code == "state-damaged"' | jfield file)" = "$REQS/20990101-000000-aaaaaaaa.json" ]
	[ "$(sel '.code == "damaged-request"' | jfield status)" = 5 ]
	[ "$(sel '.code == "damaged-request"' | jfield id)" = "$QUAL_ID" ]
	[ -z "$(sel '.kind == "request"')" ]
	# no second request, no second key
	[ "$(token_objects privkey)" -eq "$keys" ]
	[ "$(requests_for "$QUAL_ID")" -eq 0 ]
}

@test "a damaged request that names its certificate blocks that one only" {
	answers pending
	renew "$COMM_ID" "$SH_CA" 3
	# the commercial renewal's file loses its state
	jq -c '.state = "half-done"' "$REQS/$REQ.json" >"$W/x" && mv "$W/x" "$REQS/$REQ.json"
	keys=$(token_objects privkey)
	run --separate-stderr ps-renew "${P11[@]}" --all-expiring 30 --ca "$SH_CA"
	[ "$status" -eq 1 ]
	[ "$(sel '.code == "state-damaged"' | jfield request_id)" = "$REQ" ]
	[ "$(sel '.code == "damaged-request"' | jfield id)" = "$COMM_ID" ]
	# the qualified certificate was renewed, the commercial one not again
	[ "$(sel '.kind == "request"' | jfield old_id)" = "$QUAL_ID" ]
	[ "$(token_objects privkey)" -eq $((keys + 1)) ]
	[ "$(requests_for "$COMM_ID")" -eq 1 ]
}

@test "a damaged keygen journal entry is reported, not ignored" {
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/keygen"
	printf '{"token":"pkcs11:tok' >"$PSRENEW_STATE_DIR/keygen/20990101-000000-ffffffff.json"
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA"
	[ "$status" -eq 1 ]
	[ "$(sel '.code == "state-damaged"' | jfield file)" = \
		"$PSRENEW_STATE_DIR/keygen/20990101-000000-ffffffff.json" ]
	[[ $stderr == *"keygen/20990101-000000-ffffffff.json"* ]]
	# the renewal itself went on
	[ "$(sel '.kind == "request"' | jfield state)" = issued ]
	[ -f "$PSRENEW_STATE_DIR/keygen/20990101-000000-ffffffff.json" ]
}

@test "ps-token-clean removes nothing while a request file is damaged" {
	damage_store
	run --separate-stderr ps-token-clean "${P11[@]}" --yes --json
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output" | sort -u)" = state-damaged ]
	[ "$(token_objects cert)" -eq 4 ]
	# each unreadable file is named, not the first one only
	for d in $DAMAGED; do
		[[ $stderr == *"$REQS/20990101-000000-$d.json"* ]]
	done
}

# ------------------------------------------ one certificate, one request (11)

# private_keys_of_requests: the key pairs the request files name, deleted
# (the next round renews the same certificates again).
drop_request_keys() {
	local f t
	for f in "$REQS"/*.json; do
		[[ -f $f ]] || continue
		for t in privkey pubkey; do
			pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" --login \
				--pin "$PIN" --delete-object --type "$t" --id "$(jq -r .key_id "$f")" \
				>/dev/null 2>&1
		done
	done
}

@test "two ps-renew at once: never two requests or two new keys for one certificate" {
	local round k q c renewed=0 pids=()
	keys=$(token_objects privkey)
	for round in 1 2 3 4 5 6; do
		rm -rf "$PSRENEW_STATE_DIR" "$SH_DIR" && mkdir -p "$SH_DIR"
		# the CA takes a second: the second run starts while the first
		# one's requests are under way
		answers 'slow 1 pending'
		for k in 1 2; do
			ps-renew "${P11[@]}" --all-expiring 30 --ca "$SH_CA" \
				>"$W/out$k" 2>"$W/err$k" </dev/null &
			pids[k]=$!
			sleep 0.$((round % 3 * 3 + 1))
		done
		# the exit status is not the point: SoftHSM's file store is not
		# safe across processes, and a run may fail on a token error
		# (having left nothing behind)
		for k in 1 2; do wait "${pids[k]}" || true; done
		q=$(requests_for "$QUAL_ID") c=$(requests_for "$COMM_ID")
		echo "# round $round: requests $q + $c, keys $(token_objects privkey)" >&3
		[ "$q" -le 1 ] && [ "$c" -le 1 ]
		[ "$(token_objects privkey)" -eq $((keys + q + c)) ]
		renewed=$((renewed + q + c))
		# when both renewed, the other run said so: already pending, or
		# busy (still being submitted by the first)
		if [[ $q == 1 && $c == 1 ]] && ! grep -q '"code":"token' "$W/out1" "$W/out2"; then
			[ "$(cat "$W/out1" "$W/out2" | jq -r 'select(.code == "already-pending" or .code == "busy") | .id' | sort | tr '\n' ' ')" = \
				"$(printf '%s\n' "$QUAL_ID" "$COMM_ID" | sort | tr '\n' ' ')" ]
		fi
		drop_request_keys
		[ "$(token_objects privkey)" -eq "$keys" ]
	done
	[ "$renewed" -ge 8 ]
}

# -------------------------------------- an issued certificate is kept (12)

@test "ps-renew: an issued certificate that cannot be saved goes to stderr and the error record" {
	answers issue-unsaved
	keys=$(token_objects privkey)
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$SH_CA"
	[ "$status" -eq 1 ]
	records_valid
	[ "$(jfield kind <<<"$output")" = error ]
	[ "$(jfield code <<<"$output")" = state-write ]
	id=$(jfield request_id <<<"$output")
	[[ $id =~ ^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$ ]]
	jq -r .certificate <<<"$output" >"$W/issued.pem"
	openssl x509 -in "$W/issued.pem" -noout
	[[ $stderr == *"-----BEGIN CERTIFICATE-----"* ]]
	[[ $stderr == *"ps-fetch --cert"* ]]
	# the key is kept for it
	[ "$(token_objects privkey)" -eq $((keys + 1)) ]
	# the state directory back: ps-fetch --cert installs it
	mv "$SH_DIR/requests-away" "$REQS"
	[ "$(req state "$id")" = unsubmitted ]
	[ "$(cert_key_id "$W/issued.pem")" = "$(req key_id "$id")" ]
	run --separate-stderr ps-fetch "${P11[@]}" --accept-type --cert "$W/issued.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(req state "$id")" = installed ]
	[ "$(token_objects cert)" -eq 5 ]
	# the CA was asked once
	[ "$(grep -c . "$SH_DIR/calls")" -eq 1 ]
}

@test "ps-fetch: an issued certificate that cannot be saved goes to stderr and the error record" {
	answers pending issue-unsaved
	renew "$COMM_ID" "$SH_CA" 3
	run --separate-stderr ps-fetch "${P11[@]}" --pending --now
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = state-write ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	jq -r .certificate <<<"$output" >"$W/issued.pem"
	[ "$(cert_key_id "$W/issued.pem")" = "$KEY" ]
	[[ $stderr == *"-----BEGIN CERTIFICATE-----"* ]]
}

# ------------------------------------------------------ the safe writer (15)

@test "--cacerts writes through the safe writer: a symlink planted at FILE.tmp is not followed" {
	start_est "$BATS_TEST_TMPDIR/est"
	cat "$EST_TLS_CA" "$(pki_dir)/chain.pem" >"$W/bundle.pem"
	echo "precious" >"$W/victim"
	ln -s "$W/victim" "$W/cacerts.pem.tmp"
	run --separate-stderr ps-renew --ca "est://localhost:$EST_PORT" --ca-bundle "$W/bundle.pem" \
		--cacerts "$W/cacerts.pem" </dev/null
	[ "$status" -eq 0 ]
	[ "$(cat "$W/victim")" = precious ]
	[ -L "$W/cacerts.pem.tmp" ]
	[ ! -L "$W/cacerts.pem" ]
	[ "$(grep -c 'BEGIN CERTIFICATE' "$W/cacerts.pem")" -eq 3 ]
	# no temporary file left beside it
	[ -z "$(find "$W" -name '.cacerts.pem.*')" ]
	# a symlink AT the file is replaced, its target untouched
	rm "$W/cacerts.pem"
	ln -s "$W/victim" "$W/cacerts.pem"
	run --separate-stderr ps-renew --ca "est://localhost:$EST_PORT" --ca-bundle "$W/bundle.pem" \
		--cacerts "$W/cacerts.pem" </dev/null
	[ "$status" -eq 0 ]
	[ "$(cat "$W/victim")" = precious ]
	[ ! -L "$W/cacerts.pem" ]
}

# ------------------------------------- CA answers checked before use (17)

@test "ps-fetch: a helper's \"issued\" answer without a certificate changes nothing" {
	answers pending junk
	renew "$QUAL_ID" "$SH_CA" 3
	cp "$REQS/$REQ.json" "$W/before.json"
	certs=$(token_objects cert)
	run --separate-stderr ps-fetch "${P11[@]}" --pending --now
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = helper ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	cmp "$REQS/$REQ.json" "$W/before.json"
	[ "$(req state)" = pending ]
	[ "$(token_objects cert)" -eq "$certs" ]
	[ "$(grep -c . "$SH_DIR/calls")" -eq 2 ]
}

@test "ps-renew: a helper's \"issued\" answer without a certificate leaves the request unsubmitted" {
	answers junk issue
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$SH_CA"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = helper ]
	REQ=$(jfield request_id <<<"$output")
	[ "$(req state)" = unsubmitted ]
	[ "$(req cert)" = null ]
	[ "$(token_objects cert)" -eq 4 ]
	[ "$(token_objects privkey)" -eq 5 ]
	# the next run sends the same request again
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$SH_CA"
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	[ "$(req state)" = issued ]
	[ "$(token_objects privkey)" -eq 5 ]
}

# ----------------------------------------- CMP: issued for another key (18)

@test "CMP: a certificate issued for another key is key-mismatch, kept as rejected_cert" {
	start_cmp "$BATS_TEST_TMPDIR/cmp"
	echo wrongkey >"$CMP_STATE/answers"
	certs=$(token_objects cert)
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" \
		--ca "cmp://127.0.0.1:$CMP_PORT/pkix/" --ca-bundle "$(pki_dir)/chain.pem"
	[ "$status" -eq 1 ]
	records_valid
	[ "$(jfield code <<<"$output")" = key-mismatch ]
	[[ $(jfield message <<<"$output") == *"does not match"* ]]
	REQ=$(jfield request_id <<<"$output")
	# kept: the certificate (for another key), the request and its key
	req rejected_cert >"$W/rejected.pem"
	[ "$(cert_key_id "$W/rejected.pem")" != "$(req key_id)" ]
	openssl x509 -in "$W/rejected.pem" -noout -serial | grep -q .
	[ "$(req state)" = pending ]
	[ "$(req cert)" = null ]
	[ "$(token_objects privkey)" -eq 5 ]
	[ "$(token_objects cert)" -eq "$certs" ]
	# OpenSSL told the CA it did not accept the certificate
	grep -q '^certConf tid=' "$CMP_STATE/log"
}
