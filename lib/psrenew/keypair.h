/* psrenew: key pairs on the token: generate, find, remove, check room and
 * mechanisms (the guide's errors 621 and 622). */
#ifndef PSRENEW_KEYPAIR_H
#define PSRENEW_KEYPAIR_H

#include <openssl/evp.h>

#include <psrenew/cert.h>
#include <psrenew/token.h>

/* Room one renewal takes: the key pair and, later, its certificate. */
#define PS_ROOM_PER_RENEWAL 6144UL

struct ps_keyspec {
	CK_KEY_TYPE type; /* CKK_RSA or CKK_EC */
	unsigned long bits;
	char curve[24]; /* OpenSSL group name for EC */
};

struct ps_keypair {
	CK_OBJECT_HANDLE priv, pub;
	unsigned char id[64];
	size_t id_len;
	EVP_PKEY *pubkey; /* the public half, in software */
	/* ps_keypair_find: the private key's CKA_LABEL ("" when none), and
	 * whether the public key object was left unlooked for (the public
	 * half came from the private key; ps_keypair_destroy looks). */
	char label[256];
	int pub_unsought;
};

/* "rsa:2048", "rsa:3072", "rsa:4096", "ec:prime256v1" (or P-256),
 * "ec:secp384r1" (or P-384). */
int ps_keyspec_parse(const char *s, struct ps_keyspec *ks, struct ps_err *err);
void ps_keyspec_name(const struct ps_keyspec *ks, char *buf, size_t len);

/*
 * The key to generate when nobody chose one (iSignum's rule since 2023):
 * RSA-4096 when the token's CKM_RSA_PKCS_KEY_PAIR_GEN reports ulMaxKeySize
 * of 4096 or more, else RSA-2048, never smaller than the current key
 * (current: its key_type, may be NULL); an EC key keeps its curve.
 * *max_bits: the ulMaxKeySize seen (0: not asked or not said). Returns
 * the reason, a key_choice of psrenew(7): "token-4096", "token-2048" or
 * "current-key".
 */
const char *ps_keyspec_default(struct ps_token *tok, const char *current,
			       struct ps_keyspec *ks, unsigned long *max_bits);

/* Key id: SHA-1 of the public key bits (RFC 5280 key identifier method 1). */
int ps_pubkey_id(EVP_PKEY *pk, unsigned char id[20]);

/* Exit 6 naming module, version and mechanism when the token cannot
 * generate or sign with this kind of key (the guide's error 622). */
int ps_token_check_mechanisms(struct ps_token *tok, const struct ps_keyspec *ks,
			      struct ps_err *err);
/* Renewals that fit in the token's free memory; -1 when it does not say. */
long ps_token_room(const struct ps_token *tok);

/*
 * Generates a key pair ON the token: private key private, sensitive, never
 * extractable, sign-capable; both halves with CKA_ID = ps_pubkey_id() and
 * the label. The session must be read-write and logged in.
 */
int ps_keypair_generate(struct ps_token *tok, const struct ps_keyspec *ks,
			const char *label, struct ps_keypair *kp,
			struct ps_err *err);
/*
 * The same in two steps, for a caller that records what it makes (a
 * journal): _begin generates under the caller's temporary id tmp_id and
 * reads the public half (kp->id is then the final id, not yet on the
 * token); _finish sets the final id on both halves. Each removes the key
 * pair when it fails.
 */
int ps_keypair_generate_begin(struct ps_token *tok, const struct ps_keyspec *ks,
			      const char *label, const unsigned char *tmp_id,
			      size_t tmp_len, struct ps_keypair *kp,
			      struct ps_err *err);
int ps_keypair_generate_finish(struct ps_token *tok, struct ps_keypair *kp,
			       struct ps_err *err);
/* Removes every private and public key object with CKA_ID id (what an
 * interrupted generation left); the number removed, or <0 (err set). */
int ps_keypair_destroy_id(struct ps_token *tok, const unsigned char *id,
			  size_t len, struct ps_err *err);
/* Finds the private key with this id and its public half: from the
 * private key's own attributes when it shows them (RSA: its modulus and
 * exponent, read with its type and label in one call), else from the
 * public key object (kp->pub, if present) or the certificate. */
int ps_keypair_find(struct ps_token *tok, const unsigned char *id,
		    size_t id_len, struct ps_keypair *kp, struct ps_err *err);
/*
 * The same, and the certificate objects with this CKA_ID (up to max
 * handles into certs, *ncerts of them), from one search by CKA_ID alone
 * and one read of each object it finds (its class, type, label and public
 * values). When the token has an index (ps_token_index) it is
 * ps_keypair_find and *ncerts is -1: the certificates were not looked for.
 */
int ps_keypair_find_certs(struct ps_token *tok, const unsigned char *id,
			  size_t id_len, struct ps_keypair *kp,
			  CK_OBJECT_HANDLE *certs, size_t max, long *ncerts,
			  struct ps_err *err);
/*
 * The key pair on tok whose public key is pk, whatever its CKA_ID (keys
 * made by pkcs11-tool or vendor middleware): one C_FindObjectsInit with
 * the public values as template. RSA: class, key type and CKA_MODULUS of
 * the private key, else of a public key object; EC: CKA_EC_PARAMS and
 * CKA_EC_POINT of the public key object, then the private key with its
 * CKA_ID; last, a private key whose CKA_ID is ps_pubkey_id(pk). kp->id is
 * the private key's CKA_ID, kp->pubkey a new reference to pk. Exit 2
 * "no-such-key" when the token has none.
 */
int ps_keypair_find_pubkey(struct ps_token *tok, EVP_PKEY *pk,
			   struct ps_keypair *kp, struct ps_err *err);
/*
 * The ps_pubkey_id() of a key object's public values (CKA_MODULUS and
 * CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS and CKA_EC_POINT): 0 with id set,
 * 1 when the object does not show them (an EC private key), -1 when the
 * token failed (*rvp).
 */
int ps_key_object_id(struct ps_token *tok, CK_OBJECT_HANDLE h, CK_KEY_TYPE type,
		     unsigned char id[20], CK_RV *rvp);
/* The same from the public values a listing read already (struct ps_tobj's
 * kv, no call to the token): 0 with id set, 1 when it has none. */
int ps_key_values_id(const struct ps_tobj *o, unsigned char id[20]);
/* Removes both halves (what exists). */
int ps_keypair_destroy(struct ps_token *tok, struct ps_keypair *kp,
		       struct ps_err *err);
void ps_keypair_free(struct ps_keypair *kp);

#endif
