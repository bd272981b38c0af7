/* libFuzzer harness "jip-html": pages of the JIP portal as the JIP client
 * reads them (lib/jip.c, included to reach its static functions), driven by
 * the test profile tests/jip/profile-test.json (loaded once; the
 * environment variable PSRENEW_FUZZ_JIP_PROFILE names another). The input
 * is one HTML page (parse_page); on it the harness does what the client
 * does with any page: the login forms and the certificate form are
 * collected (form_collect, form_action, option_value), the login outcome
 * and error text, the session-expired mark and the edit links looked up,
 * and the certificate list read (read_list). */
#include "../../lib/jip.c"

#include <stdint.h>

#ifndef PSRENEW_FUZZ_JIP_PROFILE
#define PSRENEW_FUZZ_JIP_PROFILE "tests/jip/profile-test.json"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ps_jip jip;
static unsigned long locked_seen;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("PSRENEW_FUZZ_JIP_PROFILE");
	json_error_t je;

	(void)argc;
	(void)argv;
	if (!path || !*path)
		path = PSRENEW_FUZZ_JIP_PROFILE;
	xmlInitParser();
	jip.path = strdup(path);
	jip.base = strdup("https://localhost:8443");
	jip.p = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!jip.p || !jip.path || !jip.base) {
		fprintf(stderr, "jip-html: cannot load the profile %s: %s\n",
			path, je.text);
		exit(1);
	}
	return 0;
}

/* A form found by the profile's XPath: its fields, as a login or a save
 * would post them. */
static void do_form(struct page *pg, const char *key, const char *const *skip)
{
	const char *fx = pget(&jip, key);
	xmlNodePtr form = fx ? first(pg, fx, NULL) : NULL;
	struct form f = { 0 };
	char *action;

	if (!form)
		return;
	form_collect(pg, form, &f, skip);
	form_add(&f, "UzivatelskeJmeno", "jnovak");
	action = form_action(pg, form);
	free(action);
	free(f.s);
	if (!strcmp(key, "edit.form")) {
		const char *labels[] = { "edit.type_labels.qualified",
					 "edit.type_labels.commercial" };

		for (size_t i = 0; i < 2; i++)
			free(option_value(pg, form, pget(&jip, "edit.fields.type"),
					  pget(&jip, labels[i])));
		free(option_value(pg, form, pget(&jip, "edit.fields.ca"),
				  "PostSignum"));
	}
}

/* The text of the element the profile names (login error, save error). */
static void do_text(struct page *pg, const char *key)
{
	const char *x = pget(&jip, key);
	xmlNodePtr e = x ? first(pg, x, NULL) : NULL;
	char *msg = e ? text_of(e) : NULL;
	const char *locked = pget(&jip, "login.locked_text");

	if (msg && locked && strstr(msg, locked))
		locked_seen++;
	free(msg);
}

/* A link the profile names, made absolute as the client follows it. */
static void do_link(struct page *pg, const char *expr)
{
	xmlNodePtr a = expr ? first(pg, expr, NULL) : NULL;
	char *href = a ? attr(a, "href") : NULL;
	char *url = href ? absolute(pg->url, href) : NULL;

	free(href);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *login_skip[] = { "UzivatelskeJmeno", "Heslo", "OtpKod",
				     NULL };
	const char *edit_skip[] = { "TypCertifikatu", "CertifikacniAutorita",
				    "SerioveCislo", NULL };
	struct ps_http_resp r;
	struct ps_jip_entry *e = NULL;
	struct ps_err err;
	struct page pg;
	size_t n = 0;
	char *body, *user_link;
	const char *tmpl, *exp;

	if (size > INT32_MAX)
		return 0;
	body = malloc(size + 1);
	if (!body)
		abort();
	memcpy(body, data, size);
	body[size] = '\0';
	memset(&r, 0, sizeof(r));
	r.status = 200;
	r.body = body;
	r.len = size;
	r.retry_after = -1;
	ps_err_clear(&err);
	if (parse_page(&pg, &r, "https://localhost:8443/spravadat/muj-profil",
		       &err) != 0) {
		if (!err.msg[0])
			abort();
		free(body);
		return 0;
	}
	/* login page, login answer, session expiry */
	do_form(&pg, "login.forms.password", login_skip);
	do_form(&pg, "login.forms.cert", login_skip);
	do_form(&pg, "login.forms.otp", login_skip);
	first(&pg, pget(&jip, "login.ok"), NULL);
	do_text(&pg, "login.error");
	exp = pget(&jip, "session_expired");
	if (exp)
		first(&pg, exp, NULL);
	/* profile page and the administrator's users list */
	do_link(&pg, pget(&jip, "profile.edit_link"));
	tmpl = pget(&jip, "admin.user_edit_link");
	if (tmpl && strstr(tmpl, "{user}")) {
		const char *p = strstr(tmpl, "{user}");

		if (asprintf(&user_link, "%.*s%s%s", (int)(p - tmpl), tmpl,
			     "jnovak", p + 6) < 0)
			abort();
		do_link(&pg, user_link);
		free(user_link);
	}
	/* the certificate form, its answer and the list */
	do_form(&pg, "edit.form", edit_skip);
	do_text(&pg, "edit.error");
	if (read_list(&jip, &pg, &e, &n, &err) == 0)
		ps_jip_entries_free(e, n);
	else if (!err.msg[0])
		abort();
	page_free(&pg);
	free(body);
	return 0;
}
