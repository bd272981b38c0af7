#!/usr/bin/env bats
# The local JIP "Správa dat" test portal (tests/jip), checked with clients
# that share no code with it: curl with a cookie jar, and libxml2's HTML
# parser and XPath (xmllint --html). The client profiles
# tests/jip/profile-test.json and profile-renamed.json are proven here by
# driving the portal through their URLs, field names and XPath expressions
# alone (profile_* helpers), as ps-jip-setserial will.
#
# One portal runs for the whole file (setup_file); each test writes a fresh
# accounts.json and portal.json (both are re-read on every request) and uses
# its own cookie jar.

bats_require_minimum_version 1.5.0
load ../lib/fixture
load ../lib/servers

JIPDIR=$FIXTURE_ROOT/tests/jip
PY=/usr/bin/python3
OFFICE='Ministerstvo vnitra'
OTHER_OFFICE='Městský úřad Kocourkov'
TOTP_SECRET=JBSWY3DPEHPK3PXP

setup_file() {
	# Missing tools fail loudly (scripts/install-deps installs them).
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] ||
		{ echo "nginx missing (apt-get install nginx-light)" >&2; return 1; }
	command -v xmllint >/dev/null ||
		{ echo "xmllint missing (apt-get install libxml2-utils)" >&2; return 1; }
	export JIP_STATE=$BATS_FILE_TMPDIR/jip
	PKI=$(pki_dir) || return 1
	export PKI
	start_jip "$JIP_STATE" "$PKI" || return 1
	# Client certificates (software keys) from the test PKI: registered and
	# valid, registered but expired, valid but registered nowhere.
	local c=$BATS_FILE_TMPDIR/certs
	mkdir -p "$c"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$c/client.key" 2>/dev/null &&
		openssl pkey -in "$c/client.key" -pubout -out "$c/client.pub" || return 1
	"$FIXTURE_ROOT/tests/pki/mkpki" issue "$PKI" commercial "$c/client.pub" "$c/good.crt" -1d +365d &&
		"$FIXTURE_ROOT/tests/pki/mkpki" issue "$PKI" commercial "$c/client.pub" "$c/expired.crt" -400d -10d &&
		"$FIXTURE_ROOT/tests/pki/mkpki" issue "$PKI" commercial "$c/client.pub" "$c/unregistered.crt" -1d +365d ||
		return 1
	export CERTS=$c
	GOOD_SERIAL=$(openssl x509 -in "$c/good.crt" -noout -serial) || return 1
	EXPIRED_SERIAL=$(openssl x509 -in "$c/expired.crt" -noout -serial) || return 1
	export GOOD_SERIAL=${GOOD_SERIAL#serial=} EXPIRED_SERIAL=${EXPIRED_SERIAL#serial=}
}

teardown_file() {
	[[ -n ${JIP_STATE:-} ]] || return 0
	stop_servers
	no_portal_processes "$JIP_STATE"
}

setup() {
	JAR=$BATS_TEST_TMPDIR/jar
	REQN=0
	cp "$JIPDIR/portal-default.json" "$JIP_STATE/portal.json"
	write_accounts
	use_profile "$JIPDIR/profile-test.json"
}

teardown() {
	stop_servers
}

# ----------------------------------------------------------------- helpers

# write_accounts: the accounts of every test.
write_accounts() {
	jq -n --arg good "$GOOD_SERIAL" --arg expired "$EXPIRED_SERIAL" \
		--arg office "$OFFICE" --arg other "$OTHER_OFFICE" --arg totp "$TOTP_SECRET" \
		'{
	  session_timeout_seconds: 900,
	  max_failed_logins: 3,
	  users: [
	    {name: "jnovak", full_name: "Jan Novák", password: "Heslo.123", otp: "123456",
	     role: "user", office: $office, locked: false, failed_logins: 0,
	     certificates: [
	       {type: "komerční", ca: "PostSignum", serial: $good},
	       {type: "komerční", ca: "PostSignum", serial: $expired}]},
	    {name: "pdvorakova", full_name: "Petra Dvořáková", password: "Tajne.456",
	     role: "user", office: $office, certificates: []},
	    {name: "tdvorak", full_name: "Tomáš Dvořák", password: "Totp.789",
	     otp: {totp: $totp}, role: "user", office: $office, certificates: []},
	    {name: "mspravce", full_name: "Marie Správcová", password: "Admin.321",
	     role: "admin", office: $office, certificates: []},
	    {name: "kcerna", full_name: "Kateřina Černá", password: "Jiny.111",
	     role: "user", office: $other, certificates: []},
	    {name: "ospravce", full_name: "Oldřich Správce", password: "Admin.999",
	     role: "admin", office: $other, certificates: []}
	  ]}' >"$JIP_STATE/accounts.json"
}

# set_portal JQ_FILTER / set_accounts JQ_FILTER: edit portal.json / accounts.json.
set_portal() {
	jq "$1" "$JIP_STATE/portal.json" >"$JIP_STATE/portal.json.new" &&
		mv "$JIP_STATE/portal.json.new" "$JIP_STATE/portal.json"
}
set_accounts() {
	jq "$1" "$JIP_STATE/accounts.json" >"$JIP_STATE/accounts.json.new" &&
		mv "$JIP_STATE/accounts.json.new" "$JIP_STATE/accounts.json"
}

# acc JQ_FILTER: a value from accounts.json (as the portal left it).
acc() {
	jq -r "$1" "$JIP_STATE/accounts.json"
}

# certs_of USER: "type|ca|serial" lines of USER's certificates in accounts.json.
certs_of() {
	acc ".users[] | select(.name == \"$1\") | .certificates[] | \"\(.type)|\(.ca)|\(.serial)\""
}

# no_portal_processes STATE: no process has STATE on its command line.
no_portal_processes() {
	local f left='' args
	for f in /proc/[0-9]*/cmdline; do
		mapfile -d '' args <"$f" 2>/dev/null || continue
		[[ " ${args[*]} " == *"$1"* ]] && left+=" ${f//[!0-9]/}"
	done
	[[ -z $left ]] || { echo "still running:$left" >&2; return 1; }
}

# urlenc STRING: R = STRING percent-encoded for
# application/x-www-form-urlencoded (into R: no subshell per field).
urlenc() {
	local LC_ALL=C s=$1 i c
	R=''
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) R+=$c ;;
		' ') R+=+ ;;
		*) printf -v c '%%%02X' "'$c"; R+=$c ;;
		esac
	done
}

# req URL_OR_PATH [CURL_ARGS...]: one request, redirects followed, with the
# cookie jar $JAR and any client certificate in CLIENT_CERT/CLIENT_KEY.
# Sets PAGE (the body's file), CODE (the last status), URL (the last URL),
# HDRS (the headers' file) and adds the requests made to REQS.
req() {
	local url=$1 w
	shift
	[[ $url == /* ]] && url=$JIP_URL$url
	REQN=$((REQN + 1))
	PAGE=$BATS_TEST_TMPDIR/page$REQN.html
	HDRS=$BATS_TEST_TMPDIR/page$REQN.hdr
	local cert=()
	[[ -n ${CLIENT_CERT:-} ]] && cert=(--cert "$CLIENT_CERT" --key "$CLIENT_KEY")
	w=$(curl -sS --cacert "$JIP_TLS_CA" "${cert[@]}" -b "$JAR" -c "$JAR" -L --max-redirs 5 \
		--max-time 60 -o "$PAGE" -D "$HDRS" -w '%{http_code} %{num_redirects} %{url_effective}' \
		"$@" "$url") || { echo "curl failed: $url" >&2; return 1; }
	CODE=${w%% *}
	w=${w#* }
	REQS=$((${REQS:-0} + ${w%% *} + 1))
	URL=${w#* }
}

# post URL_OR_PATH NAME=VALUE...: a form POST (names and values encoded).
post() {
	local url=$1 kv data=
	shift
	for kv; do
		urlenc "${kv%%=*}"
		data+=${data:+&}$R=
		urlenc "${kv#*=}"
		data+=$R
	done
	req "$url" --data "$data"
}

# xs XPATH [FILE]: the string value of XPATH in FILE (default: $PAGE).
xs() {
	xmllint --html --xpath "string($1)" "${2:-$PAGE}" 2>/dev/null
}

# xc XPATH [FILE]: how many nodes XPATH selects in FILE (default: $PAGE).
xc() {
	xmllint --html --xpath "count($1)" "${2:-$PAGE}" 2>/dev/null
}

# has XPATH: XPATH selects at least one node of $PAGE (reports when not).
has() {
	local n
	n=$(xc "$1")
	[[ $n =~ ^[0-9]+$ ]] || { echo "bad XPath: $1" >&2; return 1; }
	((n > 0)) || { echo "no match for $1 in $URL ($CODE)" >&2; return 1; }
}

# hasnt XPATH: XPATH selects nothing in $PAGE.
hasnt() {
	local n
	n=$(xc "$1")
	[[ $n == 0 ]] || { echo "unexpected match ($n) for $1 in $URL ($CODE)" >&2; return 1; }
}

# unxml STRING: STRING with the XML escapes xmllint writes in attribute
# values undone.
unxml() {
	local v=$1
	v=${v//'&quot;'/'"'}
	v=${v//'&lt;'/'<'}
	v=${v//'&gt;'/'>'}
	v=${v//'&#10;'/$'\n'}
	v=${v//'&#13;'/$'\r'}
	v=${v//'&#9;'/$'\t'}
	v=${v//'&amp;'/'&'}
	printf '%s' "$v"
}

# submit FORM_XPATH [NAME=VALUE...]: submits the form of $PAGE that
# FORM_XPATH selects, as a browser would: its hidden inputs (the anti-forgery
# token among them) carried over, then the given fields. The action is
# resolved against the page's URL. One xmllint run reads the form's action
# and its hidden inputs' names and values, one attribute per line in
# document order (xmllint escapes quotes and newlines in them).
submit() {
	local form=$1 action='' name='' line h fields=()
	h="$form//input[@type='hidden']"
	shift
	[[ $(xc "$form") == 1 ]] || { echo "form $form: not exactly one in $URL" >&2; return 1; }
	while IFS= read -r line; do
		[[ $line =~ ^\ (action|name|value)=\"(.*)\"$ ]] || continue
		case ${BASH_REMATCH[1]} in
		action) action=$(unxml "${BASH_REMATCH[2]}") ;;
		name) name=$(unxml "${BASH_REMATCH[2]}") ;;
		value) fields+=("$name=$(unxml "${BASH_REMATCH[2]}")") ;;
		esac
	done < <(xmllint --html --xpath "$form/@action | $h/@name | $h/@value" "$PAGE" 2>/dev/null)
	case $action in
	'') action=$URL ;;
	https://*) ;;
	/*) action=$JIP_URL$action ;;
	*) action=${URL%/*}/$action ;;
	esac
	post "$action" "${fields[@]}" "$@"
}

# fails CMD...: CMD must fail. Unlike `! CMD` (which bats does not check
# unless it is a test's last command) and `run ! CMD` (a subshell), it runs
# CMD in this shell, so PAGE, CODE and URL stay for the next checks.
fails() {
	if "$@"; then
		echo "expected to fail: $*" >&2
		return 1
	fi
	return 0
}

# log_lines: the number of lines in the portal's log.
log_lines() {
	wc -l <"$JIP_STATE/log"
}

# --------------------------------------------------- the profile's client
# Everything below reads URLs, field names and XPath expressions from the
# profile $PROF only: nothing of the portal's markup is written here.

# pj .KEY.PATH: a value of the profile $PROF ("" for null). The profile is
# read once into PJ (one jq run) and again only when PROF changes.
declare -gA PJ=()
PJ_OF=
# use_profile FILE: PROF=FILE, read into PJ in this shell (pj in $(...) then
# finds it there instead of running jq again).
use_profile() {
	PROF=$1
	pj .name >/dev/null
}
pj() {
	local k v
	if [[ $PJ_OF != "$PROF" ]]; then
		PJ=()
		while IFS=$'\t' read -r k v; do
			PJ[$k]=$v
		done < <(jq -r 'paths(scalars) as $p | [($p | map(tostring) | join(".")),
			(getpath($p) | if . == null then "" else tostring end)] | @tsv' "$PROF")
		PJ_OF=$PROF
	fi
	k=${1#.}
	k=${k%% //*}
	[[ -v PJ[$k] ]] || { echo "profile $PROF: no $1" >&2; return 1; }
	printf '%s' "${PJ[$k]}"
}

# profile_url PATH: the profile's base_url with ${JIP_URL} filled in, + PATH.
profile_url() {
	local base
	base=$(pj .base_url)
	# shellcheck disable=SC2016 # the literal placeholder
	base=${base//'${JIP_URL}'/$JIP_URL}
	printf '%s%s' "$base" "$1"
}

# profile_login METHOD USER PASSWORD [OTP]: logs in with the profile's form
# of METHOD (password, cert, otp). Returns 0 when login.ok matches after.
profile_login() {
	local method=$1 user=$2 password=$3 otp=${4:-} form args
	req "$(profile_url "$(pj .login.url)")" || return 1
	[[ $CODE == 200 ]] || { echo "login page: $CODE" >&2; return 1; }
	form=$(pj ".login.forms.$method")
	args=("$(pj .login.fields.user)=$user" "$(pj .login.fields.password)=$password")
	[[ $method == otp ]] && args+=("$(pj .login.fields.otp)=$otp")
	submit "$form" "${args[@]}" || return 1
	[[ $(xc "$(pj .login.ok)") -gt 0 ]]
}

# profile_error: the text of the profile's login.error element ("" if none).
profile_error() {
	xs "$(pj .login.error)" | tr -s ' \n' '  '
}

# profile_open_edit [USER]: the certificate form: own (Můj profil ›
# Certifikáty › Upravit) or, for an admin, USER's (Uživatelé › USER).
profile_open_edit() {
	local href xp
	if [[ -z ${1:-} ]]; then
		req "$(profile_url "$(pj .profile.url)")" || return 1
		xp=$(pj .profile.edit_link)
	else
		req "$(profile_url "$(pj .admin.users_url)")" || return 1
		xp=$(pj .admin.user_edit_link)
		xp=${xp//'{user}'/$1}
	fi
	[[ $CODE == 200 ]] || { echo "$URL: $CODE" >&2; return 1; }
	[[ $(xc "$xp") == 1 ]] || { echo "edit link $xp: not exactly one" >&2; return 1; }
	href=$(xs "$xp/@href")
	[[ $href == /* ]] || { echo "edit link href '$href'" >&2; return 1; }
	req "$(profile_url "$href")" || return 1
	[[ $CODE == 200 && $(xc "$(pj .edit.form)") == 1 ]]
}

# profile_save KIND CA SERIAL: fills and submits the open certificate form:
# KIND qualified|commercial (the option labelled type_labels.KIND), the CA
# option labelled CA, SERIAL. Option values are looked up by label.
profile_save() {
	local form tsel csel tval cval sub subval
	form=$(pj .edit.form)
	tsel=$(pj .edit.fields.type)
	csel=$(pj .edit.fields.ca)
	tval=$(xs "$form//select[@name='$tsel']/option[normalize-space(.)='$(pj ".edit.type_labels.$1")']/@value")
	cval=$(xs "$form//select[@name='$csel']/option[normalize-space(.)='$2']/@value")
	[[ -n $tval && -n $cval ]] || { echo "no option for $1 / $2" >&2; return 1; }
	sub=$(pj .edit.submit)
	local args=("$tsel=$tval" "$csel=$cval" "$(pj .edit.fields.serial)=$3")
	if [[ -n $sub ]]; then
		subval=$(xs "$form//input[@name='$sub']/@value")
		args+=("$sub=$subval")
	fi
	submit "$form" "${args[@]}"
}

# profile_list_rows: "type|ca|serial" for each row of the profile's list on
# $PAGE (cells trimmed).
profile_list_rows() {
	local rows n i t c s
	rows=$(pj .list.rows)
	n=$(xc "$rows")
	for ((i = 1; i <= n; i++)); do
		t=$(xs "normalize-space(($rows)[$i]/$(pj .list.cells.type))")
		c=$(xs "normalize-space(($rows)[$i]/$(pj .list.cells.ca))")
		s=$(xs "normalize-space(($rows)[$i]/$(pj .list.cells.serial))")
		printf '%s|%s|%s\n' "$t" "$c" "$s"
	done
}

# profile_list: opens the profile's list page (own certificates).
profile_list() {
	local u
	u=$(pj .list.url)
	[[ -n $u ]] || u=$(pj .profile.url)
	req "$(profile_url "$u")" && [[ $CODE == 200 ]]
}

# profile_full_flow: the whole client job with the profile $PROF: password
# login, edit form, save, read back, re-save without duplicate, admin save
# for a user of the office, session expiry.
profile_full_flow() {
	local serial=0a:1b:2c:3d:4e:5f:60:71:82:93
	profile_login password jnovak Heslo.123 || return 1
	profile_open_edit || return 1
	profile_save qualified PostSignum "$serial" || return 1
	hasnt "$(pj .edit.error)" || return 1
	profile_list || return 1
	profile_list_rows >"$BATS_TEST_TMPDIR/rows"
	grep -qx 'kvalifikovaný|PostSignum|0A1B2C3D4E5F60718293' "$BATS_TEST_TMPDIR/rows" ||
		{ cat "$BATS_TEST_TMPDIR/rows" >&2; return 1; }
	# once more, written differently: no second entry
	profile_open_edit && profile_save qualified PostSignum "0A1B2C3D4E5F60718293" || return 1
	profile_list && profile_list_rows >"$BATS_TEST_TMPDIR/rows" || return 1
	[[ $(grep -c '|0A1B2C3D4E5F60718293$' "$BATS_TEST_TMPDIR/rows") == 1 ]] || return 1
	# a bad serial: the profile's error XPath shows it
	profile_open_edit && profile_save commercial PostSignum "XYZ" || return 1
	has "$(pj .edit.error)" || return 1
	# admin: a user of the same office
	rm -f "$JAR"
	profile_login password mspravce Admin.321 || return 1
	profile_open_edit pdvorakova || return 1
	profile_save commercial PostSignum 7F00AA || return 1
	hasnt "$(pj .edit.error)" || return 1
	profile_list_rows | grep -qx 'komerční|PostSignum|7F00AA' || return 1
	[[ $(certs_of pdvorakova) == 'komerční|PostSignum|7F00AA' ]] || return 1
	# session expiry: the next page is the login page
	set_accounts '.session_timeout_seconds = 1'
	sleep 2
	req "$(profile_url "$(pj .profile.url)")" || return 1
	set_accounts '.session_timeout_seconds = 900'
	has "$(pj .session_expired)" && hasnt "$(pj .login.ok)"
}

# ------------------------------------------------------------------- tests

@test "jip: the login page offers the guide's four methods, each form with a token" {
	req /spravadat/
	[ "$CODE" = 200 ]
	[ "$(xs "normalize-space(//*[normalize-space(.)='Přihlášení:'])")" = "Přihlášení:" ]
	for label in "Jménem a heslem" "Certifikátem" "OTP Autentizace" "NIA Autentizace"; do
		has "//a[normalize-space(.)='$label']"
	done
	has "//h2[normalize-space(.)='Zadejte přihlašovací údaje']"
	has "//label[normalize-space(.)='Uživatelské jméno']"
	has "//label[normalize-space(.)='Heslo']"
	for f in frmJmenoHeslo frmCertifikat frmOtp; do
		[ "$(xs "//form[@id='$f']/@method")" = post ]
		tok=$(xs "//form[@id='$f']//input[@type='hidden'][@name='__RequestVerificationToken']/@value")
		[ "${#tok}" -ge 32 ]
	done
	has "//form[@id='frmOtp']//input[@name='OtpKod']"
	# the session cookie: HttpOnly, Secure
	grep -i '^Set-Cookie: SpravaDat.SessionId=' "$HDRS" | grep -q 'HttpOnly'
	grep -i '^Set-Cookie: SpravaDat.SessionId=' "$HDRS" | grep -q 'Secure'
	# the token is per session: a new client gets another one
	local first=$tok
	JAR=$BATS_TEST_TMPDIR/jar2
	req /spravadat/
	tok=$(xs "//form[@id='frmOtp']//input[@name='__RequestVerificationToken']/@value")
	[ -n "$tok" ] && [ "$tok" != "$first" ]
}

@test "jip: every page parses cleanly with libxml2's HTML parser" {
	local pages=()
	req /spravadat/ && pages+=("$PAGE")
	req /spravadat/nia && pages+=("$PAGE")
	req /nonexistent && [ "$CODE" = 404 ] && pages+=("$PAGE")
	profile_login password mspravce Admin.321 && pages+=("$PAGE")
	req /spravadat/muj-profil/certifikaty && pages+=("$PAGE")
	req /spravadat/muj-profil/seznam-certifikatu && pages+=("$PAGE")
	req /spravadat/uzivatele && pages+=("$PAGE")
	req '/spravadat/muj-profil/certifikaty?uzivatel=kcerna' && [ "$CODE" = 403 ] && pages+=("$PAGE")
	post /spravadat/muj-profil/certifikaty a=b && [ "$CODE" = 403 ] && pages+=("$PAGE")
	set_portal '.down = true'
	req /spravadat/ && [ "$CODE" = 503 ] && pages+=("$PAGE")
	[ "${#pages[@]}" = 10 ]
	for p in "${pages[@]}"; do
		run --separate-stderr xmllint --html --noout "$p"
		[ "$status" = 0 ] && [ -z "$stderr" ] || { echo "$p: $stderr"; false; }
		# realistic layout: header, navigation, content, footer
		[ "$(xc "//div[@id='hlavicka'] | //div[@id='navigace'] | //div[@id='obsah'] | //div[@id='paticka']" "$p")" = 4 ]
		grep -q '<meta charset="utf-8">' "$p"
	done
}

@test "jip: password login opens Můj profil with a Certifikáty row and its Upravit link" {
	req /spravadat/muj-profil
	has "//form[@id='frmJmenoHeslo']" # not logged in: the login page
	hasnt "$(pj .login.ok)"
	profile_login password jnovak Heslo.123
	[ "$CODE" = 200 ]
	[[ $URL == */spravadat/muj-profil ]]
	[ "$(xs 'normalize-space(//h1)')" = "Můj profil" ]
	[ "$(xs "normalize-space(//table[@id='tblProfil']//tr[th='Certifikáty']/td[1])")" = "2 certifikáty" ]
	[ "$(xs "$(pj .profile.edit_link)/@href")" = /spravadat/muj-profil/certifikaty ]
	has "//div[@id='navigace']//a[normalize-space(.)='Můj profil']"
	hasnt "//div[@id='navigace']//a[normalize-space(.)='Uživatelé']" # not an admin
	[[ $(xs "$(pj .login.ok)") == *"Jan Novák"* ]]
	[ "$(acc '.users[0].failed_logins')" = 0 ]
	grep -q "POST /spravadat/prihlaseni user=jnovak outcome=login-ok-heslo status=303" "$JIP_STATE/log"
	# logout: the session is gone
	submit "//form[@id='frmOdhlaseni']"
	has "$(pj .session_expired)"
	req /spravadat/muj-profil
	has "$(pj .session_expired)"
}

@test "jip: a wrong password shows the error element and counts the failure" {
	fails profile_login password jnovak spatne
	fails profile_login password jnovak spatne
	[ "$CODE" = 200 ]
	has "$(pj .login.error)"
	[[ $(profile_error) == *"Neplatné uživatelské jméno nebo heslo."* ]]
	[ "$(acc '.users[0].failed_logins')" = 2 ]
	[ "$(acc '.users[0].locked')" = false ]
	# an unknown user gets the same message, and no account changes
	fails profile_login password nikdo Heslo.123
	[[ $(profile_error) == *"Neplatné uživatelské jméno nebo heslo."* ]]
	# the right password resets the counter
	profile_login password jnovak Heslo.123
	[ "$(acc '.users[0].failed_logins')" = 0 ]
}

@test "jip: three wrong passwords lock the account; then even the right one is refused" {
	local locked
	locked=$(pj .login.locked_text)
	for i in 1 2; do
		fails profile_login password jnovak spatne$i
		[[ $(profile_error) != *"$locked"* ]]
	done
	fails profile_login password jnovak spatne3
	[[ $(profile_error) == *"$locked"* ]]
	[ "$(acc '.users[0].locked')" = true ]
	[ "$(acc '.users[0].failed_logins')" = 3 ]
	fails profile_login password jnovak Heslo.123
	[[ $(profile_error) == *"$locked"* ]]
	fails profile_login otp jnovak Heslo.123 123456
	[[ $(profile_error) == *"$locked"* ]]
	grep -q "user=jnovak outcome=login-locked-now" "$JIP_STATE/log"
	# the local administrator sees it
	rm -f "$JAR"
	profile_login password mspravce Admin.321
	req /spravadat/uzivatele
	[ "$(xs "normalize-space(//table[@id='tblUzivatele']/tbody/tr[td[1]='jnovak']/td[4])")" = Zablokován ]
}

@test "jip: OTP login (fixed code and RFC 6238 TOTP); a wrong code is refused" {
	fails profile_login otp jnovak Heslo.123 654321
	[[ $(profile_error) == *"Neplatný jednorázový kód"* ]]
	[ "$(acc '.users[0].failed_logins')" = 1 ]
	fails profile_login otp jnovak Heslo.123 ""
	profile_login otp jnovak Heslo.123 123456
	grep -q "user=jnovak outcome=login-ok-otp" "$JIP_STATE/log"
	# TOTP: the code computed here independently (RFC 6238, SHA-1, 30 s, 6 digits)
	local code
	code=$("$PY" -c '
import base64, hmac, struct, sys, time
k = base64.b32decode(sys.argv[1]); c = int(time.time()) // 30
m = hmac.new(k, struct.pack(">Q", c), "sha1").digest(); o = m[-1] & 15
print("%06d" % ((struct.unpack(">I", m[o:o + 4])[0] & 0x7fffffff) % 1000000))' "$TOTP_SECRET")
	rm -f "$JAR"
	fails profile_login otp tdvorak Totp.789 "$(printf '%06d' $(((10#$code + 1) % 1000000)))"
	profile_login otp tdvorak Totp.789 "$code"
	# a user without OTP cannot use it
	rm -f "$JAR"
	fails profile_login otp pdvorakova Tajne.456 123456
}

@test "jip: certificate login with a registered valid certificate is accepted" {
	CLIENT_CERT=$CERTS/good.crt CLIENT_KEY=$CERTS/client.key
	req /spravadat/
	# the cert form shows what the browser presented
	[[ $(xs "//form[@id='frmCertifikat']//p[@class='certifikat-info']") == *"$GOOD_SERIAL"* ]]
	[[ $(xs "//form[@id='frmCertifikat']//p[@class='certifikat-info']") == *"Jan Novák"* ]]
	profile_login cert jnovak Heslo.123
	grep -q "user=jnovak outcome=login-ok-certifikat status=303" "$JIP_STATE/log"
	# certificate + wrong password: refused, counted
	rm -f "$JAR"
	fails profile_login cert jnovak spatne
	[ "$(acc '.users[0].failed_logins')" = 1 ]
}

@test "jip: certificate login refuses unregistered, expired, missing and foreign certificates" {
	CLIENT_KEY=$CERTS/client.key
	CLIENT_CERT=$CERTS/unregistered.crt
	fails profile_login cert jnovak Heslo.123
	[[ $(profile_error) == *"není přiřazen k tomuto uživatelskému účtu"* ]]
	# registered in jnovak's account, but expired: nginx's verification fails
	rm -f "$JAR"
	CLIENT_CERT=$CERTS/expired.crt
	fails profile_login cert jnovak Heslo.123
	[[ $(profile_error) == *"není platný"*"expired"* ]]
	# no certificate at all
	rm -f "$JAR"
	CLIENT_CERT=
	fails profile_login cert jnovak Heslo.123
	[[ $(profile_error) == *"Nebyl předložen"* ]]
	# headers forged by the client do not reach the portal
	rm -f "$JAR"
	req /spravadat/
	tok=$(xs "//form[@id='frmCertifikat']//input[@name='__RequestVerificationToken']/@value")
	req /spravadat/prihlaseni -H "X-SSL-Client-Verify: SUCCESS" \
		-H "X-SSL-Client-Serial: $GOOD_SERIAL" -H "X-SSL-Client-I-DN: CN=DEMO PostSignum Public CA 5" \
		--data-urlencode "__RequestVerificationToken=$tok" --data-urlencode metoda=certifikat \
		--data-urlencode UzivatelskeJmeno=jnovak --data-urlencode Heslo=Heslo.123
	[ "$CODE" = 200 ]
	hasnt "$(pj .login.ok)"
	[[ $(profile_error) == *"Nebyl předložen"* ]]
	# a valid certificate registered to someone else
	rm -f "$JAR"
	CLIENT_CERT=$CERTS/good.crt
	fails profile_login cert pdvorakova Tajne.456
	[[ $(profile_error) == *"není přiřazen"* ]]
	# password login still works with an unregistered certificate presented
	CLIENT_CERT=$CERTS/unregistered.crt
	rm -f "$JAR"
	profile_login password jnovak Heslo.123
}

@test "jip: NIA Autentizace leads to a page about the external identity provider" {
	req /spravadat/
	href=$(xs "//a[normalize-space(.)='NIA Autentizace']/@href")
	req "$href"
	[ "$CODE" = 200 ]
	[ "$(xs 'normalize-space(//h1)')" = "NIA Autentizace" ]
	[[ $(xs "//div[@id='obsah']") == *"Budete přesměrováni na externího poskytovatele identity"* ]]
	[[ $(xs "//form[@id='frmNia']/@action") == https://nia.identitaobcana.cz/* ]]
	has "//form[@id='frmNia']//input[@name='SAMLRequest']"
	hasnt "//input[@type='password']"
	[ -n "$(pj .login.nia_hint)" ]
}

@test "jip: the edit form adds a serial, normalised, and the list shows it" {
	profile_login password jnovak Heslo.123
	profile_open_edit
	# the guide's form
	[ "$(xs 'normalize-space(//h1)')" = Certifikáty ]
	has "//label[normalize-space(.)='Typ certifikátu:']"
	has "//label[normalize-space(.)='Certifikační autorita:']"
	has "//label[normalize-space(.)='Sériové číslo:']"
	has "//form[@id='frmCertifikaty']//input[@type='submit'][@value='Uložit změny']"
	for o in komerční kvalifikovaný; do has "//select[@name='TypCertifikatu']/option[.='$o']"; done
	for o in PostSignum I.CA eIdentity; do has "//select[@name='CertifikacniAutorita']/option[.='$o']"; done
	has "//h2[normalize-space(.)='Seznam certifikátů komerčních a kvalifikovaných certifikátů uživatele']"
	profile_save commercial PostSignum ' 0x01:9a:bc:de:f0 '
	[[ $URL == */spravadat/muj-profil/certifikaty?ulozeno=1 ]]
	[ "$(xs "normalize-space(//div[@id='zprava'])")" = "Změny byly uloženy." ]
	hasnt "$(pj .edit.error)"
	# the list below the form and on its own page
	profile_list_rows | grep -qx 'komerční|PostSignum|019ABCDEF0'
	profile_list
	[ "$(xs 'normalize-space(//h2)')" = "Seznam certifikátů komerčních a kvalifikovaných certifikátů uživatele" ]
	run profile_list_rows
	[ "${#lines[@]}" = 3 ]
	[ "${lines[2]}" = 'komerční|PostSignum|019ABCDEF0' ]
	[ "$(certs_of jnovak | tail -1)" = 'komerční|PostSignum|019ABCDEF0' ]
	# leading zero octets go; an odd number of digits gets one zero
	profile_open_edit && profile_save qualified I.CA 000abc
	[ "$(certs_of jnovak | tail -1)" = 'kvalifikovaný|I.CA|0ABC' ]
	grep -q "POST /spravadat/muj-profil/certifikaty user=jnovak outcome=cert-saved" "$JIP_STATE/log"
}

@test "jip: saving an existing type, CA and serial again adds nothing" {
	profile_login password jnovak Heslo.123
	local before
	before=$(certs_of jnovak | wc -l)
	profile_open_edit
	profile_save commercial PostSignum "${GOOD_SERIAL,,}"
	[ "$(xs "normalize-space(//div[@id='zprava'])")" = "Změny byly uloženy." ]
	profile_open_edit
	profile_save commercial PostSignum "00${GOOD_SERIAL:0:2}:${GOOD_SERIAL:2}"
	[ "$(certs_of jnovak | wc -l)" = "$before" ]
	profile_list
	[ "$(profile_list_rows | grep -c "|$GOOD_SERIAL\$")" = 1 ]
	grep -q "user=jnovak outcome=cert-exists" "$JIP_STATE/log"
	# the same serial as another type is another entry
	profile_open_edit
	profile_save qualified PostSignum "$GOOD_SERIAL"
	[ "$(certs_of jnovak | wc -l)" = "$((before + 1))" ]
}

@test "jip: bad input is refused with the error element and stores nothing" {
	profile_login password jnovak Heslo.123
	local before
	before=$(certs_of jnovak)
	profile_open_edit
	# each refusal shows the form again, with what was typed
	for s in 12G4 'AB CD;' 'ěščř' '' 00 "$(printf 'A%.0s' {1..41})"; do
		profile_save commercial PostSignum "$s"
		[ "$CODE" = 200 ]
		has "$(pj .edit.error)"
		[ "$(xs "//form[@id='frmCertifikaty']//input[@name='SerioveCislo']/@value")" = "$s" ]
		[ "$(xs "//select[@name='TypCertifikatu']/option[@selected]")" = komerční ]
	done
	profile_save commercial PostSignum 12G4
	[[ $(xs "$(pj .edit.error)") == *"pouze hexadecimální číslice"* ]]
	# a label instead of the option's value, or no choice at all
	profile_open_edit
	submit "$(pj .edit.form)" TypCertifikatu=komerční CertifikacniAutorita=1 SerioveCislo=AB \
		"btnUlozitZmeny=Uložit změny"
	[[ $(xs "$(pj .edit.error)") == *"Vyberte typ certifikátu."* ]]
	profile_open_edit
	submit "$(pj .edit.form)" TypCertifikatu=1 CertifikacniAutorita= SerioveCislo=AB \
		"btnUlozitZmeny=Uložit změny"
	[[ $(xs "$(pj .edit.error)") == *"Vyberte certifikační autoritu."* ]]
	# without the "Uložit změny" button's name nothing is saved (as in ASP.NET)
	profile_open_edit
	submit "$(pj .edit.form)" TypCertifikatu=1 CertifikacniAutorita=1 SerioveCislo=AB
	hasnt "//div[@id='zprava']"
	[ "$(certs_of jnovak)" = "$before" ]
}

@test "jip: the anti-forgery token is enforced on every POST" {
	# login without the token, with another session's token, without a session
	req /spravadat/
	post /spravadat/prihlaseni metoda=heslo UzivatelskeJmeno=jnovak Heslo=Heslo.123
	[ "$CODE" = 403 ]
	[[ $(xs "$(pj .login.error)") == *"bezpečnostní token"* ]]
	local other
	other=$(xs "//form[@id='frmJmenoHeslo']//input[@name='__RequestVerificationToken']/@value" \
		"$BATS_TEST_TMPDIR/page1.html")
	JAR=$BATS_TEST_TMPDIR/jar2
	req /spravadat/
	post /spravadat/prihlaseni "__RequestVerificationToken=$other" metoda=heslo \
		UzivatelskeJmeno=jnovak Heslo=Heslo.123
	[ "$CODE" = 403 ]
	JAR=$BATS_TEST_TMPDIR/none
	post /spravadat/prihlaseni "__RequestVerificationToken=$other" metoda=heslo \
		UzivatelskeJmeno=jnovak Heslo=Heslo.123
	[ "$CODE" = 403 ]
	# nobody got logged in, nor was a failure counted
	[ "$(acc '.users[0].failed_logins')" = 0 ]
	# the edit form: without the token, with the pre-login token
	JAR=$BATS_TEST_TMPDIR/jar3
	req /spravadat/
	local pre
	pre=$(xs "//form[@id='frmJmenoHeslo']//input[@name='__RequestVerificationToken']/@value")
	profile_login password jnovak Heslo.123
	profile_open_edit
	post /spravadat/muj-profil/certifikaty TypCertifikatu=1 CertifikacniAutorita=1 \
		SerioveCislo=ABCD "btnUlozitZmeny=Uložit změny"
	[ "$CODE" = 403 ]
	post /spravadat/muj-profil/certifikaty "__RequestVerificationToken=$pre" TypCertifikatu=1 \
		CertifikacniAutorita=1 SerioveCislo=ABCD "btnUlozitZmeny=Uložit změny"
	[ "$CODE" = 403 ]
	[ -z "$(certs_of jnovak | grep ABCD)" ]
	# logout without the token does not log out
	post /spravadat/odhlaseni
	[ "$CODE" = 403 ]
	req /spravadat/muj-profil
	has "$(pj .login.ok)"
	# and with it, the same form works
	profile_open_edit
	profile_save commercial PostSignum ABCD
	certs_of jnovak | grep -q '|ABCD$'
	[ "$(grep -c 'outcome=csrf-refused status=403' "$JIP_STATE/log")" -ge 6 ]
}

@test "jip: a local administrator edits users of their office, not of another" {
	profile_login password mspravce Admin.321
	has "//div[@id='navigace']//a[normalize-space(.)='Uživatelé']"
	req "$(pj .admin.users_url)"
	[ "$(xs 'normalize-space(//h1)')" = Uživatelé ]
	run xmllint --html --xpath "//table[@id='tblUzivatele']/tbody/tr/td[1]/text()" "$PAGE"
	[ "$output" = "$(printf '%s\n' jnovak mspravce pdvorakova tdvorak)" ]
	# the user's form names the user, and the save lands in their account
	profile_open_edit pdvorakova
	[[ $(xs "//p[@id='cilovyUzivatel']") == *"Petra Dvořáková"*"(pdvorakova)"* ]]
	profile_save qualified PostSignum 0102030405
	[[ $(xs "//p[@id='cilovyUzivatel']") == *"(pdvorakova)"* ]]
	profile_list_rows | grep -qx 'kvalifikovaný|PostSignum|0102030405'
	[ "$(certs_of pdvorakova)" = 'kvalifikovaný|PostSignum|0102030405' ]
	[ -z "$(certs_of mspravce)" ]
	grep -q "user=mspravce->pdvorakova outcome=cert-saved" "$JIP_STATE/log"
	# the list page of that user
	req '/spravadat/muj-profil/seznam-certifikatu?uzivatel=pdvorakova'
	profile_list_rows | grep -qx 'kvalifikovaný|PostSignum|0102030405'
	# another office: no link, 403 by URL, 403 by a forged POST
	hasnt "$(pj .admin.user_edit_link | sed 's/{user}/kcerna/')"
	req '/spravadat/muj-profil/certifikaty?uzivatel=kcerna'
	[ "$CODE" = 403 ]
	[[ $(xs "$(pj .edit.error)") == *"Nemáte oprávnění"* ]]
	req '/spravadat/muj-profil/seznam-certifikatu?uzivatel=kcerna'
	[ "$CODE" = 403 ]
	profile_open_edit pdvorakova
	local tok
	tok=$(xs "//form[@id='frmCertifikaty']//input[@name='__RequestVerificationToken']/@value")
	post /spravadat/muj-profil/certifikaty "__RequestVerificationToken=$tok" uzivatel=kcerna \
		TypCertifikatu=1 CertifikacniAutorita=1 SerioveCislo=EEEE "btnUlozitZmeny=Uložit změny"
	[ "$CODE" = 403 ]
	[ -z "$(certs_of kcerna)" ]
	# the other office's administrator sees only their own users
	rm -f "$JAR"
	profile_login password ospravce Admin.999
	req "$(pj .admin.users_url)"
	run xmllint --html --xpath "//table[@id='tblUzivatele']/tbody/tr/td[1]/text()" "$PAGE"
	[ "$output" = "$(printf '%s\n' kcerna ospravce)" ]
	req '/spravadat/muj-profil/certifikaty?uzivatel=pdvorakova'
	[ "$CODE" = 403 ]
}

@test "jip: an ordinary user has no Uživatelé page and no access to others" {
	profile_login password jnovak Heslo.123
	req /spravadat/uzivatele
	[ "$CODE" = 403 ]
	req '/spravadat/muj-profil/certifikaty?uzivatel=pdvorakova'
	[ "$CODE" = 403 ]
	profile_open_edit
	local tok
	tok=$(xs "//form[@id='frmCertifikaty']//input[@name='__RequestVerificationToken']/@value")
	post /spravadat/muj-profil/certifikaty "__RequestVerificationToken=$tok" uzivatel=pdvorakova \
		TypCertifikatu=1 CertifikacniAutorita=1 SerioveCislo=EEEE "btnUlozitZmeny=Uložit změny"
	[ "$CODE" = 403 ]
	[ -z "$(certs_of pdvorakova)" ]
	grep -q "user=jnovak outcome=forbidden status=403" "$JIP_STATE/log"
}

@test "jip: an idle session expires; every page then leads to the login page" {
	profile_login password jnovak Heslo.123
	profile_open_edit
	local tok
	tok=$(xs "//form[@id='frmCertifikaty']//input[@name='__RequestVerificationToken']/@value")
	# the timeout is read from accounts.json at each request
	set_accounts '.session_timeout_seconds = 2'
	sleep 1
	req /spravadat/muj-profil
	has "$(pj .login.ok)"
	sleep 1.2 # over 2 s since the timeout was set, but only 1.2 s idle
	req /spravadat/muj-profil
	has "$(pj .login.ok)"
	sleep 3
	# a POST of the form after expiry: the login page, and nothing stored
	post /spravadat/muj-profil/certifikaty "__RequestVerificationToken=$tok" TypCertifikatu=1 \
		CertifikacniAutorita=1 SerioveCislo=CAFE "btnUlozitZmeny=Uložit změny"
	[ "$CODE" = 200 ]
	[[ $URL == */spravadat/?vyprsela=1 ]]
	has "$(pj .session_expired)"
	[[ $(xs "//div[@id='zprava']") == *"relace vypršela"* ]]
	[ -z "$(certs_of jnovak | grep CAFE)" ]
	grep -q "POST /spravadat/muj-profil/certifikaty user=- outcome=session-expired status=303" \
		"$JIP_STATE/log"
	# every page now leads to the login page
	set_accounts '.session_timeout_seconds = 900'
	for p in /spravadat/muj-profil /spravadat/muj-profil/certifikaty \
		/spravadat/muj-profil/seznam-certifikatu /spravadat/uzivatele; do
		req "$p"
		[ "$CODE" = 200 ]
		[[ $URL == */spravadat/ ]]
		has "$(pj .session_expired)"
		hasnt "$(pj .login.ok)"
	done
	# an expired session on a GET
	rm -f "$JAR"
	profile_login password jnovak Heslo.123
	set_accounts '.session_timeout_seconds = 1'
	sleep 2
	req /spravadat/muj-profil/certifikaty
	[[ $URL == */spravadat/?vyprsela=1 ]]
	has "$(pj .session_expired)"
	# log in again and carry on
	set_accounts '.session_timeout_seconds = 900'
	profile_login password jnovak Heslo.123
	profile_open_edit && profile_save commercial PostSignum CAFE
	certs_of jnovak | grep -q '|CAFE$'
}

@test "jip: the default profile drives the default portal end to end" {
	profile_full_flow
}

@test "jip: the renamed portal.json works with profile-renamed.json only" {
	cp "$JIPDIR/portal-renamed.json" "$JIP_STATE/portal.json"
	use_profile "$JIPDIR/profile-renamed.json"
	profile_full_flow
	# the pages really are renamed: the default profile finds nothing there
	rm -f "$JAR"
	use_profile "$JIPDIR/profile-test.json"
	req "$(profile_url "$(pj .login.url)")"
	[ "$CODE" = 404 ]
	req /jip/SpravaDat/Login.aspx
	[ "$CODE" = 200 ]
	for k in .login.forms.password .login.forms.cert .login.forms.otp .session_expired; do
		hasnt "$(pj "$k")"
	done
	fails grep -q 'UzivatelskeJmeno\|frmJmenoHeslo\|__RequestVerificationToken' "$PAGE"
	grep -q 'name="ctl00$__AntiXsrfToken"' "$PAGE"
	grep -qi '^Set-Cookie: ASP.NET_SessionId=' "$HDRS"
	# the renamed profile's other login forms and the NIA link
	use_profile "$JIPDIR/profile-renamed.json"
	rm -f "$JAR"
	profile_login otp jnovak Heslo.123 123456
	rm -f "$JAR"
	CLIENT_CERT=$CERTS/good.crt CLIENT_KEY=$CERTS/client.key profile_login cert jnovak Heslo.123
	rm -f "$JAR"
	fails profile_login password jnovak spatne
	has "$(pj .login.error)"
	req "$(profile_url "$(pj .login.url)")"
	req "$(xs "//a[normalize-space(.)='NIA Autentizace']/@href")"
	[[ $URL == */jip/SpravaDat/Nia/Redirect.aspx ]]
	has "//form[@id='ctl00_MainContent_frmLoginNia']"
}

@test "jip: portal-default.json is the portal's built-in default; the profiles are complete" {
	diff <(jq -S . "$JIPDIR/portal-default.json") <("$PY" "$JIPDIR/portal.py" --print-defaults | jq -S .)
	# renamed: every path, form id, field name and element id differs
	for grp in paths forms fields ids; do
		run jq -r --arg g "$grp" --slurpfile r "$JIPDIR/portal-renamed.json" \
			'.[$g] | to_entries[] | select(.value == $r[0][$g][.key]) | .key' "$JIPDIR/portal-default.json"
		[ -z "$output" ] || { echo "$grp not renamed: $output"; false; }
	done
	for p in profile-test.json profile-renamed.json; do
		jq -e '
		  (.name | type == "string") and .base_url == "${JIP_URL}" and .serial_format == "hex-upper" and
		  ([.login.url, .login.forms.password, .login.forms.cert, .login.forms.otp,
		    .login.fields.user, .login.fields.password, .login.fields.otp, .login.ok,
		    .login.error, .login.locked_text, .login.nia_hint, .profile.url,
		    .profile.edit_link, .admin.users_url, .admin.user_edit_link, .edit.form,
		    .edit.fields.type, .edit.fields.ca, .edit.fields.serial,
		    .edit.type_labels.qualified, .edit.type_labels.commercial, .edit.submit,
		    .edit.error, .list.rows, .list.cells.type, .list.cells.ca, .list.cells.serial,
		    .session_expired] | all(type == "string" and length > 0)) and
		  (.admin.user_edit_link | contains("{user}")) and
		  (.list.url == null or (.list.url | type == "string"))' "$JIPDIR/$p" >/dev/null
	done
}

@test "jip: down answers 503 everywhere; slow_seconds delays answers" {
	set_portal '.down = true | .retry_after = 120'
	for p in /spravadat/ /spravadat/muj-profil /spravadat/uzivatele /nonexistent; do
		req "$p"
		[ "$CODE" = 503 ]
		grep -qi '^Retry-After: 120' "$HDRS"
	done
	post /spravadat/prihlaseni metoda=heslo UzivatelskeJmeno=jnovak Heslo=Heslo.123
	[ "$CODE" = 503 ]
	[[ $(xs "//div[@id='chyba']") == *"dočasně nedostupná"* ]]
	grep -q 'POST /spravadat/prihlaseni user=- outcome=down status=503' "$JIP_STATE/log"
	set_portal '.down = false | .slow_seconds = 1.5'
	local t0=$SECONDS
	req /spravadat/
	[ "$CODE" = 200 ]
	[ $((SECONDS - t0)) -ge 1 ]
	set_portal '.slow_seconds = 0'
	profile_login password jnovak Heslo.123
}

@test "jip: drop_saves answers like a save but stores nothing (for read-back tests)" {
	set_portal '.drop_saves = true'
	profile_login password jnovak Heslo.123
	profile_open_edit && profile_save commercial PostSignum D00D
	[ "$(xs "normalize-space(//div[@id='zprava'])")" = "Změny byly uloženy." ]
	[ -z "$(profile_list_rows | grep D00D)" ]
	[ -z "$(certs_of jnovak | grep D00D)" ]
	grep -q "outcome=cert-dropped" "$JIP_STATE/log"
}

@test "jip: the log has one line per request: method, path, user, outcome" {
	local n0
	n0=$(log_lines)
	REQS=0
	profile_login password jnovak Heslo.123 # GET login, POST, GET profile
	profile_open_edit                      # GET profile, GET edit
	profile_save commercial PostSignum 0BEEF0 # POST, GET edit?ulozeno=1
	req /nonexistent
	[ "$REQS" = 8 ]
	[ "$(($(log_lines) - n0))" = "$REQS" ]
	run tail -n 8 "$JIP_STATE/log"
	local want=(
		"GET /spravadat/ user=- outcome=page status=200"
		"POST /spravadat/prihlaseni user=jnovak outcome=login-ok-heslo status=303"
		"GET /spravadat/muj-profil user=jnovak outcome=profile status=200"
		"GET /spravadat/muj-profil user=jnovak outcome=profile status=200"
		"GET /spravadat/muj-profil/certifikaty user=jnovak outcome=cert-edit status=200"
		"POST /spravadat/muj-profil/certifikaty user=jnovak outcome=cert-saved status=303"
		"GET /spravadat/muj-profil/certifikaty?ulozeno=1 user=jnovak outcome=cert-edit status=200"
		"GET /nonexistent user=- outcome=not-found status=404"
	)
	for i in "${!want[@]}"; do
		[[ ${lines[i]} =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\ (.*)$ ]]
		[ "${BASH_REMATCH[1]}" = "${want[i]}" ]
	done
}

@test "jip: jip-start refuses a second start; jip-stop leaves no process behind" {
	run "$JIPDIR/jip-start" "$JIP_STATE" "$PKI"
	[ "$status" = 1 ]
	[[ $output == *"already runs"* ]]
	# a second portal of its own, stopped here
	local st=$BATS_TEST_TMPDIR/second out pids=() p
	server_started jip "$st"
	out=$(JIP_PORT='' "$JIPDIR/jip-start" "$st" "$PKI")
	eval "$out"
	[[ $JIP_URL == "https://localhost:$JIP_PORT" ]]
	[ "$JIP_TLS_CA" = "$st/tls/ca.crt" ]
	req /spravadat/
	[ "$CODE" = 200 ]
	openssl verify -CAfile "$JIP_TLS_CA" -verify_hostname localhost "$st/tls/server.crt"
	pids=("$(<"$st/portal.pid")" "$(<"$st/nginx.pid")")
	for p in /proc/[0-9]*/stat; do # the nginx workers
		read -r -a s <"$p" 2>/dev/null || continue
		[[ ${s[3]} == "${pids[1]}" ]] && pids+=("${s[0]}")
	done
	[ "${#pids[@]}" -ge 3 ]
	grep -q "listen 127.0.0.1:$JIP_PORT ssl" "$st/nginx/nginx.conf"
	"$JIPDIR/jip-stop" "$st"
	for p in "${pids[@]}"; do
		[ ! -e "/proc/$p" ] || [ "$(awk '{print $3}' "/proc/$p/stat")" = Z ]
	done
	no_portal_processes "$st"
	# stopping again is harmless; starting again reuses the TLS CA
	"$JIPDIR/jip-stop" "$st"
	local ca
	ca=$(openssl x509 -in "$st/tls/ca.crt" -noout -fingerprint)
	out=$(JIP_PORT='' "$JIPDIR/jip-start" "$st" "$PKI")
	[ "$ca" = "$(openssl x509 -in "$st/tls/ca.crt" -noout -fingerprint)" ]
	"$JIPDIR/jip-stop" "$st"
	no_portal_processes "$st"
}
