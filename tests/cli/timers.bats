#!/usr/bin/env bats
# The systemd units (data/systemd) and crontab lines (data/cron) for
# ps-fetch --pending and ps-status --expiring 30: installed with the
# binaries' path, valid for systemd, and their commands do their job;
# ps-fetch(1) documents them.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	prefix=$BATS_TEST_TMPDIR/prefix
	# -o all: the build is used as it is, never remade (it may be another tree's)
	make -C "$FIXTURE_ROOT" -s -o all install B="$PSRENEW_BUILD" PREFIX="$prefix" >/dev/null
	units=$prefix/share/psrenew/systemd
	crontab=$prefix/share/psrenew/cron/psrenew.crontab
}

# unit_value FILE KEY: the value of KEY= in a unit file.
unit_value() {
	sed -n "s/^$2=//p" "$1"
}

@test "make install puts the units and the crontab under the data directory, with the binaries' path" {
	for f in psrenew-fetch.service psrenew-fetch.timer psrenew-expiring.service \
		psrenew-expiring.timer psrenew-metrics.service psrenew-metrics.timer; do
		[ -f "$units/$f" ] || { echo "missing $f"; false; }
	done
	[ -f "$crontab" ]
	! grep -r '@BINDIR@' "$prefix/share/psrenew"
	[ "$(unit_value "$units/psrenew-fetch.service" ExecStart)" = \
		"$prefix/bin/ps-fetch --pending --quiet --human" ]
	[ "$(unit_value "$units/psrenew-expiring.service" ExecStart)" = \
		"$prefix/bin/ps-status --expiring 30,21,7 --quiet --human" ]
	[ "$(unit_value "$units/psrenew-fetch.service" SuccessExitStatus)" = 3 ]
	[ "$(unit_value "$units/psrenew-fetch.timer" OnCalendar)" = hourly ]
	[ "$(unit_value "$units/psrenew-expiring.timer" OnCalendar)" = daily ]
	# each timer starts the service of its name; both enable under timers.target
	for t in "$units"/*.timer; do
		[ "$(unit_value "$t" WantedBy)" = timers.target ]
		[ -f "${t%.timer}.service" ]
	done
}

@test "systemd-analyze verify accepts the units (and refuses a broken one)" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	run env MANPATH="$prefix/share/man" systemd-analyze verify "$units"/*.service "$units"/*.timer
	[ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$output"; false; }
	mkdir "$BATS_TEST_TMPDIR/bad"
	cp "$units"/psrenew-fetch.* "$BATS_TEST_TMPDIR/bad/"
	sed -i 's/^OnCalendar=.*/OnCalendar=every full moon/' "$BATS_TEST_TMPDIR/bad/psrenew-fetch.timer"
	run env MANPATH="$prefix/share/man" systemd-analyze verify "$BATS_TEST_TMPDIR"/bad/*
	[ "$status" -ne 0 ]
}

@test "every line of the units is a section, a comment or a key systemd knows" {
	for f in "$units"/*; do
		while IFS= read -r line; do
			case $line in
			'' | '#'*) ;;
			'[Unit]' | '[Service]' | '[Timer]' | '[Install]') ;;
			Description=?* | Documentation=man:* | Type=oneshot | ExecStart=/* | \
				SuccessExitStatus=3 | OnCalendar=?* | RandomizedDelaySec=?* | \
				Persistent=true | WantedBy=timers.target) ;;
			*) echo "$f: $line"; false ;;
			esac
		done <"$f"
	done
}

@test "the units' and the crontab's commands do their job on a token" {
	demo_token
	cat >"$BATS_TEST_TMPDIR/psrenew.conf" <<EOF
[defaults]
module = $PKCS11_MODULE
token = $TOKEN_URI
pin = file:$PIN_FILE
state-dir = $PSRENEW_STATE_DIR
EOF
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
	# ps-status --expiring 30: the two expiring certificates, exit 3
	run --separate-stderr $(unit_value "$units/psrenew-expiring.service" ExecStart)
	[ "$status" -eq 3 ]
	[ "$(grep -c 'Jan Novák' <<<"$output")" -eq 2 ]
	[ -z "$stderr" ]
	# ps-fetch --pending with nothing pending: exit 0, quiet
	run --separate-stderr $(unit_value "$units/psrenew-fetch.service" ExecStart)
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	# the crontab: five time fields and a command, each command works
	n=0
	while IFS= read -r line; do
		[[ $line == '#'* || -z $line ]] && continue
		read -r m h dom mon dow cmd <<<"$line"
		[[ $m =~ ^[0-9*/]+$ && $h =~ ^[0-9*]+$ && $dom == '*' && $mon == '*' && $dow == '*' ]]
		[[ $cmd == "$prefix/bin/"* ]]
		n=$((n + 1))
		# the metrics line writes node_exporter's directory: metrics.bats
		# runs it with a file of its own
		[[ $cmd == *--metrics-file* ]] && continue
		run --separate-stderr bash -c "$cmd"
		[ -z "$stderr" ] || { echo "$cmd: $stderr"; false; }
	done <"$crontab"
	[ "$n" -eq 3 ]
}

@test "ps-fetch(1) documents the timers and the crontab lines" {
	text=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/ps-fetch.1" 2>/dev/null)
	for w in psrenew-fetch.timer psrenew-expiring.timer psrenew-fetch.service \
		'systemctl --user enable --now psrenew-fetch.timer' 'SuccessExitStatus=3' \
		'ps-status --expiring 30,21,7 --quiet --human' 'share/psrenew/cron/psrenew.crontab'; do
		grep -qF -- "$w" <<<"$text" || { echo "missing: $w"; false; }
	done
	# the crontab lines of the page are those installed (the metrics line:
	# ps-status(1)'s)
	text+=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/ps-status.1" 2>/dev/null)
	while IFS= read -r line; do
		[[ $line == '#'* || -z $line ]] && continue
		grep -qF -- "${line//$prefix\/bin\//}" <<<"$text" || { echo "not in ps-fetch(1): $line"; false; }
	done <"$crontab"
}
