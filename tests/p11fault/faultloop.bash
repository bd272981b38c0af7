# shellcheck shell=bash
# Token fault loops for the CLI tests (tests/cli/fault-token.bats): a
# command runs through the p11fault shim again and again, PKCS#11 call N
# of the run failing once (N = 1, 2, ... until a run ends without reaching
# call N), each run starting from the same token and state store. After each
# run a check given by the test says whether the token and the state store
# hold the old state or the new, complete one, and whether the exit status
# and the error record are the documented ones.
#
#   load ../p11fault/faultloop     (after ../lib/psrenew)
#
#   fault_loop CHECK CMD...
#     CHECK: a function run after each run with $status, $output, $stderr,
#     $FAULT_N (the call that failed), $FAULT_CODE (its CKR_ name) and
#     $FAULT_WANT (the error code psrenew documents for it); it returns
#     non-zero on a violation. CMD runs with --module set to the shim (give
#     it no --module). Sets FAULTS_INJECTED (runs in which a fault was
#     injected) and FAULT_CALLS (the calls of the clean run). Writes one line
#     "faults NAME: N injected, N survived" to fd 3 and to
#     $PSRENEW_FAULT_LOG when set.
#   FAULT_STDIN: a file for CMD's stdin (default /dev/null).
#   FAULT_STRIDE: fail every Nth call only (default 1: every call).
#   FAULT_CODES: the codes to inject (default: the five below); call N gets
#     code N mod 5, so each code is tried at every fifth call; with
#     FAULT_ALL_CODES=1 every call gets every code.

FAULT_CODES=${FAULT_CODES:-CKR_DEVICE_MEMORY CKR_DEVICE_REMOVED CKR_SESSION_HANDLE_INVALID CKR_PIN_LOCKED CKR_GENERAL_ERROR}

# fault_want CKR_NAME: the error code psrenew's records carry for it
# (lib/ckr.c, psrenew(7)).
fault_want() {
	case $1 in
	CKR_DEVICE_MEMORY) echo token-full ;;
	CKR_DEVICE_REMOVED) echo token-absent ;;
	CKR_SESSION_HANDLE_INVALID) echo token-session-lost ;;
	CKR_PIN_LOCKED) echo pin-locked ;;
	CKR_GENERAL_ERROR) echo token-error ;;
	*) echo "?" ;;
	esac
}

# p11_objects: every object on the token (logged in), one "CLASS ID" line
# each, sorted; CLASS is cert, privkey, pubkey or data.
p11_objects() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null | awk '
		function out() { if (cls != "") print cls, id; cls = ""; id = "-" }
		/^Certificate Object/ { out(); cls = "cert"; next }
		/^Private Key Object/ { out(); cls = "privkey"; next }
		/^Public Key Object/ { out(); cls = "pubkey"; next }
		/^Data object/ { out(); cls = "data"; next }
		/^[^ \t]/ { out(); next }
		$1 == "ID:" { id = $2 }
		END { out() }' | sort
}

# fault_snapshot DIR / fault_restore DIR: the token's SoftHSM files and the
# state store, kept and put back.
fault_snapshot() {
	rm -rf "$1" && mkdir -p "$1" || return 1
	cp -a "$TOKEN_DIR" "$1/token" || return 1
	if [[ -e $PSRENEW_STATE_DIR ]]; then cp -a "$PSRENEW_STATE_DIR" "$1/state" || return 1; fi
}

fault_restore() {
	rm -rf "$TOKEN_DIR" "$PSRENEW_STATE_DIR" || return 1
	cp -a "$1/token" "$TOKEN_DIR" || return 1
	if [[ -e $1/state ]]; then cp -a "$1/state" "$PSRENEW_STATE_DIR" || return 1; fi
}

# fault_error_code: the code of the first error record in $output.
fault_error_code() {
	jq -r 'select(.kind == "error") | .code' <<<"$output" | head -n 1
}

# fault_check_error: the documented answer to a fault that stopped the
# work: exit 6 (token problem), an error record with status 6 and the
# code of the injected CKR, and a message on stderr.
fault_check_error() {
	local code
	[ "$status" -eq 6 ] || { echo "exit $status, want 6"; return 1; }
	code=$(fault_error_code)
	# A slot whose token cannot say what it is, is no token (libp11 leaves
	# it out while enumerating): "token-absent", whatever the code.
	case $FAULT_FN in
	C_GetSlotList | C_GetSlotInfo | C_GetTokenInfo)
		[ "$code" = token-absent ] && code=$FAULT_WANT ;;
	esac
	[ "$code" = "$FAULT_WANT" ] ||
		{ echo "error code '$code', want '$FAULT_WANT'"; return 1; }
	[ "$(jq -r 'select(.kind == "error") | .status' <<<"$output" | head -n 1)" = 6 ] ||
		{ echo "error record without status 6"; return 1; }
	[[ -n $stderr ]] || { echo "no message on stderr"; return 1; }
}

# new_objects / gone_objects: objects on the token now and not in
# $OLD_OBJS (the token before the runs), and the other way round.
new_objects() { comm -13 <(printf '%s\n' "$OLD_OBJS") <(p11_objects); }
gone_objects() { comm -23 <(printf '%s\n' "$OLD_OBJS") <(p11_objects); }

# fault_all_or_nothing: the token holds the old objects, and the run
# reports the fault as documented; or it holds what the clean run left
# ($FAULT_REF_NEW added, $FAULT_REF_GONE removed) and exits as it did, or
# reports the fault (one that came after the work was done). PKCS#11 has
# no transactions: removing three objects can stop after one. Such a run
# must report the fault, and one run without faults must then finish the
# job (FAULT_OUTCOME=rerun). Sets FAULT_OUTCOME to old, new or rerun.
fault_all_or_nothing() {
	local new gone
	new=$(new_objects) gone=$(gone_objects)
	if [[ -z $new && -z $gone ]]; then
		FAULT_OUTCOME=old
		((FAULT_N > 0)) || { echo "a clean run changed nothing"; return 1; }
		fault_check_error
		return
	fi
	FAULT_OUTCOME=new
	((FAULT_N > 0)) || return 0
	if [[ $new != "$FAULT_REF_NEW" || $gone != "$FAULT_REF_GONE" ]]; then
		[[ ${FAULT_PARTIAL_OK:-0} == 1 ]] || {
			echo "neither the old state nor the new one:"
			echo "added: $new"; echo "removed: $gone"
			echo "a clean run adds: $FAULT_REF_NEW"; echo "and removes: $FAULT_REF_GONE"
			return 1
		}
		fault_check_error || return 1
		FAULT_OUTCOME=rerun
		run --separate-stderr "${FAULT_CMD[0]}" --module "$SOFTHSM_MODULE" \
			"${FAULT_CMD[@]:1}" <"${FAULT_STDIN:-/dev/null}"
		new=$(new_objects) gone=$(gone_objects)
		[[ $new == "$FAULT_REF_NEW" && $gone == "$FAULT_REF_GONE" ]] || {
			echo "a re-run did not finish the job: exit $status $output $stderr"
			echo "added: $new"; echo "removed: $gone"
			return 1
		}
		[ "$status" -eq 0 ] || { echo "the re-run: exit $status"; return 1; }
		FAULT_RERUNS=$((FAULT_RERUNS + 1))
		return 0
	fi
	[ "$status" -eq "$FAULT_CLEAN_STATUS" ] || fault_check_error
}

fault_loop() {
	local check=$1 snap=$BATS_TEST_TMPDIR/fault-snapshot n=0 codes name line
	local -a cl
	shift
	read -r -a codes <<<"$FAULT_CODES"
	OLD_OBJS=$(p11_objects)
	fault_snapshot "$snap" || return 1
	# the clean run, through the shim, counting calls
	run --separate-stderr env P11FAULT_MODULE="$SOFTHSM_MODULE" \
		P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/count" "$1" --module "$P11FAULT" "${@:2}" \
		<"${FAULT_STDIN:-/dev/null}"
	FAULT_CLEAN_STATUS=$status
	FAULT_N=0 FAULT_CODE='' FAULT_WANT='' FAULT_FN=''
	FAULT_REF_NEW=$(new_objects) FAULT_REF_GONE=$(gone_objects)
	"$check" || { echo "the clean run fails its check: $status $output $stderr"; return 1; }
	FAULT_CALLS=$(sed -n 's/^total //p' "$BATS_TEST_TMPDIR/count")
	FAULTS_INJECTED=0 FAULT_RERUNS=0 FAULT_CMD=("$@")
	while :; do
		n=$((n + ${FAULT_STRIDE:-1}))
		if [[ ${FAULT_ALL_CODES:-0} == 1 ]]; then cl=("${codes[@]}"); else
			cl=("${codes[n % ${#codes[@]}]}")
		fi
		for FAULT_CODE in "${cl[@]}"; do
			FAULT_N=$n FAULT_WANT=$(fault_want "$FAULT_CODE")
			fault_restore "$snap" || return 1
			run --separate-stderr env P11FAULT_MODULE="$SOFTHSM_MODULE" \
				P11FAULT_FAIL_ANY="$n:$FAULT_CODE" P11FAULT_VERBOSE=1 \
				"$1" --module "$P11FAULT" "${@:2}" <"${FAULT_STDIN:-/dev/null}"
			if [[ $stderr != *"p11fault: "*" -> "* ]]; then
				# call n was never made: the run ended before it
				"$check" || { echo "run past the last call: $status $output $stderr"; return 1; }
				break 2
			fi
			FAULTS_INJECTED=$((FAULTS_INJECTED + 1))
			FAULT_FN=$(sed -n 's/^p11fault: \(C_[A-Za-z]*\) call .*/\1/p' <<<"$stderr" | head -n 1)
			"$check" || {
				echo "call $n failing with $FAULT_CODE ($(grep -m1 'p11fault: ' <<<"$stderr")):"
				echo "exit $status"; echo "$output"; echo "$stderr"
				return 1
			}
		done
		((n < 10000)) || { echo "no end to the calls"; return 1; }
	done
	name=${FAULT_NAME:-$(basename "$1")}
	line="faults $name: $FAULTS_INJECTED injected, $FAULTS_INJECTED survived ($FAULT_CALLS PKCS#11 calls in a clean run; $FAULT_RERUNS finished by a re-run)"
	echo "# figure: $line" >&3
	if [[ -n ${PSRENEW_FAULT_LOG:-} ]]; then echo "$line" >>"$PSRENEW_FAULT_LOG"; fi
}
