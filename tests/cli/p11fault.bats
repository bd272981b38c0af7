#!/usr/bin/env bats
# Tests for the PKCS#11 fault-injection shim (tests/p11fault/p11fault.c),
# driven through pkcs11-tool (OpenSC) against a throw-away SoftHSM2 token.

SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=1234

setup_file() {
    local repo build src
    repo="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    build="${PSRENEW_BUILD:-$repo/build}"
    src="$repo/tests/p11fault"
    export SHIM="$build/tests/p11fault.so"
    export TOKINFO="$BATS_FILE_TMPDIR/tokinfo"

    if [ ! -f "$SHIM" ] || [ "$src/p11fault.c" -nt "$SHIM" ]; then
        mkdir -p "$build/tests"
        cc -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared \
            $(pkg-config --cflags p11-kit-1) -o "$SHIM" "$src/p11fault.c" -ldl
    fi
    cc -std=c11 -Wall -Wextra -Werror -O2 -g $(pkg-config --cflags p11-kit-1) \
        -o "$TOKINFO" "$src/tokinfo.c" -ldl
}

setup() {
    [ -f "$SOFTHSM_MODULE" ] || skip "SoftHSM2 not installed"
    command -v pkcs11-tool >/dev/null || skip "pkcs11-tool (OpenSC) not installed"

    # Nothing from the caller's environment may configure the shim.
    local v
    for v in "${!P11FAULT_@}"; do unset "$v"; done

    export SOFTHSM2_CONF="$BATS_TEST_TMPDIR/softhsm2.conf"
    mkdir -p "$BATS_TEST_TMPDIR/tokens"
    cat >"$SOFTHSM2_CONF" <<EOF
directories.tokendir = $BATS_TEST_TMPDIR/tokens
objectstore.backend = file
log.level = ERROR
EOF
    softhsm2-util --init-token --free --label t --so-pin 12345678 --pin "$PIN" >/dev/null
    printf 'data to be signed\n' >"$BATS_TEST_TMPDIR/data"
}

# pkcs11-tool through the shim / straight against SoftHSM.
shim() { pkcs11-tool --module "$SHIM" "$@"; }
direct() { pkcs11-tool --module "$SOFTHSM_MODULE" "$@"; }

# Number of objects on the token as SoftHSM itself sees them (logged in).
object_count() {
    direct --login --pin "$PIN" -O 2>/dev/null | grep -cE '^[A-Za-z ]+ Object;|^Data object ' || true
}

# Value of "key=" from tokinfo output held in $output.
field() { sed -n "s/^$1=//p" <<<"$output"; }

@test "transparent: slot, token and mechanism listings equal SoftHSM's" {
    run direct -L
    [ "$status" -eq 0 ]
    local expected="$output"
    [[ "$expected" == *"token label        : t"* ]]

    run shim -L
    [ "$status" -eq 0 ]
    [ "$output" = "$expected" ]

    run direct -M
    expected="$output"
    run shim -M
    [ "$status" -eq 0 ]
    [[ "$output" == *"RSA-PKCS-KEY-PAIR-GEN"* ]]
    [ "$output" = "$expected" ]

    run shim -I
    [ "$status" -eq 0 ]
    [[ "$output" == *"Cryptoki version 2.40"* ]]
    [[ "$output" == *"Manufacturer     SoftHSM"* ]]
}

@test "transparent: key generation, signing and object listing work" {
    run shim --login --pin "$PIN" --keypairgen --key-type rsa:1024 --id 01 --label r
    [ "$status" -eq 0 ]
    run shim --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 02 --label e
    [ "$status" -eq 0 ]
    [ "$(object_count)" -eq 4 ]

    run shim --login --pin "$PIN" --sign --id 01 -m SHA256-RSA-PKCS \
        -i "$BATS_TEST_TMPDIR/data" -o "$BATS_TEST_TMPDIR/sig"
    [ "$status" -eq 0 ]
    [ -s "$BATS_TEST_TMPDIR/sig" ]
    # The signature made through the shim verifies against SoftHSM directly.
    run direct --login --pin "$PIN" --verify --id 01 -m SHA256-RSA-PKCS \
        -i "$BATS_TEST_TMPDIR/data" --signature-file "$BATS_TEST_TMPDIR/sig"
    [ "$status" -eq 0 ]
    [[ "$output" == *"Signature is valid"* ]]

    run shim --login --pin "$PIN" --sign --id 02 -m ECDSA \
        -i "$BATS_TEST_TMPDIR/data" -o "$BATS_TEST_TMPDIR/ecsig"
    [ "$status" -eq 0 ]
    [ "$(stat -c %s "$BATS_TEST_TMPDIR/ecsig")" -eq 64 ]

    run direct --login --pin "$PIN" -O
    local expected="$output"
    run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
    [[ "$output" == *"label:      r"* ]]
    [ "$output" = "$expected" ]
}

@test "FAIL: C_GenerateKeyPair:1:CKR_DEVICE_MEMORY fails keypairgen and leaves no key" {
    P11FAULT_FAIL=C_GenerateKeyPair:1:CKR_DEVICE_MEMORY \
        run shim --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_GenerateKeyPair failed: rv = CKR_DEVICE_MEMORY"* ]]
    [ "$(object_count)" -eq 0 ]

    # Counting is per process: the next run's first call goes through.
    run shim --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01
    [ "$status" -eq 0 ]
    [ "$(object_count)" -eq 2 ]
}

@test "FAIL: N picks the Nth call, * every call, CODE may be hex" {
    # pkcs11-tool -L calls C_GetSlotList twice: size query, then the list.
    P11FAULT_FAIL=C_GetSlotList:1:CKR_DEVICE_ERROR run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_GetSlotList(NULL) failed: rv = CKR_DEVICE_ERROR"* ]]

    P11FAULT_FAIL=C_GetSlotList:2:CKR_DEVICE_ERROR run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_GetSlotList() failed: rv = CKR_DEVICE_ERROR"* ]]

    P11FAULT_FAIL=C_GetSlotList:3:CKR_DEVICE_ERROR run shim -L
    [ "$status" -eq 0 ]
    [[ "$output" == *"token label        : t"* ]]

    P11FAULT_FAIL='C_GetTokenInfo:*:CKR_TOKEN_NOT_PRESENT' run shim -L
    [ "$(grep -c 'C_GetTokenInfo() failed: rv = CKR_TOKEN_NOT_PRESENT' <<<"$output")" -eq 2 ]

    P11FAULT_FAIL='C_OpenSession:1:0x123, C_Login:1:CKR_PIN_INCORRECT' run shim -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_OpenSession failed: rv = unknown PKCS11 error (0x123)"* ]]
}

@test "FAIL: a malformed specification makes the module refuse to load" {
    P11FAULT_FAIL=C_Bogus:1:CKR_GENERAL_ERROR run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"p11fault: P11FAULT_FAIL: unknown function 'C_Bogus'"* ]]

    P11FAULT_FAIL=C_Login:1:CKR_NOPE run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"unknown return code 'CKR_NOPE'"* ]]

    P11FAULT_FAIL=C_Login:0:CKR_PIN_INCORRECT run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"bad call number"* ]]

    P11FAULT_HIDE_MECHS=CKM_NOT_A_MECH run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"unknown mechanism 'CKM_NOT_A_MECH'"* ]]

    P11FAULT_MODULE=/nonexistent/module.so run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"p11fault: cannot load /nonexistent/module.so"* ]]
}

@test "COUNT_FILE: records per-function counts and the FAIL_ANY total" {
    P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/counts" run shim -L
    [ "$status" -eq 0 ]
    run cat "$BATS_TEST_TMPDIR/counts"
    # Two slots (token "t" plus SoftHSM's free slot).
    [[ "$output" == *"C_Initialize 1"* ]]
    [[ "$output" == *"C_GetSlotList 2"* ]]
    [[ "$output" == *"C_GetTokenInfo 2"* ]]
    [[ "$output" == *"C_Finalize 1"* ]]
    [ "$(tail -n 1 <<<"$output")" = "total 6" ]
    # total = every counted call, i.e. all but the four global functions.
    local sum
    sum=$(awk '$1 !~ /^(C_Initialize|C_Finalize|C_GetInfo|C_GetFunctionList|total)$/ { s += $2 }
               END { print s }' "$BATS_TEST_TMPDIR/counts")
    [ "$sum" -eq 6 ]

    # Written from an atexit handler when the program never calls C_Finalize.
    rm -f "$BATS_TEST_TMPDIR/counts"
    TOKINFO_SKIP_FINALIZE=1 P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/counts" \
        run "$TOKINFO" "$SHIM"
    [ "$status" -eq 0 ]
    run cat "$BATS_TEST_TMPDIR/counts"
    [[ "$output" != *"C_Finalize"* ]]
    [[ "$output" == *"C_GetTokenInfo 1"* ]]
    [ "$(tail -n 1 <<<"$output")" = "total 2" ]
}

@test "FAIL_ANY: call N of any function fails, for every N up to the total" {
    P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/counts" run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
    local baseline="$output" total n
    total=$(sed -n 's/^total //p' "$BATS_TEST_TMPDIR/counts")
    [ "$total" -gt 5 ]

    P11FAULT_FAIL_ANY=1:CKR_DEVICE_ERROR run shim --login --pin "$PIN" -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_GetSlotList(NULL) failed: rv = CKR_DEVICE_ERROR"* ]]

    for n in $(seq 1 "$total"); do
        P11FAULT_VERBOSE=1 P11FAULT_FAIL_ANY="$n:CKR_DEVICE_ERROR" \
            run shim --login --pin "$PIN" -O
        # Exactly one injected fault per run ...
        [ "$(grep -c '^p11fault: C_.* -> CKR_DEVICE_ERROR$' <<<"$output")" -eq 1 ] ||
            { echo "call $n: $output"; false; }
        # ... and it is visible to pkcs11-tool.
        [ "$status" -ne 0 ] || [ "$output" != "$baseline" ]
    done

    # Past the last call nothing is injected and the run is unchanged.
    P11FAULT_VERBOSE=1 P11FAULT_FAIL_ANY="$((total + 1)):CKR_DEVICE_ERROR" \
        run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
    [ "$output" = "$baseline" ]
}

@test "CAPACITY: the (N+1)th object fails with CKR_DEVICE_MEMORY; free memory shrinks" {
    export P11FAULT_CAPACITY=3

    run "$TOKINFO" "$SHIM" "$PIN"
    [ "$status" -eq 0 ]
    [ "$(field free_public)" -eq 6144 ]
    [ "$(field free_private)" -eq 6144 ]
    [ "$(field total_public)" -eq 6144 ]

    run shim --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01
    [ "$status" -eq 0 ]
    run "$TOKINFO" "$SHIM" "$PIN"
    [ "$(field free_public)" -eq 2048 ]

    # A key pair needs two objects, only one is left.
    run shim --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 02
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_GenerateKeyPair failed: rv = CKR_DEVICE_MEMORY"* ]]
    [ "$(object_count)" -eq 2 ]

    run shim --login --pin "$PIN" --write-object "$BATS_TEST_TMPDIR/data" --type data --label d1
    [ "$status" -eq 0 ]
    [ "$(object_count)" -eq 3 ]
    run "$TOKINFO" "$SHIM" "$PIN"
    [ "$(field free_public)" -eq 0 ]
    [ "$(field free_private)" -eq 0 ]

    run shim --login --pin "$PIN" --write-object "$BATS_TEST_TMPDIR/data" --type data --label d2
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_CreateObject failed: rv = CKR_DEVICE_MEMORY"* ]]
    [ "$(object_count)" -eq 3 ]

    # Reported sizes scale with P11FAULT_OBJECT_SIZE.
    P11FAULT_OBJECT_SIZE=100 run "$TOKINFO" "$SHIM" "$PIN"
    [ "$(field total_private)" -eq 300 ]
}

@test "FREE_MEMORY: reported free memory is overridden" {
    run "$TOKINFO" "$SHIM"
    [ "$(field free_public)" = unavailable ]

    P11FAULT_FREE_MEMORY=4096 run "$TOKINFO" "$SHIM"
    [ "$status" -eq 0 ]
    [ "$(field free_public)" -eq 4096 ]
    [ "$(field free_private)" -eq 4096 ]
    [ "$(field total_public)" = unavailable ]

    # Takes precedence over the capacity-derived value (for reporting only).
    P11FAULT_CAPACITY=5 P11FAULT_FREE_MEMORY=10 run "$TOKINFO" "$SHIM"
    [ "$(field free_public)" -eq 10 ]
    [ "$(field total_public)" -eq 10240 ]
}

@test "REMOVED: pkcs11-tool sees empty slots and cannot open a session" {
    local slot
    slot=$(direct -L | sed -n 's/^Slot 0 (\(0x[0-9a-f]*\)).*/\1/p')
    [ -n "$slot" ]

    export P11FAULT_REMOVED=1
    run shim -L
    [ "$status" -eq 0 ]
    [[ "$output" == *"Slot 0 ($slot)"* ]]
    [[ "$output" == *"(empty)"* ]]
    [[ "$output" != *"token label"* ]]

    run shim -T
    [[ "$output" == *"No slots."* ]]

    run shim -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"No slot with a token was found."* ]]

    run shim --slot "$slot" -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_OpenSession failed: rv = CKR_TOKEN_NOT_PRESENT"* ]]

    run "$TOKINFO" "$SHIM"
    [ "$status" -ne 0 ]
    [[ "$output" == *"no token present"* ]]
}

@test "REMOVE_AFTER: the token disappears after N calls" {
    P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/counts" run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
    local baseline="$output" total
    total=$(sed -n 's/^total //p' "$BATS_TEST_TMPDIR/counts")

    P11FAULT_REMOVE_AFTER="$total" run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
    [ "$output" = "$baseline" ]

    # Removed just before the last call (closing the session).
    P11FAULT_REMOVE_AFTER="$((total - 1))" run shim --login --pin "$PIN" -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"rv = CKR_DEVICE_REMOVED"* ]]

    # Removed after finding the slot: the token query fails.
    P11FAULT_REMOVE_AFTER=3 run shim --login --pin "$PIN" -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"rv = CKR_TOKEN_NOT_PRESENT"* ]]

    P11FAULT_REMOVE_AFTER=0 run shim -T
    [[ "$output" == *"No slots."* ]]
}

@test "HIDE_MECHS: hidden mechanisms vanish from -M and are refused" {
    run shim --login --pin "$PIN" --keypairgen --key-type rsa:1024 --id 01
    [ "$status" -eq 0 ]
    run shim -M
    local all="$output"
    [[ "$all" == *"RSA-PKCS-KEY-PAIR-GEN"* ]]
    [[ "$all" == *"SHA256-RSA-PKCS,"* ]]

    export P11FAULT_HIDE_MECHS=CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_SHA256_RSA_PKCS,0x1040
    run shim -M
    [ "$status" -eq 0 ]
    [[ "$output" != *"RSA-PKCS-KEY-PAIR-GEN"* ]]
    [[ "$output" != *"SHA256-RSA-PKCS,"* ]]
    [[ "$output" != *"ECDSA-KEY-PAIR-GEN"* ]]   # 0x1040 = CKM_EC_KEY_PAIR_GEN
    [[ "$output" == *"SHA256-RSA-PKCS-PSS"* ]]
    [ "$(wc -l <<<"$output")" -eq "$(($(wc -l <<<"$all") - 3))" ]

    run shim --login --pin "$PIN" --keypairgen --key-type rsa:1024 --id 02
    [ "$status" -ne 0 ]
    [[ "$output" == *"Generate RSA mechanism not supported"* ]]

    run shim --login --pin "$PIN" --sign --id 01 -m SHA256-RSA-PKCS \
        -i "$BATS_TEST_TMPDIR/data" -o "$BATS_TEST_TMPDIR/sig"
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_SignInit failed: rv = CKR_MECHANISM_INVALID"* ]]

    # Mechanisms not on the list still work.
    run shim --login --pin "$PIN" --sign --id 01 -m SHA384-RSA-PKCS \
        -i "$BATS_TEST_TMPDIR/data" -o "$BATS_TEST_TMPDIR/sig"
    [ "$status" -eq 0 ]
}

@test "DELAY: a listed call sleeps as long as asked, others do not" {
    command -v strace >/dev/null || skip "strace not installed"
    P11FAULT_DELAY='C_GetSlotList:1500' run strace -f -e trace=clock_nanosleep,nanosleep \
        pkcs11-tool --module "$SHIM" -L
    [ "$status" -eq 0 ]
    [[ "$output" == *"token label        : t"* ]]
    # pkcs11-tool -L calls C_GetSlotList twice (count, then list): two sleeps
    [ "$(grep -c 'tv_sec=1, tv_nsec=500000000' <<<"$output")" -eq 2 ]

    P11FAULT_DELAY='*:7' run strace -f -e trace=clock_nanosleep,nanosleep \
        pkcs11-tool --module "$SHIM" -T
    [ "$status" -eq 0 ]
    [ "$(grep -c 'tv_sec=0, tv_nsec=7000000' <<<"$output")" -ge 2 ]

    run strace -f -e trace=clock_nanosleep,nanosleep pkcs11-tool --module "$SHIM" -T
    [ "$status" -eq 0 ]
    [[ "$output" != *"tv_nsec=7000000"* ]]

    P11FAULT_DELAY='C_Nothing:5' run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"p11fault: P11FAULT_DELAY"* ]]
    P11FAULT_DELAY='C_Login:fast' run shim -L
    [ "$status" -ne 0 ]
    [[ "$output" == *"bad delay in milliseconds"* ]]
}

@test "RSA_MAX_BITS: a 2048-only device reports and enforces its limit" {
    run shim -M
    [[ "$output" =~ RSA-PKCS-KEY-PAIR-GEN,\ keySize=\{[0-9]+,(4096|[1-9][0-9]{4,})\} ]]

    export P11FAULT_RSA_MAX_BITS=2048
    run shim -M
    [ "$status" -eq 0 ]
    [[ "$output" =~ RSA-PKCS-KEY-PAIR-GEN,\ keySize=\{[0-9]+,2048\} ]]

    run shim --login --pin "$PIN" --keypairgen --key-type rsa:4096 --id 07
    [ "$status" -ne 0 ]
    [[ "$output" == *"CKR_KEY_SIZE_RANGE"* ]]
    [ "$(object_count)" -eq 0 ]

    run shim --login --pin "$PIN" --keypairgen --key-type rsa:1024 --id 08
    [ "$status" -eq 0 ]
    [ "$(object_count)" -eq 2 ]
}

@test "TOKEN_FLAGS: flags are reported and a PIN-locked token refuses login" {
    export P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_COUNT_LOW,CKF_USER_PIN_FINAL_TRY,CKF_USER_PIN_LOCKED,CKF_PROTECTED_AUTHENTICATION_PATH
    run shim -L
    [ "$status" -eq 0 ]
    [[ "$output" == *"PIN pad present"* ]]
    [[ "$output" == *"user PIN count low"* ]]
    [[ "$output" == *"final user PIN try"* ]]
    [[ "$output" == *"user PIN locked"* ]]

    run "$TOKINFO" "$SHIM"
    [ $(( $(field flags) & 0x70100 )) -eq $((0x70100)) ]

    run shim --login --pin "$PIN" -O
    [ "$status" -ne 0 ]
    [[ "$output" == *"C_Login failed: rv = CKR_PIN_LOCKED"* ]]

    P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_COUNT_LOW run shim --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
}

@test "TOKEN_LABEL: the token can pose as another product" {
    export P11FAULT_TOKEN_LABEL=TokenME
    run shim -L
    [ "$status" -eq 0 ]
    [[ "$output" == *"token label        : TokenME"* ]]

    run "$TOKINFO" "$SHIM"
    [ "$(field label)" = TokenME ]

    run shim --token-label TokenME --login --pin "$PIN" -O
    [ "$status" -eq 0 ]
}
