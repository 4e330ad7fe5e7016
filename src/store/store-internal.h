/* store-internal.h - what the store's .c files share; not a public API.
 *
 * Every public store_* function takes the store's mutex with
 * STORE_LOCK(st) before touching the connection, and gets its prepared
 * statements from a per-connection cache with STORE_STMT(), which resets
 * and unbinds them when the scope ends (declare the lock first, so the
 * statements are reset before the mutex is released).
 */
#ifndef CORRAL_STORE_STORE_INTERNAL_H
#define CORRAL_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/error.h"

#define STORE_STMT_CACHE 64

struct store_stmt_slot {
	const char *sql;             /* a string literal: compared by address */
	sqlite3_stmt *stmt;
};

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
	unsigned char hash_key[32];
	struct store_stmt_slot cache[STORE_STMT_CACHE];
};

/* Turn the connection's last SQLite error into err (EIO, or EAGAIN when the
 * database stayed locked past the busy timeout).  Returns -1. */
int store_db_fail(struct store *st, struct cr_error *err, const char *what);

/* A cached prepared statement for `sql` (which must be a string literal);
 * NULL with err set when SQLite refuses it. */
sqlite3_stmt *store_stmt(struct store *st, const char *sql, struct cr_error *err);

static inline void store_stmt_resetp(sqlite3_stmt **s)
{
	if (*s) {
		sqlite3_reset(*s);
		sqlite3_clear_bindings(*s);
	}
}

static inline void store_unlockp(struct store **st)
{
	if (*st)
		pthread_mutex_unlock(&(*st)->lock);
}

static inline struct store *store_lock(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	return st;
}

#define STORE_LOCK(st) \
	struct store *store_locked_ __attribute__((cleanup(store_unlockp), unused)) = store_lock(st)
#define cleanup_stmt __attribute__((cleanup(store_stmt_resetp)))

/* Write transactions: BEGIN IMMEDIATE takes the write lock up front, so
 * the busy timeout applies (a deferred transaction that upgrades later
 * would fail at once with SQLITE_BUSY). */
int store_begin(struct store *st, struct cr_error *err);
int store_commit(struct store *st, struct cr_error *err);
void store_rollback(struct store *st);

/* Column helpers: a copy of a text column (NULL for SQL NULL). */
char *store_col_text(sqlite3_stmt *s, int col);

/* Binding helpers: a NULL string binds SQL NULL. */
int store_bind_text(sqlite3_stmt *s, int idx, const char *text);

/* The id of the live (not deleted) environment `name`: ENOENT if none. */
int store_env_id_locked(struct store *st, const char *name, int64_t *id, struct cr_error *err);

/* Keyed BLAKE2b-256 of `secret` with the store's hash key. */
void store_hash_secret(struct store *st, const char *secret, unsigned char out[32]);

/* "YYYY-MM" with a month 01..12. */
bool store_month_valid(const char *month);

/* store-migrate.c: create schema_migrations and apply every migration not
 * yet recorded; the highest migration number this build knows. */
int store_migrate(struct store *st, struct cr_error *err);
int store_latest_migration(void);

#endif
