/* test-config.c - the option-value parsers and checks of sandbox/config.h.
 *
 * Every parser sees text typed by a user or sent over the API, so each is
 * driven with valid values, its boundaries, garbage, overflow, negatives
 * and fractions; a refusal must carry a sentence naming the option. */
#include "sandbox/config.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The error is set, and its message contains `needle`. */
static int err_has(struct cr_error *err, const char *needle)
{
	return err->msg != NULL && strstr(err->msg, needle) != NULL;
}

static int seconds_ok(const char *s, uint32_t want)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t ms = 0xdeadbeef;
	int r = sandbox_parse_seconds(s, "--timeout", &ms, &err);
	int ok = r == 0 && ms == want && err.msg == NULL;
	if (!ok)
		fprintf(stderr, "  seconds '%s': r=%d ms=%u err=%s\n", s, r, ms,
			err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return ok;
}

static int seconds_bad(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t ms = 77;
	int r = sandbox_parse_seconds(s, "--timeout", &ms, &err);
	/* Refused, output untouched, and the message names the option. */
	int ok = r == -1 && ms == 77 && err_has(&err, "--timeout");
	if (!ok)
		fprintf(stderr, "  seconds '%s' accepted: r=%d ms=%u\n", s ? s : "(null)", r, ms);
	cr_error_release(&err);
	return ok;
}

static void test_seconds(void)
{
	CHECK(seconds_ok("1", 1000));
	CHECK(seconds_ok("30", 30000));
	CHECK(seconds_ok("0.5", 500));
	CHECK(seconds_ok("0.001", 1));
	CHECK(seconds_ok("1.25", 1250));
	CHECK(seconds_ok("1.2", 1200));
	CHECK(seconds_ok("007", 7000));
	CHECK(seconds_ok("86400", SANDBOX_MAX_TIMEOUT_MS));
	CHECK(seconds_ok("86399.999", SANDBOX_MAX_TIMEOUT_MS - 1));
	CHECK(seconds_ok("86400.000", SANDBOX_MAX_TIMEOUT_MS));

	CHECK(seconds_bad("0"));
	CHECK(seconds_bad("0.0"));
	CHECK(seconds_bad("0.0001"));     /* below a millisecond: 4 fraction digits */
	CHECK(seconds_bad("0.0005"));
	CHECK(seconds_bad("86400.001"));
	CHECK(seconds_bad("86401"));
	CHECK(seconds_bad("99999999999999999999"));
	CHECK(seconds_bad("18446744073709551617"));
	CHECK(seconds_bad("4294967.296"));
	CHECK(seconds_bad("-1"));
	CHECK(seconds_bad("-0"));
	CHECK(seconds_bad("+1"));
	CHECK(seconds_bad("abc"));
	CHECK(seconds_bad("1e9"));
	CHECK(seconds_bad("1e3"));
	CHECK(seconds_bad("0x10"));
	CHECK(seconds_bad(""));
	CHECK(seconds_bad(" 1"));
	CHECK(seconds_bad("1 "));
	CHECK(seconds_bad("1s"));
	CHECK(seconds_bad("1."));
	CHECK(seconds_bad(".5"));
	CHECK(seconds_bad("1..5"));
	CHECK(seconds_bad("1.5.5"));
	CHECK(seconds_bad("1,5"));
	CHECK(seconds_bad("inf"));
	CHECK(seconds_bad("nan"));
	CHECK(seconds_bad(NULL));

	/* "0" gets its own sentence. */
	struct cr_error err = CR_ERROR_INIT;
	uint32_t ms;
	CHECK(sandbox_parse_seconds("0", "--timeout", &ms, &err) == -1);
	CHECK(err_has(&err, "more than 0"));
	cr_error_release(&err);
	CHECK(sandbox_parse_seconds("abc", "--timeout", &ms, &err) == -1);
	CHECK(err_has(&err, "'abc'"));
	cr_error_release(&err);
}

static int uint_ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 0xdeadbeef;
	int r = sandbox_parse_uint(s, "--pids", min, max, &v, &err);
	int ok = r == 0 && v == want && err.msg == NULL;
	if (!ok)
		fprintf(stderr, "  uint '%s': r=%d v=%llu err=%s\n", s, r, (unsigned long long)v,
			err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return ok;
}

static int uint_bad(const char *s, uint64_t min, uint64_t max)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 77;
	int r = sandbox_parse_uint(s, "--pids", min, max, &v, &err);
	int ok = r == -1 && v == 77 && err_has(&err, "--pids");
	if (!ok)
		fprintf(stderr, "  uint '%s' accepted: r=%d v=%llu\n", s ? s : "(null)", r,
			(unsigned long long)v);
	cr_error_release(&err);
	return ok;
}

static void test_uint(void)
{
	CHECK(uint_ok("0", 0, 10, 0));
	CHECK(uint_ok("10", 0, 10, 10));
	CHECK(uint_ok("2", 2, 4194304, 2));
	CHECK(uint_ok("4194304", 2, 4194304, 4194304));
	CHECK(uint_ok("0042", 0, 100, 42));
	CHECK(uint_ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX));

	CHECK(uint_bad("1", 2, 4194304));
	CHECK(uint_bad("4194305", 2, 4194304));
	CHECK(uint_bad("18446744073709551616", 0, UINT64_MAX));   /* 2^64 */
	CHECK(uint_bad("99999999999999999999", 0, UINT64_MAX));
	CHECK(uint_bad("99999999999999999999", 2, 100));
	CHECK(uint_bad("-1", 0, UINT64_MAX));   /* strtoull would wrap it */
	CHECK(uint_bad("-0", 0, 10));
	CHECK(uint_bad("+1", 0, 10));
	CHECK(uint_bad(" 1", 0, 10));
	CHECK(uint_bad("1 ", 0, 10));
	CHECK(uint_bad("1.5", 0, 10));
	CHECK(uint_bad("1e3", 0, 10000));
	CHECK(uint_bad("0x10", 0, 100));
	CHECK(uint_bad("abc", 0, 10));
	CHECK(uint_bad("", 0, 10));
	CHECK(uint_bad(NULL, 0, 10));
	CHECK(uint_bad("10k", 0, 100000));

	struct cr_error err = CR_ERROR_INIT;
	uint64_t v;
	CHECK(sandbox_parse_uint("1", "--pids", 2, 9, &v, &err) == -1);
	CHECK(err_has(&err, "out of range (2 to 9)"));
	cr_error_release(&err);
}

static int cpus_ok(const char *s, uint32_t want)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t m = 0xdeadbeef;
	int r = sandbox_parse_cpus(s, "--cpus", &m, &err);
	int ok = r == 0 && m == want && err.msg == NULL;
	if (!ok)
		fprintf(stderr, "  cpus '%s': r=%d milli=%u err=%s\n", s, r, m,
			err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return ok;
}

static int cpus_bad(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint32_t m = 77;
	int r = sandbox_parse_cpus(s, "--cpus", &m, &err);
	int ok = r == -1 && m == 77 && err_has(&err, "--cpus");
	if (!ok)
		fprintf(stderr, "  cpus '%s' accepted: r=%d milli=%u\n", s ? s : "(null)", r, m);
	cr_error_release(&err);
	return ok;
}

static void test_cpus(void)
{
	CHECK(cpus_ok("1", 1000));
	CHECK(cpus_ok("2", 2000));
	CHECK(cpus_ok("0.5", 500));
	CHECK(cpus_ok("1.25", 1250));
	CHECK(cpus_ok("0.01", 10));     /* the minimum */
	CHECK(cpus_ok("0.010", 10));
	CHECK(cpus_ok("1024", 1024000));   /* the maximum */
	CHECK(cpus_ok("1024.000", 1024000));

	CHECK(cpus_bad("0"));
	CHECK(cpus_bad("0.0"));
	CHECK(cpus_bad("0.009"));
	CHECK(cpus_bad("0.001"));
	CHECK(cpus_bad("0.0001"));
	CHECK(cpus_bad("1024.001"));
	CHECK(cpus_bad("1025"));
	CHECK(cpus_bad("99999999999999999999"));
	CHECK(cpus_bad("-1"));
	CHECK(cpus_bad("-0.5"));
	CHECK(cpus_bad("abc"));
	CHECK(cpus_bad(""));
	CHECK(cpus_bad(".5"));
	CHECK(cpus_bad("1."));
	CHECK(cpus_bad("1e2"));
	CHECK(cpus_bad("50%"));
	CHECK(cpus_bad("1 "));
	CHECK(cpus_bad(NULL));

	struct cr_error err = CR_ERROR_INIT;
	uint32_t m;
	CHECK(sandbox_parse_cpus("0.001", "--cpus", &m, &err) == -1);
	CHECK(err_has(&err, "minimum"));
	cr_error_release(&err);
}

static int size_ok(const char *s, uint64_t want)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 0xdeadbeef;
	int r = sandbox_parse_size(s, "--tmp-size", &v, &err);
	int ok = r == 0 && v == want && err.msg == NULL;
	if (!ok)
		fprintf(stderr, "  size '%s': r=%d v=%llu err=%s\n", s, r, (unsigned long long)v,
			err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return ok;
}

static int size_bad(const char *s)
{
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v = 77;
	int r = sandbox_parse_size(s, "--tmp-size", &v, &err);
	int ok = r == -1 && v == 77 && err_has(&err, "--tmp-size");
	if (!ok)
		fprintf(stderr, "  size '%s' accepted: r=%d v=%llu\n", s ? s : "(null)", r,
			(unsigned long long)v);
	cr_error_release(&err);
	return ok;
}

static void test_size(void)
{
	CHECK(size_ok("0", 0));
	CHECK(size_ok("4096", 4096));
	CHECK(size_ok("64K", 64ull << 10));
	CHECK(size_ok("64k", 64ull << 10));
	CHECK(size_ok("10M", 10ull << 20));
	CHECK(size_ok("10m", 10ull << 20));
	CHECK(size_ok("1G", 1ull << 30));
	CHECK(size_ok("1g", 1ull << 30));
	CHECK(size_ok("0G", 0));
	CHECK(size_ok("9223372036854775807", INT64_MAX));   /* fits a JSON integer */
	CHECK(size_ok("8589934591G", 8589934591ull << 30));

	CHECK(size_bad("9223372036854775808"));
	CHECK(size_bad("18446744073709551615"));
	CHECK(size_bad("99999999999999999999"));
	CHECK(size_bad("99999999999999999999G"));
	CHECK(size_bad("8589934592G"));    /* 2^63 */
	CHECK(size_bad("17179869184G"));   /* 2^64: would wrap to 0 */
	CHECK(size_bad("18014398509481984K"));   /* 2^64 */
	CHECK(size_bad("-1"));
	CHECK(size_bad("-1G"));
	CHECK(size_bad("abc"));
	CHECK(size_bad(""));
	CHECK(size_bad("G"));
	CHECK(size_bad("1T"));
	CHECK(size_bad("1KB"));
	CHECK(size_bad("1KiB"));
	CHECK(size_bad("1MM"));
	CHECK(size_bad("1.5G"));
	CHECK(size_bad("1 G"));
	CHECK(size_bad(" 1G"));
	CHECK(size_bad("1G "));
	CHECK(size_bad("0x10"));
	CHECK(size_bad("+1"));
	CHECK(size_bad(NULL));
}

static void test_language(void)
{
	struct cr_error err = CR_ERROR_INIT;
	enum sandbox_language l = SANDBOX_LANG_NONE;

	CHECK(sandbox_parse_language("python", &l, &err) == 0 && l == SANDBOX_LANG_PYTHON);
	CHECK(sandbox_parse_language("node", &l, &err) == 0 && l == SANDBOX_LANG_NODE);
	CHECK(sandbox_parse_language("bash", &l, &err) == 0 && l == SANDBOX_LANG_BASH);
	CHECK(err.msg == NULL);

	static const char *const bad[] = {
		"cobol", "Python", "PYTHON", "python3", "py", "", "command", " bash", "bash ",
		"nodejs", "sh",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = SANDBOX_LANG_BASH;
		CHECK(sandbox_parse_language(bad[i], &l, &err) == -1);
		CHECK(l == SANDBOX_LANG_BASH);
		CHECK(err_has(&err, "unknown language"));
		cr_error_release(&err);
	}
	CHECK(sandbox_parse_language(NULL, &l, &err) == -1);
	cr_error_release(&err);

	CHECK_STR(sandbox_language_name(SANDBOX_LANG_NONE), "command");
	CHECK_STR(sandbox_language_name(SANDBOX_LANG_PYTHON), "python");
	CHECK_STR(sandbox_language_name(SANDBOX_LANG_NODE), "node");
	CHECK_STR(sandbox_language_name(SANDBOX_LANG_BASH), "bash");
	CHECK_STR(sandbox_language_name((enum sandbox_language)99), "unknown");
	CHECK_STR(sandbox_language_name((enum sandbox_language)-1), "unknown");
}

static int user_ok(const char *name)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_user_name(name, &err);
	if (r != 0)
		fprintf(stderr, "  user '%s' refused: %s\n", name, err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return r == 0;
}

static int user_bad(const char *name)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_user_name(name, &err);
	int ok = r == -1 && err_has(&err, "user name");
	if (!ok)
		fprintf(stderr, "  user '%s' accepted\n", name ? name : "(null)");
	cr_error_release(&err);
	return ok;
}

static void test_user_name(void)
{
	CHECK(user_ok("baponi"));
	CHECK(user_ok(SANDBOX_DEFAULT_USER));
	CHECK(user_ok("a"));
	CHECK(user_ok("_"));
	CHECK(user_ok("_svc"));
	CHECK(user_ok("agent-7"));
	CHECK(user_ok("a_b-c9"));
	CHECK(user_ok("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
	CHECK(user_ok("rooty"));
	CHECK(user_ok("nobody2"));

	CHECK(user_bad("abcdefghijklmnopqrstuvwxyz0123456"));   /* 33 */
	CHECK(user_bad(""));
	CHECK(user_bad(NULL));
	CHECK(user_bad("root"));
	CHECK(user_bad("nobody"));
	CHECK(user_bad("Root"));
	CHECK(user_bad("ROOT"));
	CHECK(user_bad("Baponi"));
	CHECK(user_bad("1abc"));
	CHECK(user_bad("-abc"));
	CHECK(user_bad("a b"));
	CHECK(user_bad("a/b"));
	CHECK(user_bad("../etc"));
	CHECK(user_bad(".."));
	CHECK(user_bad("."));
	CHECK(user_bad("a.b"));
	CHECK(user_bad("a:b"));
	CHECK(user_bad("a$"));
	CHECK(user_bad("a\n"));
	CHECK(user_bad("caf\xc3\xa9"));
}

static int env_ok(const char *a)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_env_assignment(a, &err);
	if (r != 0)
		fprintf(stderr, "  env '%.60s' refused: %s\n", a, err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return r == 0;
}

static int env_bad(const char *a)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_env_assignment(a, &err);
	int ok = r == -1 && err.msg != NULL;
	if (!ok)
		fprintf(stderr, "  env '%.60s' accepted\n", a);
	cr_error_release(&err);
	return ok;
}

static int env_reserved(const char *a)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_check_env_assignment(a, &err);
	int ok = r == -1 && err_has(&err, "reserved");
	if (!ok)
		fprintf(stderr, "  env '%.60s' not refused as reserved: %s\n", a,
			err.msg ? err.msg : "(accepted)");
	cr_error_release(&err);
	return ok;
}

static void test_env(void)
{
	CHECK(env_ok("FOO=bar"));
	CHECK(env_ok("FOO="));
	CHECK(env_ok("foo=bar"));
	CHECK(env_ok("_=x"));
	CHECK(env_ok("_FOO1=x"));
	CHECK(env_ok("A=b=c"));
	CHECK(env_ok("A==="));
	CHECK(env_ok("A=with space and \xff bytes"));
	CHECK(env_ok("OPENAI_API_KEY=sk-123"));
	/* Near misses of the reserved names are ordinary names. */
	CHECK(env_ok("PATHX=1"));
	CHECK(env_ok("XPATH=1"));
	CHECK(env_ok("path=1"));
	CHECK(env_ok("HOMEDIR=1"));
	CHECK(env_ok("LD=1"));
	CHECK(env_ok("LDX_FOO=1"));
	CHECK(env_ok("ld_preload=1"));
	CHECK(env_ok("BASH_FUNC=1"));
	CHECK(env_ok("BASH=1"));
	CHECK(env_ok("MALLOC=1"));
	CHECK(env_ok("CORRAL=1"));
	CHECK(env_ok("ENVX=1"));
	CHECK(env_ok("PYTHONUNBUFFERED=1"));

	CHECK(env_reserved("PATH=/evil"));
	CHECK(env_reserved("PATH="));
	CHECK(env_reserved("HOME=/root"));
	CHECK(env_reserved("USER=root"));
	CHECK(env_reserved("LOGNAME=root"));
	CHECK(env_reserved("SHELL=/bin/sh"));
	CHECK(env_reserved("PWD=/"));
	CHECK(env_reserved("TMPDIR=/x"));
	CHECK(env_reserved("LD_PRELOAD=/tmp/x.so"));
	CHECK(env_reserved("LD_LIBRARY_PATH=/tmp"));
	CHECK(env_reserved("LD_AUDIT=x"));
	CHECK(env_reserved("LD_=x"));
	CHECK(env_reserved("LD_ANYTHING_AT_ALL=x"));
	CHECK(env_reserved("GCONV_PATH=/tmp"));
	CHECK(env_reserved("LOCPATH=/tmp"));
	CHECK(env_reserved("MALLOC_CHECK_=3"));
	CHECK(env_reserved("GLIBC_TUNABLES=x"));
	CHECK(env_reserved("BASH_ENV=/tmp/x"));
	CHECK(env_reserved("ENV=/tmp/x"));
	CHECK(env_reserved("BASH_FUNC_x=() { :; }"));
	CHECK(env_reserved("BASH_FUNC_ls=() { :; }"));
	CHECK(env_reserved("IFS=x"));
	CHECK(env_reserved("PS4=$(id)"));
	CHECK(env_reserved("SHELLOPTS=xtrace"));
	CHECK(env_reserved("BASHOPTS=x"));
	CHECK(env_reserved("CORRAL_TRACE=1"));

	CHECK(env_bad("NOEQUALS"));
	CHECK(env_bad(""));
	CHECK(env_bad("=value"));
	CHECK(env_bad("="));
	CHECK(env_bad("1X=a"));
	CHECK(env_bad("9=a"));
	CHECK(env_bad("A-B=a"));
	CHECK(env_bad("A.B=a"));
	CHECK(env_bad("A B=a"));
	CHECK(env_bad(" A=a"));
	CHECK(env_bad("A =a"));
	CHECK(env_bad("BASH_FUNC_x%%=() { :; }"));   /* bash's own encoding */
	CHECK(env_bad("BASH_FUNC_x()=() { :; }"));
	CHECK(env_bad("A\n=a"));
	CHECK(env_bad("\xc3\xa9=a"));
	CHECK(env_bad("$A=a"));

	/* Name length 1..128, value up to 128 KiB. */
	char name[200];
	memset(name, 'N', 128);
	strcpy(name + 128, "=v");
	CHECK(env_ok(name));
	memset(name, 'N', 129);
	strcpy(name + 129, "=v");
	CHECK(env_bad(name));

	/* The kernel limits the whole "NAME=VALUE" string with its NUL to
	 * 128 KiB: "V=" and the NUL leave 128 KiB - 3 for the value. */
	size_t vmax = 128 * 1024 - 3;
	char *big = malloc(vmax + 8);
	memcpy(big, "V=", 2);
	memset(big + 2, 'x', vmax);
	big[2 + vmax] = '\0';
	CHECK(env_ok(big));
	big[2 + vmax] = 'x';
	big[3 + vmax] = '\0';
	CHECK(env_bad(big));
	free(big);

	/* The message quotes the name so the caller sees what was refused. */
	struct cr_error err = CR_ERROR_INIT;
	CHECK(sandbox_check_env_assignment("LD_PRELOAD=/x", &err) == -1);
	CHECK(err_has(&err, "'LD_PRELOAD'"));
	cr_error_release(&err);
}

/* A config that passes, to break one field at a time. */
static void good_config(struct sandbox_config *cfg, char **argv)
{
	sandbox_config_init(cfg);
	cfg->argv = argv;
}

static int config_ok(const struct sandbox_config *cfg)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_config_check(cfg, &err);
	if (r != 0)
		fprintf(stderr, "  config refused: %s\n", err.msg ? err.msg : "(none)");
	cr_error_release(&err);
	return r == 0;
}

static int config_bad(const struct sandbox_config *cfg, const char *needle)
{
	struct cr_error err = CR_ERROR_INIT;
	int r = sandbox_config_check(cfg, &err);
	int ok = r == -1 && err_has(&err, needle);
	if (!ok)
		fprintf(stderr, "  config: wanted '%s', got %s\n", needle,
			err.msg ? err.msg : "(accepted)");
	cr_error_release(&err);
	return ok;
}

static void test_config_defaults(void)
{
	struct sandbox_config cfg;

	sandbox_config_init(&cfg);
	CHECK(cfg.argv == NULL && cfg.code == NULL && cfg.env == NULL && cfg.user == NULL);
	CHECK(cfg.thread_dir == NULL);
	CHECK(cfg.language == SANDBOX_LANG_NONE);
	CHECK(cfg.timeout_ms == 30000);
	CHECK(cfg.memory_bytes == 512ull << 20);
	CHECK(cfg.pids == 256);
	CHECK(cfg.cpu_milli == 1000);
	CHECK(cfg.output_limit == 10ull << 20);
	CHECK(cfg.tmp_size == SANDBOX_DEFAULT_TMP_SIZE);
	CHECK(cfg.home_size == SANDBOX_DEFAULT_HOME_SIZE);
	CHECK(cfg.fsize == SANDBOX_DEFAULT_FSIZE);
	CHECK(cfg.nofile == SANDBOX_DEFAULT_NOFILE);
	CHECK(cfg.host_uid_base == SANDBOX_DEFAULT_HOST_UID_BASE);
	CHECK(!cfg.allow_nested);
	/* Nothing to run yet. */
	CHECK(config_bad(&cfg, "nothing to run"));
	sandbox_config_release(&cfg);
	CHECK(cfg.argv == NULL && cfg.timeout_ms == 0);
}

static void test_config_check(void)
{
	char *argv[] = { "echo", "hi", NULL };
	char *empty_argv[] = { "", NULL };
	char *no_argv[] = { NULL };
	char *env_good[] = { "A=1", "B=", NULL };
	char *env_evil[] = { "A=1", "LD_PRELOAD=/x.so", NULL };
	struct sandbox_config cfg;

	good_config(&cfg, argv);
	CHECK(config_ok(&cfg));

	cfg.argv = empty_argv;
	CHECK(config_bad(&cfg, "nothing to run"));
	cfg.argv = no_argv;
	CHECK(config_bad(&cfg, "nothing to run"));

	/* Code mode ignores argv but needs code within the limit. */
	good_config(&cfg, NULL);
	cfg.language = SANDBOX_LANG_PYTHON;
	CHECK(config_bad(&cfg, "no code given for language 'python'"));
	cfg.code = "print(1)";
	cfg.code_len = 8;
	CHECK(config_ok(&cfg));
	cfg.code_len = SANDBOX_MAX_CODE;
	CHECK(config_ok(&cfg));
	cfg.code_len = SANDBOX_MAX_CODE + 1;
	CHECK(config_bad(&cfg, "more than the limit"));

	good_config(&cfg, argv);
	cfg.user = "Root";
	CHECK(config_bad(&cfg, "user name"));
	cfg.user = "root";
	CHECK(config_bad(&cfg, "reserved"));
	cfg.user = "agent";
	CHECK(config_ok(&cfg));

	good_config(&cfg, argv);
	cfg.env = env_good;
	CHECK(config_ok(&cfg));
	cfg.env = env_evil;
	CHECK(config_bad(&cfg, "LD_PRELOAD"));

	good_config(&cfg, argv);
	cfg.timeout_ms = 0;
	CHECK(config_bad(&cfg, "timeout"));
	cfg.timeout_ms = SANDBOX_MAX_TIMEOUT_MS;
	CHECK(config_ok(&cfg));
	cfg.timeout_ms = SANDBOX_MAX_TIMEOUT_MS + 1;
	CHECK(config_bad(&cfg, "timeout"));

	good_config(&cfg, argv);
	cfg.memory_bytes = 0;   /* unlimited */
	CHECK(config_ok(&cfg));
	cfg.memory_bytes = SANDBOX_MIN_MEMORY;
	CHECK(config_ok(&cfg));
	cfg.memory_bytes = SANDBOX_MIN_MEMORY - 1;
	CHECK(config_bad(&cfg, "memory limit"));
	cfg.memory_bytes = 1;
	CHECK(config_bad(&cfg, "memory limit"));

	good_config(&cfg, argv);
	cfg.pids = 0;
	CHECK(config_ok(&cfg));
	cfg.pids = 1;
	CHECK(config_bad(&cfg, "pids"));
	cfg.pids = 2;
	CHECK(config_ok(&cfg));

	good_config(&cfg, argv);
	cfg.tmp_size = (1 << 20) - 1;
	CHECK(config_bad(&cfg, "/tmp"));
	cfg.tmp_size = 1 << 20;
	CHECK(config_ok(&cfg));

	good_config(&cfg, argv);
	cfg.nofile = 15;
	CHECK(config_bad(&cfg, "open-files"));
	cfg.nofile = 16;
	CHECK(config_ok(&cfg));

	good_config(&cfg, argv);
	cfg.host_uid_base = 0;
	CHECK(config_bad(&cfg, "host id range"));
	cfg.host_uid_base = 1;
	CHECK(config_ok(&cfg));
	cfg.host_uid_base = UINT32_MAX - SANDBOX_ID_RANGE;
	CHECK(config_ok(&cfg));
	cfg.host_uid_base = UINT32_MAX - SANDBOX_ID_RANGE + 1;
	CHECK(config_bad(&cfg, "host id range"));
	cfg.host_uid_base = UINT32_MAX;
	CHECK(config_bad(&cfg, "host id range"));
	/* The config borrowed stack arrays: no release. */
}

static void test_error(void)
{
	struct cr_error err = CR_ERROR_INIT;

	CHECK(!cr_error_isset(&err));
	CHECK(cr_error_set(&err, 0, "cannot open '%s'", "/x") == -1);
	CHECK_STR(err.msg, "cannot open '/x'");
	/* The first, most specific failure wins. */
	CHECK(cr_error_set(&err, 0, "later") == -1);
	CHECK_STR(err.msg, "cannot open '/x'");
	CHECK(cr_error_wrap(&err, "mount %s", "home") == -1);
	CHECK_STR(err.msg, "mount home: cannot open '/x'");
	cr_error_release(&err);
	CHECK(err.msg == NULL && err.errnum == 0);

	CHECK(cr_error_set(&err, 2, "cannot open '%s'", "/y") == -1);
	CHECK(err.errnum == 2);
	CHECK(strncmp(err.msg, "cannot open '/y': ", 18) == 0 && strlen(err.msg) > 18);
	cr_error_release(&err);

	/* Wrapping nothing leaves just the context. */
	CHECK(cr_error_wrap(&err, "context") == -1);
	CHECK_STR(err.msg, "context");
	struct cr_error to = CR_ERROR_INIT;
	cr_error_move(&to, &err);
	CHECK_STR(to.msg, "context");
	CHECK(err.msg == NULL);
	cr_error_release(&to);

	CHECK(cr_error_set(NULL, 0, "x") == -1);
	CHECK(cr_error_wrap(NULL, "x") == -1);
}

int main(void)
{
	test_seconds();
	test_uint();
	test_cpus();
	test_size();
	test_language();
	test_user_name();
	test_env();
	test_config_defaults();
	test_config_check();
	test_error();
	return unit_report("test-config");
}
