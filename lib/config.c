/* psrenew: configuration file, parsed with inih. */
#include <psrenew/config.h>

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	e->line = line;
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
	return add_entry(user, section, name, value ? value : "", 0) == 0;
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

int ps_config_load(const char *path, struct ps_config *cfg,
		   struct ps_err *err)
{
	FILE *f;
	int line;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = path ? strdup(path) : default_path();
	if (!cfg->path)
		return 0;
	f = fopen(cfg->path, "re");
	if (!f) {
		int e = errno;

		/* $PSRENEW_CONFIG and --config must exist. */
		ps_err_set(err, PS_EXIT_USAGE, "bad-config",
			   "see psrenew.conf(5)", "cannot read %s: %s",
			   cfg->path, strerror(e));
		ps_config_free(cfg);
		return PS_EXIT_USAGE;
	}
	line = ini_parse_file(f, on_entry, cfg);
	fclose(f);
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
