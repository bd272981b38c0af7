/* The floor of ps-status (make bench, scenario 3): one process that loads
 * the PKCS#11 module (SoftHSM's start-up included), finds the token by its
 * label, opens a session without logging in, makes one C_FindObjects pass
 * over the certificate objects and one C_GetAttributeValue per object
 * (CKA_ID, CKA_LABEL and CKA_VALUE into fixed buffers), and prints the
 * number of certificates and their total DER size. No parsing.
 * Usage: listcerts MODULE TOKEN_LABEL */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;

static void check(CK_RV rv, const char *what)
{
	if (rv != CKR_OK) {
		fprintf(stderr, "listcerts: %s: CKR 0x%lx\n", what, (unsigned long)rv);
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
	fprintf(stderr, "listcerts: no token labelled '%s'\n", label);
	exit(1);
}

int main(int argc, char **argv)
{
	CK_C_GetFunctionList gfl;
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE q = { CKA_CLASS, &cls, sizeof(cls) };
	CK_OBJECT_HANDLE *objs = NULL;
	size_t nobj = 0, cap = 0, total = 0;
	void *mod;

	if (argc != 3) {
		fprintf(stderr, "usage: listcerts MODULE TOKEN_LABEL\n");
		return 2;
	}
	mod = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!mod) {
		fprintf(stderr, "listcerts: %s\n", dlerror());
		return 1;
	}
	*(void **)&gfl = dlsym(mod, "C_GetFunctionList");
	if (!gfl) {
		fprintf(stderr, "listcerts: no C_GetFunctionList in %s\n", argv[1]);
		return 1;
	}
	check(gfl(&f), "C_GetFunctionList");
	check(f->C_Initialize(NULL), "C_Initialize");
	check(f->C_OpenSession(find_slot(argv[2]), CKF_SERIAL_SESSION, NULL, NULL, &s),
	      "C_OpenSession");

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
