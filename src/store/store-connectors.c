/* store-connectors.c - connectors, their environments and their uses (see
 * store.h).
 *
 * The store only keeps what src/secrets/connector.c hands it: a sealed
 * (encrypted) secret, non-secret settings as JSON text and the names the
 * connector injects.  It enforces what needs a transaction: unique names,
 * no two connectors of one environment injecting the same name, and no
 * deletion of an attached connector without `force`.
 *
 * Statements are prepared per call and finalized at the end of the scope
 * (declared after STORE_LOCK, so before the mutex is released): the
 * per-connection statement cache has a fixed size that the busier parts of
 * the store need more.
 */
#define _GNU_SOURCE
#include "store/store-internal.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_NAMES 256
#define MAX_NAME_LEN 128

static void finalizep(sqlite3_stmt **s)
{
	if (*s)
		sqlite3_finalize(*s);
}

#define cleanup_finalize __attribute__((cleanup(finalizep)))

static sqlite3_stmt *prep(struct store *st, const char *sql, struct cr_error *err)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_db_fail(st, err, "prepare statement");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

int store_check_connector_name(const char *name, struct cr_error *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return cr_error_setn(err, EINVAL, "the connector name is empty");
	if (len > 63)
		return cr_error_setn(err, EINVAL, "connector name '%.63s...' is longer than 63 characters",
				  name);
	if (!isascii((unsigned char)name[0]) ||
	    !(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0])))
		return cr_error_setn(err, EINVAL,
				  "connector name '%s' must start with a lowercase letter or a digit", name);
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isascii(c) || !(islower(c) || isdigit(c) || c == '-' || c == '_'))
			return cr_error_setn(err, EINVAL,
					  "connector name '%s' may hold only a-z, 0-9, '-' and '_'", name);
	}
	return 0;
}

/* A variable name ([A-Za-z_][A-Za-z0-9_]*) or an absolute path without
 * spaces or control characters. */
static bool name_valid(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > MAX_NAME_LEN)
		return false;
	if (n[0] == '/') {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)n[i] <= ' ' || n[i] == 0x7f)
				return false;
		return true;
	}
	if (!(isalpha((unsigned char)n[0]) || n[0] == '_') || !isascii((unsigned char)n[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!isascii((unsigned char)n[i]) || !(isalnum((unsigned char)n[i]) || n[i] == '_'))
			return false;
	return true;
}

static int check_names(char *const *names, size_t n, struct cr_error *err)
{
	if (n > MAX_NAMES)
		return cr_error_setn(err, EINVAL, "a connector injects at most %d names", MAX_NAMES);
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL || !name_valid(names[i]))
			return cr_error_setn(err, EINVAL, "'%.*s' is not a variable name or a path",
					  MAX_NAME_LEN, names[i] ? names[i] : "");
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return cr_error_setn(err, EINVAL, "'%s' is injected twice", names[i]);
	}
	return 0;
}

static char *join_names(char *const *names, size_t n)
{
	size_t len = 1;
	char *s, *p;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	s = p = xmalloc(len);
	*p = '\0';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? " " : "", names[i]);
	return s;
}

/* Split space-separated text into a new array of strings. */
static char **split_names(const char *text, size_t *n)
{
	char **v = NULL;
	size_t count = 0;
	const char *p = text ? text : "";

	while (*p) {
		const char *end = strchr(p, ' ');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > 0) {
			v = xrealloc(v, (count + 1) * sizeof(*v));
			v[count++] = xstrndup(p, len);
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	*n = count;
	return v;
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

#define CONN_COLS                                                                             \
	"c.id, c.name, c.type, c.mode, c.settings, c.names, c.fingerprint, c.created_at," \
	" c.rotated_at"

static void connector_from_row(sqlite3_stmt *s, struct store_connector *c)
{
	c->id = sqlite3_column_int64(s, 0);
	c->name = store_col_text(s, 1);
	c->type = store_col_text(s, 2);
	c->mode = store_col_text(s, 3);
	c->settings = store_col_text(s, 4);
	c->names = split_names((const char *)sqlite3_column_text(s, 5), &c->nnames);
	c->fingerprint = store_col_text(s, 6);
	c->created_at = store_col_text(s, 7);
	c->rotated_at = store_col_text(s, 8);
}

/* The live environments connector `id` is attached to, by name. */
static int envs_locked(struct store *st, int64_t id, char ***envs, size_t *n,
		       struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"SELECT e.name FROM connector_envs a JOIN environments e ON e.id = a.env_id"
		" WHERE a.connector_id = ? AND e.deleted_at IS NULL ORDER BY e.name",
		err);
	char **v = NULL;
	size_t count = 0;
	int rc;

	*envs = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		v[count++] = store_col_text(s, 0);
	}
	if (rc != SQLITE_DONE) {
		free_strings(v, count);
		return store_db_fail(st, err, "read connector environments");
	}
	*envs = v;
	*n = count;
	return 0;
}

static int get_locked(struct store *st, const char *name, struct store_connector *out,
		      struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *s =
		prep(st, "SELECT " CONN_COLS " FROM connectors c WHERE c.name = ?", err);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "connector '%s' not found", name);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read connector");
	connector_from_row(s, out);
	if (envs_locked(st, out->id, &out->envs, &out->nenvs, err) < 0) {
		store_connector_release(out);
		return -1;
	}
	return 0;
}

/* Refuse `names` (of connector `self`) in environment `env_id` when another
 * connector attached there injects one of them. */
static int check_clash_locked(struct store *st, int64_t env_id, const char *env_name,
			      int64_t self_id, const char *self_name, char *const *names,
			      size_t nnames, struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"SELECT c.name, c.names FROM connector_envs a JOIN connectors c ON c.id = a.connector_id"
		" WHERE a.env_id = ? AND c.id != ? ORDER BY c.name",
		err);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	sqlite3_bind_int64(s, 2, self_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t n;
		char **other = split_names((const char *)sqlite3_column_text(s, 1), &n);
		const char *clash = NULL;
		for (size_t i = 0; i < n && !clash; i++)
			for (size_t j = 0; j < nnames && !clash; j++)
				if (strcmp(other[i], names[j]) == 0)
					clash = names[j];
		if (clash) {
			cr_error_setn(err, ENOTUNIQ,
				   "connectors '%s' and '%s' would both %s %s in environment '%s'; "
				   "an environment can take only one of them",
				   self_name, (const char *)sqlite3_column_text(s, 0),
				   clash[0] == '/' ? "write" : "set", clash, env_name);
			free_strings(other, n);
			return -1;
		}
		free_strings(other, n);
	}
	if (rc != SQLITE_DONE)
		return store_db_fail(st, err, "read connectors of the environment");
	return 0;
}

static int check_connector(const struct store_connector *c, struct cr_error *err)
{
	if (store_check_connector_name(c->name, err) < 0)
		return -1;
	if (c->type == NULL || *c->type == '\0' || c->mode == NULL || *c->mode == '\0')
		return cr_error_setn(err, EINVAL, "the connector's type and mode are required");
	if (c->settings == NULL || c->settings[0] != '{')
		return cr_error_setn(err, EINVAL, "the connector's settings must be a JSON object");
	if (c->fingerprint == NULL || *c->fingerprint == '\0')
		return cr_error_setn(err, EINVAL, "the connector's fingerprint is empty");
	if (c->sealed == NULL || c->sealed_len == 0)
		return cr_error_setn(err, EINVAL, "the connector's sealed secret is empty");
	return check_names(c->names, c->nnames, err);
}

static int create_locked(struct store *st, struct store_connector *c, struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *sel = prep(st, "SELECT 1 FROM connectors WHERE name = ?", err);
	cleanup_finalize sqlite3_stmt *ins = prep(
		st,
		"INSERT INTO connectors (name, type, mode, settings, names, fingerprint, sealed,"
		"  created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		err);
	cleanup_free char *names = join_names(c->names, c->nnames);
	cleanup_free char *now = store_now_iso();
	int rc;

	if (sel == NULL || ins == NULL)
		return -1;
	store_bind_text(sel, 1, c->name);
	rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW)
		return cr_error_setn(err, EEXIST, "connector '%s' already exists", c->name);
	if (rc != SQLITE_DONE)
		return store_db_fail(st, err, "read connector");
	store_bind_text(ins, 1, c->name);
	store_bind_text(ins, 2, c->type);
	store_bind_text(ins, 3, c->mode);
	store_bind_text(ins, 4, c->settings);
	store_bind_text(ins, 5, names);
	store_bind_text(ins, 6, c->fingerprint);
	sqlite3_bind_blob(ins, 7, c->sealed, (int)c->sealed_len, SQLITE_TRANSIENT);
	store_bind_text(ins, 8, now);
	if (sqlite3_step(ins) != SQLITE_DONE)
		return store_db_fail(st, err, "create connector");
	c->id = sqlite3_last_insert_rowid(st->db);
	free(c->created_at);
	c->created_at = steal_pointer(&now);
	return 0;
}

/* Check `c`, then run `write` (create or rotate) in one transaction. */
static int write_connector(struct store *st, struct store_connector *c,
			   int (*write)(struct store *, struct store_connector *, struct cr_error *),
			   struct cr_error *err)
{
	STORE_LOCK(st);

	if (check_connector(c, err) < 0)
		return -1;
	if (c->sealed_len > (1u << 24))
		return cr_error_setn(err, EINVAL, "the connector's sealed secret is too large");
	if (store_begin(st, err) < 0)
		return -1;
	if (write(st, c, err) < 0 || store_commit(st, err) < 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

int store_connector_create(struct store *st, struct store_connector *c, struct cr_error *err)
{
	return write_connector(st, c, create_locked, err);
}

int store_connector_get(struct store *st, const char *name, struct store_connector *out,
			struct cr_error *err)
{
	STORE_LOCK(st);

	memset(out, 0, sizeof(*out));
	if (store_check_connector_name(name, err) < 0)
		return -1;
	return get_locked(st, name, out, err);
}

int store_connector_list(struct store *st, const char *env, struct store_connector **out,
			 size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"SELECT " CONN_COLS " FROM connectors c WHERE ?1 IS NULL OR EXISTS"
		" (SELECT 1 FROM connector_envs a WHERE a.connector_id = c.id AND a.env_id = ?1)"
		" ORDER BY c.name",
		err);
	struct store_connector *v = NULL;
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
		memset(&v[count], 0, sizeof(*v));
		connector_from_row(s, &v[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_connector_list_free(v, count);
		return store_db_fail(st, err, "list connectors");
	}
	for (size_t i = 0; i < count; i++)
		if (envs_locked(st, v[i].id, &v[i].envs, &v[i].nenvs, err) < 0) {
			store_connector_list_free(v, count);
			return -1;
		}
	*out = v;
	*n = count;
	return 0;
}

int store_connector_list_for_env(struct store *st, int64_t env_id, struct store_connector **out,
				 size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"SELECT " CONN_COLS ", c.sealed FROM connectors c"
		" JOIN connector_envs a ON a.connector_id = c.id"
		" JOIN environments e ON e.id = a.env_id"
		" WHERE a.env_id = ? AND e.deleted_at IS NULL ORDER BY c.name",
		err);
	struct store_connector *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_connector *c;
		const void *blob = sqlite3_column_blob(s, 9);
		int len = sqlite3_column_bytes(s, 9);
		v = xrealloc(v, (count + 1) * sizeof(*v));
		c = &v[count++];
		memset(c, 0, sizeof(*c));
		connector_from_row(s, c);
		c->sealed_len = len > 0 ? (size_t)len : 0;
		c->sealed = xmalloc(c->sealed_len ? c->sealed_len : 1);
		if (blob && len > 0)
			memcpy(c->sealed, blob, (size_t)len);
	}
	if (rc != SQLITE_DONE) {
		store_connector_list_free(v, count);
		return store_db_fail(st, err, "list connectors of the environment");
	}
	*out = v;
	*n = count;
	return 0;
}

/* The id and (optionally) mode of connector `name`: ENOENT when unknown. */
static int connector_id_locked(struct store *st, const char *name, int64_t *id, char **mode,
			       struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *s =
		prep(st, "SELECT id, mode FROM connectors WHERE name = ?", err);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "connector '%s' not found", name);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read connector");
	*id = sqlite3_column_int64(s, 0);
	if (mode)
		*mode = store_col_text(s, 1);
	return 0;
}

static int rotate_locked(struct store *st, struct store_connector *c, struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *envs = prep(
		st,
		"SELECT e.id, e.name FROM connector_envs a JOIN environments e ON e.id = a.env_id"
		" WHERE a.connector_id = ? AND e.deleted_at IS NULL ORDER BY e.name",
		err);
	cleanup_finalize sqlite3_stmt *upd = prep(
		st,
		"UPDATE connectors SET settings = ?, names = ?, fingerprint = ?, sealed = ?,"
		" rotated_at = ? WHERE id = ?",
		err);
	cleanup_free char *names = join_names(c->names, c->nnames);
	cleanup_free char *now = store_now_iso();
	int64_t id;
	int rc;

	if (envs == NULL || upd == NULL)
		return -1;
	if (connector_id_locked(st, c->name, &id, NULL, err) < 0)
		return -1;
	sqlite3_bind_int64(envs, 1, id);
	while ((rc = sqlite3_step(envs)) == SQLITE_ROW)
		if (check_clash_locked(st, sqlite3_column_int64(envs, 0),
				       (const char *)sqlite3_column_text(envs, 1), id, c->name,
				       c->names, c->nnames, err) < 0)
			return -1;
	if (rc != SQLITE_DONE)
		return store_db_fail(st, err, "read connector environments");
	store_bind_text(upd, 1, c->settings);
	store_bind_text(upd, 2, names);
	store_bind_text(upd, 3, c->fingerprint);
	sqlite3_bind_blob(upd, 4, c->sealed, (int)c->sealed_len, SQLITE_TRANSIENT);
	store_bind_text(upd, 5, now);
	sqlite3_bind_int64(upd, 6, id);
	if (sqlite3_step(upd) != SQLITE_DONE)
		return store_db_fail(st, err, "rotate connector");
	c->id = id;
	free(c->rotated_at);
	c->rotated_at = steal_pointer(&now);
	return 0;
}

int store_connector_rotate(struct store *st, struct store_connector *c, struct cr_error *err)
{
	return write_connector(st, c, rotate_locked, err);
}

static int delete_locked(struct store *st, const char *name, bool force, struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *del = prep(st, "DELETE FROM connectors WHERE id = ?", err);
	int64_t id;
	char **envs = NULL;
	size_t nenvs = 0;

	if (del == NULL)
		return -1;
	if (connector_id_locked(st, name, &id, NULL, err) < 0)
		return -1;
	if (envs_locked(st, id, &envs, &nenvs, err) < 0)
		return -1;
	if (nenvs > 0 && !force) {
		cleanup_free char *list = NULL;
		for (size_t i = 0; i < nenvs; i++) {
			char *next = xasprintf("%s%s'%s'", list ? list : "", i ? ", " : "", envs[i]);
			free(list);
			list = next;
		}
		free_strings(envs, nenvs);
		return cr_error_setn(err, EBUSY, "connector '%s' is attached to environment%s %s", name,
				  nenvs == 1 ? "" : "s", list);
	}
	free_strings(envs, nenvs);
	/* ON DELETE CASCADE takes its attachments with it. */
	sqlite3_bind_int64(del, 1, id);
	if (sqlite3_step(del) != SQLITE_DONE)
		return store_db_fail(st, err, "delete connector");
	return 0;
}

int store_connector_delete(struct store *st, const char *name, bool force, struct cr_error *err)
{
	STORE_LOCK(st);

	if (store_check_connector_name(name, err) < 0 || store_begin(st, err) < 0)
		return -1;
	if (delete_locked(st, name, force, err) < 0 || store_commit(st, err) < 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

static int attach_locked(struct store *st, const char *name, const char *env,
			 struct cr_error *err)
{
	cleanup_finalize sqlite3_stmt *sel =
		prep(st, "SELECT 1 FROM connector_envs WHERE connector_id = ? AND env_id = ?", err);
	cleanup_finalize sqlite3_stmt *ins = prep(
		st, "INSERT INTO connector_envs (connector_id, env_id, attached_at) VALUES (?, ?, ?)",
		err);
	cleanup_free char *now = store_now_iso();
	struct store_connector c = { 0 };
	int64_t env_id;
	int rc, r = -1;

	if (sel == NULL || ins == NULL)
		return -1;
	if (get_locked(st, name, &c, err) < 0)
		return -1;
	if (store_env_id_locked(st, env, &env_id, err) < 0)
		goto out;
	sqlite3_bind_int64(sel, 1, c.id);
	sqlite3_bind_int64(sel, 2, env_id);
	rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		cr_error_setn(err, EEXIST, "connector '%s' is already attached to environment '%s'", name,
			   env);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		store_db_fail(st, err, "read connector environments");
		goto out;
	}
	if (check_clash_locked(st, env_id, env, c.id, c.name, c.names, c.nnames, err) < 0)
		goto out;
	sqlite3_bind_int64(ins, 1, c.id);
	sqlite3_bind_int64(ins, 2, env_id);
	store_bind_text(ins, 3, now);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		store_db_fail(st, err, "attach connector");
		goto out;
	}
	r = 0;
out:
	store_connector_release(&c);
	return r;
}

int store_connector_attach(struct store *st, const char *name, const char *env,
			   struct cr_error *err)
{
	STORE_LOCK(st);

	if (store_check_connector_name(name, err) < 0 || store_check_env_name(env, err) < 0 ||
	    store_begin(st, err) < 0)
		return -1;
	if (attach_locked(st, name, env, err) < 0 || store_commit(st, err) < 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

int store_connector_detach(struct store *st, const char *name, const char *env,
			   struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_finalize sqlite3_stmt *del = prep(
		st, "DELETE FROM connector_envs WHERE connector_id = ? AND env_id = ?", err);
	int64_t id, env_id;

	if (del == NULL)
		return -1;
	if (store_check_connector_name(name, err) < 0 || store_check_env_name(env, err) < 0)
		return -1;
	if (connector_id_locked(st, name, &id, NULL, err) < 0 ||
	    store_env_id_locked(st, env, &env_id, err) < 0)
		return -1;
	sqlite3_bind_int64(del, 1, id);
	sqlite3_bind_int64(del, 2, env_id);
	if (sqlite3_step(del) != SQLITE_DONE)
		return store_db_fail(st, err, "detach connector");
	if (sqlite3_changes(st->db) == 0)
		return cr_error_setn(err, ENOENT, "connector '%s' is not attached to environment '%s'",
				  name, env);
	return 0;
}

void store_connector_release(struct store_connector *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->type);
	free(c->mode);
	free(c->settings);
	free_strings(c->names, c->nnames);
	free(c->fingerprint);
	free(c->created_at);
	free(c->rotated_at);
	free_strings(c->envs, c->nenvs);
	free(c->sealed);
	memset(c, 0, sizeof(*c));
}

void store_connector_list_free(struct store_connector *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		store_connector_release(&c[i]);
	free(c);
}

/* --- uses ------------------------------------------------------------- */

int store_connector_use_record(struct store *st, const char *trace_id, int64_t connector_id,
			       struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"INSERT INTO connector_uses (trace_id, connector_id, connector_name, env_id, used_at)"
		" VALUES (?1, ?2, (SELECT name FROM connectors WHERE id = ?2),"
		"  (SELECT env_id FROM executions WHERE trace_id = ?1), ?3)",
		err);
	cleanup_free char *now = store_now_iso();
	size_t len = trace_id ? strlen(trace_id) : 0;

	if (s == NULL)
		return -1;
	if (len == 0 || len > 64)
		return cr_error_setn(err, EINVAL, "the trace id must be 1 to 64 characters");
	for (size_t i = 0; i < len; i++)
		if (!isascii((unsigned char)trace_id[i]) ||
		    !(isalnum((unsigned char)trace_id[i]) || trace_id[i] == '_' || trace_id[i] == '-'))
			return cr_error_setn(err, EINVAL, "the trace id may hold only A-Z, a-z, 0-9, '_' and '-'");
	if (connector_id <= 0)
		return cr_error_setn(err, EINVAL, "connector id %lld is not valid", (long long)connector_id);
	store_bind_text(s, 1, trace_id);
	sqlite3_bind_int64(s, 2, connector_id);
	store_bind_text(s, 3, now);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "record connector use");
	return 0;
}

int store_connector_use_list(struct store *st, int64_t connector_id, const char *name, int limit,
			     struct store_connector_use **out, size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_finalize sqlite3_stmt *s = prep(
		st,
		"SELECT u.id, u.trace_id, u.connector_id, u.connector_name, e.name, u.used_at"
		" FROM connector_uses u LEFT JOIN environments e ON e.id = u.env_id"
		" WHERE (?1 <= 0 OR u.connector_id = ?1) AND (?2 IS NULL OR u.connector_name = ?2)"
		" ORDER BY u.id DESC LIMIT ?3",
		err);
	struct store_connector_use *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	if (limit < 1 || limit > 1000)
		return cr_error_setn(err, EINVAL, "the limit must be between 1 and 1000");
	if (name && store_check_connector_name(name, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, connector_id);
	store_bind_text(s, 2, name);
	sqlite3_bind_int(s, 3, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_connector_use *u;
		v = xrealloc(v, (count + 1) * sizeof(*v));
		u = &v[count++];
		u->id = sqlite3_column_int64(s, 0);
		u->trace_id = store_col_text(s, 1);
		u->connector_id = sqlite3_column_int64(s, 2);
		u->connector_name = store_col_text(s, 3);
		u->env_name = store_col_text(s, 4);
		u->used_at = store_col_text(s, 5);
	}
	if (rc != SQLITE_DONE) {
		store_connector_use_list_free(v, count);
		return store_db_fail(st, err, "list connector uses");
	}
	*out = v;
	*n = count;
	return 0;
}

void store_connector_use_list_free(struct store_connector_use *u, size_t n)
{
	for (size_t i = 0; u && i < n; i++) {
		free(u[i].trace_id);
		free(u[i].connector_name);
		free(u[i].env_name);
		free(u[i].used_at);
	}
	free(u);
}
