/*
 * tokinfo - print the C_GetTokenInfo fields that pkcs11-tool does not show.
 * Test helper for tests/cli/p11fault.bats.
 *
 * Usage: tokinfo MODULE [USER-PIN]
 *   Loads MODULE, takes the first slot with a token, optionally logs in as
 *   CKU_USER (so the module sees private objects), and prints
 *     label=<label, trailing blanks removed>
 *     flags=0x<hex>
 *     free_public=<n|unavailable>   free_private=...
 *     total_public=...              total_private=...
 *   one per line.  Exit status: 0 ok, 1 PKCS#11 failure, 2 usage/load error.
 *   With TOKINFO_SKIP_FINALIZE=1 in the environment it exits without calling
 *   C_Finalize or dlclose (to exercise the shim's atexit path).
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -O2 -g $(pkg-config --cflags p11-kit-1) \
 *      -o tokinfo tokinfo.c -ldl
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static void print_ulong(const char *name, CK_ULONG v)
{
    if (v == CK_UNAVAILABLE_INFORMATION)
        printf("%s=unavailable\n", name);
    else
        printf("%s=%lu\n", name, v);
}

static void print_info(const CK_TOKEN_INFO *ti)
{
    int len = (int)sizeof(ti->label);

    while (len > 0 && ti->label[len - 1] == ' ')
        len--;
    printf("label=%.*s\n", len, (const char *)ti->label);
    printf("flags=0x%lx\n", ti->flags);
    print_ulong("free_public", ti->ulFreePublicMemory);
    print_ulong("free_private", ti->ulFreePrivateMemory);
    print_ulong("total_public", ti->ulTotalPublicMemory);
    print_ulong("total_private", ti->ulTotalPrivateMemory);
}

static int fail(const char *what, CK_RV rv)
{
    fprintf(stderr, "tokinfo: %s failed: 0x%lx\n", what, rv);
    return 1;
}

static int run(CK_FUNCTION_LIST_PTR p11, const char *pin)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = sizeof(slots) / sizeof(slots[0]);
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_TOKEN_INFO ti;
    CK_RV rv;

    if ((rv = p11->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
        return fail("C_GetSlotList", rv);
    if (n == 0) {
        fprintf(stderr, "tokinfo: no token present\n");
        return 1;
    }
    if (pin != NULL) {
        rv = p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &h);
        if (rv != CKR_OK)
            return fail("C_OpenSession", rv);
        rv = p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        if (rv != CKR_OK)
            return fail("C_Login", rv);
    }
    if ((rv = p11->C_GetTokenInfo(slots[0], &ti)) != CKR_OK)
        return fail("C_GetTokenInfo", rv);
    print_info(&ti);
    if (h != CK_INVALID_HANDLE)
        p11->C_CloseSession(h);
    return 0;
}

int main(int argc, char **argv)
{
    CK_C_GetFunctionList get_list;
    CK_FUNCTION_LIST_PTR p11;
    CK_RV rv;
    void *lib;
    int status;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODULE [USER-PIN]\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "tokinfo: %s\n", dlerror());
        return 2;
    }
    get_list = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (get_list == NULL || (rv = get_list(&p11)) != CKR_OK) {
        fprintf(stderr, "tokinfo: C_GetFunctionList unavailable\n");
        return 2;
    }
    if ((rv = p11->C_Initialize(NULL)) != CKR_OK)
        return fail("C_Initialize", rv);
    status = run(p11, argc == 3 ? argv[2] : NULL);
    if (getenv("TOKINFO_SKIP_FINALIZE") != NULL)
        return status;
    p11->C_Finalize(NULL);
    dlclose(lib);
    return status;
}
