/* store-egress.c - the audit of the egress proxy's refusals (store.h). */
#include "store/store-internal.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

int store_egress_denial_record(struct store *st, const char *trace_id, const char *target,
			       const char *code, const char *reason, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"INSERT INTO egress_denials (trace_id, env_id, target, code, reason, denied_at)"
		" VALUES (?1, (SELECT env_id FROM executions WHERE trace_id = ?1), ?2, ?3, ?4,"
		"  strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
		err);

	if (s == NULL)
		return -1;
	if (trace_id == NULL || *trace_id == '\0' || strlen(trace_id) > 64)
		return cr_error_setn(err, EINVAL, "the trace id must be 1 to 64 characters");
	if (target == NULL || code == NULL || reason == NULL)
		return cr_error_setn(err, EINVAL, "a refusal needs a target, a code and a reason");
	store_bind_text(s, 1, trace_id);
	store_bind_text(s, 2, target);
	store_bind_text(s, 3, code);
	store_bind_text(s, 4, reason);
	if (sqlite3_step(s) != SQLITE_DONE)
		return store_db_fail(st, err, "record an egress refusal");
	return 0;
}

int store_egress_denial_list(struct store *st, const char *trace_id, int limit,
			     struct store_egress_denial **out, size_t *n, struct cr_error *err)
{
	STORE_LOCK(st);
	cleanup_stmt sqlite3_stmt *s = store_stmt(
		st,
		"SELECT d.id, d.trace_id, e.name, d.target, d.code, d.reason, d.denied_at"
		" FROM egress_denials d LEFT JOIN environments e ON e.id = d.env_id"
		" WHERE (?1 IS NULL OR d.trace_id = ?1) ORDER BY d.id DESC LIMIT ?2",
		err);
	struct store_egress_denial *v = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (s == NULL)
		return -1;
	if (limit < 1 || limit > 1000)
		return cr_error_setn(err, EINVAL, "the limit must be between 1 and 1000");
	store_bind_text(s, 1, trace_id);
	sqlite3_bind_int(s, 2, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_egress_denial *d;
		v = xrealloc(v, (count + 1) * sizeof(*v));
		d = &v[count++];
		d->id = sqlite3_column_int64(s, 0);
		d->trace_id = store_col_text(s, 1);
		d->env_name = store_col_text(s, 2);
		d->target = store_col_text(s, 3);
		d->code = store_col_text(s, 4);
		d->reason = store_col_text(s, 5);
		d->denied_at = store_col_text(s, 6);
	}
	if (rc != SQLITE_DONE) {
		store_egress_denial_list_free(v, count);
		return store_db_fail(st, err, "list egress refusals");
	}
	*out = v;
	*n = count;
	return 0;
}

void store_egress_denial_list_free(struct store_egress_denial *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++) {
		free(d[i].trace_id);
		free(d[i].env_name);
		free(d[i].target);
		free(d[i].code);
		free(d[i].reason);
		free(d[i].denied_at);
	}
	free(d);
}
