/* test-connector.c - connectors (secrets/connector.h) and their store
 * functions, against a real state directory in a temporary directory.
 *
 * Sealing: a round trip, a wrong key, a changed byte or another
 * connector's name fail; every seal draws a new nonce.  Each type's
 * injection is compared entry by entry with what connector.h specifies.
 * The raw database files (corral.db and corral.db-wal) are searched for
 * every secret after adds and rotations: none may be there in clear. */
#define _GNU_SOURCE
#include "secrets/connector.h"
#include "secrets/seal.h"
#include "store/state.h"
#include "store/store.h"
#include "util/util.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/corral-test-connector-XXXXXX";
static struct store_state state;

#define OK(call)                                                                          \
	do {                                                                              \
		struct cr_error e_ = CR_ERROR_INIT;                                       \
		int r_ = (call);                                                          \
		CHECK(r_ >= 0);                                                           \
		if (r_ < 0)                                                               \
			fprintf(stderr, "  %s: %s\n", #call, e_.msg ? e_.msg : "(no message)"); \
		cr_error_release(&e_);                                                    \
	} while (0)

/* `call` (using `&e_`) fails with errno `num`, and its message does not
 * contain `secret` (may be NULL). */
#define FAILS_HIDING(num, secret, call)                                                   \
	do {                                                                              \
		struct cr_error e_ = CR_ERROR_INIT;                                       \
		const char *s_ = (secret);                                                \
		int r_ = (call);                                                          \
		CHECK(r_ < 0);                                                            \
		CHECK(e_.errnum == (num));                                                \
		CHECK(e_.msg != NULL);                                                    \
		CHECK(s_ == NULL || e_.msg == NULL || strstr(e_.msg, s_) == NULL);        \
		if (r_ >= 0 || e_.errnum != (num))                                        \
			fprintf(stderr, "  %s: r=%d errnum=%d (%s), want %d\n", #call, r_, \
				e_.errnum, e_.msg ? e_.msg : "", (num));                  \
		cr_error_release(&e_);                                                    \
	} while (0)
#define FAILS(num, call) FAILS_HIDING(num, NULL, call)

static bool file_contains(const char *path, const char *needle)
{
	struct cr_error err = CR_ERROR_INIT;
	size_t len;
	cleanup_free char *data = read_file(path, &len, &err);

	cr_error_release(&err);
	return data && memmem(data, len, needle, strlen(needle)) != NULL;
}

/* Is `needle` anywhere in the raw database or its WAL? */
static bool db_contains(const char *needle)
{
	cleanup_free char *wal = xasprintf("%s-wal", state.db_path);

	return file_contains(state.db_path, needle) || file_contains(wal, needle);
}

static struct connector_spec spec_of(const char *type, const char *name, const char *input)
{
	struct connector_spec s = { 0 };

	s.type = type ? xstrdup(type) : NULL;
	s.name = name ? xstrdup(name) : NULL;
	if (input) {
		s.input = xstrdup(input);
		s.input_len = strlen(input);
	}
	return s;
}

/* Add (the spec is released); 0 or -1, with the error in *err. */
static int add(struct connector_spec *s, struct cr_error *err)
{
	struct store_connector c;
	int r = connector_add(&state, s, &c, err);

	store_connector_release(&c);
	connector_spec_release(s);
	return r;
}

static int rotate(struct connector_spec *s, struct cr_error *err)
{
	struct store_connector c;
	int r = connector_rotate(&state, s, &c, err);

	store_connector_release(&c);
	connector_spec_release(s);
	return r;
}

static int64_t new_env(const char *name)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_env e = { 0 };
	int64_t id;

	store_env_defaults(&e);
	e.name = xstrdup(name);
	if (store_env_create(state.store, &e, &err) < 0) {
		fprintf(stderr, "env create: %s\n", err.msg);
		exit(1);
	}
	id = e.id;
	store_env_release(&e);
	return id;
}

static void attach(const char *connector, const char *env)
{
	OK(store_connector_attach(state.store, connector, env, &e_));
}

/* The injection of environment `env_id`; exits the test on failure. */
static void inject(int64_t env_id, struct connector_injection *inj)
{
	struct cr_error err = CR_ERROR_INIT;

	if (connector_injection_for_env(&state, env_id, inj, &err) < 0) {
		fprintf(stderr, "injection: %s\n", err.msg);
		CHECK(false);
		cr_error_release(&err);
		memset(inj, 0, sizeof(*inj));
	}
}

/* inj->env is exactly `want` (NULL-terminated), in order. */
static void check_env(const struct connector_injection *inj, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	CHECK(inj->nenv == n);
	for (size_t i = 0; i < n && i < inj->nenv; i++)
		CHECK_STR(inj->env[i], want[i]);
	CHECK(inj->env && inj->env[inj->nenv] == NULL);
}

/* inj->scrub holds exactly these values (longest first), all labelled. */
static void check_scrub(const struct connector_injection *inj, const char *label,
			const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	CHECK(inj->nscrub == n);
	for (size_t i = 0; i < n && i < inj->nscrub; i++) {
		CHECK_STR(inj->scrub[i].value, want[i]);
		CHECK_STR(inj->scrub[i].label, label);
	}
	for (size_t i = 1; i < inj->nscrub; i++)
		CHECK(strlen(inj->scrub[i - 1].value) >= strlen(inj->scrub[i].value));
}

/* --- sealing ------------------------------------------------------------ */

static void test_seal(void)
{
	unsigned char key[32], other[32];
	struct connector_secret in[2] = { { "A", "first value" }, { "B", "second\nline" } };
	struct connector_secret *out;
	unsigned char *sealed, *again;
	size_t len, len2, n;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(other, sizeof(other));
	seal_secrets(key, "env", "vars", in, 2, &sealed, &len);
	CHECK(memmem(sealed, len, "first value", 11) == NULL);
	CHECK(memmem(sealed, len, "second", 6) == NULL);

	OK(unseal_secrets(key, "env", "vars", sealed, len, &out, &n, &e_));
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(out[0].name, "A");
		CHECK_STR(out[0].value, "first value");
		CHECK_STR(out[1].name, "B");
		CHECK_STR(out[1].value, "second\nline");
	}
	connector_secrets_free(out, n);

	/* The wrong key, another connector's name or type, a changed byte,
	 * a truncated blob: none opens, and nothing is returned. */
	FAILS(EBADMSG, unseal_secrets(other, "env", "vars", sealed, len, &out, &n, &e_));
	CHECK(out == NULL && n == 0);
	FAILS(EBADMSG, unseal_secrets(key, "env", "other", sealed, len, &out, &n, &e_));
	FAILS(EBADMSG, unseal_secrets(key, "github", "vars", sealed, len, &out, &n, &e_));
	sealed[len - 1] ^= 1;
	FAILS(EBADMSG, unseal_secrets(key, "env", "vars", sealed, len, &out, &n, &e_));
	sealed[len - 1] ^= 1;
	sealed[3] ^= 0x80; /* in the nonce */
	FAILS(EBADMSG, unseal_secrets(key, "env", "vars", sealed, len, &out, &n, &e_));
	sealed[3] ^= 0x80;
	FAILS(EBADMSG, unseal_secrets(key, "env", "vars", sealed, 30, &out, &n, &e_));
	FAILS(EBADMSG, unseal_secrets(key, "env", "vars", NULL, 0, &out, &n, &e_));

	/* A new nonce each time: the same secret never seals the same way. */
	seal_secrets(key, "env", "vars", in, 2, &again, &len2);
	CHECK(len2 == len && memcmp(again, sealed, crypto_secretbox_NONCEBYTES) != 0);
	CHECK(memcmp(again + crypto_secretbox_NONCEBYTES, sealed + crypto_secretbox_NONCEBYTES,
		     len - crypto_secretbox_NONCEBYTES) != 0);
	free(again);
	free(sealed);
	{
		enum { N = 500 };
		unsigned char (*nonces)[crypto_secretbox_NONCEBYTES] = xmalloc(N * sizeof(*nonces));
		bool distinct = true;
		for (int i = 0; i < N; i++) {
			seal_secrets(key, "env", "vars", in, 1, &sealed, &len);
			memcpy(nonces[i], sealed, sizeof(nonces[i]));
			free(sealed);
			for (int j = 0; j < i && distinct; j++)
				distinct = memcmp(nonces[i], nonces[j], sizeof(nonces[i])) != 0;
		}
		CHECK(distinct);
		free(nonces);
	}
}

static void test_fingerprint(void)
{
	unsigned char key[32], other[32];
	struct connector_secret a[2] = { { "A", "value-a" }, { "B", "value-b" } };
	struct connector_secret b[2] = { { "B", "value-b" }, { "A", "value-a" } };
	struct connector_secret c[1] = { { "token", "value-a" } };
	struct connector_secret d[1] = { { "api_key", "value-a" } };
	struct connector_secret e[1] = { { "api_key", "value-x" } };

	randombytes_buf(key, sizeof(key));
	randombytes_buf(other, sizeof(other));
	cleanup_free char *fa = seal_fingerprint(key, a, 2);
	cleanup_free char *fb = seal_fingerprint(key, b, 2);
	cleanup_free char *fc = seal_fingerprint(key, c, 1);
	cleanup_free char *fd = seal_fingerprint(key, d, 1);
	cleanup_free char *fe = seal_fingerprint(key, e, 1);
	cleanup_free char *fo = seal_fingerprint(other, a, 2);

	CHECK(strlen(fa) == 16 && strspn(fa, "0123456789abcdef") == 16);
	CHECK_STR(fa, fb);          /* the order given does not matter */
	CHECK_STR(fc, fd);          /* the same secret under another name */
	CHECK(strcmp(fd, fe) != 0);
	CHECK(strcmp(fa, fo) != 0); /* keyed: another state directory differs */
}

/* --- each type's injection ---------------------------------------------- */

static const char GH_TOKEN[] = "ghp_Unit0Test1Token2Value3abcdefXYZ";

static void test_github(void)
{
	int64_t env = new_env("t-github");
	struct connector_injection inj;
	struct connector_spec s = spec_of("github", "gh", "ghp_Unit0Test1Token2Value3abcdefXYZ\n");
	struct store_connector c;

	OK(add(&s, &e_));
	OK(store_connector_get(state.store, "gh", &c, &e_));
	CHECK_STR(c.type, "github");
	CHECK_STR(c.mode, "inject");
	CHECK_STR(c.settings, "{\"base_url\":\"https://github.com/\",\"api_host\":null}");
	CHECK(c.nnames == 3);
	if (c.nnames == 3) {
		CHECK_STR(c.names[0], "GH_TOKEN");
		CHECK_STR(c.names[1], "GITHUB_TOKEN");
		CHECK_STR(c.names[2], "/etc/gitconfig");
	}
	CHECK(c.nenvs == 0 && c.rotated_at == NULL && c.created_at != NULL);
	CHECK(c.sealed == NULL);
	store_connector_release(&c);

	attach("gh", "t-github");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "GH_TOKEN=ghp_Unit0Test1Token2Value3abcdefXYZ",
					       "GITHUB_TOKEN=ghp_Unit0Test1Token2Value3abcdefXYZ",
					       NULL });
	CHECK(inj.nfiles == 1);
	if (inj.nfiles == 1) {
		CHECK_STR(inj.files[0].path_in_etc, "gitconfig");
		CHECK_STR(inj.files[0].connector, "gh");
		CHECK_STR(inj.files[0].content,
			  "# Written by corral for connector 'gh': git reaches https://github.com/\n"
			  "# with the connector's token.\n"
			  "[url \"https://x-access-token:ghp_Unit0Test1Token2Value3abcdefXYZ@github.com/\"]\n"
			  "\tinsteadOf = https://github.com/\n");
	}
	check_scrub(&inj, "gh",
		    (const char *const[]){
			    "https://x-access-token:ghp_Unit0Test1Token2Value3abcdefXYZ@github.com/",
			    GH_TOKEN, NULL });
	CHECK(inj.nconnectors == 1);
	connector_injection_release(&inj);
	CHECK(inj.env == NULL && inj.nenv == 0);

	/* GitHub Enterprise: the base URL as given (a '/' added), gh's
	 * enterprise variables, the token percent-encoded in the URL. */
	env = new_env("t-ghe");
	s = spec_of("github", "ghe", "tok+en/with=odd chars?");
	FAILS_HIDING(EINVAL, "odd", add(&s, &e_)); /* whitespace in a token */
	s = spec_of("github", "ghe", "tok+en/with=odd~chars");
	s.base_url = xstrdup("https://ghe.example.com:8443/org");
	s.api_host = xstrdup("ghe.example.com");
	OK(add(&s, &e_));
	attach("ghe", "t-ghe");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "GH_TOKEN=tok+en/with=odd~chars",
					       "GITHUB_TOKEN=tok+en/with=odd~chars",
					       "GH_HOST=ghe.example.com",
					       "GH_ENTERPRISE_TOKEN=tok+en/with=odd~chars", NULL });
	CHECK(inj.nfiles == 1);
	if (inj.nfiles == 1)
		CHECK(strstr(inj.files[0].content,
			     "[url \"https://x-access-token:tok%2Ben%2Fwith%3Dodd~chars@ghe.example.com:8443/org/\"]\n"
			     "\tinsteadOf = https://ghe.example.com:8443/org/\n") != NULL);
	check_scrub(&inj, "ghe",
		    (const char *const[]){
			    "https://x-access-token:tok%2Ben%2Fwith%3Dodd~chars@ghe.example.com:8443/org/",
			    "tok%2Ben%2Fwith%3Dodd~chars", "tok+en/with=odd~chars", NULL });
	connector_injection_release(&inj);
}

static void test_anthropic(void)
{
	int64_t env = new_env("t-anthropic");
	struct connector_injection inj;
	struct connector_spec s = spec_of("anthropic", "claude", "sk-ant-api03-UnitTestKey\r\n\n");

	s.base_url = xstrdup("https://llm-proxy.internal:8443/anthropic");
	OK(add(&s, &e_));
	attach("claude", "t-anthropic");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){
				"ANTHROPIC_API_KEY=sk-ant-api03-UnitTestKey",
				"ANTHROPIC_BASE_URL=https://llm-proxy.internal:8443/anthropic", NULL });
	CHECK(inj.nfiles == 0);
	check_scrub(&inj, "claude", (const char *const[]){ "sk-ant-api03-UnitTestKey", NULL });
	connector_injection_release(&inj);

	/* Without a base URL, only the key. */
	env = new_env("t-anthropic2");
	s = spec_of("anthropic", "claude2", "sk-ant-api03-Another");
	OK(add(&s, &e_));
	attach("claude2", "t-anthropic2");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "ANTHROPIC_API_KEY=sk-ant-api03-Another", NULL });
	connector_injection_release(&inj);
}

static void test_postgres(void)
{
	int64_t env = new_env("t-pg");
	struct connector_injection inj;
	struct connector_spec s =
		spec_of("postgres", "pg", "postgres://bob:s3cr%40t!@db.example:5433/app?sslmode=require\n");
	struct store_connector c;

	OK(add(&s, &e_));
	OK(store_connector_get(state.store, "pg", &c, &e_));
	CHECK_STR(c.settings, "{\"source\":\"url\",\"host\":\"db.example\",\"port\":5433,"
			      "\"user\":\"bob\",\"database\":\"app\"}");
	store_connector_release(&c);
	attach("pg", "t-pg");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){
				"DATABASE_URL=postgres://bob:s3cr%40t!@db.example:5433/app?sslmode=require",
				"PGHOST=db.example", "PGPORT=5433", "PGUSER=bob", "PGPASSWORD=s3cr@t!",
				"PGDATABASE=app", NULL });
	check_scrub(&inj, "pg",
		    (const char *const[]){ "postgres://bob:s3cr%40t!@db.example:5433/app?sslmode=require",
					   "s3cr%40t%21", "s3cr@t!", NULL });
	connector_injection_release(&inj);

	/* Settings and a password: the URL is built, each part encoded. */
	env = new_env("t-pg2");
	s = spec_of("postgres", "pg2", "pa:ss word\n");
	s.host = xstrdup("db.internal");
	s.port = xstrdup("6543");
	s.user = xstrdup("app_user");
	s.database = xstrdup("my db");
	OK(add(&s, &e_));
	attach("pg2", "t-pg2");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){
				"DATABASE_URL=postgresql://app_user:pa%3Ass%20word@db.internal:6543/my%20db",
				"PGHOST=db.internal", "PGPORT=6543", "PGUSER=app_user",
				"PGPASSWORD=pa:ss word", "PGDATABASE=my db", NULL });
	check_scrub(&inj, "pg2",
		    (const char *const[]){
			    "postgresql://app_user:pa%3Ass%20word@db.internal:6543/my%20db",
			    "pa%3Ass%20word", "pa:ss word", NULL });
	connector_injection_release(&inj);

	/* A URL without port or database: PGPORT 5432, no PGDATABASE. */
	env = new_env("t-pg3");
	s = spec_of("postgres", "pg3", "postgresql://carol:longpassword@[::1]");
	OK(add(&s, &e_));
	attach("pg3", "t-pg3");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "DATABASE_URL=postgresql://carol:longpassword@[::1]",
					       "PGHOST=::1", "PGPORT=5432", "PGUSER=carol",
					       "PGPASSWORD=longpassword", NULL });
	connector_injection_release(&inj);

	/* Refusals never quote the URL. */
	s = spec_of("postgres", "bad", "mysql://u:hiddenpw@h/db");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_));
	s = spec_of("postgres", "bad", "postgres://u:hiddenpw@h1,h2/db");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_));
	s = spec_of("postgres", "bad", "postgres://u:hidden%zzpw@h/db");
	FAILS_HIDING(EINVAL, "hidden", add(&s, &e_));
	s = spec_of("postgres", "bad", "postgres://u:hiddenpw@h:99999/db");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_));
	s = spec_of("postgres", "bad", "hiddenpw");
	s.host = xstrdup("db");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_)); /* no user */
	s = spec_of("postgres", "bad", "postgres://u:hiddenpw@h/db");
	s.user = xstrdup("u");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_)); /* user without host */
}

static void test_aws(void)
{
	int64_t env = new_env("t-aws");
	struct connector_injection inj;
	struct connector_spec s = spec_of("aws", "aws",
					  "# exported from the console\n"
					  "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\r\n"
					  "\n"
					  "AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr//////////wEaDExample=\n");
	struct store_connector c;

	s.access_key_id = xstrdup("AKIAIOSFODNN7EXAMPLE");
	s.region = xstrdup("eu-west-3");
	OK(add(&s, &e_));
	OK(store_connector_get(state.store, "aws", &c, &e_));
	CHECK_STR(c.settings, "{\"access_key_id\":\"AKIAIOSFODNN7EXAMPLE\",\"region\":\"eu-west-3\"}");
	store_connector_release(&c);
	attach("aws", "t-aws");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){
				"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
				"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
				"AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr//////////wEaDExample=",
				"AWS_REGION=eu-west-3", "AWS_DEFAULT_REGION=eu-west-3", NULL });
	check_scrub(&inj, "aws",
		    (const char *const[]){ "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
					   "FwoGZXIvYXdzEJr//////////wEaDExample=", NULL });
	connector_injection_release(&inj);

	/* The key id on stdin instead; no token, no region. */
	env = new_env("t-aws2");
	s = spec_of("aws", "aws2", "AWS_ACCESS_KEY_ID=AKIA0000000000000002\nAWS_SECRET_ACCESS_KEY=abcdEFGH1234\n");
	OK(add(&s, &e_));
	attach("aws2", "t-aws2");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "AWS_ACCESS_KEY_ID=AKIA0000000000000002",
					       "AWS_SECRET_ACCESS_KEY=abcdEFGH1234", NULL });
	connector_injection_release(&inj);

	/* Rotation: a new key pair, with its new id on stdin. */
	s = spec_of(NULL, "aws2", "AWS_ACCESS_KEY_ID=AKIA0000000000000003\nAWS_SECRET_ACCESS_KEY=rotatedSecret99\n");
	OK(rotate(&s, &e_));
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "AWS_ACCESS_KEY_ID=AKIA0000000000000003",
					       "AWS_SECRET_ACCESS_KEY=rotatedSecret99", NULL });
	connector_injection_release(&inj);
	/* Rotation keeps the id when none is given. */
	s = spec_of(NULL, "aws2", "AWS_SECRET_ACCESS_KEY=rotatedAgain77\n");
	OK(rotate(&s, &e_));
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "AWS_ACCESS_KEY_ID=AKIA0000000000000003",
					       "AWS_SECRET_ACCESS_KEY=rotatedAgain77", NULL });
	connector_injection_release(&inj);

	s = spec_of("aws", "bad", "AWS_SECRET_ACCESS_KEY=hiddenkey1\n");
	FAILS_HIDING(EINVAL, "hiddenkey1", add(&s, &e_)); /* no key id */
	s = spec_of("aws", "bad", "AWS_SECRET_ACCESS_KEY=hiddenkey1\nAWS_REGION=us-east-1\n");
	s.access_key_id = xstrdup("AKIA0000000000000004");
	FAILS_HIDING(EINVAL, "hiddenkey1", add(&s, &e_)); /* not one of the three */
	s = spec_of("aws", "bad", "AWS_SECRET_ACCESS_KEY=hiddenkey1\n");
	s.access_key_id = xstrdup("not-an-id");
	FAILS(EINVAL, add(&s, &e_));
}

static void test_env_type(void)
{
	int64_t env = new_env("t-env");
	struct connector_injection inj;
	struct connector_spec s = spec_of("env", "vars", "NPM_TOKEN=npm_abcdef\nSENTRY_DSN=https://k@o1.ingest/2 x\n");

	OK(add(&s, &e_));
	attach("vars", "t-env");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ "NPM_TOKEN=npm_abcdef",
					       "SENTRY_DSN=https://k@o1.ingest/2 x", NULL });
	check_scrub(&inj, "vars",
		    (const char *const[]){ "https://k@o1.ingest/2 x", "npm_abcdef", NULL });
	connector_injection_release(&inj);

	/* One --var: stdin is the value itself, lines and all (one final
	 * newline removed). */
	env = new_env("t-env2");
	s = spec_of("env", "pem", "-----BEGIN KEY-----\nMIIabc\n-----END KEY-----\n\n");
	connector_spec_add_var(&s, "DEPLOY_KEY");
	OK(add(&s, &e_));
	attach("pem", "t-env2");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){
				"DEPLOY_KEY=-----BEGIN KEY-----\nMIIabc\n-----END KEY-----\n", NULL });
	connector_injection_release(&inj);

	/* Several --var: the lines must give exactly those. */
	s = spec_of("env", "two", "A_ONE=valueone\nB_TWO=valuetwo\n");
	connector_spec_add_var(&s, "A_ONE");
	connector_spec_add_var(&s, "B_TWO");
	OK(add(&s, &e_));
	s = spec_of("env", "bad", "A_ONE=valueone\n");
	connector_spec_add_var(&s, "A_ONE");
	connector_spec_add_var(&s, "B_TWO");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "A_ONE=valueone\nC_THREE=hiddenval\n");
	connector_spec_add_var(&s, "A_ONE");
	connector_spec_add_var(&s, "B_TWO");
	FAILS_HIDING(EINVAL, "hiddenval", add(&s, &e_));

	/* Names: reserved, malformed, twice; lines without '='; values. */
	s = spec_of("env", "bad", "PATH=/evil/bin\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "LD_PRELOAD=/x.so\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "CORRAL_X=abcdef\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "1ABC=hiddenval\n");
	FAILS_HIDING(EINVAL, "hiddenval", add(&s, &e_));
	s = spec_of("env", "bad", "A=hiddenval\nA=hiddenval2\n");
	FAILS_HIDING(EINVAL, "hiddenval", add(&s, &e_));
	s = spec_of("env", "bad", "hiddenval-alone-on-a-line\n");
	FAILS_HIDING(EINVAL, "hiddenval", add(&s, &e_));
	s = spec_of("env", "bad", "A=\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "A=abc\n");
	FAILS(EINVAL, add(&s, &e_)); /* shorter than 4 */
	s = spec_of("env", "bad", "# only a comment\n\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("env", "bad", "hiddenval");
	connector_spec_add_var(&s, "BAD=NAME");
	FAILS_HIDING(EINVAL, "hiddenval", add(&s, &e_));
}

/* --- refusals, clashes, rotation, deletion, audit --------------------- */

static void test_refusals(void)
{
	struct store_connector_use *u;
	struct connector_spec s;
	size_t n;

	s = spec_of("gitlab", "x", "secretvalue");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("ghp_looksLikeAToken1234", "x", "secretvalue");
	FAILS_HIDING(EINVAL, "ghp_", add(&s, &e_)); /* an unknown type is not echoed */
	s = spec_of(NULL, "x", "secretvalue");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", NULL, "secretvalue");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "Bad Name", "secretvalue");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", NULL);
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "\n\n");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "abc");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "has\0nul");
	s.input_len = 7;
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	s.region = xstrdup("us-east-1");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	s.base_url = xstrdup("https://user:hiddenpw@github.com/");
	FAILS_HIDING(EINVAL, "hiddenpw", add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	s.base_url = xstrdup("ftp://github.com/");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	s.base_url = xstrdup("https://github.com/\"]\n[core]");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	connector_spec_add_var(&s, "FOO");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	connector_spec_add_secret(&s, "token", "secretvalue");
	FAILS(EINVAL, add(&s, &e_)); /* text and pairs */
	s = spec_of("postgres", "x", "postgres://u:longpassword@h/db");
	s.mode = xstrdup("broker");
	FAILS(EINVAL, add(&s, &e_));
	s = spec_of("github", "x", "secretvalue");
	s.mode = xstrdup("proxy");
	FAILS(EINVAL, add(&s, &e_));
	/* A broker adds the credential upstream: over https only. */
	s = spec_of("anthropic", "x", "sk-ant-whatever");
	s.mode = xstrdup("broker");
	s.base_url = xstrdup("http://llm.example.com");
	{
		struct cr_error e_ = CR_ERROR_INIT;
		CHECK(add(&s, &e_) < 0 && e_.errnum == EINVAL && e_.msg &&
		      strstr(e_.msg, "a broker sends the credential only over https") != NULL);
		cr_error_release(&e_);
	}
	s = spec_of("github", "x", "secretvalue");
	s.mode = xstrdup("broker");
	s.base_url = xstrdup("http://git.example.com/");
	FAILS(EINVAL, add(&s, &e_));
	/* Inject mode leaves that to the program. */
	s = spec_of("github", "plain-http", "secretvalue");
	s.base_url = xstrdup("http://git.example.com/");
	OK(add(&s, &e_));
	OK(store_connector_delete(state.store, "plain-http", false, &e_));
	/* Duplicate name. */
	s = spec_of("anthropic", "gh", "sk-ant-whatever");
	FAILS(EEXIST, add(&s, &e_));

	/* None of that left anything behind. */
	struct store_connector *v;
	OK(store_connector_list(state.store, NULL, &v, &n, &e_));
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(v[i].name, "x") != 0 && strcmp(v[i].name, "bad") != 0);
	store_connector_list_free(v, n);
	OK(store_connector_use_list(state.store, 0, NULL, 1000, &u, &n, &e_));
	store_connector_use_list_free(u, n);
}

static void test_clash_and_lifecycle(void)
{
	int64_t env = new_env("t-mix");
	struct connector_injection inj;
	struct connector_spec s;
	struct store_connector c;
	const char *const gh_env[] = { "GH_TOKEN=ghp_Unit0Test1Token2Value3abcdefXYZ",
				       "GITHUB_TOKEN=ghp_Unit0Test1Token2Value3abcdefXYZ", NULL };

	/* Two connectors on one environment, in the order of their names. */
	attach("gh", "t-mix");
	s = spec_of("env", "zz-extra", "EXTRA_ONE=extra-value-1\n");
	OK(add(&s, &e_));
	attach("zz-extra", "t-mix");
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ gh_env[0], gh_env[1], "EXTRA_ONE=extra-value-1",
					       NULL });
	CHECK(inj.nconnectors == 2);
	CHECK(inj.nscrub == 3);
	connector_injection_release(&inj);

	/* A connector setting GH_TOKEN too cannot join them. */
	s = spec_of("env", "gh-copy", "GH_TOKEN=another-token\n");
	OK(add(&s, &e_));
	FAILS(ENOTUNIQ, store_connector_attach(state.store, "gh-copy", "t-mix", &e_));
	FAILS(EEXIST, store_connector_attach(state.store, "gh", "t-mix", &e_));
	FAILS(ENOENT, store_connector_attach(state.store, "nope", "t-mix", &e_));
	FAILS(ENOENT, store_connector_attach(state.store, "gh", "no-such-env", &e_));
	FAILS(EINVAL, store_connector_attach(state.store, "gh", "Bad Env", &e_));

	/* A rotation that would add a clashing name is refused, and changes
	 * nothing. */
	s = spec_of(NULL, "zz-extra", "EXTRA_ONE=extra-value-2\nGITHUB_TOKEN=clashing\n");
	FAILS(ENOTUNIQ, rotate(&s, &e_));
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ gh_env[0], gh_env[1], "EXTRA_ONE=extra-value-1",
					       NULL });
	connector_injection_release(&inj);

	/* Rotation replaces the secret in place. */
	OK(store_connector_get(state.store, "zz-extra", &c, &e_));
	cleanup_free char *fp = xstrdup(c.fingerprint);
	int64_t id = c.id;
	store_connector_release(&c);
	s = spec_of(NULL, "zz-extra", "EXTRA_ONE=extra-value-2\nEXTRA_TWO=second-one\n");
	OK(rotate(&s, &e_));
	OK(store_connector_get(state.store, "zz-extra", &c, &e_));
	CHECK(c.id == id && c.rotated_at != NULL && strcmp(c.fingerprint, fp) != 0);
	CHECK(c.nnames == 2 && c.nenvs == 1);
	store_connector_release(&c);
	inject(env, &inj);
	check_env(&inj, (const char *const[]){ gh_env[0], gh_env[1], "EXTRA_ONE=extra-value-2",
					       "EXTRA_TWO=second-one", NULL });
	connector_injection_release(&inj);

	/* Rotation changes only the secret. */
	s = spec_of(NULL, "gh", "ghp_newtoken123");
	s.base_url = xstrdup("https://example.com/");
	FAILS(EINVAL, rotate(&s, &e_));
	s = spec_of("anthropic", "gh", "ghp_newtoken123");
	FAILS(EINVAL, rotate(&s, &e_));
	s = spec_of(NULL, "nope", "ghp_newtoken123");
	FAILS(ENOENT, rotate(&s, &e_));
	s = spec_of(NULL, "gh", "");
	FAILS(EINVAL, rotate(&s, &e_));

	/* Detach: gone from the next injection. */
	OK(store_connector_detach(state.store, "zz-extra", "t-mix", &e_));
	FAILS(ENOENT, store_connector_detach(state.store, "zz-extra", "t-mix", &e_));
	inject(env, &inj);
	check_env(&inj, gh_env);
	connector_injection_release(&inj);

	/* Delete: attached needs force, which detaches. */
	FAILS(EBUSY, store_connector_delete(state.store, "gh", false, &e_));
	OK(store_connector_delete(state.store, "zz-extra", false, &e_));
	FAILS(ENOENT, store_connector_get(state.store, "zz-extra", &c, &e_));

	/* An environment without connectors injects nothing; neither does
	 * one that does not exist. */
	inject(new_env("t-empty"), &inj);
	CHECK(inj.nenv == 0 && inj.env && inj.env[0] == NULL && inj.nfiles == 0 &&
	      inj.nscrub == 0 && inj.nconnectors == 0);
	connector_injection_release(&inj);
	inject(999999, &inj);
	CHECK(inj.nenv == 0);
	connector_injection_release(&inj);

	/* Broker mode: the sandbox gets a placeholder and a loopback
	 * endpoint; the real credential goes to the daemon's broker only. */
	s = spec_of("anthropic", "brokered", "sk-ant-brokered");
	s.mode = xstrdup("broker");
	OK(add(&s, &e_));
	s = spec_of("github", "gh-brokered", "ghp_brokered");
	s.mode = xstrdup("broker");
	s.base_url = xstrdup("https://git.example.com/");
	OK(add(&s, &e_));
	{
		int64_t benv = new_env("t-broker");
		attach("brokered", "t-broker");
		attach("gh-brokered", "t-broker");
		inject(benv, &inj);
		check_env(&inj, (const char *const[]){ "ANTHROPIC_API_KEY=corral-brokered-credential",
						       "ANTHROPIC_BASE_URL=http://127.0.0.1:3129",
						       NULL });
		CHECK(inj.nbrokers == 2);
		if (inj.nbrokers == 2) {
			CHECK(inj.brokers[0].kind == CONNECTOR_BROKER_ANTHROPIC);
			CHECK_STR(inj.brokers[0].connector, "brokered");
			CHECK_STR(inj.brokers[0].upstream, "https://api.anthropic.com");
			CHECK_STR(inj.brokers[0].header, "x-api-key: sk-ant-brokered");
			CHECK(inj.brokers[1].kind == CONNECTOR_BROKER_GITHUB);
			CHECK_STR(inj.brokers[1].upstream, "https://git.example.com/");
			/* base64("x-access-token:ghp_brokered") */
			CHECK_STR(inj.brokers[1].header,
				  "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX2Jyb2tlcmVk");
		}
		CHECK(inj.nfiles == 1);
		if (inj.nfiles == 1) {
			CHECK(strstr(inj.files[0].content, "[url \"http://127.0.0.1:3130/\"]") != NULL);
			CHECK(strstr(inj.files[0].content, "insteadOf = https://git.example.com/") != NULL);
			CHECK(strstr(inj.files[0].content, "ghp_brokered") == NULL);
		}
		for (size_t i = 0; i < inj.nenv; i++)
			CHECK(strstr(inj.env[i], "sk-ant-brokered") == NULL);
		/* Nothing to scrub: the secrets never reach the sandbox. */
		CHECK(inj.nscrub == 0);
		connector_injection_release(&inj);
	}
}

static void test_audit(void)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector_use *u;
	struct store_connector c;
	struct store_key k;
	struct store_exec ex = { 0 };
	char *secret;
	size_t n;

	OK(store_connector_get(state.store, "claude", &c, &e_));
	if (store_key_create(state.store, "t-anthropic", "free", NULL, "local", &secret, &k,
			     &err) < 0) {
		fprintf(stderr, "key: %s\n", err.msg);
		CHECK(false);
		return;
	}
	free(secret);
	ex.trace_id = xstrdup("trc_00000000000000000000000000000001");
	ex.key_id = k.id;
	ex.env_id = k.env_id;
	ex.language = xstrdup("bash");
	ex.delivery_mode = xstrdup("inline");
	OK(store_exec_insert(state.store, &ex, &e_));
	OK(connector_record_use(state.store, ex.trace_id, c.id, &e_));
	OK(connector_record_use(state.store, "trc_unknown", c.id, &e_));
	FAILS(EINVAL, connector_record_use(state.store, "", c.id, &e_));
	FAILS(EINVAL, connector_record_use(state.store, "bad id", c.id, &e_));

	OK(store_connector_use_list(state.store, c.id, NULL, 10, &u, &n, &e_));
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(u[0].trace_id, "trc_unknown");
		CHECK(u[0].env_name == NULL);
		CHECK_STR(u[1].trace_id, "trc_00000000000000000000000000000001");
		CHECK_STR(u[1].env_name, "t-anthropic");
		CHECK_STR(u[1].connector_name, "claude");
		CHECK(u[1].used_at != NULL);
	}
	store_connector_use_list_free(u, n);
	OK(store_connector_use_list(state.store, 0, "claude", 1, &u, &n, &e_));
	CHECK(n == 1);
	store_connector_use_list_free(u, n);
	FAILS(EINVAL, store_connector_use_list(state.store, 0, NULL, 0, &u, &n, &e_));

	/* The audit outlives the connector. */
	OK(store_connector_delete(state.store, "claude", true, &e_));
	OK(store_connector_use_list(state.store, 0, "claude", 10, &u, &n, &e_));
	CHECK(n == 2);
	store_connector_use_list_free(u, n);
	store_connector_release(&c);
	store_exec_release(&ex);
	store_key_release(&k);
}

/* No secret given above is in the raw database files, in clear. */
static void test_raw_db(void)
{
	static const char *const secrets[] = {
		"ghp_Unit0Test1Token2Value3abcdefXYZ", "tok+en/with=odd~chars",
		"sk-ant-api03-UnitTestKey", "sk-ant-api03-Another", "s3cr@t!", "s3cr%40t!",
		"pa:ss word", "longpassword", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"FwoGZXIvYXdzEJr", "abcdEFGH1234", "rotatedSecret99", "rotatedAgain77",
		"npm_abcdef", "MIIabc", "valueone", "extra-value-1", "extra-value-2",
		"second-one", "another-token", "sk-ant-brokered",
	};
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *wal = xasprintf("%s-wal", state.db_path);
	struct stat st;

	CHECK(stat(wal, &st) == 0 && st.st_size > 0); /* the WAL was written to */
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++) {
		if (db_contains(secrets[i]))
			fprintf(stderr, "  secret %zu found in the database\n", i);
		CHECK(!db_contains(secrets[i]));
	}
	/* Also after a checkpoint moved the WAL into the main file. */
	store_state_close(&state);
	if (store_state_open(&state, tmpdir, &err) < 0) {
		fprintf(stderr, "reopen: %s\n", err.msg);
		exit(1);
	}
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++)
		CHECK(!db_contains(secrets[i]));
	/* Non-secret settings are there, as they should be. */
	CHECK(db_contains("AKIAIOSFODNN7EXAMPLE"));
}

/* Another secrets.key: the secrets do not open, and say why. */
static void test_wrong_master_key(void)
{
	struct cr_error err = CR_ERROR_INIT;
	struct connector_injection inj;
	struct store_env e;
	unsigned char other[32];
	cleanup_free char *key_path = xstrdup(state.key_path);
	int64_t env_id;

	OK(store_env_get(state.store, "t-aws", &e, &e_));
	env_id = e.id;
	store_env_release(&e);
	store_state_close(&state);
	randombytes_buf(other, sizeof(other));
	CHECK(write_file_raw(key_path, O_TRUNC, 0600, other, sizeof(other)) == 0);
	if (store_state_open(&state, tmpdir, &err) < 0) {
		fprintf(stderr, "reopen: %s\n", err.msg);
		exit(1);
	}
	FAILS(EBADMSG, connector_injection_for_env(&state, env_id, &inj, &e_));
	CHECK(inj.env == NULL && inj.nenv == 0);
	connector_injection_release(&inj);
}

int main(void)
{
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *cmd = NULL;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (sodium_init() < 0 || store_state_open(&state, tmpdir, &err) < 0) {
		fprintf(stderr, "state: %s\n", err.msg ? err.msg : "sodium_init");
		return 1;
	}
	test_seal();
	test_fingerprint();
	test_github();
	test_anthropic();
	test_postgres();
	test_aws();
	test_env_type();
	test_refusals();
	test_clash_and_lifecycle();
	test_audit();
	test_raw_db();
	test_wrong_master_key();
	store_state_close(&state);

	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_report("test-connector");
}
