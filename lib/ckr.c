/* psrenew: PKCS#11 return codes as one-line messages and exit statuses. */
#include <psrenew/ckr.h>

#include <stdio.h>

#include <psrenew/token.h>

struct ckr_info {
	CK_RV rv;
	const char *name;
	int status;
	const char *code;
	const char *text;
	const char *hint;
};

static const char full_hint[] =
    "this is the guide's error 621: free room with ps-token-clean (dry run "
    "first, then --yes), or back up an old certificate as a PFX file and "
    "remove it";
static const char absent_hint[] =
    "insert the token (or reconnect the reader) and run the command again; "
    "nothing was changed that a re-run does not finish";
static const char mech_hint[] =
    "the token's PKCS#11 driver lacks this mechanism (the guide's error "
    "622): install a newer driver for the token";
static const char login_hint[] = "give the PIN with --pin (prompt, env:VAR, "
				 "file:PATH or fd:N)";

#define E(rv, status, code, text, hint)                                        \
	{                                                                      \
		rv, #rv, status, code, text, hint                              \
	}
static const struct ckr_info table[] = {
	E(CKR_OK, 0, "ok", "success", NULL),
	E(CKR_HOST_MEMORY, 1, "no-memory", "out of memory", NULL),
	E(CKR_SLOT_ID_INVALID, 6, "token-absent", "the slot is gone",
	  absent_hint),
	E(CKR_GENERAL_ERROR, 6, "token-error",
	  "the token reported a general error", absent_hint),
	E(CKR_FUNCTION_FAILED, 6, "token-error", "the token could not do it",
	  NULL),
	E(CKR_ARGUMENTS_BAD, 1, "token-rejected",
	  "the module rejected the arguments", NULL),
	E(CKR_ATTRIBUTE_READ_ONLY, 1, "token-rejected",
	  "an attribute is read-only", NULL),
	E(CKR_ATTRIBUTE_SENSITIVE, 1, "token-rejected",
	  "the attribute is sensitive", NULL),
	E(CKR_ATTRIBUTE_TYPE_INVALID, 1, "token-rejected",
	  "the token does not know an attribute", NULL),
	E(CKR_ATTRIBUTE_VALUE_INVALID, 1, "token-rejected",
	  "the token rejected an attribute value", NULL),
	E(CKR_DATA_INVALID, 1, "token-rejected", "the token rejected the data",
	  NULL),
	E(CKR_DATA_LEN_RANGE, 1, "token-rejected",
	  "the data has a length the token rejects", NULL),
	E(CKR_DEVICE_ERROR, 6, "token-error",
	  "the token reported a device error", absent_hint),
	E(CKR_DEVICE_MEMORY, 6, "token-full", "the token is full", full_hint),
	E(CKR_DEVICE_REMOVED, 6, "token-absent", "the token was removed",
	  absent_hint),
	E(CKR_FUNCTION_CANCELED, 6, "token-error", "cancelled at the token",
	  NULL),
	E(CKR_FUNCTION_NOT_SUPPORTED, 6, "mechanism-missing",
	  "the module does not support this function", mech_hint),
	E(CKR_KEY_HANDLE_INVALID, 1, "token-rejected", "the key is gone", NULL),
	E(CKR_KEY_SIZE_RANGE, 6, "mechanism-missing",
	  "the token does not support this key size", mech_hint),
	E(CKR_KEY_TYPE_INCONSISTENT, 1, "token-rejected",
	  "the key type does not fit the mechanism", NULL),
	E(CKR_KEY_FUNCTION_NOT_PERMITTED, 1, "token-rejected",
	  "the key may not be used for this", NULL),
	E(CKR_MECHANISM_INVALID, 6, "mechanism-missing",
	  "the token does not support the mechanism", mech_hint),
	E(CKR_MECHANISM_PARAM_INVALID, 6, "mechanism-missing",
	  "the token rejected the mechanism's parameters", mech_hint),
	E(CKR_OBJECT_HANDLE_INVALID, 1, "token-rejected", "the object is gone",
	  NULL),
	E(CKR_OPERATION_ACTIVE, 1, "token-busy", "another operation is active",
	  NULL),
	E(CKR_PIN_INCORRECT, 6, "pin-incorrect", "wrong PIN", login_hint),
	E(CKR_PIN_INVALID, 6, "pin-incorrect", "the PIN has invalid characters",
	  login_hint),
	E(CKR_PIN_LEN_RANGE, 6, "pin-incorrect", "the PIN has a wrong length",
	  login_hint),
	E(CKR_PIN_EXPIRED, 6, "pin-expired", "the PIN has expired",
	  "change the PIN in the token's own tool"),
	E(CKR_PIN_LOCKED, 6, "pin-locked", "the PIN is locked",
	  "unblock it with the PUK or the security officer PIN in the token's "
	  "own "
	  "tool"),
	E(CKR_SESSION_CLOSED, 6, "token-session-lost", "the session was closed",
	  absent_hint),
	E(CKR_SESSION_COUNT, 6, "token-busy",
	  "the token has too many sessions open",
	  "close other programs using the token and retry"),
	E(CKR_SESSION_HANDLE_INVALID, 6, "token-session-lost",
	  "the session is gone (token removed or reset?)", absent_hint),
	E(CKR_SESSION_READ_ONLY, 1, "token-rejected",
	  "the session is read-only", NULL),
	E(CKR_SESSION_READ_ONLY_EXISTS, 6, "token-busy",
	  "a read-only session blocks this", NULL),
	E(CKR_SIGNATURE_INVALID, 1, "bad-signature", "the signature is invalid",
	  NULL),
	E(CKR_TEMPLATE_INCOMPLETE, 1, "token-rejected",
	  "the token wants more attributes", NULL),
	E(CKR_TEMPLATE_INCONSISTENT, 1, "token-rejected",
	  "the token rejected the attribute set", NULL),
	E(CKR_TOKEN_NOT_PRESENT, 6, "token-absent", "no token in the reader",
	  absent_hint),
	E(CKR_TOKEN_NOT_RECOGNIZED, 6, "token-absent",
	  "the token is not recognised by the module", mech_hint),
	E(CKR_TOKEN_WRITE_PROTECTED, 6, "token-read-only",
	  "the token is write-protected", NULL),
	E(CKR_USER_ALREADY_LOGGED_IN, 0, "ok", "already logged in", NULL),
	E(CKR_USER_NOT_LOGGED_IN, 6, "login-required", "a login is needed",
	  login_hint),
	E(CKR_USER_PIN_NOT_INITIALIZED, 6, "pin-not-initialised",
	  "the token has no user PIN yet",
	  "initialise the token's user PIN in its own tool"),
	E(CKR_USER_TYPE_INVALID, 1, "token-rejected", "invalid user type",
	  NULL),
	E(CKR_BUFFER_TOO_SMALL, 1, "token-rejected", "buffer too small", NULL),
	E(CKR_CRYPTOKI_NOT_INITIALIZED, 1, "module-error",
	  "the module is not initialised", NULL),
	E(CKR_CRYPTOKI_ALREADY_INITIALIZED, 0, "ok", "already initialised",
	  NULL),
	E(CKR_CANT_LOCK, 1, "module-error", "the module cannot lock", NULL),
	E(CKR_RANDOM_NO_RNG, 6, "mechanism-missing",
	  "the token has no random generator", mech_hint),
};
#undef E

static const struct ckr_info *lookup(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].rv == rv)
			return &table[i];
	return NULL;
}

const char *ps_ckr_name(CK_RV rv)
{
	const struct ckr_info *e = lookup(rv);

	return e ? e->name : "CKR_VENDOR/UNKNOWN";
}

int ps_ckr_err(struct ps_err *err, CK_RV rv, const struct ps_token *tok,
	       const char *what)
{
	const struct ckr_info *e = lookup(rv);
	char where[80] = "";

	if (tok)
		snprintf(where, sizeof(where), " (token '%s')", tok->label);
	if (!e)
		return ps_err_set(err, PS_EXIT_FAIL, "pkcs11-error", NULL,
				  "%s%s: PKCS#11 error 0x%08lx", what, where,
				  (unsigned long)rv);
	return ps_err_set(err, e->status ? e->status : PS_EXIT_FAIL, e->code,
			  e->hint, "%s%s: %s (%s)", what, where, e->text,
			  e->name);
}
