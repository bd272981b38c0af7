/* The common part of make bench's floor programs (tests/bench): plain
 * PKCS#11 through dlopen, nothing of libpsrenew. floor_open loads the
 * module (C_GetFunctionList, C_Initialize), finds the token by its label
 * (C_GetSlotList twice, C_GetTokenInfo up to the match), opens a session
 * and, given a PIN file, a read-write one and logs in. Any failure ends the
 * program with exit status 1 and a message naming FLOOR_NAME. */
#ifndef FLOOR_H
#define FLOOR_H

#ifndef FLOOR_NAME
#error "define FLOOR_NAME (the program's name) before including floor.h"
#endif

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;

static inline void check(CK_RV rv, const char *what)
{
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, FLOOR_NAME ": %s: CKR 0x%lx\n", what, (unsigned long)rv);
		exit(1);
	}
}

static inline void floor_die(const char *what, const char *arg)
{
	fprintf(stderr, FLOOR_NAME ": %s%s\n", what, arg ? arg : "");
	exit(1);
}

static inline CK_SLOT_ID find_slot(const char *label)
{
	CK_ULONG n = 0;
	CK_SLOT_ID *slots;
	size_t len = strlen(label);

	check(f->C_GetSlotList(CK_TRUE, NULL, &n), "C_GetSlotList");
	slots = calloc(n ? n : 1, sizeof(*slots));
	check(f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		size_t j = len;

		check(f->C_GetTokenInfo(slots[i], &ti), "C_GetTokenInfo");
		if (len > 32 || memcmp(ti.label, label, len) != 0)
			continue;
		while (j < 32 && ti.label[j] == ' ')
			j++;
		if (j == 32) {
			CK_SLOT_ID slot = slots[i];

			free(slots);
			return slot;
		}
	}
	floor_die("no token labelled ", label);
	return 0;
}

/* The session of the token labelled label in module, logged in with the
 * PIN of pin_file unless that is NULL. */
static inline CK_SESSION_HANDLE floor_open(const char *module, const char *label,
					   const char *pin_file)
{
	CK_C_GetFunctionList gfl;
	CK_SESSION_HANDLE s;
	CK_FLAGS flags = CKF_SERIAL_SESSION;
	char pin[256];
	FILE *pf;
	void *mod = dlopen(module, RTLD_NOW | RTLD_LOCAL);

	if (!mod)
		floor_die(dlerror(), NULL);
	*(void **)&gfl = dlsym(mod, "C_GetFunctionList");
	if (!gfl)
		floor_die("no C_GetFunctionList in ", module);
	check(gfl(&f), "C_GetFunctionList");
	check(f->C_Initialize(NULL), "C_Initialize");
	if (pin_file) {
		pf = fopen(pin_file, "r");
		if (!pf || !fgets(pin, sizeof(pin), pf))
			floor_die("cannot read ", pin_file);
		fclose(pf);
		flags |= CKF_RW_SESSION;
	}
	check(f->C_OpenSession(find_slot(label), flags, NULL, NULL, &s), "C_OpenSession");
	if (pin_file) {
		check(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strcspn(pin, "\r\n")),
		      "C_Login");
		memset(pin, 0, sizeof(pin));
	}
	return s;
}

#endif
