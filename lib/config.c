/* psrenew: configuration file, parsed with inih. */
#include <psrenew/config.h>
#include <psrenew/secret.h>

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int add_entry(struct ps_config *cfg, const char *section,
		     const char *key, const char *value)
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
	cfg->n++;
	return 0;
}

static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	return add_entry(user, section, name, value ? value : "") == 0;
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
	line = ini_parse_string(text, on_entry, cfg);
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
	return 0;
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
