/* store-exec.c - executions and monthly usage (see store.h). */
#define _GNU_SOURCE
#include "store/store-internal.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static bool one_of(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

static const char *const final_statuses[] = {
	"success", "failed", "timeout", "oom", "blocked", "cancelled",
};
static const char *const delivery_modes[] = { "inline", "stream", "async" };

static int check_trace_id(const char *id, struct cr_error *err)
{
	if (id == NULL || strlen(id) != 36 || strncmp(id, "trc_", 4) != 0)
		return cr_error_setn(err, EINVAL, "trace_id '%s' is not 'trc_' and 32 hex digits",
				  id ? id : "");
	for (const char *p = id + 4; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return cr_error_setn(err, EINVAL, "trace_id '%s' is not 'trc_' and 32 hex digits",
					  id);
	return 0;
}

int store_exec_insert(struct store *st, struct store_exec *ex, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"INSERT INTO executions (trace_id, key_id, env_id, thread_id, language, status,"
		"  delivery_mode, timeout_ms, created_at)"
		" VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
		err);
	char *now;
	int rc;

	if (s == NULL || check_trace_id(ex->trace_id, err) < 0)
		return -1;
	if (ex->thread_id && store_check_thread_id(ex->thread_id, err) < 0)
		return -1;
	if (ex->language == NULL || ex->language[0] == '\0')
		return cr_error_setn(err, EINVAL, "the execution has no language");
	if (!one_of(ex->delivery_mode, delivery_modes, ARRAY_SIZE(delivery_modes)))
		return cr_error_setn(err, EINVAL, "delivery mode '%s' is not inline, stream or async",
				  ex->delivery_mode ? ex->delivery_mode : "");
	now = store_now_iso();
	store_bind_text(s, 1, ex->trace_id);
	sqlite3_bind_int64(s, 2, ex->key_id);
	sqlite3_bind_int64(s, 3, ex->env_id);
	store_bind_text(s, 4, ex->thread_id);
	store_bind_text(s, 5, ex->language);
	store_bind_text(s, 6, ex->delivery_mode);
	sqlite3_bind_int64(s, 7, ex->timeout_ms);
	store_bind_text(s, 8, now);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE) {
		free(now);
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			return cr_error_setn(err, EEXIST, "execution '%s' already exists", ex->trace_id);
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return cr_error_setn(err, ENOENT, "API key %lld or environment %lld not found",
					  (long long)ex->key_id, (long long)ex->env_id);
		return store_db_fail(st, err, "record execution");
	}
	free(ex->created_at);
	ex->created_at = now;
	free(ex->status);
	ex->status = xstrdup("running");
	return 0;
}

static int exec_finish_locked(struct store *st, struct store_exec *ex, const char *now,
			      struct cr_error *err)
{
	cleanup_stmt sqlite3_stmt *upd = store_stmt(
		st,
		"UPDATE executions SET status = ?, exit_code = ?, signal = ?, stdout = ?, stderr = ?,"
		"  error = ?, duration_ms = ?, cpu_ms = ?, peak_memory = ?, credits = ?,"
		"  completed_at = ?, network = ?13"
		" WHERE trace_id = ?12 AND status = 'running'"
		" RETURNING key_id, created_at",
		err);
	cleanup_stmt sqlite3_stmt *exists =
		store_stmt(st, "SELECT status FROM executions WHERE trace_id = ?", err);
	cleanup_stmt sqlite3_stmt *usage = store_stmt(
		st,
		"INSERT INTO usage (key_id, month, credits, executions) VALUES (?, ?, ?, 1)"
		" ON CONFLICT (key_id, month) DO UPDATE SET credits = credits + excluded.credits,"
		"  executions = executions + 1",
		err);
	int64_t key_id;
	char month[8];
	int rc;

	if (!upd || !exists || !usage)
		return -1;
	store_bind_text(upd, 1, ex->status);
	sqlite3_bind_int64(upd, 2, ex->exit_code);
	sqlite3_bind_int64(upd, 3, ex->signal);
	store_bind_text(upd, 4, ex->stdout_text);
	store_bind_text(upd, 5, ex->stderr_text);
	store_bind_text(upd, 6, ex->error);
	sqlite3_bind_int64(upd, 7, ex->duration_ms);
	sqlite3_bind_int64(upd, 8, ex->cpu_ms);
	sqlite3_bind_int64(upd, 9, ex->peak_memory);
	sqlite3_bind_int64(upd, 10, ex->credits);
	store_bind_text(upd, 11, now);
	store_bind_text(upd, 12, ex->trace_id);
	store_bind_text(upd, 13, ex->network);
	rc = sqlite3_step(upd);
	if (rc == SQLITE_DONE) {
		store_bind_text(exists, 1, ex->trace_id);
		if (sqlite3_step(exists) == SQLITE_ROW)
			return cr_error_setn(err, EALREADY, "execution '%s' has already ended (%s)",
					  ex->trace_id, (const char *)sqlite3_column_text(exists, 0));
		return cr_error_setn(err, ENOENT, "execution '%s' not found", ex->trace_id);
	}
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "record the end of an execution");
	key_id = sqlite3_column_int64(upd, 0);
	store_month_of((const char *)sqlite3_column_text(upd, 1), month);
	/* RETURNING rows must be stepped to the end for the update to finish. */
	while ((rc = sqlite3_step(upd)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		return store_db_fail(st, err, "record the end of an execution");

	sqlite3_bind_int64(usage, 1, key_id);
	store_bind_text(usage, 2, month);
	sqlite3_bind_int64(usage, 3, ex->credits);
	if (sqlite3_step(usage) != SQLITE_DONE)
		return store_db_fail(st, err, "add usage");
	return 0;
}

int store_exec_finish(struct store *st, struct store_exec *ex, struct cr_error *err)
{
	STORE_LOCK(st);
	char *now;

	if (check_trace_id(ex->trace_id, err) < 0)
		return -1;
	if (!one_of(ex->status, final_statuses, ARRAY_SIZE(final_statuses)))
		return cr_error_setn(err, EINVAL, "'%s' is not the status of an ended execution",
				  ex->status ? ex->status : "");
	if (ex->credits < 0)
		return cr_error_setn(err, EINVAL, "credits %lld are negative", (long long)ex->credits);
	if (store_begin(st, err) < 0)
		return -1;
	now = store_now_iso();
	if (exec_finish_locked(st, ex, now, err) < 0 || store_commit(st, err) < 0) {
		free(now);
		store_rollback(st);
		return -1;
	}
	free(ex->completed_at);
	ex->completed_at = now;
	return 0;
}

int store_exec_get(struct store *st, const char *trace_id, struct store_exec *out,
		   struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"SELECT trace_id, key_id, env_id, thread_id, language, status, exit_code, signal,"
		"  stdout, stderr, error, delivery_mode, timeout_ms, duration_ms, cpu_ms, peak_memory,"
		"  credits, created_at, completed_at, network"
		" FROM executions WHERE trace_id = ?",
		err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, trace_id ? trace_id : "");
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		return cr_error_setn(err, ENOENT, "execution '%s' not found", trace_id ? trace_id : "");
	if (rc != SQLITE_ROW)
		return store_db_fail(st, err, "read execution");
	out->trace_id = store_col_text(s, 0);
	out->key_id = sqlite3_column_int64(s, 1);
	out->env_id = sqlite3_column_int64(s, 2);
	out->thread_id = store_col_text(s, 3);
	out->language = store_col_text(s, 4);
	out->status = store_col_text(s, 5);
	out->exit_code = sqlite3_column_int64(s, 6);
	out->signal = sqlite3_column_int64(s, 7);
	out->stdout_text = store_col_text(s, 8);
	out->stderr_text = store_col_text(s, 9);
	out->error = store_col_text(s, 10);
	out->delivery_mode = store_col_text(s, 11);
	out->timeout_ms = sqlite3_column_int64(s, 12);
	out->duration_ms = sqlite3_column_int64(s, 13);
	out->cpu_ms = sqlite3_column_int64(s, 14);
	out->peak_memory = sqlite3_column_int64(s, 15);
	out->credits = sqlite3_column_int64(s, 16);
	out->created_at = store_col_text(s, 17);
	out->completed_at = store_col_text(s, 18);
	out->network = store_col_text(s, 19);
	return 0;
}

int store_exec_fail_running(struct store *st, const char *error, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"UPDATE executions SET status = 'failed', error = ?, completed_at = ?"
		" WHERE status = 'running'",
		err);
	cleanup_free char *now = store_now_iso();

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, error);
	store_bind_text(s, 2, now);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "fail running executions");
	return sqlite3_changes(st->db);
}

void store_exec_release(struct store_exec *e)
{
	if (e == NULL)
		return;
	free(e->trace_id);
	free(e->thread_id);
	free(e->language);
	free(e->status);
	free(e->stdout_text);
	free(e->stderr_text);
	free(e->error);
	free(e->delivery_mode);
	free(e->created_at);
	free(e->completed_at);
	free(e->network);
	memset(e, 0, sizeof(*e));
}

/* --- usage ------------------------------------------------------------ */

/* *month as given (checked), or this month in `now` when NULL. */
static int month_or_now(const char **month, char now[8], struct cr_error *err)
{
	if (*month == NULL) {
		store_month_of(NULL, now);
		*month = now;
		return 0;
	}
	if (!store_month_valid(*month))
		return cr_error_setn(err, EINVAL, "month '%s' is not YYYY-MM", *month);
	return 0;
}

int store_usage_credits(struct store *st, int64_t key_id, const char *month, int64_t *credits,
			struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s =
		store_stmt(st, "SELECT credits FROM usage WHERE key_id = ? AND month = ?", err);
	char now[8];
	int rc;

	*credits = 0;
	if (s == NULL)
		return -1;
	if (month_or_now(&month, now, err) < 0)
		return -1;
	sqlite3_bind_int64(s, 1, key_id);
	store_bind_text(s, 2, month);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*credits = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		return store_db_fail(st, err, "read usage");
	return 0;
}

int store_usage_list(struct store *st, const char *env, const char *month,
		     struct store_usage **out, size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"SELECT u.key_id, k.prefix, e.name, u.month, u.credits, u.executions"
		" FROM usage u JOIN api_keys k ON k.id = u.key_id"
		"  JOIN environments e ON e.id = k.env_id"
		" WHERE u.month = ?1 AND (?2 IS NULL OR k.env_id = ?2)"
		" ORDER BY e.name, u.key_id",
		err);
	struct store_usage *v = NULL;
	size_t count = 0;
	int64_t env_id;
	char now[8];
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	if (month_or_now(&month, now, err) < 0)
		return -1;
	store_bind_text(s, 1, month);
	if (env) {
		if (store_env_id_locked(st, env, &env_id, err) < 0)
			return -1;
		sqlite3_bind_int64(s, 2, env_id);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = xrealloc(v, (count + 1) * sizeof(*v));
		v[count].key_id = sqlite3_column_int64(s, 0);
		v[count].key_prefix = store_col_text(s, 1);
		v[count].env_name = store_col_text(s, 2);
		v[count].month = store_col_text(s, 3);
		v[count].credits = sqlite3_column_int64(s, 4);
		v[count].executions = sqlite3_column_int64(s, 5);
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_usage_list_free(v, count);
		return store_db_fail(st, err, "list usage");
	}
	*out = v;
	*n = count;
	return 0;
}

void store_usage_list_free(struct store_usage *u, size_t n)
{
	for (size_t i = 0; u && i < n; i++) {
		free(u[i].key_prefix);
		free(u[i].env_name);
		free(u[i].month);
	}
	free(u);
}
