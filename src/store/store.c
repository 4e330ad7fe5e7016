/* store.c - opening the database, shared helpers, plans, environments and
 * threads (see store.h).  Keys and the admin token are in store-keys.c,
 * executions and usage in store-exec.c, the schema in store-migrate.c. */
#define _GNU_SOURCE
#include "store/store-internal.h"
#include "proxy/policy.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ---------------------------------------------------------- */

int store_db_fail(struct store *st, struct cr_error *err, const char *what)
{
	int code = sqlite3_errcode(st->db) & 0xff;
	int errnum = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? EAGAIN : EIO;

	return cr_error_setn(err, errnum, "%s: %s", what, sqlite3_errmsg(st->db));
}

sqlite3_stmt *store_stmt(struct store *st, const char *sql, struct cr_error *err)
{
	size_t i;

	for (i = 0; i < STORE_STMT_CACHE && st->cache[i].sql; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].stmt;
	if (i == STORE_STMT_CACHE) {
		cr_error_setn(err, EIO, "internal error: more than %d distinct statements",
			   STORE_STMT_CACHE);
		return NULL;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->cache[i].stmt, NULL) !=
	    SQLITE_OK) {
		store_db_fail(st, err, "prepare statement");
		return NULL;
	}
	st->cache[i].sql = sql;
	return st->cache[i].stmt;
}

int store_begin(struct store *st, struct cr_error *err)
{
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return store_db_fail(st, err, "begin transaction");
	return 0;
}

int store_commit(struct store *st, struct cr_error *err)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return store_db_fail(st, err, "commit");
	return 0;
}

void store_rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

char *store_col_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t;

	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return NULL;
	t = sqlite3_column_text(s, col);
	return xstrdup(t ? (const char *)t : "");
}

int store_bind_text(sqlite3_stmt *s, int idx, const char *text)
{
	if (text == NULL)
		return sqlite3_bind_null(s, idx);
	return sqlite3_bind_text(s, idx, text, -1, SQLITE_TRANSIENT);
}

bool store_month_valid(const char *m)
{
	if (m == NULL || strlen(m) != 7)
		return false;
	for (int i = 0; i < 7; i++)
		if (i == 4 ? m[i] != '-' : !isdigit((unsigned char)m[i]))
			return false;
	return (m[5] == '0' && m[6] >= '1') || (m[5] == '1' && m[6] <= '2');
}

char *store_now_iso(void)
{
	char buf[32];
	struct tm tm;
	time_t t = time(NULL);

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(buf);
}

void store_month_of(const char *iso, char month[8])
{
	if (iso && strlen(iso) >= 7) {
		memcpy(month, iso, 7);
		month[7] = '\0';
		if (store_month_valid(month))
			return;
	}
	cleanup_free char *now = store_now_iso();
	memcpy(month, now, 7);
	month[7] = '\0';
}

/* --- open and close --------------------------------------------------- */

static int exec_sql(struct store *st, const char *sql, struct cr_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		cr_error_setn(err, EIO, "%s: %s", sql, msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int journal_mode_cb(void *arg, int ncols, char **vals, char **names)
{
	(void)names;
	if (ncols > 0 && vals[0])
		snprintf(arg, 16, "%s", vals[0]);
	return 0;
}

struct store *store_open(const char *path, const unsigned char hash_key[32], struct cr_error *err)
{
	struct store *st;
	char mode[16] = "";
	int fd;

	if (sodium_init() < 0) {
		cr_error_setn(err, EIO, "cannot initialise libsodium");
		return NULL;
	}
	/* Create the file ourselves so that it (and the -wal and -shm files,
	 * which SQLite creates with the database's permissions) is private:
	 * it holds key hashes and every execution's output. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		cr_error_set(err, errno, "cannot open database '%s'", path);
		return NULL;
	}
	close(fd);

	st = xzalloc(sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	memcpy(st->hash_key, hash_key, sizeof(st->hash_key));
	/* NOMUTEX: the store's own mutex already serialises every use. */
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		if (st->db)
			cr_error_setn(err, EIO, "cannot open database '%s': %s", path, sqlite3_errmsg(st->db));
		else
			cr_error_setn(err, ENOMEM, "cannot open database '%s'", path);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);
	if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, NULL) != SQLITE_OK) {
		store_db_fail(st, err, "set journal_mode=WAL");
		goto fail_path;
	}
	if (strcmp(mode, "wal") != 0) {
		cr_error_setn(err, EIO, "journal_mode is '%s', not 'wal'", mode);
		goto fail_path;
	}
	/* synchronous=NORMAL is durable against a crash of corral (every
	 * commit is in the WAL); only a power loss may forget the last
	 * transactions, never corrupt the file. */
	if (exec_sql(st, "PRAGMA foreign_keys=ON", err) < 0 ||
	    exec_sql(st, "PRAGMA synchronous=NORMAL", err) < 0)
		goto fail_path;
	if (store_migrate(st, err) < 0)
		goto fail_path;
	/* One statement: atomic even when two processes open a new database. */
	if (exec_sql(st,
		     "INSERT INTO plans (name, monthly_credits, max_timeout_s, allow_streaming,"
		     "  allow_async, max_concurrent)"
		     " SELECT * FROM (VALUES ('free', 1000, 60, 0, 0, 2),"
		     "   ('pro', 100000, 3600, 1, 1, 16), ('unlimited', -1, 86400, 1, 1, 0))"
		     " WHERE NOT EXISTS (SELECT 1 FROM plans)",
		     err) < 0)
		goto fail_path;
	return st;

fail_path:
	cr_error_wrap(err, "database '%s'", path);
fail:
	store_close(st);
	return NULL;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < STORE_STMT_CACHE && st->cache[i].sql; i++)
		sqlite3_finalize(st->cache[i].stmt);
	sqlite3_close(st->db);
	sodium_memzero(st->hash_key, sizeof(st->hash_key));
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int store_schema_version(struct store *st)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(st, "SELECT max(version) FROM schema_migrations", NULL);

	if (s == NULL || sqlite3_step(s) != SQLITE_ROW)
		return -1;
	return sqlite3_column_int(s, 0);
}

/* --- plans ------------------------------------------------------------ */

#define PLAN_COLS "name, monthly_credits, max_timeout_s, allow_streaming, allow_async, max_concurrent"

static void plan_from_row(sqlite3_stmt *s, struct store_plan *p)
{
	p->name = store_col_text(s, 0);
	p->monthly_credits = sqlite3_column_int64(s, 1);
	p->max_timeout_s = sqlite3_column_int(s, 2);
	p->allow_streaming = sqlite3_column_int(s, 3) != 0;
	p->allow_async = sqlite3_column_int(s, 4) != 0;
	p->max_concurrent = sqlite3_column_int(s, 5);
}

int store_plan_get(struct store *st, const char *name, struct store_plan *out, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "SELECT " PLAN_COLS " FROM plans WHERE name = ?", err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "plan '%s' not found", name);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read plan");
	plan_from_row(s, out);
	return 0;
}

int store_plan_set(struct store *st, const struct store_plan *p, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = NULL;

	if (p->name == NULL || store_check_env_name(p->name, NULL) < 0)
		return cr_error_setn(err, EINVAL, "plan name '%s' must be like an environment name",
				  p->name ? p->name : "");
	if (p->monthly_credits < -1 || p->max_timeout_s <= 0 || p->max_concurrent < 0)
		return cr_error_setn(err, EINVAL,
				  "plan '%s': credits must be -1 (unlimited) or more, the timeout cap above 0, concurrency 0 (unlimited) or more",
				  p->name);
	s = store_stmt(st,
		       "INSERT INTO plans (name, monthly_credits, max_timeout_s, allow_streaming,"
		       " allow_async, max_concurrent) VALUES (?, ?, ?, ?, ?, ?)"
		       " ON CONFLICT(name) DO UPDATE SET monthly_credits = excluded.monthly_credits,"
		       " max_timeout_s = excluded.max_timeout_s, allow_streaming = excluded.allow_streaming,"
		       " allow_async = excluded.allow_async, max_concurrent = excluded.max_concurrent",
		       err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, p->name);
	sqlite3_bind_int64(s, 2, p->monthly_credits);
	sqlite3_bind_int64(s, 3, p->max_timeout_s);
	sqlite3_bind_int(s, 4, p->allow_streaming);
	sqlite3_bind_int(s, 5, p->allow_async);
	sqlite3_bind_int64(s, 6, p->max_concurrent);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "write plan");
	return 0;
}

int store_plan_list(struct store *st, struct store_plan **out, size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "SELECT " PLAN_COLS " FROM plans ORDER BY rowid", err);
	struct store_plan *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		plan_from_row(s, &v[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_plan_list_free(v, count);
		return store_db_fail(st, err, "list plans");
	}
	*out = v;
	*n = count;
	return 0;
}

void store_plan_release(struct store_plan *p)
{
	if (p == NULL)
		return;
	free(p->name);
	memset(p, 0, sizeof(*p));
}

void store_plan_list_free(struct store_plan *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		store_plan_release(&p[i]);
	free(p);
}

/* --- environments ----------------------------------------------------- */

#define ENV_COLS \
	"id, name, image, network, memory_mib, pids, cpu_milli, tmp_mib, allow_nested, created_at"

void store_env_defaults(struct store_env *env)
{
	free(env->image);
	free(env->network);
	free(env->created_at);
	env->id = 0;
	env->image = xstrdup("host");
	env->network = xstrdup("none");
	env->memory_mib = 512;
	env->pids = 256;
	env->cpu_milli = 1000;
	env->tmp_mib = 256;
	env->allow_nested = false;
	env->created_at = NULL;
}

int store_check_env_name(const char *name, struct cr_error *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return cr_error_setn(err, EINVAL, "the environment name is empty");
	if (len > 63)
		return cr_error_setn(err, EINVAL, "environment name '%.63s...' is longer than 63 characters",
				  name);
	if (!(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0])) ||
	    !isascii((unsigned char)name[0]))
		return cr_error_setn(err, EINVAL,
				  "environment name '%s' must start with a lowercase letter or a digit",
				  name);
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isascii(c) || !(islower(c) || isdigit(c) || c == '-' || c == '_'))
			return cr_error_setn(err, EINVAL,
					  "environment name '%s' may hold only a-z, 0-9, '-' and '_'",
					  name);
	}
	return 0;
}

/* The network policy as stored: egress_policy_to_string() of what
 * egress_policy_parse_string() made of `text` (NULL is "none"), in *out
 * (caller frees).  EINVAL with the parser's sentence, which names the
 * entry. */
static int normalize_network(const char *text, char **out, struct cr_error *err)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	struct cr_error perr = CR_ERROR_INIT;

	*out = NULL;
	if (egress_policy_parse_string(text ? text : "none", &p, &perr) < 0) {
		cr_error_setn(err, EINVAL, "%s", perr.msg ? perr.msg : "bad network policy");
		cr_error_release(&perr);
		return -1;
	}
	*out = egress_policy_to_string(&p);
	egress_policy_release(&p);
	return 0;
}

/* The settable fields within the bounds the sandbox accepts; *network is
 * the normalized policy to store (caller frees). */
static int check_env(const struct store_env *env, char **network, struct cr_error *err)
{
	*network = NULL;
	if (store_check_env_name(env->name, err) < 0)
		return -1;
	if (env->image == NULL || env->image[0] == '\0' || strlen(env->image) > 255)
		return cr_error_setn(err, EINVAL, "the image name must be 1 to 255 characters");
	if (env->memory_mib < 8 || env->memory_mib > (1 << 20))
		return cr_error_setn(err, EINVAL, "memory %lld MiB is not between 8 and 1048576",
				  (long long)env->memory_mib);
	if (env->pids < 2 || env->pids > 4194304)
		return cr_error_setn(err, EINVAL, "pids %lld is not between 2 and 4194304",
				  (long long)env->pids);
	if (env->cpu_milli < 10 || env->cpu_milli > 1024000)
		return cr_error_setn(err, EINVAL, "cpu_milli %lld is not between 10 and 1024000",
				  (long long)env->cpu_milli);
	if (env->tmp_mib < 1 || env->tmp_mib > (1 << 20))
		return cr_error_setn(err, EINVAL, "tmp size %lld MiB is not between 1 and 1048576",
				  (long long)env->tmp_mib);
	return normalize_network(env->network, network, err);
}

static void env_from_row(sqlite3_stmt *s, struct store_env *e)
{
	e->id = sqlite3_column_int64(s, 0);
	e->name = store_col_text(s, 1);
	e->image = store_col_text(s, 2);
	e->network = store_col_text(s, 3);
	e->memory_mib = sqlite3_column_int64(s, 4);
	e->pids = sqlite3_column_int64(s, 5);
	e->cpu_milli = sqlite3_column_int64(s, 6);
	e->tmp_mib = sqlite3_column_int64(s, 7);
	e->allow_nested = sqlite3_column_int(s, 8) != 0;
	e->created_at = store_col_text(s, 9);
}

int store_env_id_locked(struct store *st, const char *name, int64_t *id, struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "SELECT id FROM environments WHERE name = ? AND deleted_at IS NULL", err);
	int rc;

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "environment '%s' not found", name ? name : "");
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read environment");
	*id = sqlite3_column_int64(s, 0);
	return 0;
}

int store_env_create(struct store *st, struct store_env *env, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"INSERT INTO environments (name, image, network, memory_mib, pids, cpu_milli, tmp_mib,"
		"  allow_nested, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		err);
	char *now, *network;
	int rc;

	if (s == NULL || check_env(env, &network, err) < 0)
		return -1;
	now = store_now_iso();
	store_bind_text(s, 1, env->name);
	store_bind_text(s, 2, env->image);
	store_bind_text(s, 3, network);
	sqlite3_bind_int64(s, 4, env->memory_mib);
	sqlite3_bind_int64(s, 5, env->pids);
	sqlite3_bind_int64(s, 6, env->cpu_milli);
	sqlite3_bind_int64(s, 7, env->tmp_mib);
	sqlite3_bind_int(s, 8, env->allow_nested);
	store_bind_text(s, 9, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		free(now);
		free(network);
		return cr_error_setn(err, EEXIST, "environment '%s' already exists", env->name);
	}
	if (rc != SQLITE_DONE) {
		free(now);
		free(network);
		return store_db_fail(st, err, "create environment");
	}
	env->id = sqlite3_last_insert_rowid(st->db);
	free(env->created_at);
	env->created_at = now;
	free(env->network);
	env->network = network;
	return 0;
}

static int env_get(struct store *st, const char *sql, const char *name, int64_t id,
		   struct store_env *out, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(st, sql, err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	if (name)
		store_bind_text(s, 1, name);
	else
		sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		if (name)
			return cr_error_setn(err, ENOENT, "environment '%s' not found", name);
		return cr_error_setn(err, ENOENT, "environment %lld not found", (long long)id);
	}
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read environment");
	env_from_row(s, out);
	return 0;
}

int store_env_get(struct store *st, const char *name, struct store_env *out, struct cr_error *err)
{
	return env_get(st,
		       "SELECT " ENV_COLS " FROM environments WHERE name = ? AND deleted_at IS NULL",
		       name ? name : "", 0, out, err);
}

int store_env_get_by_id(struct store *st, int64_t id, struct store_env *out, struct cr_error *err)
{
	return env_get(st, "SELECT " ENV_COLS " FROM environments WHERE id = ? AND deleted_at IS NULL",
		       NULL, id, out, err);
}

int store_env_list(struct store *st, struct store_env **out, size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "SELECT " ENV_COLS " FROM environments WHERE deleted_at IS NULL ORDER BY name", err);
	struct store_env *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		env_from_row(s, &v[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_env_list_free(v, count);
		return store_db_fail(st, err, "list environments");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_env_update(struct store *st, const struct store_env *env, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"UPDATE environments SET image = ?, network = ?, memory_mib = ?, pids = ?,"
		"  cpu_milli = ?, tmp_mib = ?, allow_nested = ?"
		" WHERE name = ? AND deleted_at IS NULL",
		err);
	cleanup_free char *network = NULL;

	if (s == NULL || check_env(env, &network, err) < 0)
		return -1;
	store_bind_text(s, 1, env->image);
	store_bind_text(s, 2, network);
	sqlite3_bind_int64(s, 3, env->memory_mib);
	sqlite3_bind_int64(s, 4, env->pids);
	sqlite3_bind_int64(s, 5, env->cpu_milli);
	sqlite3_bind_int64(s, 6, env->tmp_mib);
	sqlite3_bind_int(s, 7, env->allow_nested);
	store_bind_text(s, 8, env->name);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "update environment");
	if (sqlite3_changes(st->db) == 0)
		return cr_error_setn(err, ENOENT, "environment '%s' not found", env->name);
	return 0;
}

static int step_done(struct store *st, sqlite3_stmt *s, struct cr_error *err, const char *what)
{
	int rc = s ? sqlite3_step(s) : SQLITE_ERROR;

	if (s)
		sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return s ? store_db_fail(st, err, what) : -1;
	return 0;
}

static int env_delete_locked(struct store *st, const char *name, bool force, struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *count = store_stmt(
		st, "SELECT count(*) FROM api_keys WHERE env_id = ? AND revoked_at IS NULL", err);
	cleanup_stmt sqlite3_stmt *revoke = store_stmt(
		st, "UPDATE api_keys SET revoked_at = ? WHERE env_id = ? AND revoked_at IS NULL", err);
	cleanup_stmt sqlite3_stmt *threads =
		store_stmt(st, "DELETE FROM threads WHERE env_id = ?", err);
	cleanup_stmt sqlite3_stmt *del =
		store_stmt(st, "UPDATE environments SET deleted_at = ? WHERE id = ?", err);
	cleanup_free char *now = store_now_iso();
	int64_t id, active;

	if (!count || !revoke || !threads || !del)
		return -1;
	if (store_env_id_locked(st, name, &id, err) < 0)
		return -1;
	sqlite3_bind_int64(count, 1, id);
	if (sqlite3_step(count) != SQLITE_ROW)
		return store_db_fail(st, err, "count keys");
	active = sqlite3_column_int64(count, 0);
	if (active > 0 && !force)
		return cr_error_setn(err, EBUSY, "environment '%s' still has %lld active API key%s",
				  name, (long long)active, active == 1 ? "" : "s");
	store_bind_text(revoke, 1, now);
	sqlite3_bind_int64(revoke, 2, id);
	sqlite3_bind_int64(threads, 1, id);
	store_bind_text(del, 1, now);
	sqlite3_bind_int64(del, 2, id);
	if (step_done(st, revoke, err, "revoke keys") < 0 ||
	    step_done(st, threads, err, "delete threads") < 0 ||
	    step_done(st, del, err, "delete environment") < 0)
		return -1;
	return 0;
}

int store_env_delete(struct store *st, const char *name, bool force, struct cr_error *err)
{
	STORE_LOCK(st);

	if (store_begin(st, err) < 0)
		return -1;
	if (env_delete_locked(st, name ? name : "", force, err) < 0 || store_commit(st, err) < 0) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

void store_env_release(struct store_env *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->image);
	free(e->network);
	free(e->created_at);
	memset(e, 0, sizeof(*e));
}

void store_env_list_free(struct store_env *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		store_env_release(&e[i]);
	free(e);
}

/* --- threads ---------------------------------------------------------- */

int store_check_thread_id(const char *id, struct cr_error *err)
{
	size_t len = id ? strlen(id) : 0;

	if (len == 0)
		return cr_error_setn(err, EINVAL, "the thread_id is empty");
	if (len > 128)
		return cr_error_setn(err, EINVAL, "thread_id '%.32s...' is longer than 128 characters", id);
	/* The id names a directory: "." and ".." would name another one. */
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return cr_error_setn(err, EINVAL, "thread_id '%s' is not allowed", id);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isascii(c) || !(isalnum(c) || c == '.' || c == '_' || c == '-'))
			return cr_error_setn(err, EINVAL,
					  "thread_id may hold only A-Z, a-z, 0-9, '.', '_' and '-'");
	}
	return 0;
}

int store_thread_touch(struct store *st, int64_t env_id, const char *thread_id, int64_t bytes,
		       struct cr_error *err)
{
	STORE_LOCK(st);
	/* "WHERE true" tells SQLite's parser that ON CONFLICT is the upsert. */
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"INSERT INTO threads (env_id, thread_id, created_at, last_used_at, bytes)"
		" SELECT id, ?2, ?3, ?3, max(?4, 0) FROM environments"
		"  WHERE id = ?1 AND deleted_at IS NULL AND true"
		" ON CONFLICT (env_id, thread_id) DO UPDATE SET last_used_at = excluded.last_used_at,"
		"  bytes = CASE WHEN ?4 < 0 THEN bytes ELSE ?4 END",
		err);
	cleanup_free char *now = store_now_iso();

	if (s == NULL || store_check_thread_id(thread_id, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	store_bind_text(s, 2, thread_id);
	store_bind_text(s, 3, now);
	sqlite3_bind_int64(s, 4, bytes);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "record thread");
	if (sqlite3_changes(st->db) == 0)
		return cr_error_setn(err, ENOENT, "environment %lld not found", (long long)env_id);
	return 0;
}

#define THREAD_COLS "env_id, thread_id, created_at, last_used_at, bytes"

static void thread_from_row(sqlite3_stmt *s, struct store_thread *t)
{
	t->env_id = sqlite3_column_int64(s, 0);
	t->thread_id = store_col_text(s, 1);
	t->created_at = store_col_text(s, 2);
	t->last_used_at = store_col_text(s, 3);
	t->bytes = sqlite3_column_int64(s, 4);
}

int store_thread_get(struct store *st, int64_t env_id, const char *thread_id,
		     struct store_thread *out, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "SELECT " THREAD_COLS " FROM threads WHERE env_id = ? AND thread_id = ?", err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL || store_check_thread_id(thread_id, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	store_bind_text(s, 2, thread_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "thread '%s' not found", thread_id);
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read thread");
	thread_from_row(s, out);
	return 0;
}

int store_thread_list(struct store *st, int64_t env_id, struct store_thread **out, size_t *n,
		      struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st, "SELECT " THREAD_COLS " FROM threads WHERE env_id = ? ORDER BY thread_id", err);
	struct store_thread *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		thread_from_row(s, &v[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_thread_list_free(v, count);
		return store_db_fail(st, err, "list threads");
	}
	*out = v;
	*n = count;
	return 0;
}

int store_thread_delete(struct store *st, int64_t env_id, const char *thread_id,
			struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "DELETE FROM threads WHERE env_id = ? AND thread_id = ?", err);

	if (s == NULL || store_check_thread_id(thread_id, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, env_id);
	store_bind_text(s, 2, thread_id);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "delete thread");
	if (sqlite3_changes(st->db) == 0)
		return cr_error_setn(err, ENOENT, "thread '%s' not found", thread_id);
	return 0;
}

void store_thread_release(struct store_thread *t)
{
	if (t == NULL)
		return;
	free(t->thread_id);
	free(t->created_at);
	free(t->last_used_at);
	memset(t, 0, sizeof(*t));
}

void store_thread_list_free(struct store_thread *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		store_thread_release(&t[i]);
	free(t);
}
