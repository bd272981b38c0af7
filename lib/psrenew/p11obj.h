/* psrenew: the PKCS#11 object layer, the one place (with token.c's
 * modules, sessions and logins) that calls the module's functions. */
#ifndef PSRENEW_P11OBJ_H
#define PSRENEW_P11OBJ_H

#include <psrenew/token.h>

/*
 * Every C_* call of psrenew is made here (objects: finding, reading,
 * creating, destroying, key pairs, signing) or in token.c (modules,
 * slots, sessions, logins); scripts/checksrc fails on one anywhere else.
 * The functions below return the module's CK_RV unless they take a
 * struct ps_err; lib/ckr.c (ckr.h) says what a CK_RV means.
 */

/* The module's function list: for token.c and p11obj.c only. */
CK_FUNCTION_LIST *ps_module_functions(const struct ps_module *mod);

/*
 * The one search: C_FindObjectsInit with the template t (n attributes;
 * NULL and 0: every object the session sees), one C_FindObjects for up
 * to max handles into hs, C_FindObjectsFinal. *count: the handles found
 * (0 on an error).
 */
CK_RV ps_p11_find(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		  CK_OBJECT_HANDLE *hs, CK_ULONG max, CK_ULONG *count);
/* The same for every matching object: C_FindObjects until one returns
 * fewer handles than asked for (the end of the search), the handles in *hs
 * (malloc'ed; NULL on an error, which is CKR_HOST_MEMORY when memory ran out).
 */
CK_RV ps_p11_find_all(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		      CK_OBJECT_HANDLE **hs, CK_ULONG *count);

/* C_GetAttributeValue and C_SetAttributeValue of object h. */
CK_RV ps_p11_get(struct ps_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *a,
		 CK_ULONG n);
CK_RV ps_p11_set(struct ps_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *a,
		 CK_ULONG n);
/*
 * Reads every attribute of a[0..n) (n <= PS_P11_MAX_ATTRS) into the
 * caller's buffers in one C_GetAttributeValue. Only when a buffer was too
 * small (PKCS#11 2.40, 5.7: that attribute comes back with
 * CK_UNAVAILABLE_INFORMATION) a second call asks the lengths of those
 * attributes alone and a third reads them into heap[i] (malloc'ed, set to
 * a[i].pValue; the caller frees heap[0..n), NULLs first). CKR_OK also
 * when the object lacks or hides some (CKR_ATTRIBUTE_TYPE_INVALID,
 * CKR_ATTRIBUTE_SENSITIVE): their ulValueLen is CK_UNAVAILABLE_INFORMATION.
 */
#define PS_P11_MAX_ATTRS 16
CK_RV ps_p11_get_attrs(struct ps_token *tok, CK_OBJECT_HANDLE h,
		       CK_ATTRIBUTE *a, CK_ULONG n, void **heap);
/* A copy of a read attribute (NUL-terminated, *len its length; len may be
 * NULL): 0, also when it was not shown (*out untouched); -1 no memory. */
int ps_attr_dup(const CK_ATTRIBUTE *a, unsigned char **out, size_t *len);

/* What a write is, for its error: what is written ("the certificate"),
 * what was being done ("storing the certificate"; NULL: what), and the
 * hint when the token is full. */
struct ps_p11_write {
	const char *what, *doing, *full_hint;
};
/*
 * C_CreateObject with the template t. 0 and *h; else the error in err:
 * CKR_DEVICE_MEMORY is exit 6 "token-full" ("token 'LABEL' has no room
 * for WHAT", w->full_hint), any other code as lib/ckr.c says.
 */
int ps_p11_create(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		  CK_OBJECT_HANDLE *h, const struct ps_p11_write *w,
		  struct ps_err *err);
/* C_DestroyObject; the token's index forgets h when it is gone
 * (CKR_OK, or CKR_OBJECT_HANDLE_INVALID: removed meanwhile). */
CK_RV ps_p11_destroy(struct ps_token *tok, CK_OBJECT_HANDLE h);

/* C_GenerateKeyPair with the two templates. */
CK_RV ps_p11_generate_pair(struct ps_token *tok, CK_MECHANISM *mech,
			   CK_ATTRIBUTE *pub, CK_ULONG npub, CK_ATTRIBUTE *priv,
			   CK_ULONG npriv, CK_OBJECT_HANDLE *hpub,
			   CK_OBJECT_HANDLE *hpriv);
/* C_GetMechanismInfo of the token's slot. */
CK_RV ps_p11_mechanism(struct ps_token *tok, CK_MECHANISM_TYPE m,
		       CK_MECHANISM_INFO *mi);
/* C_SignInit with key, then C_Sign of data into out (*out_len: its size
 * in, the signature's length out). */
CK_RV ps_p11_sign(struct ps_token *tok, CK_MECHANISM *mech,
		  CK_OBJECT_HANDLE key, unsigned char *data, CK_ULONG len,
		  unsigned char *out, CK_ULONG *out_len);

/* The token's object index goes (token.c, when a session closes). */
void ps_token_index_drop(struct ps_token *tok);

#endif
