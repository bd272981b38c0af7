/* The floor of a renewal (make bench, scenario 1): one process that loads
 * the PKCS#11 module, finds the token by its label, opens a read-write
 * session, logs in and generates one RSA key pair on the token, with the
 * attributes ps-renew gives a new key pair (token, private, sensitive, not
 * extractable, CKA_ID, CKA_LABEL). Nothing else: no CSR, no CA, no
 * certificate. Usage: keygen MODULE TOKEN_LABEL PIN_FILE [BITS [COUNT]]
 * COUNT > 1 generates that many key pairs in the same session and prints
 * the seconds of each C_GenerateKeyPair on stdout. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;

static void check(CK_RV rv, const char *what)
{
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, "keygen: %s: CKR 0x%lx\n", what, (unsigned long)rv);
		exit(1);
	}
}

static CK_SLOT_ID find_slot(const char *label)
{
	CK_ULONG n = 0;
	CK_SLOT_ID *slots;
	size_t len = strlen(label);

	check(f->C_GetSlotList(CK_TRUE, NULL, &n), "C_GetSlotList");
	slots = calloc(n ? n : 1, sizeof(*slots));
	check(f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		check(f->C_GetTokenInfo(slots[i], &ti), "C_GetTokenInfo");
		if (len <= 32 && memcmp(ti.label, label, len) == 0) {
			size_t j = len;
			while (j < 32 && ti.label[j] == ' ')
				j++;
			if (j == 32) {
				CK_SLOT_ID s = slots[i];
				free(slots);
				return s;
			}
		}
	}
	fprintf(stderr, "keygen: no token labelled '%s'\n", label);
	exit(1);
}

int main(int argc, char **argv)
{
	CK_C_GetFunctionList gfl;
	CK_SESSION_HANDLE s;
	char pin[256];
	size_t pinlen;
	CK_ULONG bits = argc > 4 ? strtoul(argv[4], NULL, 10) : 2048;
	int count = argc > 5 ? atoi(argv[5]) : 1;
	FILE *pf;
	void *mod;

	if (argc < 4) {
		fprintf(stderr, "usage: keygen MODULE TOKEN_LABEL PIN_FILE [BITS [COUNT]]\n");
		return 2;
	}
	mod = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!mod) {
		fprintf(stderr, "keygen: %s\n", dlerror());
		return 1;
	}
	*(void **)&gfl = dlsym(mod, "C_GetFunctionList");
	if (!gfl) {
		fprintf(stderr, "keygen: no C_GetFunctionList in %s\n", argv[1]);
		return 1;
	}
	check(gfl(&f), "C_GetFunctionList");
	check(f->C_Initialize(NULL), "C_Initialize");
	pf = fopen(argv[3], "r");
	if (!pf || !fgets(pin, sizeof(pin), pf)) {
		fprintf(stderr, "keygen: cannot read %s\n", argv[3]);
		return 1;
	}
	fclose(pf);
	pinlen = strcspn(pin, "\r\n");
	check(f->C_OpenSession(find_slot(argv[2]), CKF_SERIAL_SESSION | CKF_RW_SESSION,
			       NULL, NULL, &s),
	      "C_OpenSession");
	check(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, pinlen), "C_Login");

	for (int k = 0; k < count; k++) {
		CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
		CK_BYTE exp[] = { 0x01, 0x00, 0x01 };
		CK_BYTE id[20];
		char label[64];
		CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
		CK_OBJECT_HANDLE pub, priv;
		struct timespec t0, t1;

		for (size_t i = 0; i < sizeof(id); i++)
			id[i] = (CK_BYTE)rand();
		snprintf(label, sizeof(label), "bench floor %d", k);
		CK_ULONG llen = strlen(label);
		CK_ATTRIBUTE pubt[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &no, sizeof(no) },
			{ CKA_VERIFY, &yes, sizeof(yes) },
			{ CKA_ID, id, sizeof(id) },
			{ CKA_LABEL, label, llen },
			{ CKA_ENCRYPT, &yes, sizeof(yes) },
			{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
			{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		};
		CK_ATTRIBUTE privt[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_SIGN, &yes, sizeof(yes) },
			{ CKA_ID, id, sizeof(id) },
			{ CKA_LABEL, label, llen },
			{ CKA_DECRYPT, &yes, sizeof(yes) },
		};
		clock_gettime(CLOCK_MONOTONIC, &t0);
		check(f->C_GenerateKeyPair(s, &mech, pubt, 8, privt, 8, &pub, &priv),
		      "C_GenerateKeyPair");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (count > 1)
			printf("%.4f\n", (double)(t1.tv_sec - t0.tv_sec) +
						 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	f->C_Logout(s);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return 0;
}
