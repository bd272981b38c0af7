/* psrenew: finding the token's PKCS#11 module when nobody named one. */
#include <psrenew/modsearch.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <psrenew/record.h>
#include <psrenew/token.h>

#ifndef PS_P11KIT_PROXY
#define PS_P11KIT_PROXY "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
#endif

/* Bit4id's Linux middleware for the TokenME: libbit4xpki.so (newer
 * tokens) or libbit4ipki.so, usually in /usr/lib or /usr/lib/bit4id;
 * OpenSC's module last (OpenSC does not list Bit4id tokens). */
static const struct {
	const char *name, *vendor;
	int rank;
} known[] = {
	{ "libbit4xpki.so", "Bit4id (newer TokenME)", 0 },
	{ "libbit4ipki.so", "Bit4id (TokenME)", 0 },
	{ "opensc-pkcs11.so", "OpenSC", 1 },
};

static const char default_path[] =
    "/usr/lib:/usr/lib/bit4id:/usr/lib/x86_64-linux-gnu:"
    "/usr/lib/x86_64-linux-gnu/pkcs11:/usr/lib64:/usr/lib64/pkcs11:"
    "/usr/local/lib:/usr/local/lib/bit4id";

void ps_module_search(const struct ps_config *cfg, struct ps_module_found *out,
		      size_t max, size_t *n)
{
	const char *conf = ps_config_get(cfg, "defaults", "module-search-path");
	const char *path = conf && *conf ? conf : default_path;

	*n = 0;
	for (size_t k = 0; k < sizeof(known) / sizeof(*known); k++) {
		for (const char *d = path; *d && *n < max;) {
			size_t len = strcspn(d, ":");
			struct ps_module_found *f = &out[*n];

			if (len > 0 &&
			    snprintf(f->path, sizeof(f->path), "%.*s/%s",
				     (int)len, d,
				     known[k].name) < (int)sizeof(f->path) &&
			    access(f->path, R_OK) == 0) {
				f->name = known[k].name;
				f->vendor = known[k].vendor;
				f->rank = known[k].rank;
				(*n)++;
			}
			d += len + (d[len] == ':');
		}
	}
}

/* A .module file other than p11-kit-trust.module in dir? */
static int registered_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e = d ? readdir(d) : NULL;
	int found = 0;

	for (; e && !found; e = readdir(d)) {
		size_t len = strlen(e->d_name);

		found = len > 7 && !strcmp(e->d_name + len - 7, ".module") &&
			strcmp(e->d_name, "p11-kit-trust.module") != 0;
	}
	if (d)
		closedir(d);
	return found;
}

int ps_p11kit_registered(void)
{
	const char *home = getenv("HOME");
	char user[PATH_MAX];

	if (registered_in("/etc/pkcs11/modules") ||
	    registered_in("/usr/share/p11-kit/modules"))
		return 1;
	snprintf(user, sizeof(user), "%s/.config/pkcs11/modules",
		 home ? home : "/nonexistent");
	return home && registered_in(user);
}

const char *ps_module_default(const struct ps_config *cfg,
			      struct ps_module_found *buf, const char **why)
{
	struct ps_module_found f[8];
	size_t n;

	ps_module_search(cfg, f, sizeof(f) / sizeof(*f), &n);
	if (n > 0 && (f[0].rank == 0 || !ps_p11kit_registered())) {
		*buf = f[0];
		*why = f[0].rank == 0 ? "the search for the TokenME's Bit4id "
					"module (psrenew.conf(5), "
					"module-search-path)"
				      : "the search for OpenSC's module "
					"(psrenew.conf(5), module-search-path)";
		return buf->path;
	}
	*why = "p11-kit's proxy";
	return NULL;
}

static int same_file(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	int same = !strcmp(a, b) || (ra && rb && !strcmp(ra, rb));

	free(ra);
	free(rb);
	return same;
}

json_t *ps_modules_report(const struct ps_config *cfg, const char *used)
{
	struct ps_module_found f[16];
	json_t *all = json_array();
	size_t n;

	ps_module_search(cfg, f, sizeof(f) / sizeof(*f), &n);
	for (size_t i = 0; all && i < n; i++) {
		json_t *r = json_object();
		int same = used && same_file(f[i].path, used);

		if (!r)
			break;
		ps_json_set_str(r, "kind", "module");
		ps_json_set_str(r, "name", f[i].name);
		ps_json_set_str(r, "vendor", f[i].vendor);
		ps_json_set_str(r, "path", f[i].path);
		json_object_set_new(r, "used", json_boolean(same));
		json_object_set_new(
		    r, "allowed",
		    json_boolean(ps_module_allowed(f[i].path, used, "", NULL) ==
				 0));
		json_array_append_new(all, r);
	}
	return all;
}
