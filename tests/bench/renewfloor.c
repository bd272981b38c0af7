/* The PKCS#11 floor of one renewal and its install (make bench, scenario
 * "p11calls"; tests/cli/p11-calls.bats): the fewest calls the job takes,
 * as two processes like ps-renew and ps-fetch, plain PKCS#11 through
 * dlopen. Each finds the token by its label (C_GetSlotList twice,
 * C_GetTokenInfo up to the match), opens a read-write session and logs in.
 *   renewfloor renew MODULE LABEL PIN_FILE CERT_ID_HEX
 *     finds the certificate by CKA_CLASS and CKA_ID and reads its value,
 *     looks for leftovers with one template search (CKA_TOKEN false),
 *     generates an RSA-2048 key pair, reads its public key, sets CKA_ID on
 *     both halves, signs 32 bytes (the CSR's signature); prints the new
 *     key's CKA_ID in hex. 19 calls.
 *   renewfloor install MODULE LABEL PIN_FILE KEY_ID_HEX CERT.der
 *     finds the private key by CKA_CLASS and CKA_ID, looks for leftovers
 *     with one template search, writes the certificate (C_CreateObject).
 *     13 calls.
 * Both close their session. No CSR encoding, no CA, no checks.
 *
 * Two more modes give the floor of a renewal beyond the key generation
 * (make bench, scenario "renew": a key pair made beforehand, as with
 * ps-renew --key): the CSR's signature, the CA and the certificate's write.
 *   renewfloor sign MODULE LABEL PIN_FILE KEY_ID_HEX CA [ARG...]
 *     finds the private key by CKA_CLASS and CKA_ID, signs 32 bytes, then
 *     runs the CA command (its output thrown away) and waits for it.
 *   renewfloor both MODULE LABEL PIN_FILE KEY_ID_HEX CERT.der CA [ARG...]
 *     sign, then install CERT.der (issued beforehand for that key): the
 *     whole renewal in one process, one module load and one login. */
#define _POSIX_C_SOURCE 200809L
#define FLOOR_NAME "renewfloor"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floor.h"

static CK_SESSION_HANDLE s;

static size_t unhex(const char *h, unsigned char *out, size_t max)
{
	size_t n = 0;

	for (; h[0] && h[1] && n < max; h += 2) {
		unsigned int b;

		if (sscanf(h, "%2x", &b) != 1)
			break;
		out[n++] = (unsigned char)b;
	}
	return n;
}

/* One search: C_FindObjectsInit, one C_FindObjects, C_FindObjectsFinal. */
static CK_ULONG find(CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *h, CK_ULONG max)
{
	CK_ULONG got = 0;

	check(f->C_FindObjectsInit(s, t, n), "C_FindObjectsInit");
	check(f->C_FindObjects(s, h, max, &got), "C_FindObjects");
	check(f->C_FindObjectsFinal(s), "C_FindObjectsFinal");
	return got;
}

static void leftovers(void)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t = { CKA_TOKEN, &no, sizeof(no) };
	CK_OBJECT_HANDLE h[64];

	find(&t, 1, h, 64);
}

static void renew(const char *id_hex)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 2048, slen = 512;
	CK_BYTE exp[] = { 0x01, 0x00, 0x01 }, id[64], tmp[20] = { 1 }, newid[20];
	CK_BYTE der[8192], mod[1024], e[16], sig[512], tbs[32] = { 0 };
	CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_MECHANISM sign = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_OBJECT_HANDLE cert, pub, priv;
	size_t idlen = unhex(id_hex, id, sizeof(id));
	CK_ATTRIBUTE byid[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, id, idlen } };
	CK_ATTRIBUTE value = { CKA_VALUE, der, sizeof(der) };
	CK_ATTRIBUTE pubt[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },	  { CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },	  { CKA_ID, tmp, sizeof(tmp) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) }, { CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
	};
	CK_ATTRIBUTE privt[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },     { CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) }, { CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },      { CKA_ID, tmp, sizeof(tmp) },
	};
	CK_ATTRIBUTE pubv[] = { { CKA_MODULUS, mod, sizeof(mod) },
				{ CKA_PUBLIC_EXPONENT, e, sizeof(e) } };
	CK_ATTRIBUTE setid = { CKA_ID, newid, sizeof(newid) };

	if (find(byid, 2, &cert, 1) != 1) {
		fprintf(stderr, "renewfloor: no certificate with id %s\n", id_hex);
		exit(1);
	}
	check(f->C_GetAttributeValue(s, cert, &value, 1), "C_GetAttributeValue");
	leftovers();
	check(f->C_GenerateKeyPair(s, &gen, pubt, 6, privt, 6, &pub, &priv), "C_GenerateKeyPair");
	check(f->C_GetAttributeValue(s, pub, pubv, 2), "C_GetAttributeValue");
	/* The floor's own id: any 20 bytes the public key gives. */
	for (size_t i = 0; i < sizeof(newid); i++)
		newid[i] = mod[i + 1] ^ (CK_BYTE)i;
	check(f->C_SetAttributeValue(s, pub, &setid, 1), "C_SetAttributeValue");
	check(f->C_SetAttributeValue(s, priv, &setid, 1), "C_SetAttributeValue");
	check(f->C_SignInit(s, &sign, priv), "C_SignInit");
	check(f->C_Sign(s, tbs, sizeof(tbs), sig, &slen), "C_Sign");
	for (size_t i = 0; i < sizeof(newid); i++)
		printf("%02x", newid[i]);
	printf("\n");
}

/* The DER element at der[*o] (contents at *c, end returned). */
static size_t tlv(const CK_BYTE *der, size_t o, size_t *c)
{
	size_t n = der[o + 1], k = 0;

	if (n >= 0x80) {
		k = n & 0x7f;
		n = 0;
		for (size_t i = 0; i < k; i++)
			n = n << 8 | der[o + 2 + i];
	}
	*c = o + 2 + k;
	return *c + n;
}

/* The subject of a certificate (SoftHSM wants CKA_SUBJECT). */
static size_t subject(const CK_BYTE *der, size_t *at)
{
	size_t c, e, o;

	tlv(der, 0, &c);   /* Certificate */
	tlv(der, c, &o);   /* TBSCertificate: its first element at o */
	if (der[o] == 0xa0) /* [0] version */
		o = tlv(der, o, &c);
	for (int i = 0; i < 4; i++) /* serial, signature, issuer, validity */
		o = tlv(der, o, &c);
	e = tlv(der, o, &c);
	*at = o;
	return e - o;
}

static void install(const char *id_hex, const char *cert_file)
{
	CK_OBJECT_CLASS pk = CKO_PRIVATE_KEY, cc = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BYTE id[64], der[8192];
	size_t idlen = unhex(id_hex, id, sizeof(id)), dlen;
	CK_ATTRIBUTE byid[] = { { CKA_CLASS, &pk, sizeof(pk) }, { CKA_ID, id, idlen } };
	CK_OBJECT_HANDLE key, h;
	size_t at, slen;
	FILE *c = fopen(cert_file, "rb");

	if (!c) {
		fprintf(stderr, "renewfloor: cannot read %s\n", cert_file);
		exit(1);
	}
	dlen = fread(der, 1, sizeof(der), c);
	fclose(c);
	if (find(byid, 2, &key, 1) != 1) {
		fprintf(stderr, "renewfloor: no private key with id %s\n", id_hex);
		exit(1);
	}
	leftovers();
	slen = subject(der, &at);
	CK_ATTRIBUTE t[] = {
		{ CKA_SUBJECT, der + at, slen },
		{ CKA_CLASS, &cc, sizeof(cc) }, { CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
		{ CKA_TOKEN, &yes, sizeof(yes) }, { CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_ID, id, idlen },		{ CKA_VALUE, der, dlen },
	};
	check(f->C_CreateObject(s, t, 7, &h), "C_CreateObject");
}

/* The CSR's signature with the pre-made key, then the CA as a child. */
static void sign_and_ask(const char *id_hex, char **ca)
{
	CK_OBJECT_CLASS pk = CKO_PRIVATE_KEY;
	CK_BYTE id[64], sig[512], tbs[32] = { 0 };
	CK_ULONG slen = sizeof(sig);
	CK_MECHANISM mech = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	size_t idlen = unhex(id_hex, id, sizeof(id));
	CK_ATTRIBUTE byid[] = { { CKA_CLASS, &pk, sizeof(pk) }, { CKA_ID, id, idlen } };
	CK_OBJECT_HANDLE key;
	int st = 0;
	pid_t pid;

	if (find(byid, 2, &key, 1) != 1) {
		fprintf(stderr, "renewfloor: no private key with id %s\n", id_hex);
		exit(1);
	}
	check(f->C_SignInit(s, &mech, key), "C_SignInit");
	check(f->C_Sign(s, tbs, sizeof(tbs), sig, &slen), "C_Sign");
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 1);
		execvp(ca[0], ca);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "renewfloor: the CA %s failed\n", ca[0]);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";
	int is_renew = argc == 6 && !strcmp(m, "renew");
	int is_install = argc == 7 && !strcmp(m, "install");
	int is_sign = argc >= 7 && !strcmp(m, "sign");
	int is_both = argc >= 8 && !strcmp(m, "both");

	if (!is_renew && !is_install && !is_sign && !is_both) {
		fprintf(stderr, "usage: renewfloor renew MODULE LABEL PIN_FILE CERT_ID_HEX\n"
				"       renewfloor install MODULE LABEL PIN_FILE KEY_ID_HEX CERT.der\n"
				"       renewfloor sign MODULE LABEL PIN_FILE KEY_ID_HEX CA [ARG...]\n"
				"       renewfloor both MODULE LABEL PIN_FILE KEY_ID_HEX CERT.der CA "
				"[ARG...]\n");
		return 2;
	}
	s = floor_open(argv[2], argv[3], argv[4]);
	if (is_renew)
		renew(argv[5]);
	else if (is_install)
		install(argv[5], argv[6]);
	else if (is_sign)
		sign_and_ask(argv[5], argv + 6);
	else {
		sign_and_ask(argv[5], argv + 7);
		install(argv[5], argv[6]);
	}
	check(f->C_CloseSession(s), "C_CloseSession");
	f->C_Finalize(NULL);
	return 0;
}
