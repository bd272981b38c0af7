/* psrenew: the "mail:" channel, PostSignum's documented route: the request
 * as an e-mail to its electronic registry, S/MIME-signed on the token (by
 * the holder's qualified certificate when there is one, mail_signer.h),
 * the PKCS#10 request attached (.req).
 *   mail:smtp://HOST[:PORT]   STARTTLS when offered (required with a login)
 *   mail:smtps://HOST[:PORT]  TLS from the start
 *   mail:-                    the message on stdout (for sendmail -t)
 * Nothing can be polled: the request stays pending until the certificate
 * comes back by mail or web and "ps-fetch --cert" (or --maildir, --imap)
 * installs it. */
#include <psrenew/ca_driver.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <psrenew/cert.h>
#include <psrenew/http.h>
#include <psrenew/mail.h>
#include <psrenew/mail_signer.h>
#include <psrenew/secret.h>
#include <psrenew/signer.h>
#include <psrenew/codec.h>

#define POSTSIGNUM_REGISTRY "podatelna.postsignum@cpost.cz"

struct mail {
	char *url;	/* NULL: stdout */
	char *password; /* read once per run, wiped at the end */
	char *template_text;
	char signer[128]; /* who signed the last message, for the reply */
};

static const char *opt(const struct ps_ca *ca, const char *key)
{
	return ca->section[0] && ca->cfg
		   ? ps_config_get(ca->cfg, ca->section, key)
		   : NULL;
}

static char *read_template(const char *path, struct ps_err *err)
{
	FILE *f = fopen(path, "re");
	char *s = NULL;
	size_t n;

	if (f) {
		s = calloc(1, 65537);
		n = s ? fread(s, 1, 65536, f) : 0;
		if (s && (n == 65536 || ferror(f))) {
			free(s);
			s = NULL;
		}
		fclose(f);
	}
	if (!s)
		ps_err_set(err, PS_EXIT_USAGE, "bad-config",
			   "template is a UTF-8 text file of at most 64 KiB",
			   "cannot read the mail template %s", path);
	return s;
}

static int mail_open(struct ps_ca *ca, const char *rest, struct ps_err *err)
{
	struct mail *m = calloc(1, sizeof(*m));
	const char *tmpl = opt(ca, "template");

	if (!m)
		return ps_err_nomem(err);
	if (strcmp(rest, "-") == 0) {
		ca->uses_stdout = 1;
	} else if ((!strncmp(rest, "smtp://", 7) ||
		    !strncmp(rest, "smtps://", 8)) &&
		   !strpbrk(rest, " \t?#")) {
		m->url = strdup(rest);
	} else {
		free(m);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
				  "write mail:smtp://HOST[:PORT], "
				  "mail:smtps://HOST[:PORT] or mail:-",
				  "cannot parse the mail channel 'mail:%.80s'",
				  rest);
	}
	if (tmpl && !(m->template_text = read_template(tmpl, err))) {
		free(m->url);
		free(m);
		return PS_EXIT_USAGE;
	}
	ca->priv = m;
	return 0;
}

static void mail_close(struct ps_ca *ca)
{
	struct mail *m = ca->priv;

	if (!m)
		return;
	ps_secret_free(m->password);
	free(m->template_text);
	free(m->url);
	free(m);
}

static int csr_der(const char *pem, unsigned char **der, int *len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	*der = NULL;
	*len = r ? i2d_X509_REQ(r, der) : -1;
	X509_REQ_free(r);
	return *len > 0 ? 0 : -1;
}

static void message_id(char *buf, size_t len)
{
	unsigned char r[12];
	char host[64] = "localhost", hex[25];

	RAND_bytes(r, sizeof(r));
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	ps_hex_to(hex, r, sizeof(r));
	snprintf(buf, len, "psrenew.%s@%s", hex, host);
}

/* The chain of the signer from the CA bundle, when one is given. */
static STACK_OF(X509) * chain_from_bundle(const char *bundle, X509 *leaf)
{
	STACK_OF(X509) *all = NULL, *out = sk_X509_new_null();
	BIO *b = bundle ? BIO_new_file(bundle, "r") : NULL;
	X509 *x, *cur = leaf;

	while (b && out && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		if (!all)
			all = sk_X509_new_null();
		if (!all || !sk_X509_push(all, x))
			X509_free(x);
	}
	BIO_free(b);
	for (int depth = 0; all && out && depth < 8; depth++) {
		X509 *issuer = NULL;

		for (int i = 0; i < sk_X509_num(all) && !issuer; i++)
			if (X509_check_issued(sk_X509_value(all, i), cur) ==
				X509_V_OK &&
			    X509_cmp(sk_X509_value(all, i), cur) != 0)
				issuer = sk_X509_value(all, i);
		if (!issuer || !sk_X509_push(out, issuer))
			break;
		X509_up_ref(issuer);
		cur = issuer;
	}
	sk_X509_pop_free(all, X509_free);
	return out;
}

/* The text's facts: the certificate being renewed, the signer, and the
 * organisation's from [ca.NAME]. */
static void fill_vars(struct ps_ca *ca, const struct ps_cert *c,
		      const struct ps_mail_signer *s, const char *na,
		      const char *file, struct ps_mail_vars *v)
{
	v->name = c->cn ? c->cn : "";
	v->type = c->type == PS_CERT_QUALIFIED ? "kvalifikovaný" : "komerční";
	v->serial = c->serial_hex;
	v->not_after = na;
	v->email = c->email ? c->email : opt(ca, "from");
	v->file = file;
	v->signer_serial = s->serial_hex;
	v->signer_type = s->qualified ? "kvalifikovaný" : "komerční";
	v->contract_number = opt(ca, "contract-number");
	v->organisation = opt(ca, "organisation");
	v->employee_number = opt(ca, "employee-number");
}

static int build(struct ps_ca *ca, const struct ps_ca_request *req, char **msg,
		 size_t *len, char *mid, size_t midlen, const char **to,
		 char **from, struct ps_err *err)
{
	struct mail *m = ca->priv;
	struct ps_cert c;
	struct ps_mail_vars v = { 0 };
	struct ps_mail_msg mm = { 0 };
	struct ps_mail_signer s = { 0 };
	char na[32], file[64];
	char *body = NULL, *subj = NULL;
	unsigned char *der = NULL;
	int der_len = 0, rc;
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	const char *subject_tmpl = opt(ca, "subject");
	const char *sel = ca->sign_with ? ca->sign_with : opt(ca, "sign-with");

	if (!req->tok || !req->old_cert || !req->old_key_id)
		return ps_err_set(err, PS_EXIT_FAIL, "mail", NULL,
				  "the mail channel needs the current "
				  "certificate and its key on the token");
	rc = ps_cert_from_x509(req->old_cert, &c, err);
	if (rc)
		return rc;
	*to = opt(ca, "to") ? opt(ca, "to") : POSTSIGNUM_REGISTRY;
	if (!opt(ca, "from") && !c.email) {
		ps_cert_free(&c);
		return ps_err_set(
		    err, PS_EXIT_USAGE, "bad-config",
		    "set from = ADDRESS in the [ca.NAME] section",
		    "the certificate has no e-mail address to send "
		    "from");
	}
	rc = ps_mail_signer_pick(req->tok, req->old_cert, req->old_key_id,
				 req->old_key_id_len, sel, &s, err);
	if (rc) {
		ps_cert_free(&c);
		return rc;
	}
	/* A copy: the certificate's address goes with c. */
	*from = strdup(opt(ca, "from") ? opt(ca, "from") : c.email);
	ps_time_iso(c.not_after, na, sizeof(na));
	snprintf(file, sizeof(file), "zadost-%.40s.req", c.serial_hex);
	fill_vars(ca, &c, &s, na, file, &v);
	message_id(mid, midlen);
	body = ps_mail_fill(
	    m->template_text ? m->template_text : ps_mail_default_template, &v);
	subj = ps_mail_fill(subject_tmpl ? subject_tmpl
					 : "Žádost o následný certifikát "
					   "PostSignum – {name}",
			    &v);
	if (!*from || !body || !subj ||
	    csr_der(req->csr_pem, &der, &der_len) < 0) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "mail", NULL,
				"cannot prepare the message");
		goto out;
	}
	rc = ps_signer_key(req->tok, s.id, s.id_len, &key, err);
	if (rc)
		goto out;
	mm.from_name = opt(ca, "from-name") ? opt(ca, "from-name") : c.cn;
	mm.from = *from;
	mm.to = *to;
	mm.subject = subj;
	mm.body = body;
	mm.attach_name = file;
	mm.attach_type = "application/pkcs10";
	mm.attach = der;
	mm.attach_len = (size_t)der_len;
	mm.message_id = mid;
	chain = chain_from_bundle(ca->ca_bundle, s.cert);
	rc = ps_mail_build(&mm, s.cert, key, chain, msg, len, err);
	if (!rc)
		snprintf(m->signer, sizeof(m->signer), "%s certificate %s",
			 s.qualified ? "qualified" : "commercial",
			 s.serial_hex);
out:
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	OPENSSL_free(der);
	free(body);
	free(subj);
	ps_mail_signer_free(&s);
	ps_cert_free(&c);
	if (rc) {
		free(*from);
		*from = NULL;
	}
	return rc;
}

static int send_smtp(struct ps_ca *ca, const char *from, const char *to,
		     const char *msg, size_t len, struct ps_err *err)
{
	struct mail *m = ca->priv;
	struct ps_http_opts o = { .ca_bundle = ca->ca_bundle,
				  .timeout = ca->timeout };
	const char *user = opt(ca, "smtp-user");
	const char *pass = opt(ca, "smtp-pass");
	const char *tls = opt(ca, "tls");
	int rc;

	if (user && !m->password) {
		char prompt[128];

		snprintf(prompt, sizeof(prompt),
			 "SMTP password for %.60s: ", user);
		rc = ps_secret_read(pass ? pass : "prompt", prompt,
				    &m->password, err);
		if (rc)
			return rc;
	}
	return ps_smtp_send(&o, m->url, from, to, msg, len, user, m->password,
			    tls && !strcmp(tls, "required"), err);
}

static int mail_submit(struct ps_ca *ca, const struct ps_ca_request *req,
		       struct ps_ca_reply *reply, struct ps_err *err)
{
	struct mail *m = ca->priv;
	const char *to = NULL;
	char *msg = NULL, *from = NULL, mid[160];
	size_t len = 0;
	int rc = build(ca, req, &msg, &len, mid, sizeof(mid), &to, &from, err);

	if (rc)
		return rc;
	if (!m->url) {
		rc = fwrite(msg, 1, len, stdout) == len && fflush(stdout) == 0
			 ? 0
			 : ps_err_set(err, PS_EXIT_FAIL, "output", NULL,
				      "cannot write the message to stdout");
	} else {
		rc = send_smtp(ca, from, to, msg, len, err);
	}
	free(from);
	free(msg);
	if (rc == PS_EXIT_TEMP) {
		reply->status = PS_CA_UNREACHABLE;
		reply->message = strdup(err->msg);
		return 0;
	}
	if (rc == PS_EXIT_REFUSED) {
		reply->status = PS_CA_REJECTED;
		reply->message = strdup(err->msg);
		return 0;
	}
	if (rc)
		return rc;
	reply->status = PS_CA_PENDING;
	if (asprintf(&reply->cookie, "<%s>", mid) < 0)
		reply->cookie = NULL;
	if (asprintf(&reply->message,
		     "sent to %s, signed by the %s; when the CA's e-mail "
		     "brings the certificate, install it with ps-fetch --cert "
		     "FILE or ps-fetch --maildir/--imap",
		     to, m->signer) < 0)
		reply->message = NULL;
	return 0;
}

static int mail_poll(struct ps_ca *ca, const struct ps_ca_request *req,
		     struct ps_ca_reply *reply, struct ps_err *err)
{
	(void)ca;
	(void)err;
	/* Nothing to ask: the answer comes by mail. */
	reply->status = PS_CA_PENDING;
	reply->cookie = req->cookie ? strdup(req->cookie) : NULL;
	reply->delay = 3600;
	reply->message = strdup("waiting for the CA's e-mail: install the "
				"certificate with ps-fetch --cert FILE");
	return 0;
}

const struct ps_ca_driver ps_ca_mail_driver = {
	.prefix = "mail:",
	.needs_token = 1,
	.open = mail_open,
	.submit = mail_submit,
	.poll = mail_poll,
	.close = mail_close,
};
