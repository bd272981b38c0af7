#!/usr/bin/env bats
# make demo: the README's second command.

@test "the demo renews Jan Novák's certificates and shows the token before and after" {
	run "$BATS_TEST_DIRNAME/../../scripts/demo"
	[ "$status" -eq 0 ]
	[[ "$output" == *"exit status 3: something expires within 30 days"* ]]
	# after the renewal: two superseded, the new qualified one is qualified
	[[ "$output" == *"2 certificates superseded by new ones, 3 valid"* ]]
	after=${output##*== 5. The token now}
	[ "$(grep -c 'superseded  Jan Novák' <<<"$after")" -eq 2 ]
	[ "$(grep -c 'qualified .* valid  *Jan Novák' <<<"$after")" -eq 1 ]
	# and it can run again
	run "$BATS_TEST_DIRNAME/../../scripts/demo"
	[ "$status" -eq 0 ]
}
