/* psrenew: choosing the certificate to log in to JIP with. */
#include <psrenew/jip_login.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <psrenew/certio.h>
#include <psrenew/inventory.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/signer.h>
#include <psrenew/codec.h>
#include <psrenew/secret.h>

#include <fcntl.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

/* Is the certificate one of the records of items? */
static int being_registered(const json_t *items, const char *serial_hex)
{
	size_t k;
	json_t *v;

	json_array_foreach ((json_t *)items, k, v)
		if (ps_json_str(v, "serial_hex") &&
		    !strcmp(ps_json_str(v, "serial_hex"), serial_hex))
			return 1;
	return 0;
}

/* May inv's certificate i log in? id_hex: that one; else the registered
 * one: valid, and maybe superseded by the certificate being registered
 * now. */
static int usable(const struct ps_inventory *inv, size_t i, const char *id_hex,
		  const json_t *items)
{
	const struct ps_invcert *ic = &inv->c[i];
	char *hid = ps_hex(ic->obj.id, ic->obj.id_len);
	const char *state = ps_inventory_state(inv, i);
	int ok = hid && ic->has_key == 1;

	if (ok && id_hex)
		ok = !strcasecmp(hid, id_hex);
	else if (ok)
		ok =
		    ic->cert.type == PS_CERT_COMMERCIAL &&
		    (!strcmp(state, "valid") || !strcmp(state, "superseded")) &&
		    !being_registered(items, ic->cert.serial_hex);
	free(hid);
	return ok;
}

static int choose(struct ps_jip_login_cert *lc, struct ps_token *tok,
		  const char *id_hex, const json_t *items, struct ps_err *err)
{
	struct ps_inventory inv;
	long best = -1;
	int rc = ps_inventory_load(&tok, 1, time(NULL), &inv, err);

	if (rc)
		return rc;
	for (size_t i = 0; i < inv.n; i++)
		if (usable(&inv, i, id_hex, items) &&
		    (best < 0 ||
		     inv.c[i].cert.not_before < inv.c[best].cert.not_before))
			best = (long)i;
	if (best < 0) {
		ps_inventory_free(&inv);
		return ps_err_set(
		    err, PS_EXIT_USAGE, "no-login-cert",
		    "name it with --login-cert ID (see ps-status)",
		    "no valid commercial certificate with its key "
		    "on the token to log in to JIP with");
	}
	lc->x = ps_cert_x509(&inv.c[best].cert);
	X509_up_ref(lc->x);
	rc = ps_signer_key(tok, inv.c[best].obj.id, inv.c[best].obj.id_len,
			   &lc->key, err);
	ps_inventory_free(&inv);
	return rc;
}

int ps_jip_login_cert_open(struct ps_jip_login_cert *lc, const char *id_hex,
			   const json_t *items, struct ps_err *err)
{
	struct ps_pool_module *m =
	    ps_pool_module(&lc->pool, lc->pool.module, NULL, NULL, err);
	int rc = m ? ps_tokens_require_one(m->toks, m->n, err) : err->status;

	if (!rc)
		rc = ps_token_login(m->toks[0], lc->pool.pin, err);
	return rc ? rc : choose(lc, m->toks[0], id_hex, items, err);
}

/* The first certificate of the file path, or NULL (err says why). */
static X509 *cert_from_file(const char *path, struct ps_err *err)
{
	FILE *f = fopen(path, "rb");
	unsigned char buf[65536];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	STACK_OF(X509) *sk = NULL;
	X509 *x = NULL;

	if (!f) {
		ps_err_set(err, PS_EXIT_USAGE, "usage", NULL, "cannot open %s",
			   path);
		return NULL;
	}
	fclose(f);
	if (!ps_certs_parse(buf, n, &sk, err)) {
		x = sk_X509_value(sk, 0);
		X509_up_ref(x);
	}
	sk_X509_pop_free(sk, X509_free);
	return x;
}

/* The certificate of item (serial_hex, and sha256 when given) on the
 * tokens of m, or NULL. */
static X509 *cert_on_tokens(struct ps_pool_module *m, const json_t *item,
			    struct ps_err *err)
{
	const char *sha = ps_json_str(item, "sha256");
	char *want = NULL;
	struct ps_inventory inv;
	X509 *x = NULL;

	if (ps_serial_normalise(ps_json_str(item, "serial_hex"), &want, err) ||
	    ps_inventory_load(m->toks, m->n, time(NULL), &inv, err)) {
		free(want);
		return NULL;
	}
	for (size_t i = 0; !x && i < inv.n; i++)
		if (!strcmp(inv.c[i].cert.serial_hex, want) &&
		    (!sha || !strcasecmp(inv.c[i].cert.sha256, sha)))
			x = ps_cert_x509(&inv.c[i].cert);
	if (x)
		X509_up_ref(x);
	else
		ps_err_set(err, PS_EXIT_FAIL, "verify-no-cert",
			   "give the certificate with --cert FILE, or "
			   "leave out --verify-login",
			   "certificate %s is on no token: the login that "
			   "verifies it needs its own key",
			   want);
	ps_inventory_free(&inv);
	free(want);
	return x;
}

/* lc->key: the private key of lc->x on one of m's tokens. */
static int own_key(struct ps_jip_login_cert *lc, struct ps_pool_module *m,
		   const char *serial, struct ps_err *err)
{
	for (size_t i = 0; i < m->n; i++) {
		struct ps_keypair kp = { 0 };
		int rc = ps_pool_login(&lc->pool, m->toks[i], 0, err);

		if (!rc)
			rc = ps_keypair_find_pubkey(
			    m->toks[i], X509_get0_pubkey(lc->x), &kp, err);
		if (rc && !strcmp(err->code, "no-such-key")) {
			ps_err_clear(err);
			continue;
		}
		if (!rc)
			rc = ps_signer_key(m->toks[i], kp.id, kp.id_len,
					   &lc->key, err);
		ps_keypair_free(&kp);
		return rc;
	}
	return ps_err_set(err, PS_EXIT_FAIL, "verify-no-key",
			  "put the token with the new key in, or leave out "
			  "--verify-login",
			  "the key of certificate %s is on no token: the "
			  "login that verifies it needs its own key",
			  serial ? serial : "?");
}

int ps_jip_login_cert_own(struct ps_jip_login_cert *lc, const json_t *item,
			  const char *cert_file, struct ps_err *err)
{
	struct ps_pool_module *m =
	    ps_pool_module(&lc->pool, lc->pool.module, NULL, NULL, err);

	if (!m)
		return err->status;
	lc->x = cert_file ? cert_from_file(cert_file, err)
			  : cert_on_tokens(m, item, err);
	if (!lc->x)
		return err->status;
	return own_key(lc, m, ps_json_str(item, "serial_hex"), err);
}

/* The passphrase of an encrypted key, read once from its source. */
struct key_pw {
	const char *source;
	struct ps_err *err;
	int failed;
};

static int key_pw_cb(char *buf, int size, int rwflag, void *u)
{
	struct key_pw *p = u;
	char *pw = NULL;
	size_t n;

	(void)rwflag;
	if (p->failed ||
	    ps_secret_read(p->source ? p->source : "prompt",
			   "passphrase of the client key: ", &pw, p->err)) {
		p->failed = 1;
		return -1;
	}
	n = strlen(pw);
	if (n > (size_t)size)
		n = (size_t)size;
	memcpy(buf, pw, n);
	ps_secret_free(pw);
	return (int)n;
}

static EVP_PKEY *key_from_file(const char *path, const char *pw_source,
			       struct ps_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char buf[16384];
	struct key_pw pw = { pw_source, err, 0 };
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
	EVP_PKEY *k = NULL;
	BIO *b;

	if (fd >= 0 && ps_file_check_safe(fd, path, 1, err)) {
		close(fd);
		return NULL;
	}
	if (fd >= 0)
		close(fd);
	b = n > 0 ? BIO_new_mem_buf(buf, (int)n) : NULL;
	if (b)
		k = PEM_read_bio_PrivateKey(b, NULL, key_pw_cb, &pw);
	if (b && !k && !pw.failed) {
		BIO_reset(b);
		k = d2i_PrivateKey_bio(b, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!k && !pw.failed)
		ps_err_set(err, PS_EXIT_USAGE, "client-key",
			   "give the private key of --client-cert (PEM or "
			   "DER), and its passphrase with "
			   "--client-key-password",
			   "cannot read the client key %s", path);
	return k;
}

int ps_jip_login_cert_files(struct ps_jip_login_cert *lc, const char *cert_path,
			    const char *key_path, const char *pw_source,
			    struct ps_err *err)
{
	memset(lc, 0, sizeof(*lc));
	if (!cert_path || !key_path)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--client-cert and --client-key go "
				  "together");
	lc->x = cert_from_file(cert_path, err);
	if (!lc->x)
		return err->status;
	lc->key = key_from_file(key_path, pw_source, err);
	if (!lc->key)
		return err->status;
	if (X509_check_private_key(lc->x, lc->key) != 1)
		return ps_err_set(err, PS_EXIT_USAGE, "client-key",
				  "give the key that belongs to the "
				  "certificate",
				  "the client key %s is not the key of %s",
				  key_path, cert_path);
	return 0;
}

void ps_jip_login_cert_free(struct ps_jip_login_cert *lc)
{
	EVP_PKEY_free(lc->key);
	X509_free(lc->x);
	ps_pool_free(&lc->pool);
	lc->key = NULL;
	lc->x = NULL;
}
