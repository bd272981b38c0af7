/* psrenew: PKCS#11 modules, tokens, sessions and logins (objects: p11obj.c). */
#include <psrenew/token.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/ckr.h>
#include <psrenew/config.h>
#include <psrenew/secret.h>

#ifndef PS_P11KIT_PROXY
#define PS_P11KIT_PROXY "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
#endif

struct ps_module {
	void *dl;
	CK_FUNCTION_LIST *fl;
	char *path;
	int finalize;
	CK_INFO info;
	char desc[256];
	void *ext; /* the signer's libp11 context, see signer.c */
	void (*ext_free)(void *);
};

static const char module_hint[] =
    "name the token's PKCS#11 module with --module PATH or "
    "PKCS11_MODULE=PATH (for example /usr/lib/softhsm/libsofthsm2.so), or "
    "register it with p11-kit";

/* Copies a blank-padded CK_UTF8CHAR field into a C string, trimmed. */
static void trim_copy(char *dst, const CK_UTF8CHAR *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		dst[--n] = '\0';
}

static const char *pick_module(const char *path, const struct ps_uri *uri,
			       const char **why)
{
	const char *env = getenv("PKCS11_MODULE");

	if (path && *path) {
		*why = "--module";
		return path;
	}
	if (uri && uri->module_path) {
		*why = "the URI's module-path";
		return uri->module_path;
	}
	if (env && *env) {
		*why = "PKCS11_MODULE";
		return env;
	}
	*why = "p11-kit's proxy";
	return PS_P11KIT_PROXY;
}

/* Same file? (compared by name, then by what the names resolve to) */
static int same_module(const char *a, const char *b)
{
	char *ra, *rb;
	int same;

	if (!a || !b || !*a || !*b)
		return 0;
	if (!strcmp(a, b))
		return 1;
	ra = realpath(a, NULL);
	rb = realpath(b, NULL);
	same = ra && rb && !strcmp(ra, rb);
	free(ra);
	free(rb);
	return same;
}

int ps_module_allowed(const char *path, const char *configured,
		      const char *what, struct ps_err *err)
{
	if (!path || same_module(path, configured) ||
	    same_module(path, getenv("PKCS11_MODULE")) ||
	    same_module(path, PS_P11KIT_PROXY))
		return 0;
	return ps_err_set(
	    err, PS_EXIT_USAGE, "untrusted-module",
	    "a record never chooses the code that is loaded: pass --module "
	    "PATH (or set PKCS11_MODULE) if that module is meant",
	    "%s names the PKCS#11 module %.200s, which neither --module, "
	    "PKCS11_MODULE, the configuration nor p11-kit names: refused, "
	    "not loaded",
	    what, path);
}

int ps_module_open(const char *path_or_null, const struct ps_uri *uri,
		   struct ps_module **out, struct ps_err *err)
{
	return ps_module_open_from(path_or_null, NULL, uri, out, err);
}

int ps_module_open_from(const char *path_or_null, const char *from,
			const struct ps_uri *uri, struct ps_module **out,
			struct ps_err *err)
{
	const char *why;
	const char *path = pick_module(path_or_null, uri, &why);
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList getfl;
	struct ps_module *m;
	char lib[33], man[33];
	CK_RV rv;

	*out = NULL;
	if (from && path_or_null && *path_or_null)
		why = from;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ps_err_nomem(err);
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!m->dl) {
		ps_err_set(err, PS_EXIT_USAGE, "no-module", module_hint,
			   "cannot load the PKCS#11 module %s (from %s): %s",
			   path, why, dlerror());
		free(m);
		return PS_EXIT_USAGE;
	}
	*(void **)&getfl = dlsym(m->dl, "C_GetFunctionList");
	if (!getfl || getfl(&m->fl) != CKR_OK || !m->fl) {
		ps_err_set(err, PS_EXIT_USAGE, "no-module", module_hint,
			   "%s is not a PKCS#11 module (no C_GetFunctionList)",
			   path);
		dlclose(m->dl);
		free(m);
		return PS_EXIT_USAGE;
	}
	rv = m->fl->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ps_ckr_err(err, rv, NULL, "initialising the PKCS#11 module");
		dlclose(m->dl);
		free(m);
		return err ? err->status : PS_EXIT_TOKEN;
	}
	m->finalize = rv == CKR_OK;
	m->path = strdup(path);
	if (m->fl->C_GetInfo(&m->info) == CKR_OK) {
		trim_copy(lib, m->info.libraryDescription, 32);
		trim_copy(man, m->info.manufacturerID, 32);
		snprintf(m->desc, sizeof(m->desc), "%s %u.%u (%s), %s", lib,
			 m->info.libraryVersion.major,
			 m->info.libraryVersion.minor, man, path);
	} else {
		snprintf(m->desc, sizeof(m->desc), "%s", path);
	}
	*out = m;
	return 0;
}

void ps_module_close(struct ps_module *m)
{
	if (!m)
		return;
	if (m->ext_free)
		m->ext_free(m->ext);
	if (m->finalize)
		m->fl->C_Finalize(NULL);
	/* Modules may keep threads or atexit handlers: never dlclose. */
	free(m->path);
	free(m);
}

const char *ps_module_path(const struct ps_module *m)
{
	return m->path;
}

const char *ps_module_describe(const struct ps_module *m)
{
	return m->desc;
}

/* Declared in p11obj.h: the object layer is the one user of the function
 * list outside this file (this file includes nothing of the layer above). */
CK_FUNCTION_LIST *ps_module_functions(const struct ps_module *m)
{
	return m->fl;
}

void *ps_module_ext(const struct ps_module *m)
{
	return m->ext;
}

void ps_module_set_ext(struct ps_module *m, void *ext, void (*ext_free)(void *))
{
	m->ext = ext;
	m->ext_free = ext_free;
}

/* Does the slot/token match every token attribute of sel? */
static int token_matches(struct ps_module *m, struct ps_token *t,
			 const struct ps_uri *sel)
{
	CK_SLOT_INFO si;
	char buf[65];

	if (!sel)
		return 1;
	if ((sel->token && strcmp(sel->token, t->label)) ||
	    (sel->manufacturer && strcmp(sel->manufacturer, t->manufacturer)) ||
	    (sel->serial && strcmp(sel->serial, t->serial)) ||
	    (sel->model && strcmp(sel->model, t->model)) ||
	    (sel->slot_id >= 0 && (CK_SLOT_ID)sel->slot_id != t->slot))
		return 0;
	if (sel->slot_description || sel->slot_manufacturer) {
		if (m->fl->C_GetSlotInfo(t->slot, &si) != CKR_OK)
			return 0;
		trim_copy(buf, si.slotDescription, 64);
		if (sel->slot_description && strcmp(sel->slot_description, buf))
			return 0;
		trim_copy(buf, si.manufacturerID, 32);
		if (sel->slot_manufacturer &&
		    strcmp(sel->slot_manufacturer, buf))
			return 0;
	}
	trim_copy(buf, m->info.manufacturerID, 32);
	if (sel->lib_manufacturer && strcmp(sel->lib_manufacturer, buf))
		return 0;
	trim_copy(buf, m->info.libraryDescription, 32);
	if (sel->lib_description && strcmp(sel->lib_description, buf))
		return 0;
	if (sel->lib_version) {
		snprintf(buf, sizeof(buf), "%u.%u",
			 m->info.libraryVersion.major,
			 m->info.libraryVersion.minor);
		if (strcmp(sel->lib_version, buf))
			return 0;
	}
	return 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read into t->info (by C_GetTokenInfo) just now. */
static void token_set_info(struct ps_token *t)
{
	t->info_ms = now_ms();
	t->info_fresh = 1;
	trim_copy(t->label, t->info.label, 32);
	trim_copy(t->manufacturer, t->info.manufacturerID, 32);
	trim_copy(t->model, t->info.model, 16);
	trim_copy(t->serial, t->info.serialNumber, 16);
}

static struct ps_token *token_new(struct ps_module *m, CK_SLOT_ID slot,
				  struct ps_err *err)
{
	struct ps_token *t = calloc(1, sizeof(*t));
	CK_RV rv;

	if (!t) {
		ps_err_nomem(err);
		return NULL;
	}
	t->mod = m;
	t->slot = slot;
	rv = m->fl->C_GetTokenInfo(slot, &t->info);
	if (rv != CKR_OK) {
		ps_ckr_err(err, rv, NULL, "reading the token information");
		free(t);
		return NULL;
	}
	token_set_info(t);
	t->uri =
	    ps_uri_format_token(t->model, t->manufacturer, t->serial, t->label);
	if (!t->uri) {
		ps_err_nomem(err);
		free(t);
		return NULL;
	}
	return t;
}

static struct login_mark *login_mark(const struct ps_token *t);

/* The object index goes with the session it was read in (see p11obj.h). */
static void index_drop(struct ps_token *t)
{
	if (t->index && t->index_free)
		t->index_free(t->index);
	t->index = NULL;
}

static void token_free(struct ps_token *t)
{
	if (!t)
		return;
	index_drop(t);
	if (t->have_session)
		t->mod->fl->C_CloseSession(t->session);
	free(t->uri);
	free(t);
}

void ps_tokens_free(struct ps_token **toks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		token_free(toks[i]);
	free(toks);
}

static int list_slots(struct ps_module *m, CK_SLOT_ID **slots, CK_ULONG *n,
		      struct ps_err *err)
{
	CK_RV rv;

	*slots = NULL;
	for (int tries = 0; tries < 4; tries++) {
		rv = m->fl->C_GetSlotList(CK_TRUE, NULL, n);
		if (rv != CKR_OK)
			break;
		free(*slots);
		*slots = calloc(*n ? *n : 1, sizeof(CK_SLOT_ID));
		if (!*slots)
			return ps_err_nomem(err);
		rv = m->fl->C_GetSlotList(CK_TRUE, *slots, n);
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (rv != CKR_OK) {
		free(*slots);
		*slots = NULL;
		return ps_ckr_err(err, rv, NULL, "listing the token slots");
	}
	return 0;
}

int ps_tokens_find(struct ps_module *m, const struct ps_uri *sel,
		   struct ps_token ***out, size_t *n, struct ps_err *err)
{
	CK_SLOT_ID *slots;
	CK_ULONG ns = 0;
	struct ps_token **toks;
	size_t k = 0;
	int rc = list_slots(m, &slots, &ns, err);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	toks = calloc(ns ? ns : 1, sizeof(*toks));
	if (!toks) {
		free(slots);
		return ps_err_nomem(err);
	}
	for (CK_ULONG i = 0; i < ns; i++) {
		struct ps_token *t = token_new(m, slots[i], err);

		if (!t) {
			if (err && err->status == PS_EXIT_FAIL)
				goto fail;
			continue; /* a token pulled out meanwhile */
		}
		if (t->info.flags & CKF_TOKEN_INITIALIZED)
			login_mark(t); /* seen: see "Logins" below */
		if (!(t->info.flags & CKF_TOKEN_INITIALIZED) ||
		    !token_matches(m, t, sel)) {
			token_free(t);
			continue;
		}
		toks[k++] = t;
	}
	free(slots);
	if (k == 0) {
		free(toks);
		ps_err_clear(err);
		return ps_err_set(
		    err, PS_EXIT_TOKEN, "token-absent",
		    "insert the token (check with ps-status "
		    "without --token), or name the right module "
		    "with --module",
		    ns ? "no token matches the selection (module %s)"
		       : "no token present (module %s)",
		    m->desc);
	}
	ps_err_clear(err);
	*out = toks;
	*n = k;
	return 0;
fail:
	ps_tokens_free(toks, k);
	free(slots);
	return err->status;
}

int ps_tokens_require_one(struct ps_token **toks, size_t n, struct ps_err *err)
{
	char list[400] = "";
	size_t len = 0;

	if (n == 1)
		return 0;
	for (size_t i = 0; i < n && len < sizeof(list) - 1; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					i ? ", " : "", toks[i]->uri);
	return ps_err_set(err, PS_EXIT_USAGE, "several-tokens",
			  "choose one with --token URI",
			  "%zu tokens present: %s", n, list);
}

int ps_token_open(struct ps_token *t, int rw, struct ps_err *err)
{
	CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
	CK_RV rv;

	if (t->have_session && (t->rw || !rw))
		return 0;
	index_drop(t);
	if (t->have_session) {
		t->mod->fl->C_CloseSession(t->session);
		t->have_session = 0;
	}
	rv = t->mod->fl->C_OpenSession(t->slot, flags, NULL, NULL, &t->session);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "opening a session");
	t->have_session = 1;
	t->rw = rw;
	return 0;
}

int ps_token_refresh(struct ps_token *t, struct ps_err *err)
{
	CK_RV rv = t->mod->fl->C_GetTokenInfo(t->slot, &t->info);

	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "reading the token information");
	token_set_info(t);
	return 0;
}

/* Logins -------------------------------------------------------------- */

/*
 * A TokenME locks after a few wrong PINs. Every login of the process goes
 * through a mark kept per token, whose identity is its module's path and
 * its manufacturer, model, serial number and label: a token is tried at
 * most once, whichever struct ps_token, module handle or request asks.
 * After a failed login (a wrong PIN, or a PIN refused before any try) the
 * same error comes back without a try; after a good one, a session that
 * is logged in needs nothing more. Every initialised token that
 * ps_tokens_find sees gets a mark, so the marks also count the tokens the
 * process has seen.
 */
enum { MARK_SEEN, MARK_OK, MARK_FAILED };

struct login_mark {
	char key[PATH_MAX + 160];
	int state;
	struct ps_err err; /* MARK_FAILED: the error, returned again */
};

static struct login_mark *marks;
static size_t nmarks;

/* Which PIN source may go to which token (ps_token_pin_rules). */
struct own_pin {
	struct ps_uri uri;
	char *source;
};

static struct {
	int pin_given;
	const struct ps_uri *sel;
	struct own_pin *own;
	size_t nown;
} rules;

static struct login_mark *login_mark(const struct ps_token *t)
{
	char path[PATH_MAX], key[sizeof(marks->key)];
	struct login_mark *m;

	/* The same module under another name is the same module. */
	if (!realpath(t->mod->path ? t->mod->path : "", path))
		snprintf(path, sizeof(path), "%s",
			 t->mod->path ? t->mod->path : "");
	snprintf(key, sizeof(key), "%s\n%s\n%s\n%s\n%s", path, t->manufacturer,
		 t->model, t->serial, t->label);
	for (size_t i = 0; i < nmarks; i++)
		if (!strcmp(marks[i].key, key))
			return &marks[i];
	m = realloc(marks, (nmarks + 1) * sizeof(*marks));
	if (!m)
		return NULL;
	marks = m;
	m = &marks[nmarks++];
	memset(m, 0, sizeof(*m));
	memcpy(m->key, key, sizeof(key));
	return m;
}

static int interactive(const char *source)
{
	return !source || !strcmp(source, "prompt") ||
	       !strcmp(source, "pinpad");
}

static int has_selector(void)
{
	return rules.sel && ps_uri_has_token_attrs(rules.sel);
}

void ps_token_pin_rules_clear(void)
{
	for (size_t i = 0; i < rules.nown; i++) {
		ps_uri_free(&rules.own[i].uri);
		free(rules.own[i].source);
	}
	free(rules.own);
	memset(&rules, 0, sizeof(rules));
}

/* One [token.NAME] section: its uri and pin, checked. */
static int add_own_pin(const struct ps_config *cfg, const char *section,
		       struct ps_err *err)
{
	const char *uri = ps_config_get(cfg, section, "uri");
	const char *pin = ps_config_get(cfg, section, "pin");
	struct own_pin *o;

	if (!uri || !pin)
		return ps_err_set(
		    err, PS_EXIT_USAGE, "bad-config",
		    "see psrenew.conf(5), [token.NAME]",
		    "%s, line %d, [%s] needs both uri and pin: "
		    "it has no %s",
		    cfg->path,
		    ps_config_line(cfg, section, uri ? "uri" : "pin"), section,
		    uri ? "pin" : "uri");
	if (strcmp(pin, "pinpad") && ps_secret_check_source(pin, err))
		return ps_config_blame(cfg, section, "pin", err);
	o = realloc(rules.own, (rules.nown + 1) * sizeof(*o));
	if (!o)
		return ps_err_nomem(err);
	rules.own = o;
	o = &o[rules.nown];
	if (ps_uri_parse(uri, &o->uri, err))
		return ps_config_blame(cfg, section, "uri", err);
	if (!ps_uri_has_token_attrs(&o->uri)) {
		ps_uri_free(&o->uri);
		ps_err_set(err, PS_EXIT_USAGE, "bad-config",
			   "for example uri = pkcs11:token=TokenME",
			   "names no token");
		return ps_config_blame(cfg, section, "uri", err);
	}
	rules.nown++;
	o->source = strdup(pin);
	if (!o->source)
		return ps_err_nomem(err);
	return 0;
}

/* Is entry i the first one of its section? */
static int first_of_section(const struct ps_config *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (!strcmp(cfg->e[j].section, cfg->e[i].section))
			return 0;
	return 1;
}

int ps_token_pin_rules(const struct ps_config *cfg, const struct ps_uri *sel,
		       int pin_given, struct ps_err *err)
{
	ps_token_pin_rules_clear();
	rules.sel = sel;
	rules.pin_given = pin_given;
	for (size_t i = 0; cfg && i < cfg->n; i++) {
		int rc;

		if (strncmp(cfg->e[i].section, "token.", 6) != 0 ||
		    !first_of_section(cfg, i))
			continue;
		rc = add_own_pin(cfg, cfg->e[i].section, err);
		if (rc) {
			ps_token_pin_rules_clear();
			return rc;
		}
	}
	return 0;
}

int ps_token_selected(const struct ps_token *t, const struct ps_uri *sel)
{
	return token_matches(t->mod, (struct ps_token *)t, sel);
}

/* The source for t and (*known) whether it may be used there: an
 * unattended source only on a token it is known to belong to. */
static const char *pin_source_for(const struct ps_token *t,
				  const char *pin_source, int *known)
{
	for (size_t i = 0; i < rules.nown && !rules.pin_given; i++)
		if (ps_token_selected(t, &rules.own[i].uri)) {
			*known = 1;
			return rules.own[i].source;
		}
	if (has_selector())
		*known =
		    interactive(pin_source) || ps_token_selected(t, rules.sel);
	else
		*known = interactive(pin_source) || nmarks <= 1;
	return pin_source;
}

const char *ps_token_pin_source(const struct ps_token *t,
				const char *pin_source)
{
	int known;

	return pin_source_for(t, pin_source, &known);
}

static const char *pin_tries(const struct ps_token *t)
{
	if (t->info.flags & CKF_USER_PIN_LOCKED)
		return "the PIN is now locked";
	if (t->info.flags & CKF_USER_PIN_FINAL_TRY)
		return "one try left before the PIN locks";
	if (t->info.flags & CKF_USER_PIN_COUNT_LOW)
		return "few tries left";
	return "the token does not say how many tries are left";
}

static int login_with(struct ps_token *t, const char *pin, struct ps_err *err)
{
	CK_RV rv = t->mod->fl->C_Login(
	    t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, pin ? strlen(pin) : 0);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		t->logged_in = 1;
		return 0;
	}
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
		ps_token_refresh(t, NULL);
		return ps_err_set(
		    err, PS_EXIT_TOKEN,
		    t->info.flags & CKF_USER_PIN_LOCKED ? "pin-locked"
							: "pin-incorrect",
		    "check the PIN; psrenew does not retry it by "
		    "itself",
		    "wrong PIN for token '%s': %s", t->label, pin_tries(t));
	}
	return ps_ckr_err(err, rv, t, "logging in");
}

/* What is refused before any try: a locked PIN, a PIN pad the reader
 * lacks, a source not known to be this token's, an unattended final try. */
static int login_refused(struct ps_token *t, const char *src, int known,
			 int pad, struct ps_err *err)
{
	CK_FLAGS fl = t->info.flags;

	if (fl & CKF_USER_PIN_LOCKED)
		return ps_err_set(err, PS_EXIT_TOKEN, "pin-locked",
				  "unblock it with the PUK or the security "
				  "officer PIN in the token's own tool",
				  "the PIN of token '%s' is locked", t->label);
	if (pad && !(fl & CKF_PROTECTED_AUTHENTICATION_PATH))
		return ps_err_set(err, PS_EXIT_TOKEN, "no-pinpad",
				  "use --pin prompt (or env:VAR, file:PATH, "
				  "fd:N)",
				  "token '%s' has no PIN pad; nothing was "
				  "tried",
				  t->label);
	if (!known)
		return ps_err_set(
		    err, PS_EXIT_USAGE, "pin-not-for-token",
		    has_selector() ? "the PIN source is for the token --token "
				     "names; give this one its own pin in "
				     "psrenew.conf ([token.NAME])"
				   : "name the token with --token URI, or give "
				     "it its own pin in psrenew.conf "
				     "([token.NAME])",
		    "not logging in to token '%s' (%s): the PIN source %s is "
		    "not known to belong to it (%zu tokens seen); nothing was "
		    "tried",
		    t->label, t->uri, src, nmarks);
	if ((fl & CKF_USER_PIN_FINAL_TRY) && !interactive(src))
		return ps_err_set(err, PS_EXIT_TOKEN, "pin-final-try",
				  "log in once by hand, with --pin prompt (or "
				  "pinpad), to be sure of the PIN",
				  "token '%s' has one try left before its PIN "
				  "locks: not spending it with the unattended "
				  "source %s",
				  t->label, src);
	return 0;
}

static int empty_pin(const struct ps_token *t, const char *src,
		     struct ps_err *err)
{
	if (interactive(src))
		return ps_err_set(err, PS_EXIT_USAGE, "pin-empty",
				  "type the PIN, then Enter",
				  "no PIN was typed for token '%s'; nothing "
				  "was tried",
				  t->label);
	return ps_err_set(err, PS_EXIT_USAGE, "pin-empty",
			  "put the PIN in it (a file: its first line)",
			  "the PIN from %s is empty; nothing was tried on "
			  "token '%s'",
			  src, t->label);
}

/* One login, every rule checked first. */
static int login_once(struct ps_token *t, const char *pin_source,
		      struct ps_err *err)
{
	char prompt[96];
	char *pin = NULL;
	int known, pad, rc;
	const char *src = pin_source_for(t, pin_source, &known);

	/* The PIN's flags as they are now: read again unless this process
	 * read them within the last second (finding the token). */
	if (now_ms() - t->info_ms >= 1000 && ps_token_refresh(t, err))
		return err->status;
	pad = src ? !strcmp(src, "pinpad")
		  : !!(t->info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
	rc = login_refused(t, src ? src : "prompt", known, pad, err);
	if (rc)
		return rc;
	if (t->info.flags & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW))
		fprintf(stderr, "Warning: token '%s': %s.\n", t->label,
			pin_tries(t));
	if (pad) {
		fprintf(stderr, "Enter the PIN of token '%s' on the reader.\n",
			t->label);
		return login_with(t, NULL, err);
	}
	snprintf(prompt, sizeof(prompt), "PIN for token '%s': ", t->label);
	rc = ps_secret_read(src, prompt, &pin, err);
	if (!rc && !pin[0])
		rc = empty_pin(t, src, err);
	if (!rc)
		rc = login_with(t, pin, err);
	ps_secret_free(pin);
	return rc;
}

static int session_logged_in(const struct ps_token *t)
{
	CK_SESSION_INFO si;

	return t->mod->fl->C_GetSessionInfo(t->session, &si) == CKR_OK &&
	       (si.state == CKS_RO_USER_FUNCTIONS ||
		si.state == CKS_RW_USER_FUNCTIONS);
}

int ps_token_login(struct ps_token *t, const char *pin_source,
		   struct ps_err *err)
{
	struct login_mark *m;
	struct ps_err e;
	int rc;

	if (t->logged_in)
		return 0;
	rc = ps_token_open(t, t->rw, err);
	if (rc)
		return rc;
	m = login_mark(t);
	if (m && m->state == MARK_FAILED) {
		if (err)
			*err = m->err;
		return m->err.status;
	}
	if (m && m->state == MARK_OK && session_logged_in(t)) {
		t->logged_in = 1;
		return 0;
	}
	/* A login lost since (every session closed, the module finalised)
	 * is made again: that PIN was right. */
	ps_err_clear(&e);
	rc = login_once(t, pin_source, &e);
	if (m) {
		m->state = rc ? MARK_FAILED : MARK_OK;
		m->err = e;
	}
	if (rc && err)
		*err = e;
	return rc;
}

int ps_token_free_memory(const struct ps_token *t, unsigned long *bytes)
{
	CK_ULONG pub = t->info.ulFreePublicMemory;
	CK_ULONG priv = t->info.ulFreePrivateMemory;
	/* CK_EFFECTIVELY_INFINITE (0) is for session counts: a free memory
	 * of 0 is a full token (the guide's error 621), not "unknown". */
	int have_pub = pub != CK_UNAVAILABLE_INFORMATION;
	int have_priv = priv != CK_UNAVAILABLE_INFORMATION;

	if (!have_pub && !have_priv)
		return 0;
	if (have_pub && have_priv)
		*bytes = pub < priv ? pub : priv;
	else
		*bytes = have_pub ? pub : priv;
	return 1;
}

int ps_token_login_would_show_more(const struct ps_token *t)
{
	return !t->logged_in;
}
