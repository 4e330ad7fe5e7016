/* store-migrate.c - the schema, as numbered migrations (see store.h).
 *
 * A migration is never edited once released: a change to the schema is a
 * new entry at the end of `migrations`.  Each one runs in its own
 * transaction together with the row that records it, so a crash leaves
 * the database either before or after it, and two processes opening a
 * new database at once apply it only once (the second re-checks under
 * the write lock).
 */
#include "store/store-internal.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

struct migration {
	int version;
	const char *sql;
};

static const struct migration migrations[] = {
	{ 1,
	  /* Environments are deleted softly (deleted_at) so that an id is never
	   * reused: thread homes live under threads/<env-id>/, and a new
	   * environment must not inherit a deleted one's files.  Names are
	   * unique among live environments only. */
	  "CREATE TABLE plans ("
	  "  name TEXT PRIMARY KEY,"
	  "  monthly_credits INTEGER NOT NULL,"
	  "  max_timeout_s INTEGER NOT NULL,"
	  "  allow_streaming INTEGER NOT NULL,"
	  "  allow_async INTEGER NOT NULL,"
	  "  max_concurrent INTEGER NOT NULL"
	  ");"
	  "CREATE TABLE environments ("
	  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  "  name TEXT NOT NULL,"
	  "  image TEXT NOT NULL,"
	  "  network TEXT NOT NULL,"
	  "  memory_mib INTEGER NOT NULL,"
	  "  pids INTEGER NOT NULL,"
	  "  cpu_milli INTEGER NOT NULL,"
	  "  tmp_mib INTEGER NOT NULL,"
	  "  allow_nested INTEGER NOT NULL,"
	  "  created_at TEXT NOT NULL,"
	  "  deleted_at TEXT"
	  ");"
	  "CREATE UNIQUE INDEX environments_live_name ON environments(name)"
	  "  WHERE deleted_at IS NULL;"
	  "CREATE TABLE api_keys ("
	  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  "  hash BLOB NOT NULL UNIQUE,"
	  "  prefix TEXT NOT NULL,"
	  "  env_id INTEGER NOT NULL REFERENCES environments(id),"
	  "  plan TEXT NOT NULL REFERENCES plans(name),"
	  "  name TEXT,"
	  "  created_at TEXT NOT NULL,"
	  "  revoked_at TEXT"
	  ");"
	  "CREATE INDEX api_keys_env ON api_keys(env_id);"
	  "CREATE TABLE admin_token ("
	  "  id INTEGER PRIMARY KEY CHECK (id = 1),"
	  "  hash BLOB NOT NULL,"
	  "  created_at TEXT NOT NULL"
	  ");"
	  "CREATE TABLE threads ("
	  "  env_id INTEGER NOT NULL REFERENCES environments(id),"
	  "  thread_id TEXT NOT NULL,"
	  "  created_at TEXT NOT NULL,"
	  "  last_used_at TEXT NOT NULL,"
	  "  bytes INTEGER NOT NULL DEFAULT 0,"
	  "  PRIMARY KEY (env_id, thread_id)"
	  ");"
	  "CREATE TABLE executions ("
	  "  trace_id TEXT PRIMARY KEY,"
	  "  key_id INTEGER NOT NULL REFERENCES api_keys(id),"
	  "  env_id INTEGER NOT NULL REFERENCES environments(id),"
	  "  thread_id TEXT,"
	  "  language TEXT NOT NULL,"
	  "  status TEXT NOT NULL,"
	  "  exit_code INTEGER NOT NULL DEFAULT -1,"
	  "  signal INTEGER NOT NULL DEFAULT 0,"
	  "  stdout TEXT,"
	  "  stderr TEXT,"
	  "  error TEXT,"
	  "  delivery_mode TEXT NOT NULL,"
	  "  timeout_ms INTEGER NOT NULL DEFAULT 0,"
	  "  duration_ms INTEGER NOT NULL DEFAULT 0,"
	  "  cpu_ms INTEGER NOT NULL DEFAULT 0,"
	  "  peak_memory INTEGER NOT NULL DEFAULT 0,"
	  "  credits INTEGER NOT NULL DEFAULT 0,"
	  "  created_at TEXT NOT NULL,"
	  "  completed_at TEXT"
	  ");"
	  "CREATE INDEX executions_running ON executions(status) WHERE status = 'running';"
	  "CREATE INDEX executions_env ON executions(env_id, created_at);"
	  "CREATE TABLE usage ("
	  "  key_id INTEGER NOT NULL REFERENCES api_keys(id),"
	  "  month TEXT NOT NULL,"
	  "  credits INTEGER NOT NULL DEFAULT 0,"
	  "  executions INTEGER NOT NULL DEFAULT 0,"
	  "  PRIMARY KEY (key_id, month)"
	  ");" },
	{ 2,
	  /* A new database starts with the environment 'default' (DESIGN.md 6,
	   * issue 3): host image, no network, 512 MiB, 256 pids, one CPU.  As
	   * a migration it happens exactly once, so deleting 'default' later
	   * is not undone by the next start. */
	  "INSERT INTO environments (name, image, network, memory_mib, pids, cpu_milli, tmp_mib,"
	  "  allow_nested, created_at)"
	  " VALUES ('default', 'host', 'none', 512, 256, 1000, 256, 0,"
	  "  strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));" },
	{ 3,
	  /* Connectors (DESIGN.md 5, store.h): `sealed` is nonce and secretbox
	   * ciphertext, never a secret in clear.  Attachments to a deleted
	   * environment stay behind harmlessly (environment ids are never
	   * reused) and every query skips them.  A use keeps the connector's
	   * name and has no foreign key, so the audit outlives the connector;
	   * AUTOINCREMENT keeps a deleted connector's id from being reused. */
	  "CREATE TABLE connectors ("
	  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  "  name TEXT NOT NULL UNIQUE,"
	  "  type TEXT NOT NULL,"
	  "  mode TEXT NOT NULL,"
	  "  settings TEXT NOT NULL,"
	  "  names TEXT NOT NULL,"
	  "  fingerprint TEXT NOT NULL,"
	  "  sealed BLOB NOT NULL,"
	  "  created_at TEXT NOT NULL,"
	  "  rotated_at TEXT"
	  ");"
	  "CREATE TABLE connector_envs ("
	  "  connector_id INTEGER NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,"
	  "  env_id INTEGER NOT NULL REFERENCES environments(id),"
	  "  attached_at TEXT NOT NULL,"
	  "  PRIMARY KEY (connector_id, env_id)"
	  ");"
	  "CREATE INDEX connector_envs_env ON connector_envs(env_id);"
	  "CREATE TABLE connector_uses ("
	  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  "  trace_id TEXT NOT NULL,"
	  "  connector_id INTEGER NOT NULL,"
	  "  connector_name TEXT,"
	  "  env_id INTEGER,"
	  "  used_at TEXT NOT NULL"
	  ");"
	  "CREATE INDEX connector_uses_connector ON connector_uses(connector_id);"
	  "CREATE INDEX connector_uses_name ON connector_uses(connector_name);" },
	{ 4,
	  /* Egress (issue 5): what each execution's network did, and every
	   * refusal of the proxy in the audit. */
	  "ALTER TABLE executions ADD COLUMN network TEXT;"
	  "CREATE TABLE egress_denials ("
	  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  "  trace_id TEXT NOT NULL,"
	  "  env_id INTEGER,"
	  "  target TEXT NOT NULL,"
	  "  code TEXT NOT NULL,"
	  "  reason TEXT NOT NULL,"
	  "  denied_at TEXT NOT NULL"
	  ");"
	  "CREATE INDEX egress_denials_trace ON egress_denials(trace_id);" },
};

static int migration_applied(struct store *st, int version, bool *applied, struct cr_error *err)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM schema_migrations WHERE version = ?", -1, &s,
			       NULL) != SQLITE_OK)
		return store_db_fail(st, err, "read schema_migrations");
	sqlite3_bind_int(s, 1, version);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_fail(st, err, "read schema_migrations");
	*applied = rc == SQLITE_ROW;
	return 0;
}

static int apply_one(struct store *st, const struct migration *m, struct cr_error *err)
{
	sqlite3_stmt *s;
	char *msg = NULL;
	bool applied = false;
	int rc;

	if (store_begin(st, err) < 0)
		return -1;
	if (migration_applied(st, m->version, &applied, err) < 0)
		goto fail;
	if (applied) {
		store_rollback(st);
		return 0;
	}
	if (sqlite3_exec(st->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
		cr_error_setn(err, EIO, "migration %d: %s", m->version, msg ? msg : "failed");
		sqlite3_free(msg);
		goto fail;
	}
	if (sqlite3_prepare_v2(st->db,
			       "INSERT INTO schema_migrations (version, applied_at)"
			       " VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
			       -1, &s, NULL) != SQLITE_OK) {
		store_db_fail(st, err, "record migration");
		goto fail;
	}
	sqlite3_bind_int(s, 1, m->version);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_db_fail(st, err, "record migration");
		goto fail;
	}
	if (store_commit(st, err) < 0)
		goto fail;
	return 0;
fail:
	store_rollback(st);
	return cr_error_wrap(err, "apply migration %d", m->version);
}

/* Called by store_open() before the store is shared: no lock needed. */
int store_migrate(struct store *st, struct cr_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db,
			 "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 "  version INTEGER PRIMARY KEY,"
			 "  applied_at TEXT NOT NULL)",
			 NULL, NULL, &msg) != SQLITE_OK) {
		cr_error_setn(err, EIO, "cannot create schema_migrations: %s", msg ? msg : "failed");
		sqlite3_free(msg);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(migrations); i++) {
		/* Numbered 1, 2, 3...: a duplicate number would be skipped as
		 * applied, silently. */
		if (migrations[i].version != (int)i + 1)
			return cr_error_setn(err, EINVAL, "migration %zu is numbered %d", i + 1,
					  migrations[i].version);
		if (apply_one(st, &migrations[i], err) < 0)
			return -1;
	}
	return 0;
}

int store_latest_migration(void)
{
	return migrations[ARRAY_SIZE(migrations) - 1].version;
}
