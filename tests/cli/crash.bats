#!/usr/bin/env bats
# Crash safety: ps-renew, ps-fetch, ps-token-clean and ps-pfx-import killed
# with kill -9 at a random point (one seed per run, from the same token and
# state store each time), then run again without a kill: the token and the
# state store end as one clean run leaves them. Concurrency: several
# ps-renew and ps-fetch --pending at once on one state store.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../p11fault/faultloop

SEEDS=${CRASH_SEEDS:-24}

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	LS_CA="helper:$LOCAL_SUBMIT -d $BATS_TEST_TMPDIR/ca"
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	P11=(--module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE")
}

# kill_at SEED CMD...: runs CMD and kills it with SIGKILL after a delay
# drawn from SEED (0 to MAX_MS ms; crash_loop sets it to the time of a
# clean run unless the test did); waits for CMD's children
# (a CA helper) to go.
kill_at() {
	local seed=$1 pid ms
	shift
	RANDOM=$seed
	ms=$((RANDOM % ${MAX_MS:-1500}))
	"$@" >/dev/null 2>&1 </dev/null &
	pid=$!
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -9 "$pid" 2>/dev/null && KILLED=$((KILLED + 1))
	wait "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		pgrep -f -- "$BATS_TEST_TMPDIR/ca" >/dev/null || break
		sleep 0.1
	done
}

# state_summary: the requests as "OLD_SERIAL STATE" lines, sorted (ids and
# keys differ from run to run).
state_summary() {
	local f
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[[ -e $f ]] && jq -r '"\(.old_serial_hex) \(.state)"' "$f"
	done | sort
}

# shape: the token's objects with the new ids replaced by their class
# counts: "CLASS old-or-new" lines, sorted.
shape() {
	local line cls id
	p11_objects | while read -r cls id; do
		if grep -qx "$cls $id" <<<"$OLD_OBJS"; then echo "$cls $id"; else echo "$cls new"; fi
	done | sort
}

# crash_loop NAME FINISH CMD...: for each seed, from the same start, CMD
# killed at a random point, then FINISH (a function: the re-run); the
# shape of the token and the state summary must equal those of a clean
# CMD + FINISH.
crash_loop() {
	local name=$1 finish=$2 snap=$BATS_TEST_TMPDIR/crash-snapshot want_shape want_state seed t0 killed
	shift 2
	OLD_OBJS=$(p11_objects)
	fault_snapshot "$snap"
	# without MAX_MS, the kills spread over a clean run's own time: the
	# shorter of two (the first one also warms the caches)
	local runs=1 ms best=
	[[ -n ${MAX_MS:-} ]] || runs=2
	for ((; runs > 0; runs--)); do
		fault_restore "$snap"
		t0=${EPOCHREALTIME/./}
		"$@" >/dev/null 2>&1 </dev/null || true
		ms=$(((${EPOCHREALTIME/./} - t0) / 1000 + 1))
		[[ -n $best && $best -le $ms ]] || best=$ms
	done
	: "${MAX_MS:=$best}"
	"$finish"
	want_shape=$(shape) want_state=$(state_summary)
	[ "$want_shape" != "$(printf '%s\n' "$OLD_OBJS" | sort)" ] || { echo "a clean run changed nothing"; return 1; }
	KILLED=0 TORN=0
	for seed in $(seq 1 "$SEEDS"); do
		fault_restore "$snap"
		killed=$KILLED
		kill_at "$seed" "$@"
		# killed inside SoftHSM's rewrite of its token info at C_Login
		# (fixture.bash): the token is gone for every client; put back
		((KILLED == killed)) || ! softhsm_torn_login "$snap/token/token.object" ||
			TORN=$((TORN + 1))
		"$finish"
		[ "$(shape)" = "$want_shape" ] && [ "$(state_summary)" = "$want_state" ] || {
			echo "seed $seed: after the kill and a re-run:"
			shape; state_summary
			echo "a clean run: $want_shape"; echo "$want_state"
			return 1
		}
	done
	echo "# figure: kill -9 $name: $SEEDS runs ($KILLED killed mid-run, delays 0-$MAX_MS ms), each finished by a re-run" >&3
	((TORN == 0)) || echo "# figure: kill -9 $name: $TORN kill(s) inside C_Login left SoftHSM's token.object empty (truncated, not yet rewritten); put back before the re-run" >&3
}

finish_renew() {
	ps-renew "${P11[@]}" --ca "$LS_CA" --key-type ec:prime256v1 <"$BATS_TEST_TMPDIR/expiring" >/dev/null 2>&1 || true
	ps-fetch "${P11[@]}" --pending --accept-type >/dev/null 2>&1 || true
	# the journal of key generations is empty again (a kill between a
	# lock's creation and its entry's may leave the empty lock file)
	if compgen -G "$PSRENEW_STATE_DIR/keygen/*" >/dev/null; then
		echo "left in the journal:"; ls -l "$PSRENEW_STATE_DIR/keygen"
		return 1
	fi
}

@test "ps-renew killed at random points: a re-run and ps-fetch end as a clean run" {
	# A kill between C_GenerateKeyPair and the request's first save leaves
	# a key pair that no request names; the keygen/ journal names it, and
	# the re-run removes it before it renews (lib/renew.c).
	ps-status "${P11[@]}" --token "$TOKEN_URI" --expiring 30 --json >"$BATS_TEST_TMPDIR/expiring" || true
	[ "$(grep -c . "$BATS_TEST_TMPDIR/expiring")" -eq 2 ]
	crash_loop ps-renew finish_renew \
		bash -c 'exec ps-renew "$@" <"$0"' "$BATS_TEST_TMPDIR/expiring" "${P11[@]}" \
		--ca "$LS_CA" --key-type ec:prime256v1
}

finish_fetch() {
	ps-fetch "${P11[@]}" --pending --accept-type >/dev/null 2>&1 || true
}

@test "ps-fetch killed at random points while installing: a re-run installs each certificate once" {
	for id in "$QUAL_ID" "$COMM_ID"; do
		ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$id" --ca "$LS_CA" \
			--key-type ec:prime256v1 >/dev/null
	done
	crash_loop ps-fetch finish_fetch ps-fetch "${P11[@]}" --pending --accept-type
}

finish_clean() {
	ps-token-clean "${P11[@]}" --token "$TOKEN_URI" --yes >/dev/null 2>&1 || true
}

@test "ps-token-clean killed at random points: a re-run removes what one run removes" {
	crash_loop ps-token-clean finish_clean ps-token-clean "${P11[@]}" --token "$TOKEN_URI" --yes
}

@test "ps-pfx-import killed at random points: a re-run imports the key and certificate once" {
	# A kill inside C_CreateObject leaves a half-written object (SoftHSM
	# writes the defaults first, the template last): no class, or a key or
	# certificate without CKA_ID and value. The re-run finds the record
	# of the import in the state store, removes such objects beyond those
	# the token held before, and finishes; the record is gone afterwards.
	local d=$BATS_TEST_TMPDIR/pfx t0 t1
	mkdir -p "$d"
	_fx_genpkey rsa "$d/k.pem"
	openssl pkey -in "$d/k.pem" -pubout -out "$d/k.pub"
	"$MKPKI" issue "$(pki_dir)" qualified "$d/k.pub" "$d/c.pem" -1d +365d >/dev/null 2>&1
	export PW=Zq8-pfx
	openssl pkcs12 -export -inkey "$d/k.pem" -in "$d/c.pem" -passout env:PW -out "$d/x.p12"
	PFX_ARGS=("${P11[@]}" --token "$TOKEN_URI" --pass env:PW "$d/x.p12")
	WRITING=0 HALF=0
	finish_pfx() {
		# killed while writing: the record is there; half-written
		# objects have no id
		if [ -n "$(ls -A "$PSRENEW_STATE_DIR/imports" 2>/dev/null)" ]; then
			WRITING=$((WRITING + 1))
			HALF=$((HALF + $(p11_objects | awk '$2 == "" || $2 == "-"' | wc -l)))
		fi
		ps-pfx-import "${PFX_ARGS[@]}" >/dev/null 2>&1 || true
		[ -z "$(ls -A "$PSRENEW_STATE_DIR/imports" 2>/dev/null)" ] ||
			{ echo "the record of the import is left: $(ls -A "$PSRENEW_STATE_DIR/imports")"; return 1; }
	}
	# the kills spread over the length of one run (timed from the start)
	fault_snapshot "$d/start"
	t0=$(date +%s%N)
	ps-pfx-import "${PFX_ARGS[@]}" >/dev/null 2>&1
	t1=$(date +%s%N)
	fault_restore "$d/start"
	MAX_MS=$(((t1 - t0) / 1000000 + 20)) crash_loop ps-pfx-import finish_pfx ps-pfx-import "${PFX_ARGS[@]}"
	echo "# figure: kill -9 ps-pfx-import: $WRITING kills while it wrote (a run of $(((t1 - t0) / 1000000)) ms), $HALF half-written objects removed by the re-run" >&3
}

@test "concurrency: two ps-renew and three ps-fetch --pending at once on one state store" {
	local i pids=() id st
	for id in "$QUAL_ID" "$COMM_ID"; do
		ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$id" --ca "$LS_CA" \
			--key-type ec:prime256v1 >"$BATS_TEST_TMPDIR/renew-$id" 2>&1 &
		pids+=($!)
	done
	for i in 1 2 3; do
		ps-fetch "${P11[@]}" --pending --accept-type >"$BATS_TEST_TMPDIR/fetch-$i" 2>&1 &
		pids+=($!)
	done
	for i in 0 1; do
		st=0
		wait "${pids[i]}" || st=$?
		# SoftHSM's file store is not safe across processes: a renewal may
		# fail with a token error (exit 6), having left nothing behind;
		# it is then done again alone
		if [ "$st" -ne 0 ]; then
			[ "$st" -eq 6 ] || { cat "$BATS_TEST_TMPDIR"/renew-*; return 1; }
			echo "# renewal $i: SoftHSM race (exit 6), run again" >&3
			id=$([ "$i" -eq 0 ] && echo "$QUAL_ID" || echo "$COMM_ID")
			ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$id" --ca "$LS_CA" \
				--key-type ec:prime256v1 >/dev/null
		fi
	done
	for i in 2 3 4; do wait "${pids[i]}" || true; done
	ps-fetch "${P11[@]}" --pending --accept-type >/dev/null
	# one request per certificate, installed; one new key pair and one new
	# certificate each; nothing twice
	[ "$(state_summary | awk '{ print $2 }' | sort | uniq -c | tr -s ' ')" = " 2 installed" ]
	[ "$(state_summary | awk '{ print $1 }' | sort -u | wc -l)" -eq 2 ]
	objs=$(p11_objects)
	[ "$(grep -c '^cert ' <<<"$objs")" -eq 6 ]
	[ "$(grep -c '^privkey ' <<<"$objs")" -eq 6 ]
	[ "$(grep -c '^pubkey ' <<<"$objs")" -eq 6 ]
}

# journal_entry NAME TMP_HEX: a keygen/ journal entry for the demo token, as
# ps-renew writes it before it generates a key pair.
journal_entry() {
	local tok
	tok=$(ps-status "${P11[@]}" --token "$TOKEN_URI" --json | jq -r -s '.[0].token')
	mkdir -p -m 0700 "$PSRENEW_STATE_DIR" "$PSRENEW_STATE_DIR/keygen" "$PSRENEW_STATE_DIR/locks"
	jq -n -c --arg t "$tok" --arg id "$2" \
		'{token: $t, tmp_id: $id, old_sha256: "00", label: "orphan", started_at: 0}' \
		>"$PSRENEW_STATE_DIR/keygen/$1.json"
	chmod 0600 "$PSRENEW_STATE_DIR/keygen/$1.json"
}

orphan_keypair() { # HEX_ID: an EC key pair under that CKA_ID
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" --login \
		--pin "$PIN" --keypairgen --key-type EC:prime256v1 --id "$1" \
		--label orphan >/dev/null 2>&1
}

@test "the key pair of an interrupted key generation goes with the next run; one under way is left alone" {
	local dead=0badc0de0badc0de0badc0de0badc0de0badc0de live=1badc0de1badc0de1badc0de1badc0de1badc0de
	orphan_keypair "$dead"
	orphan_keypair "$live"
	journal_entry 20261201-000000-00000001 "$dead"
	journal_entry 20261201-000000-00000002 "$live"
	[ "$(p11_objects | grep -c " $dead\$")" -eq 2 ]
	# a run at work on the second one holds its lock
	(
		exec 9>"$PSRENEW_STATE_DIR/locks/keygen-20261201-000000-00000002.lock"
		flock -x 9
		exec sleep 60
	) 3>&- &
	local holder=$!
	sleep 0.3
	run ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA" --key-type ec:prime256v1
	kill "$holder"; wait "$holder" 2>/dev/null || true
	[ "$status" -eq 0 ]
	[[ $output == *"removed 2 key object(s) that an interrupted run had generated but never recorded"* ]]
	[ "$(p11_objects | grep -c " $dead\$")" -eq 0 ]
	[ ! -e "$PSRENEW_STATE_DIR/keygen/20261201-000000-00000001.json" ]
	# the live one: its key pair and its entry stay
	[ "$(p11_objects | grep -c " $live\$")" -eq 2 ]
	[ -e "$PSRENEW_STATE_DIR/keygen/20261201-000000-00000002.json" ]
	# the renewal itself left no entry of its own
	[ "$(ls "$PSRENEW_STATE_DIR/keygen" | wc -l)" -eq 1 ]
	# once nobody holds it, the next run takes it for dead too
	run ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$COMM_ID" --ca "$LS_CA" --key-type ec:prime256v1
	[ "$status" -eq 0 ]
	[ "$(p11_objects | grep -c " $live\$")" -eq 0 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/keygen")" ]
}

@test "a journal entry of another token is left alone" {
	local dead=2badc0de2badc0de2badc0de2badc0de2badc0de
	orphan_keypair "$dead"
	journal_entry 20261201-000000-00000003 "$dead"
	jq -c '.token = "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=0000000000000000;token=other"' \
		"$PSRENEW_STATE_DIR/keygen/20261201-000000-00000003.json" >"$BATS_TEST_TMPDIR/j" &&
		cat "$BATS_TEST_TMPDIR/j" >"$PSRENEW_STATE_DIR/keygen/20261201-000000-00000003.json"
	run ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA" --key-type ec:prime256v1
	[ "$status" -eq 0 ]
	[ "$(p11_objects | grep -c " $dead\$")" -eq 2 ]
	[ -e "$PSRENEW_STATE_DIR/keygen/20261201-000000-00000003.json" ]
}

@test "what a killed key generation half-wrote goes with the next ps-renew; what was there before stays" {
	local dead=3badc0de3badc0de3badc0de3badc0de3badc0de f
	half_written none # there before the run: kept
	orphan_keypair "$dead"
	journal_entry 20261201-000000-00000004 "$dead"
	f=$PSRENEW_STATE_DIR/keygen/20261201-000000-00000004.json
	jq -c '.leftovers_before = {"no-class": 1}' "$f" >"$BATS_TEST_TMPDIR/j" && cat "$BATS_TEST_TMPDIR/j" >"$f"
	# what the kill inside C_GenerateKeyPair left
	half_written pubkey
	half_written none
	[ "$(p11_objects | grep -c '^data ')" -eq 2 ]
	[ "$(p11_objects | grep -c '^pubkey -$')" -eq 1 ]
	run ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA" --key-type ec:prime256v1
	[ "$status" -eq 0 ]
	[[ $output == *"removed 4 key object(s)"* ]]
	[ "$(p11_objects | grep -c '^data ')" -eq 1 ]
	[ "$(p11_objects | grep -c '^pubkey -$')" -eq 0 ]
	[ "$(p11_objects | grep -c " $dead\$")" -eq 0 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/keygen")" ]
}

@test "what a killed install half-wrote goes with the next ps-fetch, which installs the certificate once" {
	local req f
	ps-renew "${P11[@]}" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA" --key-type ec:prime256v1 >/dev/null
	f=$(ls "$PSRENEW_STATE_DIR"/requests/*.json)
	[ "$(jq -r .state "$f")" = issued ]
	half_written none # there before: kept
	# the install was killed inside C_CreateObject of the certificate: it
	# had marked the request, and left half a certificate
	jq -c '.install_leftovers_before = {"no-class": 1}' "$f" >"$BATS_TEST_TMPDIR/r" && cat "$BATS_TEST_TMPDIR/r" >"$f"
	half_written cert
	[ "$(p11_objects | grep -c '^cert -$')" -eq 1 ]
	local certs=$(($(p11_objects | grep -c '^cert ') - 1))
	run ps-fetch "${P11[@]}" --pending --accept-type
	[ "$status" -eq 0 ]
	[[ $output == *"removed 1 half-written object(s) that an interrupted install had left"* ]]
	[ "$(jq -r .state "$f")" = installed ]
	[ "$(jq 'has("install_leftovers_before")' "$f")" = false ]
	# the half certificate went, the new one came
	[ "$(p11_objects | grep -c '^cert ')" -eq $((certs + 1)) ]
	[ "$(p11_objects | grep -c '^cert -$')" -eq 0 ]
	[ "$(p11_objects | grep -c '^data ')" -eq 1 ]
}
