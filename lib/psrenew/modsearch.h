/* psrenew: the PKCS#11 module of a run when nobody named one: the known
 * token modules (Bit4id's for a TokenME, then OpenSC's) looked for in the
 * usual library directories, and p11-kit's registrations. */
#ifndef PSRENEW_MODSEARCH_H
#define PSRENEW_MODSEARCH_H

#include <limits.h>
#include <stddef.h>

#include <jansson.h>

#include <psrenew/config.h>

struct ps_module_found {
	char path[PATH_MAX];
	const char *name;   /* "libbit4xpki.so" */
	const char *vendor; /* "Bit4id (newer TokenME)" */
	int rank;	    /* 0 Bit4id's, 1 OpenSC's */
};

/*
 * Every known module file in the search path (psrenew.conf's [defaults]
 * module-search-path, colon-separated, else the usual directories), best
 * first: libbit4xpki.so, libbit4ipki.so, opensc-pkcs11.so, each in the
 * order of the directories. At most max; *n how many.
 */
void ps_module_search(const struct ps_config *cfg, struct ps_module_found *out,
		      size_t max, size_t *n);

/* 1 when a module other than p11-kit's own trust module is registered
 * with p11-kit (a .module file in /etc/pkcs11/modules,
 * /usr/share/p11-kit/modules or ~/.config/pkcs11/modules). */
int ps_p11kit_registered(void);

/*
 * The module to load when neither --module, the URI, PKCS11_MODULE nor
 * the configuration names one: a Bit4id module found (it is the TokenME's
 * own, and OpenSC does not read a TokenME), else p11-kit's proxy when
 * p11-kit has a registration, else OpenSC's module found, else NULL
 * (p11-kit's proxy). *why says which, for messages.
 */
const char *ps_module_default(const struct ps_config *cfg,
			      struct ps_module_found *buf, const char **why);

/* ps-status --modules: a "module" record per module found, saying which
 * one a run would use and whether a record may name it (ps_module_allowed
 * with used as the run's module). */
json_t *ps_modules_report(const struct ps_config *cfg, const char *used);

#endif
