/* psrenew: the token pool: modules, tokens and logins shared by a run. */
#include <psrenew/pool.h>

#include <stdlib.h>
#include <string.h>

static struct ps_pool_module *lookup(struct ps_pool *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->m[i].path, key) == 0)
			return &p->m[i];
	return NULL;
}

static int load(struct ps_pool *p, struct ps_pool_module *m, const char *path,
		const char *from, struct ps_err *err)
{
	int rc = ps_module_open_from(path, from, p->sel, &m->mod, err);

	if (!rc)
		rc = ps_tokens_find(m->mod, p->sel, &m->toks, &m->n, err);
	if (rc) {
		ps_module_close(m->mod);
		m->mod = NULL;
	}
	return rc;
}

struct ps_pool_module *ps_pool_module(struct ps_pool *p, const char *path,
				      const char *what, const char *from,
				      struct ps_err *err)
{
	const char *key = path ? path : "";
	struct ps_pool_module *m = lookup(p, key);

	if (m)
		return m;
	if (path != p->module &&
	    ps_module_allowed(path, p->module, what, err) != 0)
		return NULL;
	m = realloc(p->m, (p->n + 1) * sizeof(*m));
	if (!m) {
		ps_err_nomem(err);
		return NULL;
	}
	p->m = m;
	m = &m[p->n];
	memset(m, 0, sizeof(*m));
	if (load(p, m, path, path == p->module ? p->module_from : from, err) !=
	    0)
		return NULL;
	m->path = strdup(key);
	if (!m->path) {
		ps_tokens_free(m->toks, m->n);
		ps_module_close(m->mod);
		ps_err_nomem(err);
		return NULL;
	}
	p->n++;
	return m;
}

struct ps_token *ps_pool_find(const struct ps_pool_module *m, const char *uri)
{
	for (size_t i = 0; m && uri && i < m->n; i++)
		if (strcmp(m->toks[i]->uri, uri) == 0)
			return m->toks[i];
	return NULL;
}

int ps_pool_login(const struct ps_pool *p, struct ps_token *tok, int rw,
		  struct ps_err *err)
{
	int rc = ps_token_open(tok, rw, err);

	return rc ? rc : ps_token_login(tok, p->pin, err);
}

void ps_pool_close(struct ps_pool *p, struct ps_pool_module *m)
{
	size_t i;

	if (!m)
		return;
	i = (size_t)(m - p->m);
	ps_tokens_free(m->toks, m->n);
	ps_module_close(m->mod);
	free(m->path);
	memmove(m, m + 1, (p->n - i - 1) * sizeof(*m));
	p->n--;
}

void ps_pool_free(struct ps_pool *p)
{
	while (p->n > 0)
		ps_pool_close(p, &p->m[p->n - 1]);
	free(p->m);
	p->m = NULL;
}
