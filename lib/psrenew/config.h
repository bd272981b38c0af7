/* psrenew: psrenew.conf(5), an INI file. */
#ifndef PSRENEW_CONFIG_H
#define PSRENEW_CONFIG_H

#include <stddef.h>

#include <psrenew/cert.h>
#include <psrenew/err.h>
#include <psrenew/export.h>

struct ps_config_entry {
	char *section, *key, *value;
	int line; /* where it is in the file */
};

struct ps_config {
	char *path; /* NULL when no file was read */
	struct ps_config_entry *e;
	size_t n, cap;
	struct ps_jip_ca_map *jip_ca; /* from [jip-ca], in file order */
	size_t n_jip_ca;
};

/*
 * Reads the configuration: path when given (it must exist), else
 * $PSRENEW_CONFIG, else $XDG_CONFIG_HOME/psrenew/psrenew.conf (or
 * ~/.config/psrenew/psrenew.conf), else /etc/psrenew/psrenew.conf. A missing
 * default file is not an error. A syntax error is exit 2 naming the line.
 */
PS_API int ps_config_load(const char *path, struct ps_config *cfg,
			  struct ps_err *err);
PS_API void ps_config_free(struct ps_config *cfg);
/* 1 when psrenew.conf(5) documents key in section, else 0 (the front ends
 * warn about the others, naming the line). */
int ps_config_known(const char *section, const char *key);

/* The line of the last value of key in section, or 0. */
int ps_config_line(const struct ps_config *cfg, const char *section,
		   const char *key);

/* Puts "FILE, line N, [SECTION] KEY: " before err's message when key is in
 * the file (a value of the file that did not work); returns err->status. */
int ps_config_blame(const struct ps_config *cfg, const char *section,
		    const char *key, struct ps_err *err);

/* The last value of key in section, or NULL. */
PS_API const char *ps_config_get(const struct ps_config *cfg,
				 const char *section, const char *key);

#endif
