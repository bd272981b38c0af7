/* The floor of ps-status (make bench, scenario 3): one process that loads
 * the PKCS#11 module (SoftHSM's start-up included), finds the token by its
 * label, opens a session without logging in, makes one C_FindObjects pass
 * over the certificate objects and one C_GetAttributeValue per object
 * (CKA_ID, CKA_LABEL and CKA_VALUE into fixed buffers), and prints the
 * number of certificates and their total DER size. No parsing.
 * Usage: listcerts MODULE TOKEN_LABEL */
#define _POSIX_C_SOURCE 200809L
#define FLOOR_NAME "listcerts"
#include "floor.h"

int main(int argc, char **argv)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE q = { CKA_CLASS, &cls, sizeof(cls) };
	CK_OBJECT_HANDLE *objs = NULL;
	size_t nobj = 0, cap = 0, total = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: listcerts MODULE TOKEN_LABEL\n");
		return 2;
	}
	s = floor_open(argv[1], argv[2], NULL);

	check(f->C_FindObjectsInit(s, &q, 1), "C_FindObjectsInit");
	for (;;) {
		CK_ULONG got = 0;
		if (cap - nobj < 64) {
			cap = cap ? 2 * cap : 256;
			objs = realloc(objs, cap * sizeof(*objs));
		}
		check(f->C_FindObjects(s, objs + nobj, (CK_ULONG)(cap - nobj), &got),
		      "C_FindObjects");
		if (got == 0)
			break;
		nobj += got;
	}
	check(f->C_FindObjectsFinal(s), "C_FindObjectsFinal");

	for (size_t i = 0; i < nobj; i++) {
		static unsigned char id[256], label[256], value[16384];
		CK_ATTRIBUTE a[] = {
			{ CKA_ID, id, sizeof(id) },
			{ CKA_LABEL, label, sizeof(label) },
			{ CKA_VALUE, value, sizeof(value) },
		};
		check(f->C_GetAttributeValue(s, objs[i], a, 3), "C_GetAttributeValue");
		total += a[2].ulValueLen;
	}
	printf("%zu certificates, %zu bytes of DER\n", nobj, total);
	free(objs);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return 0;
}
