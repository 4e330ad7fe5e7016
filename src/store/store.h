/* store.h - corral's state: environments, API keys, plans, threads,
 * executions and usage, in one SQLite database (WAL).
 *
 * This header is the whole contract of the store; a PostgreSQL backend
 * for a multi-node deployment would implement the same functions
 * (DESIGN.md 6, 7).  Schema changes are numbered migrations applied in
 * order by store_open() inside one transaction each; the applied numbers
 * are kept in table schema_migrations.
 *
 * Thread safety: one `struct store` is one SQLite connection; every call
 * takes the store's mutex, so a store may be shared between the HTTP
 * threads and the sandbox thread.  A second process (the admin CLI while
 * `corral serve` runs) opens its own connection; SQLite's busy timeout
 * (5 s) serialises writers.
 *
 * Errors: functions return 0 (or a pointer) on success and -1 (or NULL)
 * with `err` filled; "not found" is -1 with err->errnum == ENOENT, a
 * duplicate name is -1 with err->errnum == EEXIST, so callers can map
 * them to 404 / 409 without parsing messages.  Other numbers: EINVAL for
 * a value the store refuses (a bad name, month, status: a 400), EAGAIN
 * when the database stayed locked past the busy timeout (a 503), EIO for
 * anything else SQLite reports.  A sentence for ENOENT, EEXIST, EINVAL
 * and the like carries no strerror() suffix: it can be shown as it is.
 *
 * Strings in returned structs are owned by the struct; free them with the
 * matching *_release() (or *_list_free() for arrays).
 *
 * Times are ISO 8601 UTC text ("2026-11-29T06:19:31Z"); months "YYYY-MM".
 */
#ifndef CORRAL_STORE_STORE_H
#define CORRAL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct store;

/* Open (creating if missing, mode 0600) the database at `path`, apply
 * migrations, and insert the default plans if the plans table is empty.
 * A new database also gets the environment "default" (store_env_defaults()
 * values) from a migration, so it exists exactly once: deleting it later
 * is not undone by the next open.  `hash_key` (32 bytes) keys the API-key
 * and admin-token hashes (BLAKE2b via libsodium's crypto_generichash); the
 * store keeps a copy.  state.h derives it from the state directory's
 * secrets.key. */
struct store *store_open(const char *path, const unsigned char hash_key[32], struct cr_error *err);
void store_close(struct store *st);

/* Highest applied migration number (for tests and `corral serve` logs). */
int store_schema_version(struct store *st);

/* --- plans ------------------------------------------------------------ */

struct store_plan {
	char *name;                  /* "free", "pro", "unlimited", ... */
	int64_t monthly_credits;     /* -1: unlimited */
	int32_t max_timeout_s;       /* requests above this get 400 */
	bool allow_streaming;
	bool allow_async;
	int32_t max_concurrent;      /* per key; 0: unlimited */
};

/* Defaults inserted on first open:
 *   free:      1000 credits, 60 s, no streaming, no async, 2 concurrent
 *   pro:       100000 credits, 3600 s, streaming, async, 16 concurrent
 *   unlimited: -1 credits, 86400 s, streaming, async, 0 (unlimited) */
int store_plan_get(struct store *st, const char *name, struct store_plan *out, struct cr_error *err);
int store_plan_list(struct store *st, struct store_plan **out, size_t *n, struct cr_error *err);
/* Create or replace the plan named p->name (plans are configurable:
 * DESIGN.md 2).  EINVAL for a bad name or a negative limit other than
 * monthly_credits = -1 (unlimited). */
int store_plan_set(struct store *st, const struct store_plan *p, struct cr_error *err);
void store_plan_release(struct store_plan *p);
void store_plan_list_free(struct store_plan *p, size_t n);

/* --- environments ----------------------------------------------------- */

struct store_env {
	int64_t id;
	char *name;                  /* [a-z0-9][a-z0-9_-]{0,62} */
	char *image;                 /* "host" (the host-composed image) */
	/* The egress policy as text (proxy/policy.h): "none" (the
	 * default), "open", "allowlist", "allowlist: example.com,
	 * *.example.org:443".  Stored normalized, as egress_policy_to_string()
	 * writes it; egress_policy_parse_string() reads it back. */
	char *network;
	int64_t memory_mib;          /* default 512 */
	int64_t pids;                /* default 256 */
	int64_t cpu_milli;           /* default 1000 */
	int64_t tmp_mib;             /* default 256 */
	bool allow_nested;           /* default false */
	char *created_at;
};

/* Fills defaults for every field but name (image "host", network "none"). */
void store_env_defaults(struct store_env *env);
/* Validate an environment name: 0, or -1 with a sentence. */
int store_check_env_name(const char *name, struct cr_error *err);
/* Insert; env->id and env->created_at are filled and env->network is
 * replaced by its normalized form.  EEXIST on duplicate, EINVAL for a bad
 * name or a field out of bounds (memory 8..1048576 MiB, pids 2..4194304,
 * cpu_milli 10..1024000, tmp 1..1048576 MiB) or a network policy that
 * egress_policy_parse_string() refuses, with its sentence ("egress entry
 * 'a..b': empty label").  NULL network is "none". */
int store_env_create(struct store *st, struct store_env *env, struct cr_error *err);
int store_env_get(struct store *st, const char *name, struct store_env *out, struct cr_error *err);
int store_env_get_by_id(struct store *st, int64_t id, struct store_env *out, struct cr_error *err);
int store_env_list(struct store *st, struct store_env **out, size_t *n, struct cr_error *err);
/* Update every settable field of the environment named env->name
 * (ENOENT, EINVAL as for create).  The network policy is stored
 * normalized; env itself is left as given. */
int store_env_update(struct store *st, const struct store_env *env, struct cr_error *err);
/* Delete; refuses (EBUSY, a sentence naming the count) while active keys
 * are bound to it unless `force`, which revokes them.  The environment's
 * thread records go with it; its thread homes are the caller's to remove
 * (store_state_remove_home()).  The row itself is kept, marked deleted,
 * so an environment id is never reused (a new environment must not
 * inherit an old one's homes) and past usage keeps its environment name;
 * the name is free again at once.  Deleted environments are invisible to
 * every other function here except key and usage listings. */
int store_env_delete(struct store *st, const char *name, bool force, struct cr_error *err);
void store_env_release(struct store_env *e);
void store_env_list_free(struct store_env *e, size_t n);

/* --- API keys --------------------------------------------------------- */

struct store_key {
	int64_t id;
	char *prefix;                /* "sk-<region>-" and the first 8 random characters,
				      * for display */
	int64_t env_id;
	char *env_name;
	char *plan;
	char *name;                  /* label, may be NULL */
	char *created_at;
	char *revoked_at;            /* NULL while active */
};

/* Create a key "sk-<region>-<43 chars of base64url of 32 random bytes>"
 * bound to environment `env` and plan `plan`; *secret gets the full key
 * (caller frees): it is shown once and only its keyed hash is stored.
 * `region` is [a-z0-9] with inner '-', 1 to 32 characters; `name` (may be
 * NULL) 1 to 128 characters without control characters: EINVAL
 * otherwise.  ENOENT for an unknown environment or plan. */
int store_key_create(struct store *st, const char *env, const char *plan, const char *name,
		     const char *region, char **secret, struct store_key *out, struct cr_error *err);
/* Look a presented key up by its keyed hash (never by comparing key
 * bytes): ENOENT when unknown, EKEYREVOKED when revoked (keys of a deleted
 * environment are revoked).  `out` is filled only on success. */
int store_key_authenticate(struct store *st, const char *secret, struct store_key *out,
			   struct cr_error *err);
/* All keys, or those of one environment (env may be NULL; ENOENT when it
 * does not exist), by id. */
int store_key_list(struct store *st, const char *env, struct store_key **out, size_t *n,
		   struct cr_error *err);
/* Revoke by id, by prefix (the start of a display prefix, at least 8
 * characters, matching one key) or by the whole key.  ENOENT when nothing
 * matches, ENOTUNIQ when a prefix matches several keys, EINVAL for a
 * prefix under 8 characters, EKEYREVOKED when the key is already revoked. */
int store_key_revoke(struct store *st, const char *id_or_prefix, struct cr_error *err);
void store_key_release(struct store_key *k);
void store_key_list_free(struct store_key *k, size_t n);

/* --- admin token ------------------------------------------------------ */

/* Create the admin token ("cra-" and 43 characters of base64url) if none
 * exists: *token gets it (caller frees), or NULL when one already existed
 * (it is never shown again).  Only its keyed hash is stored. */
int store_admin_token_ensure(struct store *st, char **token, struct cr_error *err);
/* 0 when `token` is the admin token, -1 (EACCES) otherwise. */
int store_admin_token_check(struct store *st, const char *token, struct cr_error *err);

/* --- threads ---------------------------------------------------------- */

struct store_thread {
	int64_t env_id;
	char *thread_id;             /* [A-Za-z0-9._-]{1,128} */
	char *created_at;
	char *last_used_at;
	int64_t bytes;               /* size of the home after the last execution */
};

/* [A-Za-z0-9._-]{1,128} but not "." or ".." (the id names a directory):
 * 0, or -1 with EINVAL and a sentence.  Every thread function checks it. */
int store_check_thread_id(const char *thread_id, struct cr_error *err);
/* Record a use: insert on first use, else update last_used_at and bytes;
 * bytes < 0 leaves the recorded size as it is (a use before the size is
 * known).  ENOENT when the environment does not exist. */
int store_thread_touch(struct store *st, int64_t env_id, const char *thread_id, int64_t bytes,
		       struct cr_error *err);
int store_thread_get(struct store *st, int64_t env_id, const char *thread_id,
		     struct store_thread *out, struct cr_error *err);
int store_thread_list(struct store *st, int64_t env_id, struct store_thread **out, size_t *n,
		      struct cr_error *err);
int store_thread_delete(struct store *st, int64_t env_id, const char *thread_id,
			struct cr_error *err);
void store_thread_release(struct store_thread *t);
void store_thread_list_free(struct store_thread *t, size_t n);

/* --- executions ------------------------------------------------------- */

struct store_exec {
	char *trace_id;              /* "trc_" + 32 hex */
	int64_t key_id;
	int64_t env_id;
	char *thread_id;             /* may be NULL */
	char *language;
	char *status;                /* running, success, failed, timeout, oom, blocked, cancelled */
	int64_t exit_code;           /* -1: none */
	int64_t signal;              /* 0: none */
	char *stdout_text;           /* NULL while running */
	char *stderr_text;
	char *error;                 /* NULL or a sentence */
	char *delivery_mode;         /* "inline", "stream", "async" */
	int64_t timeout_ms;
	int64_t duration_ms;
	int64_t cpu_ms;
	int64_t peak_memory;
	int64_t credits;
	char *created_at;
	char *completed_at;          /* NULL while running */
	char *network;               /* JSON {"allowed": [...], "denied": [...]}, or NULL */
};

/* Insert a running execution (status "running", output NULL);
 * ex->trace_id ("trc_" + 32 hex), key_id, env_id, language and
 * delivery_mode must be set by the caller (thread_id and timeout_ms may
 * be); ex->created_at and ex->status are filled.  EEXIST for a trace_id
 * already used, ENOENT for an unknown key or environment, EINVAL for a
 * malformed field. */
int store_exec_insert(struct store *st, struct store_exec *ex, struct cr_error *err);
/* Record the end: status, exit_code, signal, output, error, timings,
 * credits, completed_at (filled).  Also adds the credits and one execution
 * to the key's usage for the month of created_at, in one transaction.
 * Only a running execution can end, once: EALREADY (and nothing changes,
 * nothing is billed twice) when it has ended already, ENOENT when there is
 * no such execution, EINVAL when ex->status is not a final status or the
 * credits are negative. */
int store_exec_finish(struct store *st, struct store_exec *ex, struct cr_error *err);
int store_exec_get(struct store *st, const char *trace_id, struct store_exec *out,
		   struct cr_error *err);
/* Crash recovery: every execution still "running" becomes "failed" with
 * `error` and a completed_at; returns how many (>= 0), or -1.  Nothing is
 * billed for them: the platform failed, not the caller's code. */
int store_exec_fail_running(struct store *st, const char *error, struct cr_error *err);
void store_exec_release(struct store_exec *e);

/* --- usage ------------------------------------------------------------ */

struct store_usage {
	int64_t key_id;
	char *key_prefix;
	char *env_name;
	char *month;
	int64_t credits;
	int64_t executions;
};

/* Credits used by a key in `month` (0 when none).  A NULL month is the
 * current one; a month that is not "YYYY-MM" is EINVAL (so for the list). */
int store_usage_credits(struct store *st, int64_t key_id, const char *month, int64_t *credits,
			struct cr_error *err);
/* Usage rows for a month, optionally of one environment (env may be NULL;
 * ENOENT when it does not exist), by environment name and key id. */
int store_usage_list(struct store *st, const char *env, const char *month,
		     struct store_usage **out, size_t *n, struct cr_error *err);
void store_usage_list_free(struct store_usage *u, size_t n);

/* --- connectors ------------------------------------------------------- */

/* A connector is a credential an operator stores once and attaches to
 * environments (DESIGN.md 5); src/secrets/connector.h gives it meaning.
 * The store knows nothing of connector types or of cryptography: `sealed`
 * is the secret as connector.c encrypted it (the store never sees a secret
 * in clear), `settings` a JSON object of the non-secret fields, and `names`
 * what the connector puts into a sandbox (variable names, and paths
 * starting with '/' for files).  Two connectors attached to one
 * environment may not share a name: attach and rotate refuse that.
 *
 * Statements here are prepared per call rather than cached: connector
 * operations are rare, and the per-connection cache has a fixed size. */
struct store_connector {
	int64_t id;
	char *name;                  /* [a-z0-9][a-z0-9_-]{0,62} */
	char *type;                  /* "anthropic", "github", ... (connector.h) */
	char *mode;                  /* "inject" or "broker" */
	char *settings;              /* JSON object of the non-secret fields */
	char **names;                /* what it injects, in injection order */
	size_t nnames;
	char *fingerprint;           /* keyed hash of the secret, for display */
	char *created_at;
	char *rotated_at;            /* NULL until the secret is rotated */
	char **envs;                 /* live environments it is attached to, by name */
	size_t nenvs;
	unsigned char *sealed;       /* filled only by store_connector_list_for_env() */
	size_t sealed_len;
};

/* 0, or -1 with EINVAL and a sentence. */
int store_check_connector_name(const char *name, struct cr_error *err);
/* Insert c (name, type, mode, settings, names, fingerprint, sealed must be
 * set; a name holds [A-Za-z0-9_] or starts with '/', without spaces);
 * c->id and c->created_at are filled.  EEXIST when the name is taken,
 * EINVAL for a malformed field. */
int store_connector_create(struct store *st, struct store_connector *c, struct cr_error *err);
/* By name, without the sealed secret: ENOENT when unknown. */
int store_connector_get(struct store *st, const char *name, struct store_connector *out,
			struct cr_error *err);
/* All connectors, or those attached to environment `env` (may be NULL;
 * ENOENT when it does not exist), by name, without the sealed secrets. */
int store_connector_list(struct store *st, const char *env, struct store_connector **out,
			 size_t *n, struct cr_error *err);
/* The connectors attached to environment `env_id`, by name, with their
 * sealed secrets (for the injection builder).  An environment that does
 * not exist (or was deleted) has none. */
int store_connector_list_for_env(struct store *st, int64_t env_id, struct store_connector **out,
				 size_t *n, struct cr_error *err);
/* Replace the secret of the connector named c->name in place: sealed,
 * fingerprint, settings and names are replaced, rotated_at set (filled in
 * c).  ENOENT when unknown; ENOTUNIQ, and nothing changes, when a new name
 * would clash with another connector of an environment it is attached to. */
int store_connector_rotate(struct store *st, struct store_connector *c, struct cr_error *err);
/* Delete; EBUSY (a sentence naming the environments) while it is attached
 * unless `force`, which detaches it.  Its past uses stay in the audit. */
int store_connector_delete(struct store *st, const char *name, bool force, struct cr_error *err);
/* Attach to / detach from environment `env`.  Attach: ENOENT for an unknown
 * connector or environment, EEXIST when already attached, ENOTUNIQ when
 * another connector of the environment injects one of the same names.
 * Detach: ENOENT when unknown or not attached. */
int store_connector_attach(struct store *st, const char *name, const char *env,
			   struct cr_error *err);
int store_connector_detach(struct store *st, const char *name, const char *env,
			   struct cr_error *err);
void store_connector_release(struct store_connector *c);
void store_connector_list_free(struct store_connector *c, size_t n);

/* One refusal of an execution's egress proxy (the audit). */
struct store_egress_denial {
	int64_t id;
	char *trace_id;
	char *env_name;              /* NULL if not recorded */
	char *target;                /* "host:port" */
	char *code;                  /* the policy's code: not_allowlisted, loopback, ... */
	char *reason;                /* the sentence the sandbox was answered */
	char *denied_at;
};

/* Record a refusal of execution `trace_id` (after store_exec_insert(): the
 * environment is read from the execution).  EINVAL for a malformed field. */
int store_egress_denial_record(struct store *st, const char *trace_id, const char *target,
			       const char *code, const char *reason, struct cr_error *err);
/* The newest `limit` refusals (1..1000), of one execution when trace_id
 * is not NULL. */
int store_egress_denial_list(struct store *st, const char *trace_id, int limit,
			     struct store_egress_denial **out, size_t *n, struct cr_error *err);
void store_egress_denial_list_free(struct store_egress_denial *d, size_t n);

/* One connector handed to one execution (the audit). */
struct store_connector_use {
	int64_t id;
	char *trace_id;
	int64_t connector_id;
	char *connector_name;        /* as it was named then; NULL if deleted before */
	char *env_name;              /* of the execution; NULL if not recorded */
	char *used_at;
};

/* Record that execution `trace_id` received connector `connector_id`.  The
 * environment is read from the execution (record after store_exec_insert()),
 * the connector's name is copied, so the record outlives both.  EINVAL for
 * a malformed trace id.  NEEDSWORK: uses are never pruned. */
int store_connector_use_record(struct store *st, const char *trace_id, int64_t connector_id,
			       struct cr_error *err);
/* The most recent uses first, at most `limit` (1..1000), of one connector
 * (connector_id > 0), of every connector once named `name` (not NULL), or
 * of all. */
int store_connector_use_list(struct store *st, int64_t connector_id, const char *name, int limit,
			     struct store_connector_use **out, size_t *n, struct cr_error *err);
void store_connector_use_list_free(struct store_connector_use *u, size_t n);

/* --- helpers ---------------------------------------------------------- */

/* Current time as ISO 8601 UTC (caller frees) and the month "YYYY-MM" of
 * such a time (of now when `iso` is NULL or malformed). */
char *store_now_iso(void);
void store_month_of(const char *iso, char month[8]);

#endif
