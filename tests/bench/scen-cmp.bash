# make bench scenario "cmp" (sourced by scripts/bench): ps-fetch --pending
# over BENCH_CMP_N (default 50) waiting CMP requests against the test CMP CA
# (tests/cmp/cmp-ca), next to one `openssl cmp` process per exchange.
#
# Each ps-fetch poll resumes its transaction from the stored answers (two
# replays, no network) and sends one pollReq signed on the token; the CA
# answers a pollRep. The peer cannot poll a transaction it did not start,
# so it makes the same kind of exchange: one signed request and one signed
# answer per process (`openssl cmp -cmd genm`, a software key; the test CA
# answers genm with a signed error message). The test CA serves each
# connection on a thread of its own and keeps an HTTP/1.1 client's
# connection open: ps-fetch polls over up to 8 connections at once, openssl
# cmp (HTTP/1.0) one exchange per process and connection.
#
# BENCH_CMP_BASE=DIR adds DIR/ps-fetch (another build's, the base commit's
# say) as a third contender, in the same rotation against the same CA.

CMP_N=${BENCH_CMP_N:-50}
CMP_DIR=
EXTRA_SCENARIOS+=(cmp)

# The test CA's CPU time so far (user + system), in clock ticks.
cmp_ca_ticks() {
	awk '{ print $14 + $15 }' "/proc/$(<"$CMP_STATE/cmp-ca.pid")/stat" 2>/dev/null || echo 0
}

scen_cmp() {
	step "6. ps-fetch --pending over $CMP_N waiting CMP requests vs one openssl cmp per exchange"
	make -s -C "$top" B="$build" "$build/tests/cmp-ca" >&2 || die "cannot build tests/cmp-ca"
	new_token s6 Cmp
	local cur
	cur=$(token_cert commercial -300d +10d) || die "token_cert failed"
	CMP_DIR=$W/cmp
	eval "$(PSRENEW_BUILD=$build "$top/tests/cmp/cmp-start" "$PKI" "$CMP_DIR")" ||
		die "cmp-start failed"
	echo 'wait 1000000 3600' >"$CMP_STATE/answers"
	export PSRENEW_STATE_DIR=$W/s6/state
	mkdir -p "$W/s6"
	ps-status --module "$MODULE" --token "$TOKEN_URI" --json --quiet |
		jq -c --arg id "$cur" 'select(.id == $id)' >"$W/s6/cert.json"
	local i
	for ((i = 0; i < CMP_N; i++)); do cat "$W/s6/cert.json"; done >"$W/s6/in.jsonl"
	MEASURE_STDIN=$W/s6/in.jsonl measure cmp ps-renew-submit 1 3 ps-renew --module "$MODULE" \
		--pin "file:$PIN_FILE" --ca "cmp://127.0.0.1:$CMP_PORT/pkix/" --ca-bundle "$PKI/chain.pem" \
		--key-type ec:prime256v1 --force --quiet
	local npend
	npend=$(lines_matching '"state":"pending"' "$W/out/cmp-ps-renew-submit.out")
	check "[[ $npend == $CMP_N ]]" "ps-renew made $CMP_N waiting CMP requests (got $npend)" || return
	# The peer: the same holder with a software key.
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/s6/client.key" 2>/dev/null
	openssl pkey -in "$W/s6/client.key" -pubout -out "$W/s6/client.pub"
	"$MKPKI" issue "$PKI" commercial "$W/s6/client.pub" "$W/s6/client.crt" -300d +10d >/dev/null ||
		die "mkpki issue failed"
	export CMP_PORT CMP_N PKI CLIENT_DIR=$W/s6
	# The floor's request: one genm of the peer's, kept (-reqout), outside
	# any timing.
	openssl cmp -cmd genm -server "127.0.0.1:$CMP_PORT" -path pkix/ \
		-trusted "$PKI/root.crt" -untrusted "$PKI/chain.pem" \
		-cert "$CLIENT_DIR/client.crt" -key "$CLIENT_DIR/client.key" \
		-reqout "$W/s6/genm.der" >/dev/null 2>&1
	[[ -s $W/s6/genm.der ]] || die "openssl cmp -reqout made no request"
	cat >"$W/s6-openssl.sh" <<'EOF'
# one openssl cmp process per exchange
for ((i = 0; i < CMP_N; i++)); do
	openssl cmp -cmd genm -server "127.0.0.1:$CMP_PORT" -path pkix/ \
		-trusted "$PKI/root.crt" -untrusted "$PKI/chain.pem" \
		-cert "$CLIENT_DIR/client.crt" -key "$CLIENT_DIR/client.key" \
		>/dev/null 2>&1
done
exit 0
EOF
	local names=(psrenew openssl floor) r before t0
	local -A ca_ticks=()
	[[ -n ${BENCH_CMP_BASE:-} ]] && names+=(base)
	for ((r = 1; r <= REPS_SLOW; r++)); do
		for i in $(order ${#names[@]} "$r"); do
			before=$(grep -c . "$CMP_STATE/log")
			t0=$(cmp_ca_ticks)
			case ${names[i]} in
			psrenew)
				measure cmp psrenew "$r" 3 ps-fetch --module "$MODULE" --pin "file:$PIN_FILE" \
					--ca-bundle "$PKI/chain.pem" --pending --now --quiet
				;;
			base)
				measure cmp base "$r" 3 "$BENCH_CMP_BASE/ps-fetch" --module "$MODULE" \
					--pin "file:$PIN_FILE" --ca-bundle "$PKI/chain.pem" --pending --now --quiet
				;;
			openssl)
				measure cmp openssl "$r" 0 bash "$W/s6-openssl.sh"
				;;
			floor)
				measure cmp floor "$r" 0 "$BB/cmpfloor" "$MODULE" "$TOKEN_LABEL" "$PIN_FILE" \
					"$cur" "http://127.0.0.1:$CMP_PORT/pkix/" "$W/s6/genm.der" "$CMP_N"
				;;
			esac
			ca_ticks[${names[i]}]=$((${ca_ticks[${names[i]}]:-0} + $(cmp_ca_ticks) - t0))
			check "[[ \$(( \$(grep -c . '$CMP_STATE/log') - $before )) == $CMP_N ]]" \
				"${names[i]}: $CMP_N exchanges with the CA"
		done
	done
	fact cmp_n "$CMP_N"
	# The CA's own CPU per exchange (the same 2 cores as the clients').
	local hz n
	hz=$(getconf CLK_TCK)
	for n in "${!ca_ticks[@]}"; do
		fact "cmp_ca_cpu_ms_per_exchange_$n" "$(awk -v t="${ca_ticks[$n]}" -v hz="$hz" \
			-v k="$((REPS_SLOW * CMP_N))" 'BEGIN { printf "%.2f", t * 1000 / hz / k }')"
	done
	row "6 ps-fetch --pending, $CMP_N CMP polls" wall wall cmp/psrenew cmp/openssl "one openssl cmp per exchange (software key)" faster 10 ">= 10x faster"
	row "6 ps-fetch --pending, $CMP_N CMP polls" "CPU (client side only)" cpu cmp/psrenew cmp/openssl "one openssl cmp per exchange" finfo "" ""
	row "6 ps-fetch --pending, $CMP_N CMP polls" wall wall cmp/psrenew cmp/floor "floor: a signature on the token + one kept-alive HTTP exchange per poll, 8 lanes" info "" ""
	row "6 ps-fetch --pending, $CMP_N CMP polls" "CPU (client side only)" cpu cmp/psrenew cmp/floor "the floor" info "" ""
	# No client of this CA polls faster than the floor: openssl / floor is
	# the most "faster than one openssl cmp per exchange" any can be.
	row "6 ps-fetch --pending, $CMP_N CMP polls" "openssl cmp / floor: the most any poller can be faster" wall cmp/openssl cmp/floor "the floor" info "" "(10x needs >= 10)"
	row "6 ps-fetch --pending, $CMP_N CMP polls" "polls per second" pps cmp/psrenew cmp/openssl "one openssl cmp per exchange" info "" ""
	row "6 ps-fetch --pending, $CMP_N CMP polls" "peak RSS ps-fetch" rss cmp/psrenew "" "" max 16384 "< 16 MiB"
	row "6 ps-fetch --pending, $CMP_N CMP polls" "peak RSS ps-fetch" rss cmp/psrenew cmp/floor "the floor (SoftHSM, libcurl, one key)" le 1.3 "<= 1.3x floor"
	if [[ -n ${BENCH_CMP_BASE:-} ]]; then
		row "6 ps-fetch --pending, $CMP_N CMP polls" wall wall cmp/psrenew cmp/base "ps-fetch of BENCH_CMP_BASE" finfo "" ""
		row "6 ps-fetch --pending, $CMP_N CMP polls" "CPU (client side only)" cpu cmp/psrenew cmp/base "ps-fetch of BENCH_CMP_BASE" finfo "" ""
	fi
	note "6: N = $CMP_N waiting CMP requests; $REPS_SLOW runs each, no warm-up. A ps-fetch poll replays the transaction's stored kup and pollRep into OpenSSL (no network), then sends one pollReq signed on SoftHSM; the test CA (OpenSSL's server API, a thread per connection, HTTP/1.1 keep-alive) answers a signed pollRep. ps-fetch polls over up to 8 connections at once, a thread each (lib/ca_cmp.c cmp_poll_many). The peer: openssl cmp -cmd genm per exchange, a software RSA-2048 key, answered by a signed error message. The floor (tests/bench/cmpfloor.c): one process, the module loaded and logged in once, per poll one RSA signature on SoftHSM (C_Sign) and one HTTP/1.1 exchange of a kept genm request over up to 8 kept-open connections (libcurl multi), the answer not checked. Server and clients share the same 2 cores."
	"$top/tests/cmp/cmp-stop" "$CMP_DIR" >/dev/null 2>&1
	CMP_DIR=
}
