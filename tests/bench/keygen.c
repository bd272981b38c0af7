/* The floor of a renewal (make bench, scenario 1): one process that loads
 * the PKCS#11 module, finds the token by its label, opens a read-write
 * session, logs in and generates one RSA key pair on the token, with the
 * attributes ps-renew gives a new key pair (token, private, sensitive, not
 * extractable, CKA_ID, CKA_LABEL). Nothing else: no CSR, no CA, no
 * certificate. Usage: keygen MODULE TOKEN_LABEL PIN_FILE [BITS [COUNT]]
 * COUNT > 1 generates that many key pairs in the same session and prints
 * the seconds of each C_GenerateKeyPair on stdout. */
#define _POSIX_C_SOURCE 200809L
#define FLOOR_NAME "keygen"
#include <time.h>

#include "floor.h"

int main(int argc, char **argv)
{
	CK_SESSION_HANDLE s;
	CK_ULONG bits = argc > 4 ? strtoul(argv[4], NULL, 10) : 2048;
	int count = argc > 5 ? atoi(argv[5]) : 1;

	if (argc < 4) {
		fprintf(stderr, "usage: keygen MODULE TOKEN_LABEL PIN_FILE [BITS [COUNT]]\n");
		return 2;
	}
	s = floor_open(argv[1], argv[2], argv[3]);

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
