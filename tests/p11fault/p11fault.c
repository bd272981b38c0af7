/*
 * p11fault - a PKCS#11 fault-injection shim for the psrenew test suite.
 *
 * The shim dlopen()s a real PKCS#11 module (SoftHSM2 by default) and exports
 * only C_GetFunctionList.  Every entry of the returned CK_FUNCTION_LIST
 * forwards to the real module unless one of the P11FAULT_* environment
 * variables asks for a fault.  See README.md next to this file.
 *
 * Build:
 *   cc -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared \
 *      $(pkg-config --cflags p11-kit-1) -o p11fault.so p11fault.c -ldl
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define DEFAULT_OBJECT_SIZE 2048UL
#define MAX_RULES 64
#define MAX_MECHS 64

/* ------------------------------------------------------------------------ */
/* Function table                                                           */
/* ------------------------------------------------------------------------ */

/* Every PKCS#11 v2.40 function, in CK_FUNCTION_LIST order. */
#define P11F_FUNCTIONS(X)                                                    \
    X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList)          \
    X(C_GetSlotList) X(C_GetSlotInfo) X(C_GetTokenInfo)                      \
    X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN)  \
    X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions)     \
    X(C_GetSessionInfo) X(C_GetOperationState) X(C_SetOperationState)        \
    X(C_Login) X(C_Logout) X(C_CreateObject) X(C_CopyObject)                 \
    X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue)             \
    X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects)             \
    X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate)   \
    X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt) X(C_DecryptUpdate)       \
    X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate)          \
    X(C_DigestKey) X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate)  \
    X(C_SignFinal) X(C_SignRecoverInit) X(C_SignRecover) X(C_VerifyInit)     \
    X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal) X(C_VerifyRecoverInit)    \
    X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)     \
    X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey)         \
    X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey)          \
    X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)               \
    X(C_CancelFunction) X(C_WaitForSlotEvent)

enum fn_id {
#define X_ENUM(name) FN_##name,
    P11F_FUNCTIONS(X_ENUM)
#undef X_ENUM
    FN_COUNT
};

static const char *const fn_names[FN_COUNT] = {
#define X_NAME(name) #name,
    P11F_FUNCTIONS(X_NAME)
#undef X_NAME
};

/*
 * What a function operates on; decides the P11FAULT_REMOVED behaviour.
 * K_GLOBAL functions (C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList)
 * are not counted in the "total" that P11FAULT_FAIL_ANY numbers against.
 */
enum kind { K_GLOBAL, K_NONE, K_SLOT, K_SESSION };

/* ------------------------------------------------------------------------ */
/* Name tables                                                              */
/* ------------------------------------------------------------------------ */

struct named {
    const char *name;
    unsigned long value;
};

#define NAMED(x) { #x, x }

static const struct named rv_names[] = {
    NAMED(CKR_OK), NAMED(CKR_CANCEL), NAMED(CKR_HOST_MEMORY),
    NAMED(CKR_SLOT_ID_INVALID), NAMED(CKR_GENERAL_ERROR),
    NAMED(CKR_FUNCTION_FAILED), NAMED(CKR_ARGUMENTS_BAD),
    NAMED(CKR_CANT_LOCK), NAMED(CKR_ATTRIBUTE_READ_ONLY),
    NAMED(CKR_ATTRIBUTE_SENSITIVE), NAMED(CKR_ATTRIBUTE_TYPE_INVALID),
    NAMED(CKR_ATTRIBUTE_VALUE_INVALID), NAMED(CKR_ACTION_PROHIBITED),
    NAMED(CKR_DATA_INVALID), NAMED(CKR_DATA_LEN_RANGE),
    NAMED(CKR_DEVICE_ERROR), NAMED(CKR_DEVICE_MEMORY),
    NAMED(CKR_DEVICE_REMOVED), NAMED(CKR_FUNCTION_CANCELED),
    NAMED(CKR_FUNCTION_NOT_SUPPORTED), NAMED(CKR_KEY_HANDLE_INVALID),
    NAMED(CKR_KEY_SIZE_RANGE), NAMED(CKR_KEY_TYPE_INCONSISTENT),
    NAMED(CKR_KEY_FUNCTION_NOT_PERMITTED), NAMED(CKR_MECHANISM_INVALID),
    NAMED(CKR_MECHANISM_PARAM_INVALID), NAMED(CKR_OBJECT_HANDLE_INVALID),
    NAMED(CKR_OPERATION_ACTIVE), NAMED(CKR_OPERATION_NOT_INITIALIZED),
    NAMED(CKR_PIN_INCORRECT), NAMED(CKR_PIN_INVALID),
    NAMED(CKR_PIN_LEN_RANGE), NAMED(CKR_PIN_EXPIRED), NAMED(CKR_PIN_LOCKED),
    NAMED(CKR_SESSION_CLOSED), NAMED(CKR_SESSION_COUNT),
    NAMED(CKR_SESSION_HANDLE_INVALID), NAMED(CKR_SESSION_READ_ONLY),
    NAMED(CKR_SESSION_EXISTS), NAMED(CKR_SIGNATURE_INVALID),
    NAMED(CKR_SIGNATURE_LEN_RANGE), NAMED(CKR_TEMPLATE_INCOMPLETE),
    NAMED(CKR_TEMPLATE_INCONSISTENT), NAMED(CKR_TOKEN_NOT_PRESENT),
    NAMED(CKR_TOKEN_NOT_RECOGNIZED), NAMED(CKR_TOKEN_WRITE_PROTECTED),
    NAMED(CKR_USER_ALREADY_LOGGED_IN), NAMED(CKR_USER_NOT_LOGGED_IN),
    NAMED(CKR_USER_PIN_NOT_INITIALIZED), NAMED(CKR_USER_TYPE_INVALID),
    NAMED(CKR_RANDOM_NO_RNG), NAMED(CKR_DOMAIN_PARAMS_INVALID),
    NAMED(CKR_CURVE_NOT_SUPPORTED), NAMED(CKR_BUFFER_TOO_SMALL),
    NAMED(CKR_CRYPTOKI_NOT_INITIALIZED),
    NAMED(CKR_CRYPTOKI_ALREADY_INITIALIZED), NAMED(CKR_FUNCTION_REJECTED),
};

static const struct named mech_names[] = {
    NAMED(CKM_RSA_PKCS_KEY_PAIR_GEN), NAMED(CKM_RSA_PKCS),
    NAMED(CKM_RSA_X_509), NAMED(CKM_RSA_PKCS_OAEP), NAMED(CKM_RSA_PKCS_PSS),
    NAMED(CKM_SHA1_RSA_PKCS), NAMED(CKM_SHA224_RSA_PKCS),
    NAMED(CKM_SHA256_RSA_PKCS), NAMED(CKM_SHA384_RSA_PKCS),
    NAMED(CKM_SHA512_RSA_PKCS), NAMED(CKM_SHA1_RSA_PKCS_PSS),
    NAMED(CKM_SHA224_RSA_PKCS_PSS), NAMED(CKM_SHA256_RSA_PKCS_PSS),
    NAMED(CKM_SHA384_RSA_PKCS_PSS), NAMED(CKM_SHA512_RSA_PKCS_PSS),
    NAMED(CKM_EC_KEY_PAIR_GEN), NAMED(CKM_ECDSA), NAMED(CKM_ECDSA_SHA1),
    NAMED(CKM_ECDSA_SHA224), NAMED(CKM_ECDSA_SHA256),
    NAMED(CKM_ECDSA_SHA384), NAMED(CKM_ECDSA_SHA512),
    NAMED(CKM_ECDH1_DERIVE), NAMED(CKM_EC_EDWARDS_KEY_PAIR_GEN),
    NAMED(CKM_EDDSA), NAMED(CKM_SHA_1), NAMED(CKM_SHA224), NAMED(CKM_SHA256),
    NAMED(CKM_SHA384), NAMED(CKM_SHA512), NAMED(CKM_AES_KEY_GEN),
    NAMED(CKM_AES_ECB), NAMED(CKM_AES_CBC), NAMED(CKM_AES_CBC_PAD),
    NAMED(CKM_AES_GCM), NAMED(CKM_AES_KEY_WRAP),
    NAMED(CKM_GENERIC_SECRET_KEY_GEN),
};

static const struct named token_flag_names[] = {
    NAMED(CKF_RNG), NAMED(CKF_WRITE_PROTECTED), NAMED(CKF_LOGIN_REQUIRED),
    NAMED(CKF_USER_PIN_INITIALIZED), NAMED(CKF_RESTORE_KEY_NOT_NEEDED),
    NAMED(CKF_CLOCK_ON_TOKEN), NAMED(CKF_PROTECTED_AUTHENTICATION_PATH),
    NAMED(CKF_DUAL_CRYPTO_OPERATIONS), NAMED(CKF_TOKEN_INITIALIZED),
    NAMED(CKF_SECONDARY_AUTHENTICATION), NAMED(CKF_USER_PIN_COUNT_LOW),
    NAMED(CKF_USER_PIN_FINAL_TRY), NAMED(CKF_USER_PIN_LOCKED),
    NAMED(CKF_USER_PIN_TO_BE_CHANGED), NAMED(CKF_SO_PIN_COUNT_LOW),
    NAMED(CKF_SO_PIN_FINAL_TRY), NAMED(CKF_SO_PIN_LOCKED),
    NAMED(CKF_SO_PIN_TO_BE_CHANGED),
};

#define TABLE(t) (t), (sizeof(t) / sizeof((t)[0]))

/* ------------------------------------------------------------------------ */
/* Configuration and state                                                  */
/* ------------------------------------------------------------------------ */

struct rule {
    enum fn_id fn;
    unsigned long nth; /* 0 = every call */
    CK_RV code;
};

static struct config {
    char module[PATH_MAX];
    struct rule rules[MAX_RULES];
    size_t nrules;
    int any_set;
    unsigned long any_nth; /* 0 = every call */
    CK_RV any_code;
    char count_file[PATH_MAX];
    int capacity_set;
    CK_ULONG capacity;
    CK_ULONG object_size;
    int free_set;
    CK_ULONG free_memory;
    int removed;
    int remove_after_set;
    unsigned long remove_after;
    CK_MECHANISM_TYPE hidden[MAX_MECHS];
    size_t nhidden;
    CK_FLAGS token_flags;
    int label_set;
    CK_UTF8CHAR label[32];
    int verbose;
    unsigned long delay_ms[FN_COUNT]; /* per function, milliseconds */
    unsigned long delay_all_ms;       /* every counted call */
    int rsa_max_set;
    CK_ULONG rsa_max_bits;
} cfg;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long calls[FN_COUNT];
static unsigned long total_calls;
/* C_Login calls per token (by its real label, spaces as %20). */
#define MAX_LOGIN_TOKENS 32
static struct {
    char label[3 * 32 + 1];
    unsigned long n;
} login_tokens[MAX_LOGIN_TOKENS];
static size_t n_login_tokens;
static int loaded;
static void *real_handle;
static CK_FUNCTION_LIST_PTR real;

/* ------------------------------------------------------------------------ */
/* Parsing helpers                                                          */
/* ------------------------------------------------------------------------ */

static int parse_ulong(const char *s, int base, unsigned long *out)
{
    char *end;

    if (s == NULL || *s == '\0' || *s == '-' || isspace((unsigned char)*s))
        return -1;
    *out = strtoul(s, &end, base);
    return *end == '\0' ? 0 : -1;
}

/* A symbolic name from the table, or a 0x... hex number. */
static int parse_named(const struct named *tab, size_t n, const char *s,
                       unsigned long *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tab[i].name, s) == 0) {
            *out = tab[i].value;
            return 0;
        }
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && s[2] != '\0')
        return parse_ulong(s + 2, 16, out);
    return -1;
}

/* Symbolic name of rv, or its hex value written into buf. */
static const char *rv_name(CK_RV rv, char buf[static 24])
{
    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
        if (rv_names[i].value == rv)
            return rv_names[i].name;
    snprintf(buf, 24, "0x%lx", (unsigned long)rv);
    return buf;
}

static int parse_function(const char *s, enum fn_id *out)
{
    for (int i = 0; i < FN_COUNT; i++) {
        if (strcmp(fn_names[i], s) == 0 || strcmp(fn_names[i] + 2, s) == 0) {
            *out = (enum fn_id)i;
            return 0;
        }
    }
    return -1;
}

/* "N" (1-based) or "*" (every call, stored as 0). */
static int parse_nth(const char *s, unsigned long *out)
{
    if (strcmp(s, "*") == 0) {
        *out = 0;
        return 0;
    }
    return parse_ulong(s, 10, out) == 0 && *out > 0 ? 0 : -1;
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int bad(const char *var, const char *what, const char *item)
{
    fprintf(stderr, "p11fault: %s: %s '%s'\n", var, what, item);
    return -1;
}

/* Calls item() for every non-empty comma-separated element of env var. */
static int for_each_item(const char *var, int (*item)(const char *, char *))
{
    const char *val = getenv(var);
    char *copy, *save = NULL;
    int rc = 0;

    if (val == NULL || *val == '\0')
        return 0;
    copy = strdup(val);
    if (copy == NULL)
        return bad(var, "out of memory parsing", val);
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (*tok != '\0')
            rc = item(var, tok);
    }
    free(copy);
    return rc;
}

/* FUNCTION:N:CODE */
static int fail_item(const char *var, char *tok)
{
    char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    struct rule r;
    unsigned long code;

    if (c2 == NULL)
        return bad(var, "expected FUNCTION:N:CODE, got", tok);
    *c1 = *c2 = '\0';
    if (parse_function(trim(tok), &r.fn) != 0)
        return bad(var, "unknown function", tok);
    if (parse_nth(trim(c1 + 1), &r.nth) != 0)
        return bad(var, "bad call number (want N>=1 or *)", c1 + 1);
    if (parse_named(TABLE(rv_names), trim(c2 + 1), &code) != 0)
        return bad(var, "unknown return code", c2 + 1);
    if (cfg.nrules == MAX_RULES)
        return bad(var, "too many entries at", tok);
    r.code = code;
    cfg.rules[cfg.nrules++] = r;
    return 0;
}

static int mech_item(const char *var, char *tok)
{
    unsigned long m;

    if (parse_named(TABLE(mech_names), tok, &m) != 0)
        return bad(var, "unknown mechanism", tok);
    if (cfg.nhidden == MAX_MECHS)
        return bad(var, "too many entries at", tok);
    cfg.hidden[cfg.nhidden++] = m;
    return 0;
}

static int flag_item(const char *var, char *tok)
{
    unsigned long f;

    if (parse_named(TABLE(token_flag_names), tok, &f) != 0)
        return bad(var, "unknown token flag", tok);
    cfg.token_flags |= f;
    return 0;
}

/* FUNCTION:MS or *:MS */
static int delay_item(const char *var, char *tok)
{
    char *c = strchr(tok, ':');
    enum fn_id fn;
    unsigned long ms;

    if (c == NULL)
        return bad(var, "expected FUNCTION:MS, got", tok);
    *c = '\0';
    if (parse_ulong(trim(c + 1), 10, &ms) != 0 || ms > 3600000UL)
        return bad(var, "bad delay in milliseconds", c + 1);
    if (strcmp(trim(tok), "*") == 0) {
        cfg.delay_all_ms = ms;
        return 0;
    }
    if (parse_function(trim(tok), &fn) != 0)
        return bad(var, "unknown function", tok);
    cfg.delay_ms[fn] = ms;
    return 0;
}

static int parse_fail_any(void)
{
    const char *var = "P11FAULT_FAIL_ANY", *val = getenv(var);
    char buf[128], *colon;
    unsigned long code;

    if (val == NULL || *val == '\0')
        return 0;
    if (strlen(val) >= sizeof(buf))
        return bad(var, "value too long", val);
    strcpy(buf, val);
    colon = strchr(buf, ':');
    if (colon == NULL)
        return bad(var, "expected N:CODE, got", val);
    *colon = '\0';
    if (parse_nth(trim(buf), &cfg.any_nth) != 0)
        return bad(var, "bad call number (want N>=1 or *)", buf);
    if (parse_named(TABLE(rv_names), trim(colon + 1), &code) != 0)
        return bad(var, "unknown return code", colon + 1);
    cfg.any_code = code;
    cfg.any_set = 1;
    return 0;
}

/* Optional unsigned integer variable; *set tells whether it was given. */
static int parse_number_var(const char *var, int *set, unsigned long *out)
{
    const char *val = getenv(var);

    *set = 0;
    if (val == NULL || *val == '\0')
        return 0;
    if (parse_ulong(val, 0, out) != 0)
        return bad(var, "not a non-negative integer:", val);
    *set = 1;
    return 0;
}

static int copy_path_var(const char *var, const char *dflt, char *dst)
{
    const char *val = getenv(var);

    if (val == NULL || *val == '\0')
        val = dflt;
    if (strlen(val) >= PATH_MAX)
        return bad(var, "path too long", val);
    strcpy(dst, val);
    return 0;
}

static int parse_label(void)
{
    const char *val = getenv("P11FAULT_TOKEN_LABEL");
    size_t len;

    cfg.label_set = val != NULL;
    if (val == NULL)
        return 0;
    len = strlen(val);
    memset(cfg.label, ' ', sizeof(cfg.label));
    memcpy(cfg.label, val, len < sizeof(cfg.label) ? len : sizeof(cfg.label));
    return 0;
}

static int parse_flags_and_switches(void)
{
    const char *removed = getenv("P11FAULT_REMOVED");
    const char *verbose = getenv("P11FAULT_VERBOSE");
    unsigned long size;
    int size_set;

    cfg.removed = removed != NULL && *removed && strcmp(removed, "0") != 0;
    cfg.verbose = verbose != NULL && *verbose && strcmp(verbose, "0") != 0;
    if (parse_number_var("P11FAULT_OBJECT_SIZE", &size_set, &size) != 0)
        return -1;
    cfg.object_size = size_set ? size : DEFAULT_OBJECT_SIZE;
    return for_each_item("P11FAULT_TOKEN_FLAGS", flag_item);
}

static int load_config(void)
{
    memset(&cfg, 0, sizeof(cfg));
    if (copy_path_var("P11FAULT_MODULE", DEFAULT_MODULE, cfg.module) != 0 ||
        copy_path_var("P11FAULT_COUNT_FILE", "", cfg.count_file) != 0 ||
        for_each_item("P11FAULT_FAIL", fail_item) != 0 ||
        parse_fail_any() != 0 ||
        parse_number_var("P11FAULT_CAPACITY", &cfg.capacity_set,
                         &cfg.capacity) != 0 ||
        parse_number_var("P11FAULT_FREE_MEMORY", &cfg.free_set,
                         &cfg.free_memory) != 0 ||
        parse_number_var("P11FAULT_REMOVE_AFTER", &cfg.remove_after_set,
                         &cfg.remove_after) != 0 ||
        for_each_item("P11FAULT_HIDE_MECHS", mech_item) != 0 ||
        for_each_item("P11FAULT_DELAY", delay_item) != 0 ||
        parse_number_var("P11FAULT_RSA_MAX_BITS", &cfg.rsa_max_set,
                         &cfg.rsa_max_bits) != 0 ||
        parse_flags_and_switches() != 0 || parse_label() != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Call counting and fault decisions                                        */
/* ------------------------------------------------------------------------ */

static int removed_at(unsigned long call_number)
{
    return cfg.removed ||
           (cfg.remove_after_set && call_number > cfg.remove_after);
}

/* Is the token "pulled out" right now (after the current call was counted)? */
static int token_removed(void)
{
    unsigned long t;

    pthread_mutex_lock(&count_lock);
    t = total_calls;
    pthread_mutex_unlock(&count_lock);
    return removed_at(t);
}

static CK_RV inject(enum fn_id fn, unsigned long n, CK_RV rv)
{
    char buf[24];

    if (cfg.verbose)
        fprintf(stderr, "p11fault: %s call %lu -> %s\n", fn_names[fn], n,
                rv_name(rv, buf));
    return rv;
}

/* A slow token: each call waits as a round trip to a USB token would. */
static void delay(enum fn_id fn, enum kind kind)
{
    unsigned long ms = cfg.delay_ms[fn];
    struct timespec ts;

    if (ms == 0 && kind != K_GLOBAL)
        ms = cfg.delay_all_ms;
    if (ms == 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/*
 * Called first by every entry point: counts the call and returns the fault
 * to inject, or CKR_OK to go on.
 */
static CK_RV enter(enum fn_id fn, enum kind kind)
{
    unsigned long n, t = 0;

    pthread_mutex_lock(&count_lock);
    n = ++calls[fn];
    if (kind != K_GLOBAL)
        t = ++total_calls;
    pthread_mutex_unlock(&count_lock);
    delay(fn, kind);

    for (size_t i = 0; i < cfg.nrules; i++) {
        const struct rule *r = &cfg.rules[i];
        if (r->fn == fn && (r->nth == 0 || r->nth == n))
            return inject(fn, n, r->code);
    }
    if (kind == K_GLOBAL)
        return CKR_OK;
    if (cfg.any_set && (cfg.any_nth == 0 || cfg.any_nth == t))
        return inject(fn, n, cfg.any_code);
    if (removed_at(t) && kind == K_SLOT)
        return inject(fn, n, CKR_TOKEN_NOT_PRESENT);
    if (removed_at(t) && kind == K_SESSION)
        return inject(fn, n, CKR_DEVICE_REMOVED);
    return CKR_OK;
}

static void write_counts(void)
{
    unsigned long snap[FN_COUNT], total;
    char tmp[PATH_MAX + 32];
    FILE *f;

    if (cfg.count_file[0] == '\0')
        return;
    pthread_mutex_lock(&count_lock);
    memcpy(snap, calls, sizeof(snap));
    total = total_calls;
    pthread_mutex_unlock(&count_lock);

    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", cfg.count_file, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "p11fault: cannot write %s\n", tmp);
        return;
    }
    for (int i = 0; i < FN_COUNT; i++)
        if (snap[i] != 0)
            fprintf(f, "%s %lu\n", fn_names[i], snap[i]);
    pthread_mutex_lock(&count_lock);
    for (size_t i = 0; i < n_login_tokens; i++)
        fprintf(f, "C_Login@%s %lu\n", login_tokens[i].label,
                login_tokens[i].n);
    pthread_mutex_unlock(&count_lock);
    fprintf(f, "total %lu\n", total);
    if (fclose(f) != 0 || rename(tmp, cfg.count_file) != 0) {
        fprintf(stderr, "p11fault: cannot write %s\n", cfg.count_file);
        remove(tmp);
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers for mechanisms and capacity                                      */
/* ------------------------------------------------------------------------ */

static int mech_hidden(CK_MECHANISM_TYPE m)
{
    for (size_t i = 0; i < cfg.nhidden; i++)
        if (cfg.hidden[i] == m)
            return 1;
    return 0;
}

static CK_RV check_mechanism(CK_MECHANISM_PTR mech)
{
    return mech != NULL && mech_hidden(mech->mechanism)
               ? CKR_MECHANISM_INVALID
               : CKR_OK;
}

/* Value of CKA_TOKEN in a template: 1, 0, or dflt when absent. */
static CK_ULONG template_token(CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
                               CK_ULONG dflt)
{
    for (CK_ULONG i = 0; tmpl != NULL && i < count; i++) {
        if (tmpl[i].type == CKA_TOKEN && tmpl[i].pValue != NULL &&
            tmpl[i].ulValueLen == sizeof(CK_BBOOL))
            return *(CK_BBOOL *)tmpl[i].pValue ? 1 : 0;
    }
    return dflt;
}

/* Token objects visible to this application on slot, via a temp session. */
static int count_objects(CK_SLOT_ID slot, CK_ULONG *count)
{
    CK_SESSION_HANDLE h;
    CK_OBJECT_HANDLE buf[64];
    CK_ULONG n = 0;
    CK_RV rv;

    if (real->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h) !=
        CKR_OK)
        return -1;
    *count = 0;
    rv = real->C_FindObjectsInit(h, NULL, 0);
    while (rv == CKR_OK) {
        rv = real->C_FindObjects(h, buf, sizeof(buf) / sizeof(buf[0]), &n);
        if (rv != CKR_OK || n == 0)
            break;
        *count += n;
    }
    if (rv == CKR_OK)
        real->C_FindObjectsFinal(h);
    real->C_CloseSession(h);
    return rv == CKR_OK ? 0 : -1;
}

/* CKR_DEVICE_MEMORY if creating new_objects token objects would overflow. */
static CK_RV check_capacity(CK_SESSION_HANDLE session, CK_ULONG new_objects)
{
    CK_SESSION_INFO info;
    CK_ULONG count;

    if (!cfg.capacity_set || new_objects == 0)
        return CKR_OK;
    if (real->C_GetSessionInfo(session, &info) != CKR_OK ||
        count_objects(info.slotID, &count) != 0)
        return CKR_OK; /* let the real module report the problem */
    if (count + new_objects > cfg.capacity) {
        if (cfg.verbose)
            fprintf(stderr, "p11fault: token full (%lu + %lu > %lu)\n",
                    count, new_objects, cfg.capacity);
        return CKR_DEVICE_MEMORY;
    }
    return CKR_OK;
}

static void adjust_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_ULONG count;

    if (cfg.capacity_set && count_objects(slot, &count) == 0) {
        CK_ULONG left = count < cfg.capacity ? cfg.capacity - count : 0;
        info->ulFreePublicMemory = left * cfg.object_size;
        info->ulFreePrivateMemory = left * cfg.object_size;
        info->ulTotalPublicMemory = cfg.capacity * cfg.object_size;
        info->ulTotalPrivateMemory = cfg.capacity * cfg.object_size;
    }
    if (cfg.free_set) {
        info->ulFreePublicMemory = cfg.free_memory;
        info->ulFreePrivateMemory = cfg.free_memory;
    }
    info->flags |= cfg.token_flags;
    if (cfg.label_set)
        memcpy(info->label, cfg.label, sizeof(info->label));
}

/* ------------------------------------------------------------------------ */
/* Plain forwarders                                                         */
/* ------------------------------------------------------------------------ */

#define FWD(kind, name, params, args)                                        \
    static CK_RV fw_##name params                                            \
    {                                                                        \
        CK_RV rv = enter(FN_##name, kind);                                   \
        return rv != CKR_OK ? rv : real->name args;                          \
    }

/*
 * Calls that end an operation whatever they return (C_FindObjectsFinal,
 * and C_Sign, C_Encrypt, C_DigestFinal, ... on any error but
 * CKR_BUFFER_TOO_SMALL, PKCS#11 2.40 section 5): an injected fault ends the
 * real module's operation too, so that the next C_*Init finds none active,
 * as it would on a real token. The real call is made and its result
 * dropped; a length query (pOut NULL) is followed by the real call with a
 * buffer of that length.
 */
#define FWD_END(kind, name, params, args)                                    \
    static CK_RV fw_##name params                                            \
    {                                                                        \
        CK_RV rv = enter(FN_##name, kind);                                   \
        if (rv == CKR_OK)                                                    \
            return real->name args;                                          \
        (void)real->name args;                                               \
        return rv;                                                           \
    }
#define FWD_END_OUT(name, params, args, argsbuf)                             \
    static CK_RV fw_##name params                                            \
    {                                                                        \
        CK_RV rv = enter(FN_##name, K_SESSION);                              \
        CK_BYTE_PTR buf;                                                     \
        if (rv == CKR_OK)                                                    \
            return real->name args;                                          \
        if (real->name args == CKR_OK && pOut == NULL && pulOutLen &&        \
            (buf = malloc(*pulOutLen + 1)) != NULL) {                        \
            (void)real->name argsbuf;                                        \
            free(buf);                                                       \
        }                                                                    \
        return rv;                                                           \
    }

/* Takes pMechanism: hidden mechanisms are refused. */
#define FWD_MECH(name, params, args)                                         \
    static CK_RV fw_##name params                                            \
    {                                                                        \
        CK_RV rv = enter(FN_##name, K_SESSION);                              \
        if (rv == CKR_OK)                                                    \
            rv = check_mechanism(pMechanism);                                \
        return rv != CKR_OK ? rv : real->name args;                          \
    }

/* Takes pMechanism and creates one object from pTemplate/ulCount. */
#define FWD_MECH_NEW(name, params, args)                                     \
    static CK_RV fw_##name params                                            \
    {                                                                        \
        CK_RV rv = enter(FN_##name, K_SESSION);                              \
        if (rv == CKR_OK)                                                    \
            rv = check_mechanism(pMechanism);                                \
        if (rv == CKR_OK)                                                    \
            rv = check_capacity(hSession,                                    \
                                template_token(pTemplate, ulCount, 0));      \
        return rv != CKR_OK ? rv : real->name args;                          \
    }

#define SESS CK_SESSION_HANDLE hSession

FWD(K_GLOBAL, C_GetInfo, (CK_INFO_PTR pInfo), (pInfo))
FWD(K_SLOT, C_InitToken,
    (CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
     CK_UTF8CHAR_PTR pLabel),
    (slotID, pPin, ulPinLen, pLabel))
FWD(K_SESSION, C_InitPIN, (SESS, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen),
    (hSession, pPin, ulPinLen))
FWD(K_SESSION, C_SetPIN,
    (SESS, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
     CK_ULONG ulNewLen),
    (hSession, pOldPin, ulOldLen, pNewPin, ulNewLen))
FWD(K_SLOT, C_OpenSession,
    (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
     CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession),
    (slotID, flags, pApplication, Notify, phSession))
FWD(K_SESSION, C_CloseSession, (SESS), (hSession))
FWD(K_SLOT, C_CloseAllSessions, (CK_SLOT_ID slotID), (slotID))
FWD(K_SESSION, C_GetSessionInfo, (SESS, CK_SESSION_INFO_PTR pInfo),
    (hSession, pInfo))
FWD(K_SESSION, C_GetOperationState,
    (SESS, CK_BYTE_PTR pState, CK_ULONG_PTR pulStateLen),
    (hSession, pState, pulStateLen))
FWD(K_SESSION, C_SetOperationState,
    (SESS, CK_BYTE_PTR pState, CK_ULONG ulStateLen, CK_OBJECT_HANDLE hEncKey,
     CK_OBJECT_HANDLE hAuthKey),
    (hSession, pState, ulStateLen, hEncKey, hAuthKey))
FWD(K_SESSION, C_Logout, (SESS), (hSession))
FWD(K_SESSION, C_DestroyObject, (SESS, CK_OBJECT_HANDLE hObject),
    (hSession, hObject))
FWD(K_SESSION, C_GetObjectSize,
    (SESS, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize),
    (hSession, hObject, pulSize))
FWD(K_SESSION, C_GetAttributeValue,
    (SESS, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount),
    (hSession, hObject, pTemplate, ulCount))
FWD(K_SESSION, C_SetAttributeValue,
    (SESS, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount),
    (hSession, hObject, pTemplate, ulCount))
FWD(K_SESSION, C_FindObjectsInit,
    (SESS, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),
    (hSession, pTemplate, ulCount))
FWD(K_SESSION, C_FindObjects,
    (SESS, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMax,
     CK_ULONG_PTR pulCount),
    (hSession, phObject, ulMax, pulCount))
FWD_END(K_SESSION, C_FindObjectsFinal, (SESS), (hSession))

/* in -> out(len) shaped calls: Encrypt, Decrypt, Digest, Sign, ... */
#define FWD_INOUT(name)                                                      \
    FWD_END_OUT(name,                                                        \
                (SESS, CK_BYTE_PTR pIn, CK_ULONG ulInLen, CK_BYTE_PTR pOut,  \
                 CK_ULONG_PTR pulOutLen),                                    \
                (hSession, pIn, ulInLen, pOut, pulOutLen),                   \
                (hSession, pIn, ulInLen, buf, pulOutLen))
/* out(len) shaped calls: EncryptFinal, SignFinal, ... */
#define FWD_OUT(name)                                                        \
    FWD_END_OUT(name, (SESS, CK_BYTE_PTR pOut, CK_ULONG_PTR pulOutLen),      \
                (hSession, pOut, pulOutLen), (hSession, buf, pulOutLen))
/* in shaped calls: DigestUpdate, SignUpdate, ... */
#define FWD_IN(name)                                                         \
    FWD_END(K_SESSION, name, (SESS, CK_BYTE_PTR pIn, CK_ULONG ulInLen),      \
            (hSession, pIn, ulInLen))
/* mechanism + key initialisers */
#define FWD_INIT(name)                                                       \
    FWD_MECH(name, (SESS, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
             (hSession, pMechanism, hKey))

FWD_INIT(C_EncryptInit)
FWD_INOUT(C_Encrypt)
FWD_INOUT(C_EncryptUpdate)
FWD_OUT(C_EncryptFinal)
FWD_INIT(C_DecryptInit)
FWD_INOUT(C_Decrypt)
FWD_INOUT(C_DecryptUpdate)
FWD_OUT(C_DecryptFinal)
FWD_MECH(C_DigestInit, (SESS, CK_MECHANISM_PTR pMechanism),
         (hSession, pMechanism))
FWD_INOUT(C_Digest)
FWD_IN(C_DigestUpdate)
FWD(K_SESSION, C_DigestKey, (SESS, CK_OBJECT_HANDLE hKey), (hSession, hKey))
FWD_OUT(C_DigestFinal)
FWD_INIT(C_SignInit)
FWD_INOUT(C_Sign)
FWD_IN(C_SignUpdate)
FWD_OUT(C_SignFinal)
FWD_INIT(C_SignRecoverInit)
FWD_INOUT(C_SignRecover)
FWD_INIT(C_VerifyInit)
FWD_END(K_SESSION, C_Verify,
    (SESS, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
     CK_ULONG ulSignatureLen),
    (hSession, pData, ulDataLen, pSignature, ulSignatureLen))
FWD_IN(C_VerifyUpdate)
FWD_IN(C_VerifyFinal)
FWD_INIT(C_VerifyRecoverInit)
FWD_INOUT(C_VerifyRecover)
FWD_INOUT(C_DigestEncryptUpdate)
FWD_INOUT(C_DecryptDigestUpdate)
FWD_INOUT(C_SignEncryptUpdate)
FWD_INOUT(C_DecryptVerifyUpdate)
FWD_MECH_NEW(C_GenerateKey,
             (SESS, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
              CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),
             (hSession, pMechanism, pTemplate, ulCount, phKey))
FWD_MECH(C_WrapKey,
         (SESS, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
          CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey,
          CK_ULONG_PTR pulWrappedKeyLen),
         (hSession, pMechanism, hWrappingKey, hKey, pWrappedKey,
          pulWrappedKeyLen))
FWD_MECH_NEW(C_UnwrapKey,
             (SESS, CK_MECHANISM_PTR pMechanism,
              CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
              CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
              CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),
             (hSession, pMechanism, hUnwrappingKey, pWrappedKey,
              ulWrappedKeyLen, pTemplate, ulCount, phKey))
FWD_MECH_NEW(C_DeriveKey,
             (SESS, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
              CK_OBJECT_HANDLE_PTR phKey),
             (hSession, pMechanism, hBaseKey, pTemplate, ulCount, phKey))
FWD_IN(C_SeedRandom)
FWD(K_SESSION, C_GenerateRandom, (SESS, CK_BYTE_PTR pData, CK_ULONG ulLen),
    (hSession, pData, ulLen))
FWD(K_SESSION, C_GetFunctionStatus, (SESS), (hSession))
FWD(K_SESSION, C_CancelFunction, (SESS), (hSession))
FWD(K_NONE, C_WaitForSlotEvent,
    (CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved),
    (flags, pSlot, pReserved))

/* ------------------------------------------------------------------------ */
/* Forwarders with fault logic                                              */
/* ------------------------------------------------------------------------ */

static CK_RV fw_C_Initialize(CK_VOID_PTR pInitArgs)
{
    CK_RV rv = enter(FN_C_Initialize, K_GLOBAL);

    return rv != CKR_OK ? rv : real->C_Initialize(pInitArgs);
}

static CK_RV fw_C_Finalize(CK_VOID_PTR pReserved)
{
    CK_RV rv = enter(FN_C_Finalize, K_GLOBAL);

    if (rv == CKR_OK)
        rv = real->C_Finalize(pReserved);
    write_counts();
    return rv;
}

static CK_RV fw_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                              CK_ULONG_PTR pulCount)
{
    CK_RV rv = enter(FN_C_GetSlotList, K_NONE);

    if (rv != CKR_OK)
        return rv;
    if (tokenPresent && token_removed()) {
        if (pulCount == NULL)
            return CKR_ARGUMENTS_BAD;
        *pulCount = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(tokenPresent, pSlotList, pulCount);
}

static CK_RV fw_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    CK_RV rv = enter(FN_C_GetSlotInfo, K_NONE);

    if (rv == CKR_OK)
        rv = real->C_GetSlotInfo(slotID, pInfo);
    if (rv == CKR_OK && token_removed())
        pInfo->flags &= ~CKF_TOKEN_PRESENT;
    return rv;
}

static CK_RV fw_C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
    CK_RV rv = enter(FN_C_GetTokenInfo, K_SLOT);

    if (rv == CKR_OK)
        rv = real->C_GetTokenInfo(slotID, pInfo);
    if (rv == CKR_OK)
        adjust_token_info(slotID, pInfo);
    return rv;
}

/* Real list minus hidden mechanisms, with the usual length-query rules. */
static CK_RV filtered_mechanisms(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR out,
                                 CK_ULONG_PTR pulCount)
{
    CK_MECHANISM_TYPE_PTR all;
    CK_ULONG n = 0, kept = 0;
    CK_RV rv = real->C_GetMechanismList(slotID, NULL, &n);

    if (rv != CKR_OK)
        return rv;
    all = calloc(n ? n : 1, sizeof(*all));
    if (all == NULL)
        return CKR_HOST_MEMORY;
    rv = real->C_GetMechanismList(slotID, all, &n);
    if (rv != CKR_OK) {
        free(all);
        return rv == CKR_BUFFER_TOO_SMALL ? CKR_FUNCTION_FAILED : rv;
    }
    for (CK_ULONG i = 0; i < n; i++)
        if (!mech_hidden(all[i]))
            all[kept++] = all[i];
    if (out != NULL && *pulCount < kept)
        rv = CKR_BUFFER_TOO_SMALL;
    else if (out != NULL)
        memcpy(out, all, kept * sizeof(*all));
    *pulCount = kept;
    free(all);
    return rv;
}

static CK_RV fw_C_GetMechanismList(CK_SLOT_ID slotID,
                                   CK_MECHANISM_TYPE_PTR pMechanismList,
                                   CK_ULONG_PTR pulCount)
{
    CK_RV rv = enter(FN_C_GetMechanismList, K_SLOT);

    if (rv != CKR_OK)
        return rv;
    if (cfg.nhidden == 0 || pulCount == NULL)
        return real->C_GetMechanismList(slotID, pMechanismList, pulCount);
    return filtered_mechanisms(slotID, pMechanismList, pulCount);
}

static CK_RV fw_C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                                   CK_MECHANISM_INFO_PTR pInfo)
{
    CK_RV rv = enter(FN_C_GetMechanismInfo, K_SLOT);

    if (rv == CKR_OK && mech_hidden(type))
        rv = CKR_MECHANISM_INVALID;
    if (rv == CKR_OK)
        rv = real->C_GetMechanismInfo(slotID, type, pInfo);
    if (rv == CKR_OK && cfg.rsa_max_set && type == CKM_RSA_PKCS_KEY_PAIR_GEN &&
        pInfo != NULL && pInfo->ulMaxKeySize > cfg.rsa_max_bits)
        pInfo->ulMaxKeySize = cfg.rsa_max_bits;
    return rv;
}

/* A key pair larger than P11FAULT_RSA_MAX_BITS: the template's value is
 * outside what the "device" supports (PKCS#11 2.40, CKR_KEY_SIZE_RANGE). */
static CK_RV check_rsa_bits(CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                            CK_ULONG count)
{
    if (!cfg.rsa_max_set || mech == NULL ||
        mech->mechanism != CKM_RSA_PKCS_KEY_PAIR_GEN)
        return CKR_OK;
    for (CK_ULONG i = 0; i < count; i++)
        if (tmpl[i].type == CKA_MODULUS_BITS &&
            tmpl[i].ulValueLen == sizeof(CK_ULONG) && tmpl[i].pValue &&
            *(CK_ULONG *)tmpl[i].pValue > cfg.rsa_max_bits)
            return inject(FN_C_GenerateKeyPair, 0, CKR_KEY_SIZE_RANGE);
    return CKR_OK;
}

/* The real label of the session's token, trimmed, spaces and '%' as %XX;
 * "?" when the session is unknown. */
static void session_label(CK_SESSION_HANDLE hSession, char *out)
{
    CK_SESSION_INFO si;
    CK_TOKEN_INFO ti;
    size_t n = sizeof(ti.label), k = 0;

    if (real->C_GetSessionInfo(hSession, &si) != CKR_OK ||
        real->C_GetTokenInfo(si.slotID, &ti) != CKR_OK) {
        strcpy(out, "?");
        return;
    }
    while (n > 0 && ti.label[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (ti.label[i] == ' ' || ti.label[i] == '%')
            k += (size_t)sprintf(out + k, "%%%02X", ti.label[i]);
        else
            out[k++] = (char)ti.label[i];
    }
    out[k] = '\0';
}

/* Counts a C_Login call against the session's token. */
static void count_login(CK_SESSION_HANDLE hSession)
{
    char label[sizeof(login_tokens[0].label)];
    size_t i;

    session_label(hSession, label);
    pthread_mutex_lock(&count_lock);
    for (i = 0; i < n_login_tokens; i++)
        if (strcmp(login_tokens[i].label, label) == 0)
            break;
    if (i == n_login_tokens && i < MAX_LOGIN_TOKENS) {
        strcpy(login_tokens[i].label, label);
        n_login_tokens++;
    }
    if (i < n_login_tokens)
        login_tokens[i].n++;
    pthread_mutex_unlock(&count_lock);
}

static CK_RV fw_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                        CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    CK_RV rv = enter(FN_C_Login, K_SESSION);

    count_login(hSession);

    if (rv == CKR_OK && userType == CKU_USER &&
        (cfg.token_flags & CKF_USER_PIN_LOCKED))
        rv = CKR_PIN_LOCKED;
    return rv != CKR_OK ? rv
                        : real->C_Login(hSession, userType, pPin, ulPinLen);
}

static CK_RV fw_C_CreateObject(CK_SESSION_HANDLE hSession,
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                               CK_OBJECT_HANDLE_PTR phObject)
{
    CK_RV rv = enter(FN_C_CreateObject, K_SESSION);

    if (rv == CKR_OK)
        rv = check_capacity(hSession, template_token(pTemplate, ulCount, 0));
    return rv != CKR_OK
               ? rv
               : real->C_CreateObject(hSession, pTemplate, ulCount, phObject);
}

/* A copy is a token object if the template says so, else like its source. */
static CK_ULONG copy_is_token(CK_SESSION_HANDLE hSession,
                              CK_OBJECT_HANDLE hObject,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    CK_BBOOL token = CK_FALSE;
    CK_ATTRIBUTE attr = { CKA_TOKEN, &token, sizeof(token) };
    CK_ULONG t = template_token(pTemplate, ulCount, 2);

    if (t != 2)
        return t;
    if (real->C_GetAttributeValue(hSession, hObject, &attr, 1) != CKR_OK)
        return 0;
    return token ? 1 : 0;
}

static CK_RV fw_C_CopyObject(CK_SESSION_HANDLE hSession,
                             CK_OBJECT_HANDLE hObject,
                             CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                             CK_OBJECT_HANDLE_PTR phNewObject)
{
    CK_RV rv = enter(FN_C_CopyObject, K_SESSION);

    if (rv == CKR_OK)
        rv = check_capacity(
            hSession, copy_is_token(hSession, hObject, pTemplate, ulCount));
    return rv != CKR_OK ? rv
                        : real->C_CopyObject(hSession, hObject, pTemplate,
                                             ulCount, phNewObject);
}

static CK_RV fw_C_GenerateKeyPair(
    CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
    CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
    CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
    CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey)
{
    CK_RV rv = enter(FN_C_GenerateKeyPair, K_SESSION);

    if (rv == CKR_OK)
        rv = check_mechanism(pMechanism);
    if (rv == CKR_OK)
        rv = check_rsa_bits(pMechanism, pPublicKeyTemplate,
                            ulPublicKeyAttributeCount);
    if (rv == CKR_OK)
        rv = check_capacity(
            hSession,
            template_token(pPublicKeyTemplate, ulPublicKeyAttributeCount, 0) +
                template_token(pPrivateKeyTemplate,
                               ulPrivateKeyAttributeCount, 0));
    if (rv != CKR_OK)
        return rv;
    return real->C_GenerateKeyPair(
        hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount,
        pPrivateKeyTemplate, ulPrivateKeyAttributeCount, phPublicKey,
        phPrivateKey);
}

static CK_RV fw_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    return C_GetFunctionList(ppFunctionList);
}

/* ------------------------------------------------------------------------ */
/* Module entry point                                                       */
/* ------------------------------------------------------------------------ */

static CK_FUNCTION_LIST shim_list = {
    .version = { 2, 40 },
#define X_ENTRY(name) .name = fw_##name,
    P11F_FUNCTIONS(X_ENTRY)
#undef X_ENTRY
};

static int load_real_module(void)
{
    CK_C_GetFunctionList get_list;
    char buf[24];
    CK_RV rv;

    real_handle = dlopen(cfg.module, RTLD_NOW | RTLD_LOCAL);
    if (real_handle == NULL) {
        fprintf(stderr, "p11fault: cannot load %s: %s\n", cfg.module,
                dlerror());
        return -1;
    }
    get_list = (CK_C_GetFunctionList)dlsym(real_handle, "C_GetFunctionList");
    rv = get_list ? get_list(&real) : CKR_FUNCTION_NOT_SUPPORTED;
    if (rv != CKR_OK || real == NULL) {
        fprintf(stderr, "p11fault: %s: C_GetFunctionList failed: %s\n",
                cfg.module, rv_name(rv, buf));
        dlclose(real_handle);
        real_handle = NULL;
        real = NULL;
        return -1;
    }
    return 0;
}

/* Reads the environment and loads the real module, once per process. */
static int ensure_loaded(void)
{
    int ok;

    pthread_mutex_lock(&init_lock);
    if (!loaded && load_config() == 0 && load_real_module() == 0) {
        loaded = 1;
        atexit(write_counts);
    }
    ok = loaded;
    pthread_mutex_unlock(&init_lock);
    return ok ? 0 : -1;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    CK_RV rv;

    if (ensure_loaded() != 0)
        return CKR_GENERAL_ERROR;
    rv = enter(FN_C_GetFunctionList, K_GLOBAL);
    if (rv != CKR_OK)
        return rv;
    if (ppFunctionList == NULL)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &shim_list;
    return CKR_OK;
}
