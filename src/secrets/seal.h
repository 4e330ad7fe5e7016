/* seal.h - sealing connector secrets (connector.h): what the store keeps
 * instead of a secret, and the fingerprint shown in its place.
 *
 * The key is the state directory's STORE_SUBKEY_CONNECTORS sub-key
 * (state.h).  Sealing is crypto_secretbox_easy (XSalsa20-Poly1305) with a
 * random 24-byte nonce drawn for every seal, so sealing the same secrets
 * twice never gives the same bytes.  The connector's type and name are
 * sealed with the secrets and checked on opening.
 */
#ifndef CORRAL_SECRETS_SEAL_H
#define CORRAL_SECRETS_SEAL_H

#include <stddef.h>

#include "secrets/connector.h"
#include "util/error.h"

/* Seal `n` secrets of connector `name` of type `type` under `key`: *out
 * (caller frees; it holds no secret) gets the nonce and the secretbox. */
void seal_secrets(const unsigned char key[32], const char *type, const char *name,
		  const struct connector_secret *v, size_t n, unsigned char **out, size_t *out_len);

/* Open what seal_secrets() made for the same type and name: *out gets the
 * secrets (free with connector_secrets_free(), which wipes them).  EBADMSG,
 * and nothing in *out, when the key is not the one it was sealed with, a
 * byte was changed, or the bytes belong to another connector. */
int unseal_secrets(const unsigned char key[32], const char *type, const char *name,
		   const unsigned char *sealed, size_t len, struct connector_secret **out, size_t *n,
		   struct cr_error *err);

/* The fingerprint: BLAKE2b keyed with a key derived from `key` (crypto_kdf,
 * context "corralfp"), over each secret value (length-prefixed) in the
 * order of the secrets' names; its first 8 bytes as 16 hex characters
 * (caller frees).  Equal secrets give equal fingerprints within one state
 * directory, whatever their names or order; the fingerprint reveals
 * nothing of the secret without the key. */
char *seal_fingerprint(const unsigned char key[32], const struct connector_secret *v, size_t n);

#endif
