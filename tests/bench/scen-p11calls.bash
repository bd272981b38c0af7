# make bench scenario "p11calls" (sourced by scripts/bench): the PKCS#11
# calls of one renewal and its install (ps-renew --id ... --ca local-submit,
# then ps-fetch of its record) and of ps-status, on tokens holding 0, 20
# and 60 other certificates each with its key pair, next to the floor
# programs' calls for the same job (tests/bench/renewfloor.c for the
# renewal and install, tests/bench/listcerts.c for ps-status); then the
# wall time of the renewal and install on a slow token (every counted call
# delayed by P11FAULT_DELAY, 5 ms, as a USB token's round trip), psrenew
# next to the floor. Calls are counted by tests/p11fault
# (P11FAULT_COUNT_FILE, its "total": every call but C_Initialize,
# C_Finalize, C_GetInfo and C_GetFunctionList).

P11CALLS_SIZES=${BENCH_P11CALLS_SIZES:-0 20 60}
P11CALLS_DELAY=${BENCH_P11CALLS_DELAY:-5}
EXTRA_SCENARIOS+=(p11calls)

# p11calls_total FILE: the "total" of a count file.
p11calls_total() { awk '$1 == "total" { print $2 }' "$1" 2>/dev/null; }

scen_p11calls() {
	step "7. PKCS#11 calls of a renewal and of ps-status at $P11CALLS_SIZES other certificates; a slow token (${P11CALLS_DELAY} ms a call)"
	[[ -x $BB/renewfloor ]] || die "$BB/renewfloor missing: run make bench"
	local n old key cf r i name
	export P11FAULT_MODULE=$MODULE
	cat >"$W/s7-psrenew.sh" <<'EOF'
set -o pipefail
P11FAULT_COUNT_FILE=$S7/renew.count ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" \
	--token "$TOKEN_URI" --id "$OLD_ID" --ca "$CA" --quiet >"$S7/req.json" &&
P11FAULT_COUNT_FILE=$S7/fetch.count ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" \
	--quiet <"$S7/req.json" | grep -q '"kind":"cert"'
EOF
	cat >"$W/s7-floor.sh" <<'EOF'
set -e
key=$(P11FAULT_COUNT_FILE=$S7/frenew.count "$BB/renewfloor" renew "$P11FAULT" "$TOKEN_LABEL" \
	"$PIN_FILE" "$OLD_ID")
P11FAULT_COUNT_FILE=$S7/finstall.count "$BB/renewfloor" install "$P11FAULT" "$TOKEN_LABEL" \
	"$PIN_FILE" "$key" "$S7/old.der"
EOF
	for n in $P11CALLS_SIZES; do
		new_token "s7-$n" "Calls$n"
		OLD_ID=$(token_cert commercial -300d +10d) || die "token_cert failed"
		say "token Calls$n: $n other certificates, each with its key pair ..."
		token_fill_keyed_certs "$n" || die "token_fill_keyed_certs failed"
		export S7=$W/s7-$n OLD_ID P11FAULT BB
		openssl x509 -in "$BATS_TEST_TMPDIR/certs/$OLD_ID.pem" -outform DER -out "$S7/old.der"
		snap "s7-$n"
		export PSRENEW_STATE_DIR=$S7/state
		# The counts: one run of each (they do not vary).
		unset P11FAULT_DELAY
		restore "s7-$n"
		rm -rf "$PSRENEW_STATE_DIR"
		measure "p11calls$n" psrenew-count 1 0 bash "$W/s7-psrenew.sh"
		fact "p11calls_${n}_renew" "$(p11calls_total "$S7/renew.count")"
		fact "p11calls_${n}_fetch" "$(p11calls_total "$S7/fetch.count")"
		fact "p11calls_${n}_psrenew" "$(($(p11calls_total "$S7/renew.count") + $(p11calls_total "$S7/fetch.count")))"
		restore "s7-$n"
		measure "p11calls$n" floor-count 1 0 bash "$W/s7-floor.sh"
		fact "p11calls_${n}_floor" "$(($(p11calls_total "$S7/frenew.count") + $(p11calls_total "$S7/finstall.count")))"
		restore "s7-$n"
		export P11FAULT_COUNT_FILE=$S7/status.count
		measure "p11calls$n" status-count 1 0 ps-status --module "$P11FAULT" \
			--token "$TOKEN_URI" --json --quiet
		fact "p11calls_${n}_status" "$(p11calls_total "$S7/status.count")"
		fact "p11calls_${n}_status_reads" \
			"$(awk '$1 == "C_GetAttributeValue" { print $2 }' "$S7/status.count")"
		export P11FAULT_COUNT_FILE=$S7/listcerts.count
		measure "p11calls$n" listcerts-count 1 0 "$BB/listcerts" "$P11FAULT" "$TOKEN_LABEL"
		fact "p11calls_${n}_listcerts" "$(p11calls_total "$S7/listcerts.count")"
		unset P11FAULT_COUNT_FILE
		# The slow token: every counted call waits.
		export P11FAULT_DELAY="*:$P11CALLS_DELAY"
		local names=(psrenew floor)
		for ((r = 1; r <= REPS_SLOW; r++)); do
			for i in $(order 2 "$r"); do
				name=${names[i]}
				restore "s7-$n"
				rm -rf "$PSRENEW_STATE_DIR"
				measure "p11calls$n" "slow-$name" "$r" 0 bash "$W/s7-$name.sh"
			done
		done
		unset P11FAULT_DELAY
		restore "s7-$n"
		local s="7 PKCS#11 calls, $n other certs (each with its key pair)" rc fc
		rc=$(p11calls_total "$S7/renew.count")
		fc=$(p11calls_total "$S7/fetch.count")
		row "$s" "calls: renewal + install (ps-renew $rc + ps-fetch $fc)" value "=p11calls_${n}_psrenew" \
			"=p11calls_${n}_floor" "floor: renewfloor renew + install" le 1.5 "<= 1.5x floor"
		row "$s" "calls: ps-status (no login)" value "=p11calls_${n}_status" "=p11calls_${n}_listcerts" \
			"listcerts (certificates only, no keys)" info "" ""
		row "$s" "C_GetAttributeValue calls of ps-status" value "=p11calls_${n}_status_reads" "" "" \
			info "" "(public objects: $((2 * (n + 1))))"
		row "$s" "wall, ${P11CALLS_DELAY} ms a call: renewal + install" wall "p11calls$n/slow-psrenew" \
			"p11calls$n/slow-floor" "the floor on the same slow token" info "" ""
	done
	local a z
	read -r a _ <<<"$P11CALLS_SIZES"
	z=${P11CALLS_SIZES##* }
	fact p11calls_growth "$(awk -F'\t' -v k="p11calls_${z}_psrenew" -v f="p11calls_${a}_psrenew" \
		'$1 == k { c = $2 } $1 == f { d = $2 } END { print c - d }' "$FACTS")"
	row "7 PKCS#11 calls" "renewal + install: calls at $z other certs less those at $a" value \
		=p11calls_growth "" "" max 4 "within a few (<= 3)"
	note "7: counts from one run each through tests/p11fault (P11FAULT_COUNT_FILE 'total': every call but C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList); the floor is tests/bench/renewfloor.c (renew: find the certificate by CKA_ID, read it, one leftover search, C_GenerateKeyPair, read the public key, set CKA_ID twice, C_SignInit + C_Sign; install: find the key by CKA_ID, one leftover search, C_CreateObject; each process finds its token, opens a session, logs in and closes it). ps-status without a login next to listcerts (certificates only, no keys). Slow token: P11FAULT_DELAY='*:$P11CALLS_DELAY' on every counted call, $REPS_SLOW runs each, interleaved, the token restored before each; the wall time includes the RSA-2048 key generation (varies 0.15-1 s on SoftHSM)."
}
