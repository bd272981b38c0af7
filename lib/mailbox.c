/* psrenew: issued certificates picked up from a mailbox. The CA's e-mail
 * (PostSignum, I.CA: a notice with a link, or the certificate attached)
 * lands in a Maildir or an IMAP folder; every certificate in it whose key
 * is an unfinished request's is installed as "ps-fetch --cert" installs
 * it, and the message is marked as read once all of them are on. */
#include <psrenew/mailbox.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <psrenew/certio.h>
#include <psrenew/codec.h>
#include <psrenew/http.h>
#include <psrenew/imap.h>
#include <psrenew/keypair.h>
#include <psrenew/mime.h>
#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/secret.h>

/* A request a certificate may be for. */
struct want {
	char key_id[41]; /* SHA-1 of the new public key, hex; may be "" */
	EVP_PKEY *csr_key;
	int installed;
};

/* The mailbox: a Maildir (dfd, names "new/X" or "cur/X") or IMAP. */
struct box {
	int dfd;
	char **names;
	struct ps_imap *im;
	unsigned long *uids;
	size_t n;
};

struct run {
	struct ps_fetch *f;
	const char *ca_bundle;
	struct want *w;
	size_t nw;
	int (*emit)(void *, const json_t *);
	void *ctx;
	struct ps_mailbox_stats *stats;
};

/* ------------------------------------------------------ the requests */

static void want_add(struct run *r, const json_t *rec, int installed)
{
	const char *kid = ps_json_str(rec, "key_id");
	const char *csr = ps_json_str(rec, "csr");
	struct want *v = realloc(r->w, (r->nw + 1) * sizeof(*v));
	BIO *b;
	X509_REQ *req;

	if (!v)
		return;
	r->w = v;
	v += r->nw;
	memset(v, 0, sizeof(*v));
	snprintf(v->key_id, sizeof(v->key_id), "%s", kid ? kid : "");
	b = csr ? BIO_new_mem_buf(csr, -1) : NULL;
	req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	v->csr_key = req ? X509_REQ_get_pubkey(req) : NULL;
	X509_REQ_free(req);
	BIO_free(b);
	v->installed = installed;
	r->nw++;
}

/* The unfinished requests (of the tokens --token selects) and the
 * installed ones. */
static int wants_load(struct run *r, struct ps_err *err)
{
	char **ids;
	size_t n;
	int rc = ps_fetch_unfinished(r->f, &ids, &n, err);

	for (int pass = 0; !rc && pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			json_t *rec;
			const char *st;

			if (ps_state_load(r->f->st, ids[i], &rec, NULL))
				continue;
			st = ps_json_str(rec, "state");
			if (!pass || (st && !strcmp(st, PS_REQ_INSTALLED)))
				want_add(r, rec, pass);
			json_decref(rec);
		}
		ps_state_list_free(ids, n);
		if (!pass)
			rc = ps_state_list(r->f->st, &ids, &n, err);
	}
	return rc;
}

static struct want *want_for(struct run *r, X509 *x)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	unsigned char id[20];
	char *hex = pk && !ps_pubkey_id(pk, id) ? ps_hex(id, sizeof(id)) : NULL;
	struct want *found = NULL;

	for (size_t i = 0; pk && i < r->nw && !found; i++)
		if ((hex && !strcasecmp(r->w[i].key_id, hex)) ||
		    (r->w[i].csr_key && EVP_PKEY_eq(r->w[i].csr_key, pk) == 1))
			found = &r->w[i];
	free(hex);
	return found;
}

/* ------------------------------------------------------- the Maildir */

static int unseen_name(const char *sub, const char *name)
{
	const char *info = strstr(name, ":2,");

	if (name[0] == '.')
		return 0;
	return !strcmp(sub, "new") || !info || !strchr(info + 3, 'S');
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_sub(struct box *b, const char *sub, struct ps_err *err)
{
	int fd = openat(b->dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int rc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return ps_err_set(err, PS_EXIT_FAIL, "mailbox", NULL,
				  "cannot read the Maildir's %s/: %s", sub,
				  strerror(errno));
	}
	for (e = readdir(d); !rc && e; e = readdir(d)) {
		char **v;

		if (!unseen_name(sub, e->d_name))
			continue;
		v = realloc(b->names, (b->n + 1) * sizeof(*v));
		if (!v || asprintf(&v[b->n], "%s/%s", sub, e->d_name) < 0) {
			if (v)
				b->names = v;
			rc = ps_err_nomem(err);
			break;
		}
		b->names = v;
		b->n++;
	}
	closedir(d);
	return rc;
}

static int maildir_open(struct box *b, const char *dir, struct ps_err *err)
{
	static const char *const subs[] = { "new", "cur", "tmp" };
	struct stat sb;
	int rc = 0;

	b->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; b->dfd >= 0 && i < 3 && !rc; i++)
		if (fstatat(b->dfd, subs[i], &sb, 0) || !S_ISDIR(sb.st_mode))
			rc = 1;
	if (b->dfd < 0 || rc)
		return ps_err_set(err, PS_EXIT_USAGE, "mailbox",
				  "give the Maildir itself (the directory "
				  "holding new/, cur/ and tmp/)",
				  "%.200s is not a Maildir", dir);
	rc = list_sub(b, "new", err);
	if (!rc)
		rc = list_sub(b, "cur", err);
	if (!rc && b->n > 1)
		qsort(b->names, b->n, sizeof(*b->names), by_name);
	return rc;
}

/* The regular file fd, read whole (at most PS_MAILBOX_MSG_MAX bytes). */
static int read_fd(int fd, char **msg, size_t *len)
{
	struct stat sb;
	size_t size;

	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size > PS_MAILBOX_MSG_MAX)
		return -1;
	size = (size_t)sb.st_size;
	*msg = malloc(size + 1);
	if (!*msg)
		return -1;
	for (*len = 0; *len < size;) {
		ssize_t k = read(fd, *msg + *len, size - *len);

		if (k <= 0)
			break;
		*len += (size_t)k;
	}
	(*msg)[*len] = '\0';
	return 0;
}

static int maildir_read(struct box *b, size_t i, char **msg, size_t *len,
			struct ps_err *err)
{
	int fd = openat(b->dfd, b->names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int gone = fd < 0 && errno == ENOENT;

	*msg = NULL;
	if (fd >= 0 && read_fd(fd, msg, len) == 0) {
		close(fd);
		return 0;
	}
	if (fd >= 0)
		close(fd);
	return ps_err_set(err, PS_EXIT_FAIL,
			  gone ? "mail-gone" : "mail-too-big", NULL,
			  "message %.200s: gone, not a file, or larger than "
			  "%lu bytes",
			  b->names[i], PS_MAILBOX_MSG_MAX);
}

/* new/X -> cur/X:2,S; cur/X:2,FLAGS -> cur/X:2,FLAGS with S in its
 * place (Maildir flags are kept in ASCII order). */
static int maildir_mark(struct box *b, size_t i, struct ps_err *err)
{
	const char *name = b->names[i] + 4, *info = strstr(name, ":2,");
	char to[4096], flags[64] = "";
	size_t k = 0;

	for (const char *p = info ? info + 3 : ""; *p && k + 2 < sizeof(flags);
	     p++) {
		if (*p > 'S' && !strchr(flags, 'S'))
			flags[k++] = 'S';
		flags[k++] = *p;
	}
	if (!strchr(flags, 'S'))
		flags[k++] = 'S';
	flags[k] = '\0';
	snprintf(to, sizeof(to), "cur/%.*s:2,%s",
		 (int)(info ? (size_t)(info - name) : strlen(name)), name,
		 flags);
	/* gone: another run (or a mail reader) has just moved it */
	if (renameat(b->dfd, b->names[i], b->dfd, to) == 0 || errno == ENOENT)
		return 0;
	return ps_err_set(err, PS_EXIT_FAIL, "mailbox", NULL,
			  "cannot mark %.200s as read: %s", b->names[i],
			  strerror(errno));
}

/* ---------------------------------------------------------- IMAP */

static int imap_open(struct box *b, struct run *r,
		     const struct ps_mailbox_opts *o, struct ps_err *err)
{
	const char *src = o->imap_pass;
	char *pass = NULL;
	int rc;

	if (!src && r->f->cfg)
		src = ps_config_get(r->f->cfg, "mailbox", "imap-pass");
	rc = ps_imap_open(o->imap_url, "", r->ca_bundle, &b->im, err);
	if (!rc) {
		char prompt[256];

		snprintf(prompt, sizeof(prompt),
			 "IMAP password for %s: ", ps_imap_where(b->im));
		ps_imap_close(b->im);
		b->im = NULL;
		rc = ps_secret_read(src ? src : "prompt", prompt, &pass, err);
	}
	if (!rc)
		rc = ps_imap_open(o->imap_url, pass, r->ca_bundle, &b->im, err);
	ps_secret_free(pass);
	if (!rc)
		rc = ps_imap_unseen(b->im, &b->uids, &b->n, err);
	return rc;
}

/* ------------------------------------------------- one message */

static void box_close(struct box *b)
{
	for (size_t i = 0; b->names && i < b->n; i++)
		free(b->names[i]);
	free(b->names);
	free(b->uids);
	ps_imap_close(b->im);
	if (b->dfd >= 0)
		close(b->dfd);
}

struct tag {
	struct run *r;
	const char *message_id, *source;
};

/* The install's records, with where the certificate came from. */
static int emit_tagged(void *v, const json_t *rec)
{
	struct tag *t = v;
	json_t *c = json_copy((json_t *)rec);
	int rc;

	if (!c)
		return -1;
	if (t->message_id)
		ps_json_set_str(c, "message_id", t->message_id);
	ps_json_set_str(c, "cert_source", t->source);
	rc = t->r->emit(t->r->ctx, c);
	json_decref(c);
	return rc;
}

/* x with the CA certificates of certs, PEM (malloc'ed). */
static char *leaf_and_chain(STACK_OF(X509) * certs, X509 *x)
{
	char *all = ps_cert_pem(x);

	for (int i = 0; all && i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		char *p, *more = NULL;

		if (c == x || X509_check_ca(c) <= 0)
			continue;
		p = ps_cert_pem(c);
		if (!p || asprintf(&more, "%s%s", all, p) < 0)
			more = NULL;
		free(p);
		free(all);
		all = more;
	}
	return all;
}

/* The certificates of one attachment or link: those for a request are
 * installed. *matched counts them, *failed tells an install failed. */
static int take_certs(struct run *r, const unsigned char *buf, size_t len,
		      struct tag *t, size_t *matched, int *failed)
{
	STACK_OF(X509) *certs = NULL;
	struct ps_err e;
	int worst = 0;

	if (ps_certs_parse(buf, len, &certs, &e))
		return 0; /* not certificates: nothing for us */
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		struct want *w = NULL;
		char *pem;
		int rc;

		if (X509_check_ca(x) <= 0 || sk_X509_num(certs) == 1)
			w = want_for(r, x);
		if (!w)
			continue;
		(*matched)++;
		if (w->installed || r->f->dry_run)
			continue;
		pem = leaf_and_chain(certs, x);
		rc = pem ? ps_fetch_install_certs(r->f,
						  (const unsigned char *)pem,
						  strlen(pem), emit_tagged, t)
			 : PS_EXIT_FAIL;
		free(pem);
		if (rc) {
			*failed = 1;
			worst = ps_exit_worse(worst, rc);
		} else {
			w->installed = 1;
			r->stats->installed++;
		}
	}
	sk_X509_pop_free(certs, X509_free);
	return worst;
}

/* The bytes behind a link: downloaded (TLS verified, at most 1 MiB). */
static int fetch_link(struct run *r, const char *url, unsigned char **buf,
		      size_t *len, struct ps_err *err)
{
	struct ps_http_opts o = { .ca_bundle = r->ca_bundle,
				  .connect_timeout = 20,
				  .timeout = 120 };

	return ps_http_get(&o, url, 1 << 20, buf, len, err);
}

/* One message: *handled when it brought a certificate of a request and
 * every such certificate is installed. */
static int do_message(struct run *r, const char *msg, size_t len, int *handled)
{
	struct ps_mime_found mf = { 0 };
	struct ps_err e, dl;
	size_t matched = 0;
	int worst = 0, failed = 0, dl_rc = 0;

	*handled = 0;
	ps_err_clear(&dl);
	if (ps_mime_scan(msg, len, &mf, &e))
		return 0; /* not a message we can read: left alone */
	for (size_t i = 0; i < mf.n; i++) {
		const struct ps_mime_item *it = &mf.items[i];
		struct tag t = { r, mf.message_id, it->what };
		unsigned char *buf = NULL;
		size_t n = 0;
		int rc = 0;

		ps_err_clear(&e);
		if (it->is_link)
			rc = fetch_link(r, it->what, &buf, &n, &e);
		if (rc && !dl_rc) {
			dl_rc = rc;
			dl = e;
		}
		if (!rc)
			worst = ps_exit_worse(
			    worst, take_certs(r, it->is_link ? buf : it->data,
					      it->is_link ? n : it->len, &t,
					      &matched, &failed));
		free(buf);
	}
	*handled = matched > 0 && !failed;
	if (!matched && dl_rc) {
		/* The link might have been ours: said, and tried again by
		 * the next run (the message stays unread). */
		json_t *rec = ps_record_error(&dl);
		struct tag t = { r, mf.message_id, "" };

		emit_tagged(&t, rec);
		json_decref(rec);
		worst = ps_exit_worse(worst, dl_rc);
	}
	ps_mime_found_free(&mf);
	return worst;
}

static int read_one(struct box *b, size_t i, char **msg, size_t *len,
		    struct ps_err *err)
{
	if (b->im)
		return ps_imap_fetch(b->im, b->uids[i], PS_MAILBOX_MSG_MAX, msg,
				     len, err);
	return maildir_read(b, i, msg, len, err);
}

static int mark_one(struct box *b, size_t i, struct ps_err *err)
{
	return b->im ? ps_imap_seen(b->im, b->uids[i], err)
		     : maildir_mark(b, i, err);
}

/* An error about one message, as a record; its status. */
static int item_error(struct run *r, const struct ps_err *e)
{
	json_t *rec = ps_record_error(e);

	r->emit(r->ctx, rec);
	json_decref(rec);
	return e->status;
}

static int each_message(struct run *r, struct box *b)
{
	int worst = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct ps_err e;
		char *msg = NULL;
		size_t len = 0;
		int handled = 0;

		ps_err_clear(&e);
		if (read_one(b, i, &msg, &len, &e)) {
			if (strcmp(e.code, "mail-gone"))
				r->stats->left++;
			if (strcmp(e.code, "mail-gone") &&
			    strcmp(e.code, "mail-too-big"))
				worst = ps_exit_worse(worst, item_error(r, &e));
			continue;
		}
		r->stats->messages++;
		worst = ps_exit_worse(worst, do_message(r, msg, len, &handled));
		free(msg);
		if (handled && !r->f->dry_run && mark_one(b, i, &e)) {
			worst = ps_exit_worse(worst, item_error(r, &e));
			handled = 0;
		}
		if (handled)
			r->stats->handled++;
		else
			r->stats->left++;
	}
	return worst;
}

int ps_mailbox_fetch(struct ps_fetch *f, const struct ps_mailbox_opts *o,
		     int (*emit)(void *, const json_t *), void *ctx,
		     struct ps_mailbox_stats *stats, struct ps_err *err)
{
	struct run r = { f, o->ca_bundle, NULL, 0, emit, ctx, stats };
	struct box b = { .dfd = -1 };
	char **left = NULL;
	size_t nleft = 0;
	int rc;

	memset(stats, 0, sizeof(*stats));
	if (!r.ca_bundle && f->cfg)
		r.ca_bundle = ps_config_get(f->cfg, "mailbox", "ca-bundle");
	rc = wants_load(&r, err);
	if (!rc)
		rc = o->imap_url ? imap_open(&b, &r, o, err)
				 : maildir_open(&b, o->maildir, err);
	if (!rc) {
		rc = each_message(&r, &b);
		if (!rc && !ps_fetch_unfinished(f, &left, &nleft, NULL) &&
		    nleft > 0)
			rc = PS_EXIT_PENDING;
		ps_state_list_free(left, nleft);
	}
	box_close(&b);
	for (size_t i = 0; i < r.nw; i++)
		EVP_PKEY_free(r.w[i].csr_key);
	free(r.w);
	return rc;
}
