#!/usr/bin/env bats
# The libFuzzer harnesses of tests/fuzz (see tests/fuzz/README.md), a short
# run of each: first every regression input kept for it
# (tests/fuzz/regress/NAME-*), which must not crash, then 10 s of fuzzing
# from its seeds (tests/fuzz/corpus/NAME, copied: the seeds are never
# changed) plus those regression inputs. A crash fails the test; the input
# is kept in build/fuzz/artifacts/. `make fuzz` runs them longer.
#
# The harnesses are built (or brought up to date) by `make fuzz-build`.
# Nothing is skipped: without clang and its libFuzzer runtime every test
# fails, naming the packages to install.

bats_require_minimum_version 1.5.0

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
FUZZ_DIR=$TOP/build/fuzz
FUZZ_TIME=10
# Undefined behaviour aborts the harness; show where it happened.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

setup_file() {
	local out
	if ! command -v clang >/dev/null; then
		echo "clang is missing: apt-get install clang libclang-rt-14-dev" \
			"(scripts/install-deps)" >&2
		return 1
	fi
	if ! out=$(make -s -C "$TOP" fuzz-build 2>&1); then
		printf '%s\n' "$out" | tail -n 30 >&2
		echo "make fuzz-build failed (clang and libclang-rt-14-dev are" \
			"needed: apt-get install clang libclang-rt-14-dev)" >&2
		return 1
	fi
}

# fuzz NAME: the regression inputs of NAME, then FUZZ_TIME seconds of
# fuzzing; prints the number of executions (a TAP comment).
fuzz() {
	local name=$1 bin=$FUZZ_DIR/$1 corpus=$BATS_TEST_TMPDIR/corpus opts
	local -a regress
	local execs
	[ -x "$bin" ] || { echo "no harness $bin (make fuzz-build)"; return 1; }
	read -r opts <"$FUZZ_DIR/$name.options" || return 1
	mkdir -p "$corpus" "$FUZZ_DIR/artifacts"
	cp "$TOP/tests/fuzz/corpus/$name"/* "$corpus"/ || return 1
	shopt -s nullglob
	regress=("$TOP/tests/fuzz/regress/$name"-*)
	shopt -u nullglob
	if ((${#regress[@]})); then
		# shellcheck disable=SC2086
		run "$bin" $opts "${regress[@]}"
		if [ "$status" -ne 0 ]; then
			printf '%s\n' "$output" | grep -v '^INFO:' | tail -n 40
			echo "$name: a regression input crashes (exit $status): ${regress[*]##*/}"
			return 1
		fi
		cp "${regress[@]}" "$corpus"/
	fi
	# shellcheck disable=SC2086
	run "$bin" $opts -max_total_time=$FUZZ_TIME -print_final_stats=1 \
		-artifact_prefix="$FUZZ_DIR/artifacts/$name-" "$corpus"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$output")
	echo "# figure: fuzz $name: ${execs:-?} executions in $FUZZ_TIME s, $((status != 0)) crashes" >&3
	if [ "$status" -ne 0 ]; then
		printf '%s\n' "$output" | grep -v '^INFO:' | tail -n 40
		echo "$name: crashed (exit $status); the input is in $FUZZ_DIR/artifacts/"
		return 1
	fi
	[ -n "$execs" ] && [ "$execs" -gt 0 ]
}

@test "fuzz record: JSON Lines records on stdin" {
	fuzz record
}

@test "fuzz config: psrenew.conf" {
	fuzz config
}

@test "fuzz uri: pkcs11: URIs, formatted back and parsed again" {
	fuzz uri
}

@test "fuzz serial: serial numbers as people type them" {
	fuzz serial
}

@test "fuzz certs: PEM, DER and PKCS#7 certificates and their facts" {
	fuzz certs
}

@test "fuzz secret: a PIN from fd:N" {
	fuzz secret
}

@test "fuzz helper-output: a certmonger helper's exit status and stdout" {
	fuzz helper-output
}

@test "fuzz est-body: an EST server's answer body" {
	fuzz est-body
}

@test "fuzz jip-html: JIP portal pages read through the test profile" {
	fuzz jip-html
}

@test "fuzz mail-template: the request e-mail's template" {
	fuzz mail-template
}

@test "fuzz cmp-response: a CA's answer through the CMP channel" {
	fuzz cmp-response
}

@test "fuzz pfx: PKCS#12 (PFX) files, unlocked and read up to the token" {
	fuzz pfx
}

@test "every harness in tests/fuzz has a test here and seeds" {
	local c name
	for c in "$TOP"/tests/fuzz/*.c; do
		name=$(basename "$c" .c)
		grep -q "^	fuzz $name\$" "$BATS_TEST_FILENAME" ||
			{ echo "no test for the harness $name"; return 1; }
		compgen -G "$TOP/tests/fuzz/corpus/$name/*" >/dev/null ||
			{ echo "no seeds in tests/fuzz/corpus/$name"; return 1; }
	done
}
