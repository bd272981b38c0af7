/* Unit tests: ps-token-clean's planning rules (lib/clean.c
 * ps_clean_plan_make): which certificates and keys are removable. Each test
 * puts certificates and key pairs on a SoftHSM2 token of its own
 * (tests/unit/softhsm.h) and reads the plan: the reason, the action and the
 * refusal's code of each group. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <psrenew/clean.h>
#include <psrenew/install.h>
#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>
#include <psrenew/state.h>
#include <psrenew/codec.h>

#include "softhsm.h"

#define DAY 86400L

static char st_dir[] = "/tmp/psrenew-test-clean.XXXXXX";
static struct ps_state st;
static EVP_PKEY *ca_key;
static time_t now;

static int group_setup(void **state)
{
	(void)state;
	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return ca_key ? softhsm_up() : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(ca_key);
	return softhsm_down();
}

/* Every object of the token goes (the test before may have left some). */
static int wipe(struct ps_token *tok)
{
	static const CK_OBJECT_CLASS cls[] = { CKO_CERTIFICATE, CKO_PRIVATE_KEY,
					       CKO_PUBLIC_KEY };
	struct ps_err err;

	ps_err_clear(&err);
	for (size_t c = 0; c < sizeof(cls) / sizeof(*cls); c++) {
		struct ps_tobj *o = NULL;
		size_t n = 0;

		if (ps_token_objects(tok, cls[c], &o, &n, &err))
			return -1;
		for (size_t i = 0; i < n; i++)
			ps_p11_destroy(tok, o[i].handle);
		ps_tobjs_free(o, n);
	}
	return 0;
}

/* An empty token and a fresh state directory for each test. */
static int setup(void **state)
{
	struct ps_err err;

	(void)state;
	now = time(NULL);
	snprintf(st_dir, sizeof(st_dir), "/tmp/psrenew-test-clean.XXXXXX");
	ps_err_clear(&err);
	if (!mkdtemp(st_dir) || ps_state_open(st_dir, NULL, 1, &st, &err))
		return -1;
	return hsm_token() ? wipe(hsm_token()) : 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	ps_state_close(&st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* qcStatements with QcCompliance: what makes a certificate qualified. */
static void add_qc(X509 *x)
{
	static const unsigned char qc[] = {
		0x30, 0x0a, 0x30, 0x08, 0x06, 0x06,
		0x04, 0x00, 0x8e, 0x46, 0x01, 0x01
	};
	ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.3", 1);
	X509_EXTENSION *e;

	assert_true(ASN1_OCTET_STRING_set(v, qc, sizeof(qc)));
	e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, v);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
	ASN1_OBJECT_free(oid);
	ASN1_OCTET_STRING_free(v);
}

enum { COMM = 0, QUAL = 1 };

/* A certificate of type for pub, holder cn, valid from nb to na (days from
 * now), with this serial (two hex digits: 0x10 to 0xff). */
static X509 *make_cert(EVP_PKEY *pub, int type, const char *cn, long nb,
		       long na, long serial)
{
	X509 *x = X509_new();
	X509_NAME *s = X509_NAME_new(), *i = X509_NAME_new();

	assert_non_null(x);
	assert_true(X509_NAME_add_entry_by_txt(
	    s, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(
	    i, "CN", MBSTRING_UTF8, (const unsigned char *)"Clean Test CA", -1,
	    -1, 0));
	assert_true(X509_set_subject_name(x, s));
	assert_true(X509_set_issuer_name(x, i));
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
	assert_non_null(
	    X509_time_adj_ex(X509_getm_notBefore(x), (int)nb, 0, &now));
	assert_non_null(
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)na, 0, &now));
	assert_true(X509_set_pubkey(x, pub));
	if (type == QUAL)
		add_qc(x);
	assert_true(X509_sign(x, ca_key, EVP_sha256()));
	X509_NAME_free(s);
	X509_NAME_free(i);
	return x;
}

/* A key pair generated on the token; its CKA_ID in id. */
static void key_pair(unsigned char id[20], EVP_PKEY **pub)
{
	struct ps_keyspec ks;
	struct ps_keypair kp;
	struct ps_err err;

	ps_err_clear(&err);
	assert_int_equal(ps_keyspec_parse("ec:prime256v1", &ks, &err), 0);
	assert_int_equal(
	    ps_keypair_generate(hsm_token(), &ks, "clean test", &kp, &err), 0);
	assert_int_equal(kp.id_len, 20);
	memcpy(id, kp.id, 20);
	if (pub) {
		*pub = kp.pubkey;
		kp.pubkey = NULL;
	}
	ps_keypair_free(&kp);
}

/* Puts a certificate on the token: with a key pair generated on the token
 * (with_key), or alone (its key in software only). Its CKA_ID in id. */
static void put_cert(int with_key, int type, const char *cn, long nb, long na,
		     long serial, unsigned char id[20])
{
	EVP_PKEY *pub = NULL;
	CK_OBJECT_HANDLE h;
	struct ps_err err;
	X509 *x;

	if (with_key) {
		key_pair(id, &pub);
	} else {
		pub = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		assert_non_null(pub);
		assert_int_equal(ps_pubkey_id(pub, id), 0);
	}
	x = make_cert(pub, type, cn, nb, na, serial);
	ps_err_clear(&err);
	assert_int_equal(
	    ps_token_store_cert(hsm_token(), x, id, 20, "clean test", &h, &err),
	    0);
	X509_free(x);
	EVP_PKEY_free(pub);
}

static void opts_init(struct ps_clean_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->for_room = -1;
	o->st = &st;
	o->now = now;
}

static void plan(const struct ps_clean_opts *o, struct ps_clean_plan *p)
{
	struct ps_err err;

	ps_err_clear(&err);
	assert_int_equal(ps_clean_plan_make(hsm_token(), o, p, &err), 0);
}

/* The group of the certificate with this serial. */
static const struct ps_clean_item *cert_item(const struct ps_clean_plan *p,
					     long serial)
{
	char hex[8];

	snprintf(hex, sizeof(hex), "%02lX", serial);
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].cert >= 0 &&
		    !strcmp(p->inv.c[p->items[i].cert].cert.serial_hex, hex))
			return &p->items[i];
	fail_msg("no certificate %s in the plan", hex);
	return NULL;
}

/* The group of the key pair alone with this CKA_ID. */
static const struct ps_clean_item *key_item(const struct ps_clean_plan *p,
					    const unsigned char id[20])
{
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].cert < 0 && p->items[i].id_len == 20 &&
		    !memcmp(p->items[i].id, id, 20))
			return &p->items[i];
	fail_msg("no key pair alone in the plan");
	return NULL;
}

static const char *const action_names[] = { "keep", "remove", "refuse" };

/* The group is of reason, its action is action, a refusal is code. */
#define assert_group(it, r, a, c) assert_group_at(it, r, a, c, __LINE__)
static void assert_group_at(const struct ps_clean_item *it, int reason,
			    int action, const char *code, int line)
{
	assert_non_null(it);
	if (it->reason != reason || it->action != action ||
	    (code && strcmp(it->why.code, code) != 0))
		fail_msg("line %d: %s %s %s (%s), not %s %s %s", line,
			 ps_clean_reason_name(it->reason),
			 action_names[it->action], it->why.code, it->why.msg,
			 ps_clean_reason_name(reason), action_names[action],
			 code ? code : "");
}

static char *hex_id(const unsigned char id[20])
{
	char *h = ps_hex(id, 20);

	assert_non_null(h);
	return h;
}

/* A request file of the store, in state s, naming key id. */
static void request(const char *name, const char *s, const unsigned char id[20],
		    int key_kept)
{
	char *h = hex_id(id);
	json_t *r = json_pack("{s:s, s:s, s:s}", "state", s, "key_id", h,
			      "token", hsm_token()->uri);
	struct ps_err err;

	if (key_kept)
		json_object_set_new(r, "key_kept", json_true());
	ps_err_clear(&err);
	assert_int_equal(ps_state_save(&st, name, r, &err), 0);
	json_decref(r);
	free(h);
}

/* An expired certificate with its key goes; a valid one stays. */
static void test_expired_removable(void **state)
{
	unsigned char e[20], v[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;
	const struct ps_clean_item *it;
	size_t valid;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, QUAL, "Jan Novak", -400, -35, 0x10, e);
	put_cert(1, QUAL, "Jan Novak", -10, 300, 0x11, v);
	opts_init(&o);
	plan(&o, &p);
	it = cert_item(&p, 0x10);
	assert_group(it, PS_CLEAN_R_EXPIRED, PS_CLEAN_REMOVE, NULL);
	assert_int_equal(it->nkeys, 2);
	assert_false(it->keys_stay);
	assert_group(cert_item(&p, 0x11), PS_CLEAN_R_VALID, PS_CLEAN_KEEP,
		     NULL);
	assert_int_equal(ps_clean_planned(&p, &valid), 3);
	assert_int_equal(valid, 0);
	assert_int_equal(ps_clean_refused(&p), 0);
	ps_clean_plan_free(&p);
}

/* A newer valid certificate of the same holder and type, its key on the
 * token, supersedes the old one: the old one goes (qualified: no JIP
 * rule). Another holder's or type's newer certificate supersedes
 * nothing. */
static void test_superseded_removable(void **state)
{
	unsigned char a[20], b[20], c[20], d[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, QUAL, "Jan Novak", -300, 60, 0x20, a);
	put_cert(1, QUAL, "Jan Novak", -5, 360, 0x21, b);
	put_cert(1, QUAL, "Petra Dvorakova", -300, 60, 0x22, c);
	put_cert(1, COMM, "Petra Dvorakova", -5, 360, 0x23, d);
	opts_init(&o);
	plan(&o, &p);
	assert_group(cert_item(&p, 0x20), PS_CLEAN_R_SUPERSEDED,
		     PS_CLEAN_REMOVE, NULL);
	assert_group(cert_item(&p, 0x21), PS_CLEAN_R_VALID, PS_CLEAN_KEEP,
		     NULL);
	assert_group(cert_item(&p, 0x22), PS_CLEAN_R_VALID, PS_CLEAN_KEEP,
		     NULL);
	assert_group(cert_item(&p, 0x23), PS_CLEAN_R_VALID, PS_CLEAN_KEEP,
		     NULL);
	ps_clean_plan_free(&p);
}

/* A newer certificate written alone (its key is not on the token) can
 * sign nothing: it supersedes nothing, the old one stays. */
static void test_successor_without_key(void **state)
{
	unsigned char a[20], b[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, QUAL, "Jan Novak", -300, 60, 0x30, a);
	put_cert(0, QUAL, "Jan Novak", -5, 360, 0x31, b);
	opts_init(&o);
	plan(&o, &p);
	assert_group(cert_item(&p, 0x30), PS_CLEAN_R_VALID, PS_CLEAN_KEEP,
		     NULL);
	assert_int_equal(ps_clean_planned(&p, NULL), 0);
	ps_clean_plan_free(&p);
}

/* A valid certificate goes only with --force-valid; even then never the
 * last valid one of its holder and type: of two selected, the newest
 * stays. */
static void test_last_valid_kept(void **state)
{
	unsigned char a[20], b[20];
	char *ids[2];
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, QUAL, "Jan Novak", -300, 60, 0x40, a);
	put_cert(1, QUAL, "Jan Novak", -5, 360, 0x41, b);
	ids[0] = hex_id(a);
	ids[1] = hex_id(b);
	opts_init(&o);
	o.ids = &ids[1];
	o.nids = 1;
	plan(&o, &p);
	assert_group(cert_item(&p, 0x41), PS_CLEAN_R_VALID, PS_CLEAN_REFUSE,
		     "refused-valid");
	ps_clean_plan_free(&p);

	/* the old one, valid with its key, stays: the new one may go */
	o.force_valid = 1;
	plan(&o, &p);
	assert_group(cert_item(&p, 0x41), PS_CLEAN_R_VALID, PS_CLEAN_REMOVE,
		     NULL);
	ps_clean_plan_free(&p);

	o.ids = ids;
	o.nids = 2;
	plan(&o, &p);
	assert_group(cert_item(&p, 0x40), PS_CLEAN_R_SUPERSEDED,
		     PS_CLEAN_REMOVE, NULL);
	assert_group(cert_item(&p, 0x41), PS_CLEAN_R_VALID, PS_CLEAN_REFUSE,
		     "refused-last-valid");
	ps_clean_plan_free(&p);
	free(ids[0]);
	free(ids[1]);
}

/* Only a certificate with its key counts as one that stays: the last
 * valid certificate with a key is kept though an older one without a key
 * is valid too. */
static void test_last_valid_needs_key(void **state)
{
	unsigned char a[20], b[20];
	char *id;
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(0, QUAL, "Jan Novak", -100, 200, 0x48, a);
	put_cert(1, QUAL, "Jan Novak", -5, 360, 0x49, b);
	id = hex_id(b);
	opts_init(&o);
	o.ids = &id;
	o.nids = 1;
	o.force_valid = 1;
	plan(&o, &p);
	assert_group(cert_item(&p, 0x49), PS_CLEAN_R_VALID, PS_CLEAN_REFUSE,
		     "refused-last-valid");
	ps_clean_plan_free(&p);
	free(id);
}

/* A key an unfinished request waits on stays: alone, or under an expired
 * certificate (which may go alone with --keep-keys). A key pair no
 * request names goes with --orphans; so does one of an installed
 * request. */
static void test_request_keys_kept(void **state)
{
	unsigned char k1[20], k2[20], k3[20], e[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;
	const struct ps_clean_item *it;

	(void)state;
	if (!hsm_token())
		skip();
	key_pair(k1, NULL);
	key_pair(k2, NULL);
	key_pair(k3, NULL);
	put_cert(1, QUAL, "Jan Novak", -400, -35, 0x50, e);
	request("r-pending", "pending", k1, 0);
	request("r-installed", "installed", k3, 0);
	request("r-unsubmitted", "unsubmitted", e, 0);
	opts_init(&o);
	o.select = PS_CLEAN_EXPIRED | PS_CLEAN_ORPHANS;
	plan(&o, &p);
	/* waiting on the CA: no orphan, --orphans leaves it alone */
	it = key_item(&p, k1);
	assert_group(it, PS_CLEAN_R_PENDING_KEY, PS_CLEAN_KEEP, NULL);
	assert_string_equal(it->request_id, "r-pending");
	assert_int_equal(ps_clean_refused(&p), 1);
	assert_group(key_item(&p, k2), PS_CLEAN_R_ORPHAN_KEY, PS_CLEAN_REMOVE,
		     NULL);
	assert_group(key_item(&p, k3), PS_CLEAN_R_ORPHAN_KEY, PS_CLEAN_REMOVE,
		     NULL);
	it = cert_item(&p, 0x50);
	assert_group(it, PS_CLEAN_R_EXPIRED, PS_CLEAN_REFUSE,
		     "refused-pending-key");
	assert_string_equal(it->request_id, "r-unsubmitted");
	ps_clean_plan_free(&p);

	o.keep_keys = 1;
	plan(&o, &p);
	it = cert_item(&p, 0x50);
	assert_group(it, PS_CLEAN_R_EXPIRED, PS_CLEAN_REMOVE, NULL);
	assert_true(it->keys_stay);
	/* the certificate alone, the two orphans with both halves each */
	assert_int_equal(ps_clean_planned(&p, NULL), 1 + 2 + 2);
	ps_clean_plan_free(&p);
}

/* An issued or rejected request's key is for a person to decide on; a
 * rejected request's key_kept key pair is not its own (the normal rules
 * apply). */
static void test_finished_request_keys(void **state)
{
	unsigned char k1[20], k2[20], k3[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	key_pair(k1, NULL);
	key_pair(k2, NULL);
	key_pair(k3, NULL);
	request("r-issued", "issued", k1, 0);
	request("r-rejected", "rejected", k2, 0);
	request("r-kept", "rejected", k3, 1);
	opts_init(&o);
	o.select = PS_CLEAN_ORPHANS;
	plan(&o, &p);
	assert_group(key_item(&p, k1), PS_CLEAN_R_PENDING_KEY, PS_CLEAN_REFUSE,
		     "refused-pending-key");
	assert_group(key_item(&p, k2), PS_CLEAN_R_PENDING_KEY, PS_CLEAN_REFUSE,
		     "refused-pending-key");
	assert_group(key_item(&p, k3), PS_CLEAN_R_ORPHAN_KEY, PS_CLEAN_REMOVE,
		     NULL);
	ps_clean_plan_free(&p);
}

/* --for-room N: the oldest removable groups first, only as many as N
 * renewals need (a token that does not tell its free memory: three
 * objects a renewal); refusals are kept quietly; not enough is
 * token-full and nothing planned. */
static void test_for_room(void **state)
{
	unsigned char e1[20], e2[20], e3[20], e4[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, QUAL, "Jan Novak", -400, -20, 0x62, e2);
	put_cert(1, QUAL, "Petra Dvorakova", -400, -100, 0x61, e1);
	put_cert(1, COMM, "Jan Novak", -400, -10, 0x63, e3);
	put_cert(1, COMM, "Petra Dvorakova", -400, -5, 0x64, e4);
	request("r-e4", "pending", e4, 0);
	opts_init(&o);
	o.for_room = 1;
	plan(&o, &p);
	if (p.have_free) {
		ps_clean_plan_free(&p);
		skip(); /* this SoftHSM tells its free memory */
	}
	assert_int_equal(p.nchosen, 1);
	assert_ptr_equal(&p.items[p.order[0]], cert_item(&p, 0x61));
	assert_int_equal(cert_item(&p, 0x61)->action, PS_CLEAN_REMOVE);
	assert_int_equal(cert_item(&p, 0x62)->action, PS_CLEAN_KEEP);
	assert_int_equal(cert_item(&p, 0x63)->action, PS_CLEAN_KEEP);
	assert_int_equal(cert_item(&p, 0x64)->action, PS_CLEAN_KEEP);
	assert_int_equal(p.quiet_refusals, 1);
	assert_int_equal(ps_clean_planned(&p, NULL), 3);
	assert_int_equal(ps_clean_refused(&p), 0);
	ps_clean_plan_free(&p);

	o.for_room = 2;
	plan(&o, &p);
	assert_int_equal(p.nchosen, 2);
	assert_ptr_equal(&p.items[p.order[1]], cert_item(&p, 0x62));
	assert_int_equal(cert_item(&p, 0x63)->action, PS_CLEAN_KEEP);
	ps_clean_plan_free(&p);

	o.for_room = 4;
	plan(&o, &p);
	assert_int_equal(p.nchosen, 0);
	assert_string_equal(p.room_err.code, "token-full");
	assert_int_equal(ps_clean_planned(&p, NULL), 0);
	ps_clean_plan_free(&p);
}

/* A JIP confirmation file as ps-jip-setserial leaves it. */
static void jip_file(const char *serial)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/jip", st_dir);
	assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/jip/%s.json", st_dir, serial);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"kind\":\"jip\",\"serial_hex\":\"%s\",\"result\":\"set\","
		"\"type\":\"commercial\","
		"\"confirmed_at\":\"2024-01-02T03:04:05Z\"}\n",
		serial);
	assert_int_equal(fclose(f), 0);
}

/* The guide's §7: an old commercial certificate stays until JIP has
 * confirmed its successor (piped in, given, or kept in the state);
 * another serial's confirmation does not do. */
static void test_jip_confirmation(void **state)
{
	unsigned char a[20], b[20];
	struct ps_clean_opts o;
	struct ps_clean_plan p;
	const struct ps_clean_item *it;
	json_t *jip = json_object();

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, COMM, "Jan Novak", -300, 60, 0x70, a);
	put_cert(1, COMM, "Jan Novak", -5, 360, 0x71, b);
	opts_init(&o);
	plan(&o, &p);
	assert_group(cert_item(&p, 0x70), PS_CLEAN_R_SUPERSEDED,
		     PS_CLEAN_REFUSE, "refused-jip-unconfirmed");
	ps_clean_plan_free(&p);

	json_object_set_new(jip, "AA", json_string("stdin"));
	o.jip = jip;
	jip_file("70");
	plan(&o, &p);
	assert_group(cert_item(&p, 0x70), PS_CLEAN_R_SUPERSEDED,
		     PS_CLEAN_REFUSE, "refused-jip-unconfirmed");
	ps_clean_plan_free(&p);

	json_object_set_new(jip, "71", json_string("stdin"));
	plan(&o, &p);
	it = cert_item(&p, 0x70);
	assert_group(it, PS_CLEAN_R_SUPERSEDED, PS_CLEAN_REMOVE, NULL);
	assert_string_equal(it->jip_confirmation, "stdin");
	assert_string_equal(it->jip_serial, "71");
	ps_clean_plan_free(&p);

	o.jip = NULL;
	jip_file("71");
	plan(&o, &p);
	it = cert_item(&p, 0x70);
	assert_group(it, PS_CLEAN_R_SUPERSEDED, PS_CLEAN_REMOVE, NULL);
	assert_string_equal(it->jip_confirmation, "state");
	ps_clean_plan_free(&p);
	json_decref(jip);
}

/* A commercial successor without its key on the token is no successor:
 * the JIP rule does not wait for it, but it does not count as a
 * certificate that stays either. */
static void test_jip_successor_without_key(void **state)
{
	unsigned char a[20], b[20];
	char *id;
	struct ps_clean_opts o;
	struct ps_clean_plan p;

	(void)state;
	if (!hsm_token())
		skip();
	put_cert(1, COMM, "Jan Novak", -300, 60, 0x78, a);
	put_cert(0, COMM, "Jan Novak", -5, 360, 0x79, b);
	id = hex_id(a);
	opts_init(&o);
	o.ids = &id;
	o.nids = 1;
	o.force_valid = 1;
	plan(&o, &p);
	assert_group(cert_item(&p, 0x78), PS_CLEAN_R_VALID, PS_CLEAN_REFUSE,
		     "refused-last-valid");
	ps_clean_plan_free(&p);
	free(id);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_expired_removable),
		T(test_superseded_removable),
		T(test_successor_without_key),
		T(test_last_valid_kept),
		T(test_last_valid_needs_key),
		T(test_request_keys_kept),
		T(test_finished_request_keys),
		T(test_for_room),
		T(test_jip_confirmation),
		T(test_jip_successor_without_key),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
