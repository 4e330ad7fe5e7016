/* test-store.c - the store (store.h) and the state directory (state.h)
 * against a real SQLite file in a temporary directory.
 *
 * Every public function is driven, with the error numbers callers map to
 * HTTP statuses (ENOENT, EEXIST, EKEYREVOKED, EBUSY, EINVAL, EALREADY).
 * The secrets checks read the raw database files: a key or token must
 * never be found there in clear, only a 32-byte keyed hash. */
#define _GNU_SOURCE
#include "store/state.h"
#include "store/store.h"
#include "util/util.h"
#include "unit.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/corral-test-store-XXXXXX";
static const unsigned char hash_key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

#define OK(call)                                                                          \
	do {                                                                              \
		struct cr_error e_ = CR_ERROR_INIT;                                       \
		int r_ = (call);                                                          \
		CHECK(r_ >= 0);                                                           \
		if (r_ < 0)                                                               \
			fprintf(stderr, "  %s: %s\n", #call, e_.msg ? e_.msg : "(no message)"); \
		cr_error_release(&e_);                                                    \
	} while (0)

/* `call` (using `&e_` as its error) fails with errno `num`. */
#define FAILS(num, call)                                                                  \
	do {                                                                              \
		struct cr_error e_ = CR_ERROR_INIT;                                       \
		int r_ = (call);                                                          \
		CHECK(r_ < 0);                                                            \
		CHECK(e_.errnum == (num));                                                \
		CHECK(e_.msg != NULL);                                                    \
		if (r_ >= 0 || e_.errnum != (num))                                        \
			fprintf(stderr, "  %s: r=%d errnum=%d (%s), want %d\n", #call, r_, \
				e_.errnum, e_.msg ? e_.msg : "", (num));                  \
		cr_error_release(&e_);                                                    \
	} while (0)

static char *path_in(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static struct store *open_store(const char *file)
{
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *path = path_in(file);
	struct store *st = store_open(path, hash_key, &err);

	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		exit(1);
	}
	return st;
}

/* Does the file at `path` (if it exists) contain `needle`? */
static bool file_contains(const char *path, const char *needle)
{
	size_t len;
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *data = read_file(path, &len, &err);

	cr_error_release(&err);
	return data && memmem(data, len, needle, strlen(needle)) != NULL;
}

static bool db_files_contain(const char *file, const char *needle)
{
	cleanup_free char *db = path_in(file);
	cleanup_free char *wal = xasprintf("%s-wal", db);

	return file_contains(db, needle) || file_contains(wal, needle);
}

static bool put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return false;
	fputs(text, f);
	return fclose(f) == 0;
}

/* Run SQL on the database through a separate connection (as a second
 * process would). */
static void raw_sql(const char *file, const char *sql)
{
	cleanup_free char *path = path_in(file);
	sqlite3 *db;

	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void test_open_and_migrations(void)
{
	struct store *st = open_store("a.db");
	struct store_env *envs;
	struct store_plan *plans;
	size_t n;
	int v = store_schema_version(st);

	CHECK(v >= 2);
	store_close(st);

	/* Reopening applies nothing twice: one 'default', three plans. */
	st = open_store("a.db");
	CHECK(store_schema_version(st) == v);
	OK(store_env_list(st, &envs, &n, &e_));
	CHECK(n == 1);
	CHECK_STR(n ? envs[0].name : NULL, "default");
	store_env_list_free(envs, n);
	OK(store_plan_list(st, &plans, &n, &e_));
	CHECK(n == 3);
	store_plan_list_free(plans, n);
	store_close(st);

	/* Deleting 'default' is not undone by the next open. */
	st = open_store("a.db");
	OK(store_env_delete(st, "default", false, &e_));
	store_close(st);
	st = open_store("a.db");
	OK(store_env_list(st, &envs, &n, &e_));
	CHECK(n == 0);
	store_env_list_free(envs, n);
	store_close(st);

	/* The database and its WAL are private. */
	cleanup_free char *path = path_in("a.db");
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 077) == 0);

	/* A path that cannot be opened is an error, not a crash. */
	struct cr_error err = CR_ERROR_INIT;
	CHECK(store_open("/nonexistent-dir/x.db", hash_key, &err) == NULL);
	CHECK(err.msg && strstr(err.msg, "/nonexistent-dir/x.db"));
	cr_error_release(&err);
}

static void test_defaults(struct store *st)
{
	struct store_plan p;
	struct store_env e = { 0 };

	OK(store_plan_get(st, "free", &p, &e_));
	CHECK(p.monthly_credits == 1000 && p.max_timeout_s == 60 && !p.allow_streaming &&
	      !p.allow_async && p.max_concurrent == 2);
	store_plan_release(&p);
	OK(store_plan_get(st, "pro", &p, &e_));
	CHECK(p.monthly_credits == 100000 && p.max_timeout_s == 3600 && p.allow_streaming &&
	      p.allow_async && p.max_concurrent == 16);
	store_plan_release(&p);
	OK(store_plan_get(st, "unlimited", &p, &e_));
	CHECK(p.monthly_credits == -1 && p.max_timeout_s == 86400 && p.allow_streaming &&
	      p.allow_async && p.max_concurrent == 0);
	store_plan_release(&p);
	FAILS(ENOENT, store_plan_get(st, "gold", &p, &e_));

	OK(store_env_get(st, "default", &e, &e_));
	CHECK_STR(e.image, "host");
	CHECK_STR(e.network, "none");
	CHECK(e.memory_mib == 512 && e.pids == 256 && e.cpu_milli == 1000 && e.tmp_mib == 256 &&
	      !e.allow_nested);
	CHECK(e.created_at && strlen(e.created_at) == 20 && e.created_at[19] == 'Z');
	store_env_release(&e);

	store_env_defaults(&e);
	CHECK_STR(e.image, "host");
	CHECK(e.memory_mib == 512 && e.pids == 256 && e.cpu_milli == 1000 && e.tmp_mib == 256);
	store_env_release(&e);
}

static void test_names(void)
{
	static const char *const good_env[] = { "a", "default", "0x", "team-a_1",
						"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk" };
	static const char *const bad_env[] = { "", "A", "-a", "_a", "a b", "a/b", "é", "a.b",
					       "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl" };
	static const char *const good_thread[] = { "a", "T-1.x_y", "...", ".hidden", "a..b" };
	static const char *const bad_thread[] = { "", ".", "..", "a/b", "../x", "a b", "é", "a\n" };
	char long_id[130];

	for (size_t i = 0; i < ARRAY_SIZE(good_env); i++)
		OK(store_check_env_name(good_env[i], &e_));
	for (size_t i = 0; i < ARRAY_SIZE(bad_env); i++)
		FAILS(EINVAL, store_check_env_name(bad_env[i], &e_));
	for (size_t i = 0; i < ARRAY_SIZE(good_thread); i++)
		OK(store_check_thread_id(good_thread[i], &e_));
	for (size_t i = 0; i < ARRAY_SIZE(bad_thread); i++)
		FAILS(EINVAL, store_check_thread_id(bad_thread[i], &e_));
	memset(long_id, 'x', 128);
	long_id[128] = '\0';
	OK(store_check_thread_id(long_id, &e_));
	long_id[128] = 'x';
	long_id[129] = '\0';
	FAILS(EINVAL, store_check_thread_id(long_id, &e_));
}

static void test_envs(struct store *st)
{
	struct store_env e = { 0 }, got;
	struct store_env *v;
	size_t n;
	int64_t id;

	store_env_defaults(&e);
	e.name = xstrdup("work");
	e.memory_mib = 1024;
	e.cpu_milli = 500;
	e.allow_nested = true;
	OK(store_env_create(st, &e, &e_));
	CHECK(e.id > 0 && e.created_at != NULL);
	id = e.id;
	FAILS(EEXIST, store_env_create(st, &e, &e_));

	OK(store_env_get(st, "work", &got, &e_));
	CHECK(got.id == id && got.memory_mib == 1024 && got.cpu_milli == 500 && got.allow_nested);
	store_env_release(&got);
	OK(store_env_get_by_id(st, id, &got, &e_));
	CHECK_STR(got.name, "work");
	store_env_release(&got);
	FAILS(ENOENT, store_env_get(st, "nope", &got, &e_));
	FAILS(ENOENT, store_env_get_by_id(st, 999999, &got, &e_));

	/* Out-of-bounds fields and bad names change nothing. */
	e.memory_mib = 4;
	FAILS(EINVAL, store_env_update(st, &e, &e_));
	e.memory_mib = 2048;
	free(e.network);
	e.network = xstrdup("everything");
	FAILS(EINVAL, store_env_update(st, &e, &e_));
	free(e.network);
	e.network = xstrdup("none");
	e.pids = 1;
	FAILS(EINVAL, store_env_update(st, &e, &e_));
	e.pids = 100;
	e.allow_nested = false;
	OK(store_env_update(st, &e, &e_));
	OK(store_env_get(st, "work", &got, &e_));
	CHECK(got.memory_mib == 2048 && got.pids == 100 && !got.allow_nested && got.id == id);
	store_env_release(&got);

	struct store_env bad = { 0 };
	store_env_defaults(&bad);
	bad.name = xstrdup("Bad Name");
	FAILS(EINVAL, store_env_create(st, &bad, &e_));
	free(bad.name);
	bad.name = xstrdup("ghost");
	FAILS(ENOENT, store_env_update(st, &bad, &e_));
	bad.cpu_milli = 5;
	FAILS(EINVAL, store_env_create(st, &bad, &e_));
	store_env_release(&bad);

	OK(store_env_list(st, &v, &n, &e_));
	CHECK(n == 2);
	CHECK_STR(n == 2 ? v[0].name : NULL, "default");
	CHECK_STR(n == 2 ? v[1].name : NULL, "work");
	store_env_list_free(v, n);

	/* Delete: refused while a key is active, unless forced. */
	char *secret;
	struct store_key k;
	OK(store_key_create(st, "work", "free", NULL, "local", &secret, &k, &e_));
	OK(store_thread_touch(st, id, "t1", 10, &e_));
	FAILS(EBUSY, store_env_delete(st, "work", false, &e_));
	OK(store_env_get(st, "work", &got, &e_));
	store_env_release(&got);
	OK(store_env_delete(st, "work", true, &e_));
	FAILS(ENOENT, store_env_get(st, "work", &got, &e_));
	FAILS(ENOENT, store_env_get_by_id(st, id, &got, &e_));
	FAILS(ENOENT, store_env_delete(st, "work", true, &e_));
	struct store_key auth;
	FAILS(EKEYREVOKED, store_key_authenticate(st, secret, &auth, &e_));
	struct store_thread t;
	FAILS(ENOENT, store_thread_get(st, id, "t1", &t, &e_));
	FAILS(ENOENT, store_thread_touch(st, id, "t1", 10, &e_));

	/* The name is free again, the id is not reused. */
	OK(store_env_create(st, &e, &e_));
	CHECK(e.id > id);
	OK(store_env_delete(st, "work", false, &e_));
	free(secret);
	store_key_release(&k);
	store_env_release(&e);
}

/* The network column holds the egress policy (proxy/policy.h) as text,
 * validated and normalized on the way in. */
static void test_env_network(const char *file)
{
	static const struct {
		const char *policy, *needle;
	} bad[] = {
		{ "allowlist: a..b", "egress entry 'a..b': empty label" },
		{ "allowlist: *.", "'*.'" },
		{ "allowlist: 127.1", "'127.1'" },
		{ "allowlist: ok.example, bad host", "'bad host'" },
		{ "allowlist: a.com,", "''" },
		{ "open: a.com", "only IP addresses" },
		{ "none: a.com", "takes no entries" },
		{ "everything", "unknown egress mode 'everything'" },
		{ "", "unknown egress mode ''" },
	};
	struct store *st = open_store(file);
	struct store_env e = { 0 }, got;

	store_env_defaults(&e);
	e.name = xstrdup("net");
	free(e.network);
	e.network = xstrdup(" allowlist :Example.COM. ,*.X.org:443,10.0.0.5, [::FFFF:10.0.0.6]:22");
	OK(store_env_create(st, &e, &e_));
	CHECK_STR(e.network, "allowlist: example.com, *.x.org:443, 10.0.0.5, 10.0.0.6:22");
	OK(store_env_get(st, "net", &got, &e_));
	CHECK_STR(got.network, "allowlist: example.com, *.x.org:443, 10.0.0.5, 10.0.0.6:22");
	store_env_release(&got);

	/* Refused with the parser's sentence; the row stays as it was. */
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cr_error err = CR_ERROR_INIT;
		free(e.network);
		e.network = xstrdup(bad[i].policy);
		CHECK(store_env_update(st, &e, &err) < 0);
		CHECK(err.errnum == EINVAL);
		CHECK(err.msg && strstr(err.msg, bad[i].needle));
		if (err.msg == NULL || strstr(err.msg, bad[i].needle) == NULL)
			fprintf(stderr, "  '%s': %s\n", bad[i].policy, err.msg ? err.msg : "(none)");
		cr_error_release(&err);
	}
	OK(store_env_get(st, "net", &got, &e_));
	CHECK_STR(got.network, "allowlist: example.com, *.x.org:443, 10.0.0.5, 10.0.0.6:22");
	store_env_release(&got);
	free(e.name);
	e.name = xstrdup("net2");
	FAILS(EINVAL, store_env_create(st, &e, &e_));
	FAILS(ENOENT, store_env_get(st, "net2", &got, &e_));
	free(e.name);
	e.name = xstrdup("net");

	/* An allowlist with no entries reaches nothing, and says so; open
	 * takes IP literals; NULL is none. */
	free(e.network);
	e.network = xstrdup("allowlist:");
	OK(store_env_update(st, &e, &e_));
	OK(store_env_get(st, "net", &got, &e_));
	CHECK_STR(got.network, "allowlist");
	store_env_release(&got);
	free(e.network);
	e.network = xstrdup("open: [2001:DB8::1]:443, 192.168.1.1");
	OK(store_env_update(st, &e, &e_));
	free(e.network);
	e.network = NULL;
	free(e.name);
	e.name = xstrdup("net3");
	OK(store_env_create(st, &e, &e_));
	CHECK_STR(e.network, "none");
	store_close(st);

	/* What was stored is what a new connection reads. */
	st = open_store(file);
	OK(store_env_get(st, "net", &got, &e_));
	CHECK_STR(got.network, "open: [2001:db8::1]:443, 192.168.1.1");
	store_env_release(&got);
	OK(store_env_get(st, "net3", &got, &e_));
	CHECK_STR(got.network, "none");
	store_env_release(&got);
	store_close(st);
	store_env_release(&e);
}

static bool is_b64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

static void test_keys(struct store *st, const char *file)
{
	char *k1, *k2, *k3;
	struct store_key a, b, c, got;
	struct store_key *v;
	size_t n;

	OK(store_key_create(st, "default", "free", "ci", "local", &k1, &a, &e_));
	CHECK(k1 && strncmp(k1, "sk-local-", 9) == 0 && strlen(k1) == 9 + 43);
	CHECK(k1 && is_b64url(k1 + 9, 43));
	CHECK(a.prefix && k1 && strlen(a.prefix) == 17 && strncmp(a.prefix, k1, 17) == 0);
	CHECK_STR(a.env_name, "default");
	CHECK_STR(a.plan, "free");
	CHECK_STR(a.name, "ci");
	CHECK(a.revoked_at == NULL && a.created_at != NULL && a.id > 0);
	OK(store_key_create(st, "default", "pro", NULL, "us-east-1", &k2, &b, &e_));
	CHECK(k2 && strncmp(k2, "sk-us-east-1-", 13) == 0 && strlen(k2) == 13 + 43);
	CHECK(b.name == NULL);
	CHECK(k1 && k2 && strcmp(k1, k2) != 0);

	FAILS(ENOENT, store_key_create(st, "nope", "free", NULL, "local", &k3, &c, &e_));
	FAILS(ENOENT, store_key_create(st, "default", "gold", NULL, "local", &k3, &c, &e_));
	FAILS(EINVAL, store_key_create(st, "default", "free", NULL, "Local", &k3, &c, &e_));
	FAILS(EINVAL, store_key_create(st, "default", "free", NULL, "", &k3, &c, &e_));
	FAILS(EINVAL, store_key_create(st, "default", "free", NULL, "a-", &k3, &c, &e_));
	FAILS(EINVAL, store_key_create(st, "default", "free", "a\nb", "local", &k3, &c, &e_));
	FAILS(EINVAL, store_key_create(st, "Default", "free", NULL, "local", &k3, &c, &e_));

	OK(store_key_authenticate(st, k1, &got, &e_));
	CHECK(got.id == a.id);
	CHECK_STR(got.env_name, "default");
	CHECK_STR(got.plan, "free");
	store_key_release(&got);
	FAILS(ENOENT, store_key_authenticate(st, "sk-local-nope", &got, &e_));
	FAILS(ENOENT, store_key_authenticate(st, "", &got, &e_));
	{
		cleanup_free char *almost = xstrdup(k1);
		almost[strlen(almost) - 1] ^= 1;
		FAILS(ENOENT, store_key_authenticate(st, almost, &got, &e_));
	}

	/* Only a keyed hash is stored: not the key, not an unkeyed digest. */
	CHECK(!db_files_contain(file, k1));
	CHECK(!db_files_contain(file, k1 + 9));
	CHECK(!db_files_contain(file, k2 + 13));
	{
		cleanup_free char *path = path_in(file);
		sqlite3 *db;
		sqlite3_stmt *s;
		CHECK(sqlite3_open(path, &db) == SQLITE_OK);
		CHECK(sqlite3_prepare_v2(db, "SELECT hash FROM api_keys WHERE id = ?", -1, &s, NULL) ==
		      SQLITE_OK);
		sqlite3_bind_int64(s, 1, a.id);
		CHECK(sqlite3_step(s) == SQLITE_ROW);
		CHECK(sqlite3_column_type(s, 0) == SQLITE_BLOB && sqlite3_column_bytes(s, 0) == 32);
		CHECK(memcmp(sqlite3_column_blob(s, 0), k1, 32) != 0);
		sqlite3_finalize(s);
		sqlite3_close(db);
	}

	/* The unfiltered list also holds the key of the deleted 'work'. */
	OK(store_key_list(st, NULL, &v, &n, &e_));
	CHECK(n == 3 && v[1].id == a.id && v[2].id == b.id);
	CHECK(n == 3 && v[0].revoked_at != NULL);
	store_key_list_free(v, n);
	OK(store_key_list(st, "default", &v, &n, &e_));
	CHECK(n == 2 && v[0].id == a.id && v[1].id == b.id);
	store_key_list_free(v, n);
	FAILS(ENOENT, store_key_list(st, "nope", &v, &n, &e_));

	/* Revoke by id, by prefix and by the whole key. */
	char idbuf[32];
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)a.id);
	OK(store_key_revoke(st, idbuf, &e_));
	FAILS(EKEYREVOKED, store_key_revoke(st, idbuf, &e_));
	FAILS(EKEYREVOKED, store_key_authenticate(st, k1, &got, &e_));
	FAILS(ENOENT, store_key_revoke(st, "999999", &e_));
	FAILS(ENOENT, store_key_revoke(st, "sk-nothing-like-this", &e_));
	FAILS(EINVAL, store_key_revoke(st, "sk-lo", &e_));
	FAILS(EINVAL, store_key_revoke(st, "", &e_));

	OK(store_key_create(st, "default", "free", NULL, "local", &k3, &c, &e_));
	OK(store_key_authenticate(st, k3, &got, &e_));
	store_key_release(&got);
	/* "sk-local" starts both k1's and k3's prefixes. */
	FAILS(ENOTUNIQ, store_key_revoke(st, "sk-local", &e_));
	OK(store_key_revoke(st, c.prefix, &e_));
	FAILS(EKEYREVOKED, store_key_authenticate(st, k3, &got, &e_));
	FAILS(EKEYREVOKED, store_key_revoke(st, k3, &e_));
	OK(store_key_revoke(st, k2, &e_));
	FAILS(EKEYREVOKED, store_key_authenticate(st, k2, &got, &e_));

	OK(store_key_list(st, NULL, &v, &n, &e_));
	CHECK(n == 4);
	for (size_t i = 0; i < n; i++)
		CHECK(v[i].revoked_at != NULL);
	store_key_list_free(v, n);

	free(k1);
	free(k2);
	free(k3);
	store_key_release(&a);
	store_key_release(&b);
	store_key_release(&c);
}

static void test_admin_token(struct store *st, const char *file)
{
	char *tok, *again;

	FAILS(EACCES, store_admin_token_check(st, "anything", &e_));
	OK(store_admin_token_ensure(st, &tok, &e_));
	CHECK(tok && strncmp(tok, "cra-", 4) == 0 && strlen(tok) == 4 + 43);
	OK(store_admin_token_ensure(st, &again, &e_));
	CHECK(again == NULL);
	OK(store_admin_token_check(st, tok, &e_));
	FAILS(EACCES, store_admin_token_check(st, "cra-wrong", &e_));
	FAILS(EACCES, store_admin_token_check(st, "", &e_));
	CHECK(!db_files_contain(file, tok + 4));
	free(tok);
}

static void test_threads(struct store *st)
{
	struct store_thread t, *v;
	size_t n;
	struct store_env e;

	OK(store_env_get(st, "default", &e, &e_));
	OK(store_thread_touch(st, e.id, "b-thread", 100, &e_));
	OK(store_thread_touch(st, e.id, "a-thread", -1, &e_));
	OK(store_thread_get(st, e.id, "b-thread", &t, &e_));
	CHECK(t.env_id == e.id && t.bytes == 100 && t.created_at && t.last_used_at);
	CHECK_STR(t.thread_id, "b-thread");
	store_thread_release(&t);
	OK(store_thread_get(st, e.id, "a-thread", &t, &e_));
	CHECK(t.bytes == 0);
	store_thread_release(&t);
	OK(store_thread_touch(st, e.id, "b-thread", -1, &e_));
	OK(store_thread_get(st, e.id, "b-thread", &t, &e_));
	CHECK(t.bytes == 100);
	store_thread_release(&t);
	OK(store_thread_touch(st, e.id, "b-thread", 4096, &e_));
	OK(store_thread_get(st, e.id, "b-thread", &t, &e_));
	CHECK(t.bytes == 4096);
	store_thread_release(&t);

	OK(store_thread_list(st, e.id, &v, &n, &e_));
	CHECK(n == 2);
	CHECK_STR(n == 2 ? v[0].thread_id : NULL, "a-thread");
	store_thread_list_free(v, n);
	OK(store_thread_list(st, 999999, &v, &n, &e_));
	CHECK(n == 0);
	store_thread_list_free(v, n);

	FAILS(ENOENT, store_thread_get(st, e.id, "zzz", &t, &e_));
	FAILS(ENOENT, store_thread_get(st, e.id + 1000, "a-thread", &t, &e_));
	FAILS(EINVAL, store_thread_get(st, e.id, "..", &t, &e_));
	FAILS(EINVAL, store_thread_touch(st, e.id, "a/b", 1, &e_));
	FAILS(ENOENT, store_thread_touch(st, 999999, "x", 1, &e_));
	OK(store_thread_delete(st, e.id, "a-thread", &e_));
	FAILS(ENOENT, store_thread_delete(st, e.id, "a-thread", &e_));
	FAILS(EINVAL, store_thread_delete(st, e.id, ".", &e_));
	store_env_release(&e);
}

static void new_exec(struct store_exec *ex, const char *trace, int64_t key, int64_t env)
{
	memset(ex, 0, sizeof(*ex));
	ex->trace_id = xstrdup(trace);
	ex->key_id = key;
	ex->env_id = env;
	ex->language = xstrdup("python");
	ex->delivery_mode = xstrdup("inline");
	ex->timeout_ms = 30000;
}

static void finish_as(struct store_exec *ex, const char *status, int64_t credits)
{
	free(ex->status);
	ex->status = xstrdup(status);
	ex->exit_code = strcmp(status, "success") == 0 ? 0 : 1;
	free(ex->stdout_text);
	free(ex->stderr_text);
	ex->stdout_text = xstrdup("hi\n");
	ex->stderr_text = xstrdup("");
	ex->duration_ms = 1234;
	ex->credits = credits;
}

static void test_execs(struct store *st, const char *file)
{
	struct store_key k;
	struct store_env e;
	struct store_exec ex, got;
	struct store_usage *u;
	size_t n;
	char *secret;
	int64_t credits;
	char month[8];
	const char *t1 = "trc_0123456789abcdef0123456789abcdef";
	const char *t2 = "trc_11111111111111111111111111111111";
	const char *t3 = "trc_22222222222222222222222222222222";

	OK(store_env_get(st, "default", &e, &e_));
	OK(store_key_create(st, "default", "free", NULL, "local", &secret, &k, &e_));

	new_exec(&ex, t1, k.id, e.id);
	ex.thread_id = xstrdup("b-thread");
	OK(store_exec_insert(st, &ex, &e_));
	CHECK(ex.created_at != NULL);
	CHECK_STR(ex.status, "running");
	FAILS(EEXIST, store_exec_insert(st, &ex, &e_));

	OK(store_exec_get(st, t1, &got, &e_));
	CHECK_STR(got.status, "running");
	CHECK_STR(got.thread_id, "b-thread");
	CHECK_STR(got.language, "python");
	CHECK_STR(got.delivery_mode, "inline");
	CHECK(got.stdout_text == NULL && got.stderr_text == NULL && got.completed_at == NULL);
	CHECK(got.exit_code == -1 && got.key_id == k.id && got.env_id == e.id &&
	      got.timeout_ms == 30000);
	store_exec_release(&got);
	FAILS(ENOENT, store_exec_get(st, "trc_ffffffffffffffffffffffffffffffff", &got, &e_));

	finish_as(&ex, "running", 1);
	FAILS(EINVAL, store_exec_finish(st, &ex, &e_));
	finish_as(&ex, "success", 3);
	OK(store_exec_finish(st, &ex, &e_));
	CHECK(ex.completed_at != NULL);
	FAILS(EALREADY, store_exec_finish(st, &ex, &e_));
	OK(store_exec_get(st, t1, &got, &e_));
	CHECK_STR(got.status, "success");
	CHECK_STR(got.stdout_text, "hi\n");
	CHECK(got.exit_code == 0 && got.duration_ms == 1234 && got.credits == 3 &&
	      got.completed_at != NULL);
	store_exec_release(&got);

	store_month_of(NULL, month);
	OK(store_usage_credits(st, k.id, NULL, &credits, &e_));
	CHECK(credits == 3);
	OK(store_usage_credits(st, k.id, month, &credits, &e_));
	CHECK(credits == 3);
	OK(store_usage_credits(st, k.id, "1999-01", &credits, &e_));
	CHECK(credits == 0);
	FAILS(EINVAL, store_usage_credits(st, k.id, "2026-13", &credits, &e_));
	FAILS(EINVAL, store_usage_credits(st, k.id, "26-01", &credits, &e_));

	/* A second execution this month adds up; one started last year is
	 * billed to its own month. */
	store_exec_release(&ex);
	new_exec(&ex, t2, k.id, e.id);
	OK(store_exec_insert(st, &ex, &e_));
	finish_as(&ex, "failed", 2);
	OK(store_exec_finish(st, &ex, &e_));
	store_exec_release(&ex);
	new_exec(&ex, t3, k.id, e.id);
	OK(store_exec_insert(st, &ex, &e_));
	raw_sql(file, "UPDATE executions SET created_at = '2025-02-28T23:59:59Z'"
		      " WHERE trace_id = 'trc_22222222222222222222222222222222'");
	finish_as(&ex, "timeout", 7);
	OK(store_exec_finish(st, &ex, &e_));
	store_exec_release(&ex);

	OK(store_usage_list(st, NULL, NULL, &u, &n, &e_));
	CHECK(n == 1 && u[0].key_id == k.id && u[0].credits == 5 && u[0].executions == 2);
	CHECK_STR(n ? u[0].env_name : NULL, "default");
	CHECK_STR(n ? u[0].key_prefix : NULL, k.prefix);
	CHECK_STR(n ? u[0].month : NULL, month);
	store_usage_list_free(u, n);
	OK(store_usage_list(st, "default", "2025-02", &u, &n, &e_));
	CHECK(n == 1 && u[0].credits == 7 && u[0].executions == 1);
	store_usage_list_free(u, n);
	OK(store_usage_list(st, NULL, "2025-03", &u, &n, &e_));
	CHECK(n == 0);
	store_usage_list_free(u, n);
	FAILS(ENOENT, store_usage_list(st, "nope", NULL, &u, &n, &e_));
	FAILS(EINVAL, store_usage_list(st, NULL, "2025-00", &u, &n, &e_));
	FAILS(EINVAL, store_usage_list(st, NULL, "2025-1", &u, &n, &e_));

	/* Refusals. */
	new_exec(&ex, "trc_xyz", k.id, e.id);
	FAILS(EINVAL, store_exec_insert(st, &ex, &e_));
	store_exec_release(&ex);
	new_exec(&ex, "trc_33333333333333333333333333333333", 999999, e.id);
	FAILS(ENOENT, store_exec_insert(st, &ex, &e_));
	ex.key_id = k.id;
	free(ex.delivery_mode);
	ex.delivery_mode = xstrdup("carrier-pigeon");
	FAILS(EINVAL, store_exec_insert(st, &ex, &e_));
	free(ex.delivery_mode);
	ex.delivery_mode = xstrdup("stream");
	ex.thread_id = xstrdup("..");
	FAILS(EINVAL, store_exec_insert(st, &ex, &e_));
	finish_as(&ex, "success", 1);
	FAILS(ENOENT, store_exec_finish(st, &ex, &e_));
	store_exec_release(&ex);

	/* Crash recovery: the running ones fail, the ended ones stay. */
	new_exec(&ex, "trc_44444444444444444444444444444444", k.id, e.id);
	OK(store_exec_insert(st, &ex, &e_));
	store_exec_release(&ex);
	new_exec(&ex, "trc_55555555555555555555555555555555", k.id, e.id);
	OK(store_exec_insert(st, &ex, &e_));
	store_exec_release(&ex);
	{
		struct cr_error err = CR_ERROR_INIT;
		CHECK(store_exec_fail_running(st, "corral restarted", &err) == 2);
		CHECK(store_exec_fail_running(st, "corral restarted", &err) == 0);
		cr_error_release(&err);
	}
	OK(store_exec_get(st, "trc_44444444444444444444444444444444", &got, &e_));
	CHECK_STR(got.status, "failed");
	CHECK_STR(got.error, "corral restarted");
	CHECK(got.completed_at != NULL);
	store_exec_release(&got);
	OK(store_exec_get(st, t1, &got, &e_));
	CHECK_STR(got.status, "success");
	store_exec_release(&got);
	OK(store_usage_credits(st, k.id, NULL, &credits, &e_));
	CHECK(credits == 5);

	free(secret);
	store_key_release(&k);
	store_env_release(&e);
}

static void test_time(void)
{
	cleanup_free char *now = store_now_iso();
	char m[8];

	CHECK(strlen(now) == 20 && now[4] == '-' && now[10] == 'T' && now[19] == 'Z');
	store_month_of("2026-11-29T06:19:31Z", m);
	CHECK_STR(m, "2026-11");
	store_month_of(NULL, m);
	CHECK(strncmp(m, now, 7) == 0 && m[7] == '\0');
	store_month_of("garbage", m);
	CHECK(strncmp(m, now, 7) == 0);
}

/* Many threads sharing one store, and a second connection writing at the
 * same time (the admin CLI beside `corral serve`). */
struct worker {
	struct store *st;
	int64_t env_id;
	int n;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	char id[32];

	for (int i = 0; i < 50; i++) {
		struct cr_error err = CR_ERROR_INIT;
		snprintf(id, sizeof(id), "w%d-%d", w->n, i % 5);
		if (store_thread_touch(w->st, w->env_id, id, i, &err) < 0)
			w->failures++;
		cr_error_release(&err);
	}
	return NULL;
}

static void test_concurrency(const char *file)
{
	struct store *st = open_store(file), *other = open_store(file);
	struct worker w[5];
	pthread_t th[5];
	struct store_env e;
	struct store_thread *v;
	size_t n;

	OK(store_env_get(st, "default", &e, &e_));
	for (int i = 0; i < 5; i++) {
		w[i] = (struct worker){ i == 4 ? other : st, e.id, i, 0 };
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].failures == 0);
	}
	OK(store_thread_list(other, e.id, &v, &n, &e_));
	size_t mine = 0;
	for (size_t i = 0; i < n; i++)
		mine += v[i].thread_id[0] == 'w';
	CHECK(mine == 25);
	store_thread_list_free(v, n);
	store_env_release(&e);
	store_close(other);
	store_close(st);
}

static void test_state_dir(void)
{
	cleanup_free char *dir = path_in("state");
	cleanup_free char *keyfile = path_in("state/secrets.key");
	struct store_state s;
	struct stat sb;
	char *secret;
	struct store_key k;
	struct cr_error err = CR_ERROR_INIT;

	OK(store_state_open(&s, dir, &e_));
	CHECK(s.created);
	CHECK(stat(keyfile, &sb) == 0 && (sb.st_mode & 0777) == 0600 && sb.st_size == 32);
	CHECK(stat(s.threads_dir, &sb) == 0 && S_ISDIR(sb.st_mode));
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	OK(store_key_create(s.store, "default", "free", NULL, "local", &secret, &k, &e_));
	store_state_close(&s);

	/* The hash key is derived again from secrets.key on the next open. */
	OK(store_state_open(&s, dir, &e_));
	CHECK(!s.created);
	struct store_key got;
	OK(store_key_authenticate(s.store, secret, &got, &e_));
	store_key_release(&got);

	/* Thread homes: paths, and removal that never follows a link out. */
	cleanup_free char *home = store_state_thread_home(&s, k.env_id, "t1", &err);
	CHECK(home && strstr(home, "/threads/") != NULL);
	CHECK(store_state_thread_home(&s, k.env_id, "..", &err) == NULL && err.errnum == EINVAL);
	cr_error_release(&err);
	cleanup_free char *outside = path_in("outside");
	cleanup_free char *victim = path_in("outside/keep");
	cleanup_free char *sub = xasprintf("%s/sub/deeper", home);
	cleanup_free char *parent = xasprintf("%s/%lld", s.threads_dir, (long long)k.env_id);
	cleanup_free char *link1 = xasprintf("%s/link", home);
	cleanup_free char *link2 = xasprintf("%s/sub/link", home);
	cleanup_free char *file1 = xasprintf("%s/sub/deeper/file", home);
	CHECK(mkdir(outside, 0755) == 0);
	CHECK(put_file(victim, "precious"));
	CHECK(mkdir(parent, 0755) == 0 && mkdir(home, 0700) == 0);
	cleanup_free char *subdir = xasprintf("%s/sub", home);
	CHECK(mkdir(subdir, 0700) == 0 && mkdir(sub, 0700) == 0);
	CHECK(put_file(file1, "x"));
	CHECK(symlink(outside, link1) == 0 && symlink(victim, link2) == 0);
	/* What a sandbox may leave: a directory closed to its owner. */
	if (geteuid() == 0)
		CHECK(chmod(sub, 0) == 0);
	bool removed = false;
	OK(store_state_remove_home(&s, k.env_id, "t1", &removed, &e_));
	CHECK(removed);
	CHECK(access(home, F_OK) < 0 && errno == ENOENT);
	CHECK(access(victim, F_OK) == 0);
	OK(store_state_remove_home(&s, k.env_id, "t1", &removed, &e_));
	CHECK(!removed);
	OK(store_state_remove_home(&s, k.env_id, NULL, &removed, &e_));
	CHECK(removed && access(parent, F_OK) < 0);
	FAILS(EINVAL, store_state_remove_home(&s, k.env_id, "..", &removed, &e_));
	store_state_close(&s);
	cr_error_release(&err);

	/* A secrets key others can read is refused, with the fix. */
	CHECK(chmod(keyfile, 0644) == 0);
	CHECK(store_state_open(&s, dir, &err) < 0);
	CHECK(err.msg && strstr(err.msg, "readable or writable by group or others") &&
	      strstr(err.msg, "chmod 600"));
	cr_error_release(&err);
	CHECK(chmod(keyfile, 0620) == 0);
	CHECK(store_state_open(&s, dir, &err) < 0);
	cr_error_release(&err);
	CHECK(chmod(keyfile, 0600) == 0);
	OK(store_state_open(&s, dir, &e_));
	store_state_close(&s);

	/* A truncated key is refused rather than used. */
	CHECK(truncate(keyfile, 16) == 0);
	CHECK(store_state_open(&s, dir, &err) < 0);
	CHECK(err.msg && strstr(err.msg, "not 32"));
	cr_error_release(&err);

	free(secret);
	store_key_release(&k);
}

int main(void)
{
	struct store *st;
	cleanup_free char *cmd = NULL;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_open_and_migrations();
	test_names();
	test_time();

	st = open_store("b.db");
	test_defaults(st);
	test_envs(st);
	test_keys(st, "b.db");
	test_admin_token(st, "b.db");
	test_threads(st);
	test_execs(st, "b.db");
	store_close(st);
	test_concurrency("b.db");
	test_env_network("n.db");
	test_state_dir();

	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_report("test-store");
}
