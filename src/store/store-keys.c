/* store-keys.c - API keys and the admin token (see store.h).
 *
 * Neither is ever stored in clear: a row holds the keyed BLAKE2b-256 of
 * the presented string (libsodium's crypto_generichash with the store's
 * hash key).  A key is found by that hash through a unique index, so a
 * lookup never compares secret bytes with early exit, and a stolen
 * database (without secrets.key) gives nothing to replay.
 */
#define _GNU_SOURCE
#include "store/store-internal.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Random part of a key or token: 32 bytes as 43 characters of base64url. */
#define SECRET_BYTES 32
#define SECRET_B64_LEN 43
/* Characters of the random part kept in the display prefix. */
#define PREFIX_RANDOM 8
#define MAX_PRESENTED 512
#define ADMIN_TOKEN_PREFIX "cra-"

void store_hash_secret(struct store *st, const char *secret, unsigned char out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)secret, strlen(secret), st->hash_key,
			   sizeof(st->hash_key));
}

/* prefix + base64url(32 random bytes); caller frees. */
static char *new_secret(const char *prefix)
{
	unsigned char raw[SECRET_BYTES];
	char b64[sodium_base64_ENCODED_LEN(SECRET_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char *s;

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	s = xasprintf("%s%s", prefix, b64);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	return s;
}

/* Free a string that held a secret, wiping it first. */
static void free_secret(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static int check_region(const char *region, struct cr_error *err)
{
	size_t len = region ? strlen(region) : 0;

	if (len == 0 || len > 32)
		return cr_error_setn(err, EINVAL, "the region must be 1 to 32 characters");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)region[i];
		if (!isascii(c) || !(islower(c) || isdigit(c) || (c == '-' && i > 0 && i < len - 1)))
			return cr_error_setn(err, EINVAL,
					  "region '%s' may hold only a-z, 0-9 and inner '-'", region);
	}
	return 0;
}

static int check_label(const char *name, struct cr_error *err)
{
	size_t len;

	if (name == NULL)
		return 0;
	len = strlen(name);
	if (len == 0 || len > 128)
		return cr_error_setn(err, EINVAL, "the key name must be 1 to 128 characters");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return cr_error_setn(err, EINVAL, "the key name holds a control character");
	return 0;
}

#define KEY_COLS \
	"k.id, k.prefix, k.env_id, e.name, k.plan, k.name, k.created_at, k.revoked_at"
#define KEY_FROM " FROM api_keys k JOIN environments e ON e.id = k.env_id"

static void key_from_row(sqlite3_stmt *s, struct store_key *k)
{
	k->id = sqlite3_column_int64(s, 0);
	k->prefix = store_col_text(s, 1);
	k->env_id = sqlite3_column_int64(s, 2);
	k->env_name = store_col_text(s, 3);
	k->plan = store_col_text(s, 4);
	k->name = store_col_text(s, 5);
	k->created_at = store_col_text(s, 6);
	k->revoked_at = store_col_text(s, 7);
}

static int key_get_locked(struct store *st, int64_t id, struct store_key *out,
			  struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "SELECT " KEY_COLS KEY_FROM " WHERE k.id = ?", err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "API key %lld not found", (long long)id);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read API key");
	key_from_row(s, out);
	return 0;
}

static int key_create_locked(struct store *st, const char *env, const char *plan, const char *name,
			     const char *region, char **secret, struct store_key *out,
			     struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *pl = store_stmt(st, "SELECT 1 FROM plans WHERE name = ?", err);
	cleanup_stmt sqlite3_stmt *ins = store_stmt(
		st,
		"INSERT INTO api_keys (hash, prefix, env_id, plan, name, created_at)"
		" VALUES (?, ?, ?, ?, ?, ?)",
		err);
	cleanup_free char *now = store_now_iso();
	cleanup_free char *head = xasprintf("sk-%s-", region);
	cleanup_free char *prefix = NULL;
	unsigned char hash[32];
	int64_t env_id;
	char *key;
	int rc;

	if (pl == NULL || ins == NULL)
		return -1;
	if (store_env_id_locked(st, env, &env_id, err) < 0)
		return -1;
	store_bind_text(pl, 1, plan);
	rc = sqlite3_step(pl);
	sqlite3_reset(pl);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "plan '%s' not found", plan);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read plan");

	key = new_secret(head);
	prefix = xstrndup(key, strlen(head) + PREFIX_RANDOM);
	store_hash_secret(st, key, hash);
	sqlite3_bind_blob(ins, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	store_bind_text(ins, 2, prefix);
	sqlite3_bind_int64(ins, 3, env_id);
	store_bind_text(ins, 4, plan);
	store_bind_text(ins, 5, name);
	store_bind_text(ins, 6, now);
	rc = sqlite3_step(ins);
	sodium_memzero(hash, sizeof(hash));
	if (rc != SQLITE_DONE) {
		free_secret(key);
		return store_db_fail(st, err, "create API key");
	}
	if (key_get_locked(st, sqlite3_last_insert_rowid(st->db), out, err) < 0) {
		free_secret(key);
		return -1;
	}
	*secret = key;
	return 0;
}

int store_key_create(struct store *st, const char *env, const char *plan, const char *name,
		     const char *region, char **secret, struct store_key *out, struct cr_error *err)
{
	STORE_LOCK(st);
	int r;

	*secret = NULL;
	memset(out, 0, sizeof(*out));
	if (store_check_env_name(env, err) < 0 || check_region(region, err) < 0 ||
	    check_label(name, err) < 0)
		return -1;
	if (plan == NULL || *plan == '\0')
		return cr_error_setn(err, EINVAL, "the plan name is empty");
	if (store_begin(st, err) < 0)
		return -1;
	r = key_create_locked(st, env, plan, name, region, secret, out, err);
	if (r == 0 && store_commit(st, err) < 0) {
		free_secret(steal_pointer(secret));
		store_key_release(out);
		r = -1;
	}
	if (r < 0)
		store_rollback(st);
	return r;
}

int store_key_authenticate(struct store *st, const char *secret, struct store_key *out,
			   struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "SELECT " KEY_COLS ", k.hash" KEY_FROM " WHERE k.hash = ?", err);
	unsigned char hash[32];
	const void *stored;
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	if (secret == NULL || *secret == '\0' || strlen(secret) > MAX_PRESENTED)
		return cr_error_setn(err, ENOENT, "unknown API key");
	store_hash_secret(st, secret, hash);
	sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sodium_memzero(hash, sizeof(hash));
		return cr_error_setn(err, ENOENT, "unknown API key");
	}
	if (rc != SQLITE_ROW) {
		sodium_memzero(hash, sizeof(hash));
		return store_db_fail(st, err, "look up API key");
	}
	/* The index found it; the check below guards against a collation or
	 * affinity surprise ever matching a different blob. */
	stored = sqlite3_column_blob(s, 8);
	rc = sqlite3_column_bytes(s, 8) == (int)sizeof(hash) && stored &&
	     sodium_memcmp(stored, hash, sizeof(hash)) == 0;
	sodium_memzero(hash, sizeof(hash));
	if (!rc)
		return cr_error_setn(err, ENOENT, "unknown API key");
	if (sqlite3_column_type(s, 7) != SQLITE_NULL)
		return cr_error_setn(err, EKEYREVOKED, "API key %s... was revoked",
				  (const char *)sqlite3_column_text(s, 1));
	key_from_row(s, out);
	return 0;
}

int store_key_list(struct store *st, const char *env, struct store_key **out, size_t *n,
		   struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "SELECT " KEY_COLS KEY_FROM " WHERE ?1 IS NULL OR k.env_id = ?1 ORDER BY k.id", err);
	struct store_key *v = NULL;
	size_t count = 0;
	int64_t env_id;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	if (env) {
		if (store_env_id_locked(st, env, &env_id, err) < 0)
			return -1;
		sqlite3_bind_int64(s, 1, env_id);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		key_from_row(s, &v[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_key_list_free(v, count);
		return store_db_fail(st, err, "list API keys");
	}
	*out = v;
	*n = count;
	return 0;
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Find the one key `what` names: an id, the start of a display prefix
 * (8 characters or more), or a whole key. */
static int key_resolve_locked(struct store *st, const char *what, int64_t *id, char **prefix,
			      bool *revoked, struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *by_id =
		store_stmt(st, "SELECT id, prefix, revoked_at FROM api_keys WHERE id = ?", err);
	cleanup_stmt sqlite3_stmt *by_prefix = store_stmt(
		st,
		"SELECT id, prefix, revoked_at FROM api_keys"
		" WHERE substr(prefix, 1, length(?1)) = ?1 LIMIT 2",
		err);
	cleanup_stmt sqlite3_stmt *by_hash =
		store_stmt(st, "SELECT id, prefix, revoked_at FROM api_keys WHERE hash = ?", err);
	unsigned char hash[32];
	sqlite3_stmt *s;
	int rc;

	if (!by_id || !by_prefix || !by_hash)
		return -1;
	if (all_digits(what)) {
		char *end;
		errno = 0;
		long long v = strtoll(what, &end, 10);
		if (errno == ERANGE)
			return cr_error_setn(err, ENOENT, "API key %s not found", what);
		s = by_id;
		sqlite3_bind_int64(s, 1, v);
	} else if (strlen(what) < 8) {
		return cr_error_setn(err, EINVAL,
				  "'%s' is neither a key id nor a key prefix of 8 characters or more",
				  what);
	} else {
		s = by_prefix;
		store_bind_text(s, 1, what);
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE && s == by_prefix && strlen(what) <= MAX_PRESENTED) {
		/* Perhaps a whole key (the one to revoke after a leak). */
		s = by_hash;
		store_hash_secret(st, what, hash);
		sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
		sodium_memzero(hash, sizeof(hash));
		rc = sqlite3_step(s);
	}
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "API key '%s' not found", what);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "look up API key");
	*id = sqlite3_column_int64(s, 0);
	*prefix = store_col_text(s, 1);
	*revoked = sqlite3_column_type(s, 2) != SQLITE_NULL;
	if (s == by_prefix && sqlite3_step(s) == SQLITE_ROW) {
		free(steal_pointer(prefix));
		return cr_error_setn(err, ENOTUNIQ, "more than one API key starts with '%s'", what);
	}
	return 0;
}

int store_key_revoke(struct store *st, const char *id_or_prefix, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", err);
	cleanup_free char *now = store_now_iso();
	cleanup_free char *prefix = NULL;
	bool revoked;
	int64_t id;

	if (s == NULL)
		return -1;
	if (id_or_prefix == NULL || *id_or_prefix == '\0')
		return cr_error_setn(err, EINVAL, "give a key id or prefix");
	if (key_resolve_locked(st, id_or_prefix, &id, &prefix, &revoked, err) < 0)
		return -1;
	if (revoked)
		return cr_error_setn(err, EKEYREVOKED, "API key %lld (%s) is already revoked",
				  (long long)id, prefix);
	store_bind_text(s, 1, now);
	sqlite3_bind_int64(s, 2, id);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "revoke API key");
	if (sqlite3_changes(st->db) == 0)
		return cr_error_setn(err, EKEYREVOKED, "API key %lld (%s) is already revoked",
				  (long long)id, prefix);
	return 0;
}

void store_key_release(struct store_key *k)
{
	if (k == NULL)
		return;
	free(k->prefix);
	free(k->env_name);
	free(k->plan);
	free(k->name);
	free(k->created_at);
	free(k->revoked_at);
	memset(k, 0, sizeof(*k));
}

void store_key_list_free(struct store_key *k, size_t n)
{
	for (size_t i = 0; k && i < n; i++)
		store_key_release(&k[i]);
	free(k);
}

/* --- admin token ------------------------------------------------------ */

int store_admin_token_ensure(struct store *st, char **token, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *sel = store_stmt(st, "SELECT 1 FROM admin_token", err);
	cleanup_stmt sqlite3_stmt *ins = store_stmt(
		st, "INSERT INTO admin_token (id, hash, created_at) VALUES (1, ?, ?)", err);
	cleanup_free char *now = store_now_iso();
	unsigned char hash[32];
	char *t;
	int rc;

	*token = NULL;
	if (sel == NULL || ins == NULL || store_begin(st, err) < 0)
		return -1;
	rc = sqlite3_step(sel);
	sqlite3_reset(sel);
	if (rc == SQLITE_ROW) {
		store_rollback(st);
		return 0;
	}
	if (rc != SQLITE_DONE) {
		store_db_fail(st, err, "read admin token");
		store_rollback(st);
		return -1;
	}
	t = new_secret(ADMIN_TOKEN_PREFIX);
	store_hash_secret(st, t, hash);
	sqlite3_bind_blob(ins, 1, hash, sizeof(hash), SQLITE_TRANSIENT);
	store_bind_text(ins, 2, now);
	sodium_memzero(hash, sizeof(hash));
	if (sqlite3_step(ins) != SQLITE_DONE) {
		store_db_fail(st, err, "create admin token");
		goto fail;
	}
	sqlite3_reset(ins);
	if (store_commit(st, err) < 0)
		goto fail;
	*token = t;
	return 0;
fail:
	free_secret(t);
	store_rollback(st);
	return -1;
}

int store_admin_token_check(struct store *st, const char *token, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(st, "SELECT hash FROM admin_token WHERE id = 1", err);
	unsigned char hash[32];
	const void *stored;
	int rc, ok;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_fail(st, err, "read admin token");
	if (rc == SQLITE_DONE || token == NULL || strlen(token) > MAX_PRESENTED)
		return cr_error_setn(err, EACCES, "invalid admin token");
	store_hash_secret(st, token, hash);
	stored = sqlite3_column_blob(s, 0);
	ok = stored && sqlite3_column_bytes(s, 0) == (int)sizeof(hash) &&
	     sodium_memcmp(stored, hash, sizeof(hash)) == 0;
	sodium_memzero(hash, sizeof(hash));
	if (!ok)
		return cr_error_setn(err, EACCES, "invalid admin token");
	return 0;
}
