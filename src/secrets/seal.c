/* seal.c - sealing connector secrets and their fingerprints (see seal.h).
 *
 * The sealed plaintext is "CRC1", then the connector's type and name, the
 * number of secrets and each secret's name and value, every string as a
 * 4-byte big-endian length and its bytes.  The plaintext buffers are wiped
 * before they are freed.
 */
#define _GNU_SOURCE
#include "secrets/seal.h"
#include "util/util.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define SEAL_MAGIC "CRC1"
#define FP_CONTEXT "corralfp"

#define fail cr_error_setn

static void free_wiped(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static unsigned char *put_str(unsigned char *p, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);

	p[0] = (unsigned char)(len >> 24);
	p[1] = (unsigned char)(len >> 16);
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
	memcpy(p + 4, s, len);
	return p + 4 + len;
}

void seal_secrets(const unsigned char key[32], const char *type, const char *name,
		  const struct connector_secret *v, size_t n, unsigned char **out, size_t *out_len)
{
	size_t mlen = 4 + 4 + strlen(type) + 4 + strlen(name) + 4;
	unsigned char *m, *p, *sealed;

	for (size_t i = 0; i < n; i++)
		mlen += 8 + strlen(v[i].name) + strlen(v[i].value);
	m = xmalloc(mlen);
	memcpy(m, SEAL_MAGIC, 4);
	p = put_str(m + 4, type);
	p = put_str(p, name);
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	p += 4;
	for (size_t i = 0; i < n; i++) {
		p = put_str(p, v[i].name);
		p = put_str(p, v[i].value);
	}
	sealed = xmalloc(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + mlen);
	randombytes_buf(sealed, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(sealed + crypto_secretbox_NONCEBYTES, m, mlen, sealed, key);
	sodium_memzero(m, mlen);
	free(m);
	*out = sealed;
	*out_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + mlen;
}

struct reader {
	const unsigned char *p, *end;
};

/* A length-prefixed string without NUL bytes (caller frees), or NULL. */
static char *get_str(struct reader *r)
{
	uint32_t len;

	if (r->end - r->p < 4)
		return NULL;
	len = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	if ((size_t)(r->end - r->p) < len || memchr(r->p, '\0', len))
		return NULL;
	r->p += len;
	return xstrndup((const char *)r->p - len, len);
}

int unseal_secrets(const unsigned char key[32], const char *type, const char *name,
		   const unsigned char *sealed, size_t len, struct connector_secret **out, size_t *n,
		   struct cr_error *err)
{
	const size_t head = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
	struct connector_secret *v = NULL;
	size_t count = 0, mlen;
	unsigned char *m;
	struct reader r;
	char *t = NULL, *nm = NULL;
	uint32_t want;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (sealed == NULL || len < head + 4)
		return fail(err, EBADMSG, "the sealed secret of connector '%s' is truncated", name);
	mlen = len - head;
	m = xmalloc(mlen);
	if (crypto_secretbox_open_easy(m, sealed + crypto_secretbox_NONCEBYTES,
				       len - crypto_secretbox_NONCEBYTES, sealed, key) != 0) {
		free(m);
		return fail(err, EBADMSG,
			    "the secret of connector '%s' does not open: the state directory's "
			    "secrets.key is not the key it was stored with, or the database was "
			    "altered",
			    name);
	}
	r.p = m;
	r.end = m + mlen;
	if (memcmp(m, SEAL_MAGIC, 4) != 0)
		goto bad;
	r.p += 4;
	t = get_str(&r);
	nm = get_str(&r);
	if (t == NULL || nm == NULL || strcmp(t, type) != 0 || strcmp(nm, name) != 0) {
		fail(err, EBADMSG, "the sealed secret stored for connector '%s' belongs to another "
				   "connector",
		     name);
		goto out;
	}
	if (r.end - r.p < 4)
		goto bad;
	want = (uint32_t)r.p[0] << 24 | (uint32_t)r.p[1] << 16 | (uint32_t)r.p[2] << 8 | r.p[3];
	r.p += 4;
	if (want > 4096)
		goto bad;
	for (uint32_t i = 0; i < want; i++) {
		char *k = get_str(&r), *val = get_str(&r);
		if (k == NULL || val == NULL) {
			free(k);
			free_wiped(val);
			goto bad;
		}
		v = xrealloc(v, (count + 1) * sizeof(*v));
		v[count].name = k;
		v[count].value = val;
		count++;
	}
	if (r.p != r.end)
		goto bad;
	*out = steal_pointer(&v);
	*n = count;
	rc = 0;
	goto out;
bad:
	fail(err, EBADMSG, "the sealed secret of connector '%s' is malformed", name);
out:
	connector_secrets_free(v, count);
	free(t);
	free(nm);
	sodium_memzero(m, mlen);
	free(m);
	return rc;
}

char *seal_fingerprint(const unsigned char key[32], const struct connector_secret *v, size_t n)
{
	unsigned char fpkey[32], hash[16];
	char hex[2 * 8 + 1];
	crypto_generichash_state st;
	size_t *order = xmalloc((n ? n : 1) * sizeof(size_t));

	/* By name, so the order the secrets were given in does not matter. */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		while (j > 0 && strcmp(v[order[j - 1]].name, v[i].name) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	crypto_kdf_derive_from_key(fpkey, sizeof(fpkey), 1, FP_CONTEXT, key);
	crypto_generichash_init(&st, fpkey, sizeof(fpkey), sizeof(hash));
	for (size_t i = 0; i < n; i++) {
		const char *val = v[order[i]].value;
		uint32_t len = (uint32_t)strlen(val);
		unsigned char be[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
					(unsigned char)(len >> 8), (unsigned char)len };
		crypto_generichash_update(&st, be, 4);
		crypto_generichash_update(&st, (const unsigned char *)val, len);
	}
	crypto_generichash_final(&st, hash, sizeof(hash));
	sodium_bin2hex(hex, sizeof(hex), hash, 8);
	sodium_memzero(fpkey, sizeof(fpkey));
	sodium_memzero(&st, sizeof(st));
	free(order);
	return xstrdup(hex);
}
