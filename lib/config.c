/* psrenew: configuration file, parsed with inih. */
#include <psrenew/config.h>
#include <psrenew/secret.h>

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* inih does not say on which line a key is: the parse follows the text. */
struct parse {
	struct ps_config *cfg;
	const char *text, *pos; /* pos: the start of the next line to look at */
	int line;		/* the line at pos */
};

static int add_entry(struct ps_config *cfg, const char *section,
		     const char *key, const char *value, int line)
{
	struct ps_config_entry *e;

	if (cfg->n == cfg->cap) {
		size_t cap = cfg->cap ? cfg->cap * 2 : 16;

		e = realloc(cfg->e, cap * sizeof(*e));
		if (!e)
			return -1;
		cfg->e = e;
		cfg->cap = cap;
	}
	e = &cfg->e[cfg->n];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		return -1;
	}
	e->line = line;
	cfg->n++;
	return 0;
}

/* 1 when the line at p holds name's value: "name =", "name:", or an
 * indented line continuing name (same_key). */
static int line_has(const char *p, const char *name, int same_key)
{
	size_t n = strlen(name);
	const char *q = p + strspn(p, " \t");

	if (q != p && same_key && *q && *q != '\n' && *q != ';' && *q != '#')
		return 1;
	if (strncmp(q, name, n) != 0)
		return 0;
	q += n;
	q += strspn(q, " \t");
	return *q == '=' || *q == ':';
}

/* The line of the next entry named name, from ps->pos on. */
static int next_line(struct parse *ps, const char *name)
{
	const struct ps_config *cfg = ps->cfg;
	int same = cfg->n && !strcmp(cfg->e[cfg->n - 1].key, name);

	while (*ps->pos) {
		const char *p = ps->pos, *nl = strchr(p, '\n');
		int line = ps->line;

		ps->pos = nl ? nl + 1 : p + strlen(p);
		ps->line++;
		if (line_has(p, name, same))
			return line;
	}
	return 0;
}

static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	struct parse *ps = user;
	int line = next_line(ps, name);

	return add_entry(ps->cfg, section, name, value ? value : "", line) == 0;
}

/* The keys of psrenew.conf(5); "*" ends a section's name that takes any
 * name after it, and a NULL list takes any key. */
static const char *const defaults_keys[] = { "module",	 "token",
					     "pin",	 "state-dir",
					     "key-type", "module-search-path",
					     NULL };
static const char *const token_keys[] = { "uri", "pin", NULL };
static const char *const ca_keys[] = { "channel",   "type",	 "timeout",
				       "ca-bundle", "profile",	 "to",
				       "from",	    "from-name", "subject",
				       "template",  "smtp-user", "smtp-pass",
				       "tls",	    NULL };
/* The mail: channel's signer and the organisation's facts of its text. */
static const char *const ca_mail_keys[] = { "sign-with", "contract-number",
					    "organisation", "employee-number",
					    NULL };
/* ps-fetch --imap's password source and trust. */
static const char *const mailbox_keys[] = { "imap-pass", "ca-bundle", NULL };
static const char *const jip_keys[] = { "user",
					"profile",
					"url",
					"timeout",
					"ca-bundle",
					"backend",
					"ws-url",
					"ws-version",
					"ws-system",
					"ws-serial",
					"ws-client-cert",
					"ws-client-key",
					"ws-client-key-password",
					NULL };

static const struct {
	const char *section;
	const char *const *keys;
} known[] = { { "defaults", defaults_keys }, { "token.*", token_keys },
	      { "ca.*", ca_keys },	     { "ca.*", ca_mail_keys },
	      { "jip", jip_keys },	     { "jip-ca", NULL },
	      { "mailbox", mailbox_keys } };

static int section_is(const char *pattern, const char *section)
{
	size_t n = strlen(pattern);

	if (pattern[n - 1] == '*')
		return !strncmp(pattern, section, n - 1) && section[n - 1];
	return !strcmp(pattern, section);
}

int ps_config_known(const char *section, const char *key)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++) {
		if (!section_is(known[i].section, section))
			continue;
		if (!known[i].keys)
			return 1;
		for (const char *const *k = known[i].keys; *k; k++)
			if (!strcmp(*k, key))
				return 1;
		/* a section may have more than one list */
	}
	return 0;
}

int ps_config_line(const struct ps_config *cfg, const char *section,
		   const char *key)
{
	int line = 0;

	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->e[i].section, section) == 0 &&
		    strcmp(cfg->e[i].key, key) == 0)
			line = cfg->e[i].line;
	return line;
}

int ps_config_blame(const struct ps_config *cfg, const char *section,
		    const char *key, struct ps_err *err)
{
	char msg[sizeof(err->msg)];

	if (!cfg || !cfg->path || !ps_config_line(cfg, section, key))
		return err->status;
	snprintf(msg, sizeof(msg), "%s", err->msg);
	snprintf(err->msg, sizeof(err->msg),
		 "%.200s, line %d, [%.60s] %.30s: %.200s", cfg->path,
		 ps_config_line(cfg, section, key), section, key, msg);
	return err->status;
}

/* The keys with a fixed set of values ("" for a positive number of
 * seconds), checked when the file is read: a typo is not a default. */
static const struct {
	const char *section, *key, *values, *hint;
} choices[] = {
	{ "ca.*", "type", "cmp|est", "type = cmp or type = est" },
	{ "ca.*", "timeout", "", "seconds, for example timeout = 300" },
	{ "ca.*", "tls", "required", "tls = required, or no tls line" },
	{ "jip", "timeout", "", "seconds, for example timeout = 120" },
	{ "jip", "backend", "html|ws", "backend = html or backend = ws" },
	{ "jip", "ws-version", "1.0|1.1", "ws-version = 1.0 or 1.1" },
	{ "jip", "ws-system", "jip|caais", "ws-system = jip or caais" },
	{ "jip", "ws-serial", "hex|dec", "ws-serial = hex or dec" },
};

static int value_ok(const char *values, const char *v)
{
	char all[48], one[48];
	char *end;

	if (!values[0])
		return isdigit((unsigned char)v[0]) &&
		       strtol(v, &end, 10) > 0 && !*end;
	snprintf(all, sizeof(all), "|%s|", values);
	snprintf(one, sizeof(one), "|%.40s|", v);
	return strstr(all, one) != NULL;
}

static int check_choices(const struct ps_config *cfg, struct ps_err *err)
{
	for (size_t i = 0; i < cfg->n; i++)
		for (size_t c = 0; c < sizeof(choices) / sizeof(*choices);
		     c++) {
			const struct ps_config_entry *e = &cfg->e[i];

			if (strcmp(e->key, choices[c].key) ||
			    !section_is(choices[c].section, e->section) ||
			    value_ok(choices[c].values, e->value))
				continue;
			return ps_err_set(
			    err, PS_EXIT_USAGE, "bad-config", choices[c].hint,
			    "%.200s, line %d, [%.60s] %s: '%.40s' "
			    "is not %s",
			    cfg->path, e->line, e->section, e->key, e->value,
			    choices[c].values[0] ? "one of the values "
						   "psrenew.conf(5) lists"
						 : "a number of seconds");
		}
	return 0;
}

/* A key that takes a secret holds a source, never the secret: checked
 * here, so that every one is, used or not (smtp-pass without smtp-user). */
static int check_secrets(const struct ps_config *cfg, struct ps_err *err)
{
	for (size_t i = 0; i < cfg->n; i++) {
		const struct ps_config_entry *e = &cfg->e[i];
		int pin = !strcmp(e->key, "pin") &&
			  (!strcmp(e->section, "defaults") ||
			   section_is("token.*", e->section));
		int pass = (!strcmp(e->key, "smtp-pass") &&
			    section_is("ca.*", e->section)) ||
			   (!strcmp(e->key, "imap-pass") &&
			    !strcmp(e->section, "mailbox"));
		char msg[sizeof(err->msg)];

		if (!pin && !pass)
			continue;
		if (pin && !strcmp(e->value, "pinpad"))
			continue;
		/* prompt is the default: an empty value is a mistake */
		if (!ps_secret_check_source(e->value[0] ? e->value : "-", err))
			continue;
		snprintf(msg, sizeof(msg), "%s", err->msg);
		snprintf(err->msg, sizeof(err->msg),
			 "%.200s, line %d, [%.60s] %.30s: %.200s", cfg->path,
			 e->line, e->section, e->key, msg);
		return err->status;
	}
	return 0;
}

/* Values that cannot be empty. */
static int check_values(const struct ps_config *cfg, struct ps_err *err)
{
	const char *v = ps_config_get(cfg, "defaults", "state-dir");

	if (v && !v[0])
		return ps_err_set(err, PS_EXIT_USAGE, "bad-config",
				  "give a directory or remove the line "
				  "(psrenew.conf(5))",
				  "%s, line %d, [defaults] state-dir: empty",
				  cfg->path,
				  ps_config_line(cfg, "defaults", "state-dir"));
	return check_choices(cfg, err) ? err->status : check_secrets(cfg, err);
}

static int build_jip_ca(struct ps_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n; i++)
		n += strcmp(cfg->e[i].section, "jip-ca") == 0;
	if (n == 0)
		return 0;
	cfg->jip_ca = calloc(n, sizeof(*cfg->jip_ca));
	if (!cfg->jip_ca)
		return -1;
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->e[i].section, "jip-ca") == 0) {
			cfg->jip_ca[cfg->n_jip_ca].pattern = cfg->e[i].key;
			cfg->jip_ca[cfg->n_jip_ca++].name = cfg->e[i].value;
		}
	return 0;
}

static char *default_path(void)
{
	const char *env = getenv("PSRENEW_CONFIG");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char *p = NULL;

	if (env && *env)
		return strdup(env);
	if (xdg && *xdg) {
		if (asprintf(&p, "%s/psrenew/psrenew.conf", xdg) < 0)
			return NULL;
	} else if (home && *home) {
		if (asprintf(&p, "%s/.config/psrenew/psrenew.conf", home) < 0)
			return NULL;
	}
	if (p && access(p, F_OK) == 0)
		return p;
	free(p);
	return access("/etc/psrenew/psrenew.conf", F_OK) == 0
		   ? strdup("/etc/psrenew/psrenew.conf")
		   : NULL;
}

/* inih cuts longer lines silently: refuse them instead. */
#define LINE_LIMIT 199

static int read_text(const char *path, char **text, int *long_line,
		     struct ps_err *err)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	size_t n = 0, cap = 1 << 20;
	int c, col = 0, line = 1;

	*text = NULL;
	*long_line = 0;
	/* A regular file, a pipe or /dev/null; not a directory. */
	if (!f || fstat(fileno(f), &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = f ? EISDIR : errno;

		if (f)
			fclose(f);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-config",
				  "see psrenew.conf(5)", "cannot read %s: %s",
				  path, f ? "it is a directory" : strerror(e));
	}
	/* It names the module to load and the PIN source: ours or root's. */
	if (ps_file_check_safe(fileno(f), path, 0, err)) {
		fclose(f);
		return err ? err->status : PS_EXIT_USAGE;
	}
	*text = malloc(cap + 1);
	while (*text && (c = getc(f)) != EOF && n < cap) {
		(*text)[n++] = (char)c;
		if (c == '\n') {
			line++;
			col = 0;
		} else if (++col > LINE_LIMIT && !*long_line) {
			*long_line = line;
		}
	}
	fclose(f);
	if (!*text)
		return ps_err_nomem(err);
	(*text)[n] = '\0';
	return 0;
}

int ps_config_load(const char *path, struct ps_config *cfg, struct ps_err *err)
{
	struct parse ps_parse;
	char *text;
	int line, long_line, rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = path ? strdup(path) : default_path();
	if (!cfg->path)
		return 0;
	rc = read_text(cfg->path, &text, &long_line, err);
	if (rc) {
		ps_config_free(cfg);
		return rc;
	}
	if (long_line) {
		ps_err_set(err, PS_EXIT_USAGE, "bad-config",
			   "lines are limited to 199 bytes (psrenew.conf(5))",
			   "%s, line %d: line too long", cfg->path, long_line);
		free(text);
		ps_config_free(cfg);
		return PS_EXIT_USAGE;
	}
	ps_parse = (struct parse){ cfg, text, text, 1 };
	line = ini_parse_string(text, on_entry, &ps_parse);
	free(text);
	if (line != 0 || build_jip_ca(cfg) != 0) {
		ps_err_set(err, PS_EXIT_USAGE, "bad-config",
			   "see psrenew.conf(5) for the syntax",
			   line > 0 ? "%s, line %d: syntax error"
				    : "%s: cannot parse (line %d)",
			   cfg->path, line);
		ps_config_free(cfg);
		return PS_EXIT_USAGE;
	}
	rc = check_values(cfg, err);
	if (rc)
		ps_config_free(cfg);
	return rc;
}

void ps_config_free(struct ps_config *cfg)
{
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->e[i].section);
		free(cfg->e[i].key);
		free(cfg->e[i].value);
	}
	free(cfg->e);
	free(cfg->jip_ca);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

const char *ps_config_get(const struct ps_config *cfg, const char *section,
			  const char *key)
{
	const char *v = NULL;

	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->e[i].section, section) == 0 &&
		    strcmp(cfg->e[i].key, key) == 0)
			v = cfg->e[i].value;
	return v;
}
