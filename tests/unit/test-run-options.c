/* test-run-options.c - `corral run` option parsing and its --json shape.
 *
 * cli_run_parse() is the whole contract between a user's command line and
 * a sandbox config: every option is driven with a good value and the bad
 * ones a user will type, and every refusal must say what was wrong.
 * cli_run_result_json() is what scripts and the integration tests parse,
 * so its key set and types are pinned here. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/buf.h"
#include "unit.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 32

/* Parse "run" followed by the NULL-terminated arguments.  Returns the
 * parser's result; opts and err are the caller's to release. */
static int parse(struct run_options *opts, struct cr_error *err, ...)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	va_list ap;
	const char *a;

	argv[argc++] = "run";
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return cli_run_parse(argc, argv, opts, err);
}

/* Parse, expect success, and leave the result in opts. */
#define PARSE_OK(opts, ...)                                                               \
	do {                                                                              \
		struct cr_error e_ = CR_ERROR_INIT;                                       \
		int r_ = parse((opts), &e_, __VA_ARGS__, (const char *)NULL);             \
		CHECK(r_ == 0);                                                           \
		if (r_ != 0)                                                              \
			fprintf(stderr, "  refused: %s\n", e_.msg ? e_.msg : "(no message)"); \
		cr_error_release(&e_);                                                    \
	} while (0)

/* Parse, expect a refusal whose message contains `needle`. */
static int refused_with(const char *needle, ...)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	va_list ap;
	const char *a;
	struct run_options opts;
	struct cr_error err = CR_ERROR_INIT;
	int r, ok;

	argv[argc++] = "run";
	va_start(ap, needle);
	while ((a = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	r = cli_run_parse(argc, argv, &opts, &err);
	ok = r == -1 && err.msg != NULL && strstr(err.msg, needle) != NULL;
	/* The sentence is printed to a terminal: no control characters. */
	for (const char *p = err.msg; ok && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			ok = 0;
	if (!ok) {
		fprintf(stderr, "  run");
		for (int i = 1; i < argc; i++)
			fprintf(stderr, " '%s'", argv[i]);
		fprintf(stderr, ": wanted a refusal with '%s', got r=%d msg=%s\n", needle, r,
			err.msg ? err.msg : "(none)");
	}
	cr_error_release(&err);
	run_options_release(&opts);
	return ok;
}

#define REFUSED(needle, ...) CHECK(refused_with(needle, __VA_ARGS__, (const char *)NULL))

static int argv_is(char **argv, const char *const *want)
{
	size_t i;
	for (i = 0; want[i]; i++)
		if (argv == NULL || argv[i] == NULL || strcmp(argv[i], want[i]) != 0)
			return 0;
	return argv[i] == NULL;
}

static void test_command(void)
{
	struct run_options o;

	PARSE_OK(&o, "--", "echo", "hi");
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "echo", "hi", NULL }));
	CHECK(o.cfg.language == SANDBOX_LANG_NONE);
	CHECK(o.cfg.code == NULL && o.code_file == NULL);
	CHECK(!o.json && !o.help);
	run_options_release(&o);

	/* Without "--" the first non-option ends the options ('+'): the
	 * command's own flags, even ones corral knows, are the command's. */
	PARSE_OK(&o, "echo", "--json");
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "echo", "--json", NULL }));
	CHECK(!o.json);
	run_options_release(&o);

	PARSE_OK(&o, "ls", "-la", "--timeout", "abc", "--", "x");
	CHECK(argv_is(o.cfg.argv,
		      (const char *const[]){ "ls", "-la", "--timeout", "abc", "--", "x", NULL }));
	CHECK(o.cfg.timeout_ms == SANDBOX_DEFAULT_TIMEOUT_MS);
	run_options_release(&o);

	PARSE_OK(&o, "--json", "--", "echo", "--json");
	CHECK(o.json);
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "echo", "--json", NULL }));
	run_options_release(&o);

	/* A second "--" belongs to the command. */
	PARSE_OK(&o, "--", "--", "x");
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "--", "x", NULL }));
	run_options_release(&o);

	/* Arguments may be empty; only the command name may not. */
	PARSE_OK(&o, "--", "printf", "");
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "printf", "", NULL }));
	run_options_release(&o);

	PARSE_OK(&o, "--", "/bin/sh", "-c", "echo $HOME");
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "/bin/sh", "-c", "echo $HOME", NULL }));
	run_options_release(&o);
}

static void test_defaults(void)
{
	struct run_options o;

	PARSE_OK(&o, "--", "true");
	CHECK(o.cfg.timeout_ms == 30000);
	CHECK(o.cfg.memory_bytes == 512ull << 20);
	CHECK(o.cfg.pids == 256);
	CHECK(o.cfg.cpu_milli == 1000);
	CHECK(o.cfg.output_limit == 10ull << 20);
	CHECK(o.cfg.tmp_size == 256ull << 20);
	CHECK(o.cfg.host_uid_base == 100000);
	CHECK_STR(o.cfg.user ? o.cfg.user : SANDBOX_DEFAULT_USER, "baponi");
	CHECK(o.cfg.thread_dir == NULL);
	CHECK(o.cfg.image == NULL);   /* the host's /usr */
	CHECK(o.cfg.env == NULL);
	CHECK(!o.cfg.allow_nested);
	CHECK(o.cgroup == CGROUP_NONE);
	CHECK(!o.json && !o.help);
	run_options_release(&o);
}

static void test_every_option(void)
{
	struct run_options o;

	PARSE_OK(&o, "--timeout", "2.5", "--memory", "64", "--pids", "10", "--cpus", "0.5",
		 "--output-limit", "1M", "--tmp-size", "64M", "--thread-dir", "/tmp/thread x",
		 "--env", "A=1", "--env", "B=two words", "--user", "agent", "--uid-base", "200000",
		 "--allow-nested", "--cgroup", "v1", "--json", "--", "env");
	CHECK(o.cfg.timeout_ms == 2500);
	CHECK(o.cfg.memory_bytes == 64ull << 20);
	CHECK(o.cfg.pids == 10);
	CHECK(o.cfg.cpu_milli == 500);
	CHECK(o.cfg.output_limit == 1ull << 20);
	CHECK(o.cfg.tmp_size == 64ull << 20);
	CHECK_STR(o.cfg.thread_dir, "/tmp/thread x");
	CHECK(argv_is(o.cfg.env, (const char *const[]){ "A=1", "B=two words", NULL }));
	CHECK_STR(o.cfg.user, "agent");
	CHECK(o.cfg.host_uid_base == 200000);
	CHECK(o.cfg.allow_nested);
	CHECK(o.cgroup == CGROUP_V1);
	CHECK(o.json);
	CHECK(argv_is(o.cfg.argv, (const char *const[]){ "env", NULL }));
	run_options_release(&o);

	/* --opt=value works as well, and the last of a repeated option wins. */
	PARSE_OK(&o, "--timeout=1", "--timeout=3", "--user=a", "--user=b", "--cgroup=v2",
		 "--memory=8", "--thread-dir=/a", "--thread-dir=/b", "true");
	CHECK(o.cfg.timeout_ms == 3000);
	CHECK_STR(o.cfg.user, "b");
	CHECK(o.cgroup == CGROUP_V2);
	CHECK(o.cfg.memory_bytes == 8ull << 20);
	CHECK_STR(o.cfg.thread_dir, "/b");
	run_options_release(&o);

	/* Limits at their edges. */
	PARSE_OK(&o, "--memory", "1048576", "--pids", "4194304", "--pids", "2", "--cpus", "1024",
		 "--timeout", "86400", "--output-limit", "1G", "--uid-base", "1", "true");
	CHECK(o.cfg.memory_bytes == 1ull << 40);
	CHECK(o.cfg.pids == 2);
	CHECK(o.cfg.cpu_milli == 1024000);
	CHECK(o.cfg.timeout_ms == 86400000);
	CHECK(o.cfg.output_limit == 1ull << 30);
	CHECK(o.cfg.host_uid_base == 1);
	run_options_release(&o);

	PARSE_OK(&o, "--image", "/srv/images/python", "--image", "/srv/images/node", "true");
	CHECK_STR(o.cfg.image, "/srv/images/node");
	run_options_release(&o);

	PARSE_OK(&o, "--uid-base", "4294901759", "true");   /* 2^32 - 1 - 65536 */
	CHECK(o.cfg.host_uid_base == 4294901759u);
	run_options_release(&o);

	PARSE_OK(&o, "--help");
	CHECK(o.help);
	run_options_release(&o);
	PARSE_OK(&o, "-h");
	CHECK(o.help);
	run_options_release(&o);
	/* Help wins even over a bad command line that follows it. */
	PARSE_OK(&o, "--help", "--timeout", "abc");
	CHECK(o.help);
	run_options_release(&o);
}

static void test_code(void)
{
	struct run_options o;

	PARSE_OK(&o, "--language", "bash", "--code", "x");
	CHECK(o.cfg.language == SANDBOX_LANG_BASH);
	CHECK_STR(o.cfg.code, "x");
	CHECK(o.cfg.code_len == 1);
	CHECK(o.cfg.argv == NULL);
	run_options_release(&o);

	/* Python is the default language; order does not matter. */
	PARSE_OK(&o, "--code", "print(1)");
	CHECK(o.cfg.language == SANDBOX_LANG_PYTHON);
	CHECK_STR(o.cfg.code, "print(1)");
	CHECK(o.cfg.code_len == 8);
	run_options_release(&o);

	PARSE_OK(&o, "--code", "console.log(1)", "--language", "node");
	CHECK(o.cfg.language == SANDBOX_LANG_NODE);
	run_options_release(&o);

	/* A trailing "--" with nothing after it is not a command. */
	PARSE_OK(&o, "--code", "1", "--");
	CHECK(o.cfg.language == SANDBOX_LANG_PYTHON);
	run_options_release(&o);
}

/* Write `len` bytes to a fresh temporary file; returns its path (static). */
static const char *temp_file(const void *data, size_t len)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/corral-test-code-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror("temp file");
		exit(1);
	}
	close(fd);
	return path;
}

static void test_code_file(void)
{
	struct run_options o;
	static const char src[] = "print('a')\n\0binary\xff\n";
	const char *path = temp_file(src, sizeof(src) - 1);

	PARSE_OK(&o, "--code-file", path);
	CHECK(o.cfg.language == SANDBOX_LANG_PYTHON);
	CHECK(o.cfg.code_len == sizeof(src) - 1);
	CHECK(o.cfg.code && memcmp(o.cfg.code, src, sizeof(src) - 1) == 0);
	CHECK_STR(o.code_file, path);
	run_options_release(&o);

	PARSE_OK(&o, "--language", "bash", "--code-file", path);
	CHECK(o.cfg.language == SANDBOX_LANG_BASH);
	run_options_release(&o);

	REFUSED("give only one of --code and --code-file", "--code", "x", "--code-file", path);
	REFUSED("give only one of --code and --code-file", "--code-file", path, "--code", "x");
	REFUSED("give only one of --code and --code-file", "--code-file", path, "--code-file", path);
	REFUSED("give only one of --code and --code-file", "--code", "x", "--code", "y");
	REFUSED("give either code or a command", "--code-file", path, "echo");
	unlink(path);

	REFUSED("cannot open '/nonexistent/corral/code.py'", "--code-file",
		"/nonexistent/corral/code.py");
	REFUSED("--code-file", "--code-file", "/nonexistent/corral/code.py");

	path = temp_file("", 0);
	REFUSED("the code is empty", "--code-file", path);
	unlink(path);

	/* Exactly the limit is fine, one byte more is refused. */
	char *big = malloc(SANDBOX_MAX_CODE + 1);
	memset(big, '#', SANDBOX_MAX_CODE + 1);
	path = temp_file(big, SANDBOX_MAX_CODE);
	PARSE_OK(&o, "--code-file", path);
	CHECK(o.cfg.code_len == SANDBOX_MAX_CODE);
	run_options_release(&o);
	unlink(path);
	path = temp_file(big, SANDBOX_MAX_CODE + 1);
	REFUSED("larger than", "--code-file", path);
	unlink(path);
	free(big);

	/* A directory opens but cannot be read. */
	REFUSED("--code-file: cannot read '/tmp'", "--code-file", "/tmp");

	/* "-" reads standard input. */
	path = temp_file("echo from stdin\n", 16);
	int saved = dup(0);
	int fd = open(path, O_RDONLY);
	CHECK(saved >= 0 && fd >= 0 && dup2(fd, 0) == 0);
	close(fd);
	PARSE_OK(&o, "--language", "bash", "--code-file", "-");
	CHECK(o.cfg.code_len == 16 && o.cfg.code && memcmp(o.cfg.code, "echo from stdin\n", 16) == 0);
	CHECK_STR(o.code_file, "-");
	run_options_release(&o);
	dup2(saved, 0);
	close(saved);
	unlink(path);
}

static void test_bad_options(void)
{
	REFUSED("unknown option '--bogus'", "--bogus", "--", "true");
	REFUSED("unknown option '--bogus=1'", "--bogus=1", "true");
	REFUSED("unknown option '-x'", "-x", "true");
	REFUSED("unknown option '-v'", "-v", "true");

	/* A missing value names the option that lacks it. */
	REFUSED("--timeout", "--timeout");
	REFUSED("needs a value", "--timeout");
	REFUSED("needs a value", "--code");
	REFUSED("needs a value", "--env");
	REFUSED("--json", "--json=yes", "true");

	REFUSED("--timeout", "--timeout", "0", "true");
	REFUSED("--timeout", "--timeout", "-1", "true");
	REFUSED("--timeout", "--timeout", "abc", "true");
	REFUSED("--timeout", "--timeout", "1e9", "true");
	REFUSED("--timeout", "--timeout", "86401", "true");
	REFUSED("--timeout", "--timeout", "", "true");
	/* "--" is taken as the value, then refused. */
	REFUSED("--timeout", "--timeout", "--", "true");

	REFUSED("--memory", "--memory", "1", "true");
	REFUSED("--memory", "--memory", "7", "true");
	REFUSED("--memory", "--memory", "0", "true");
	REFUSED("--memory", "--memory", "abc", "true");
	REFUSED("--memory", "--memory", "512M", "true");
	REFUSED("--memory", "--memory", "1048577", "true");
	REFUSED("--memory", "--memory", "99999999999999999999", "true");
	REFUSED("--memory", "--memory", "-512", "true");

	REFUSED("--pids", "--pids", "1", "true");
	REFUSED("--pids", "--pids", "4194305", "true");
	REFUSED("--pids", "--pids", "lots", "true");

	REFUSED("--cpus", "--cpus", "0", "true");
	REFUSED("--cpus", "--cpus", "abc", "true");
	REFUSED("--cpus", "--cpus", "-1", "true");
	REFUSED("--cpus", "--cpus", "1025", "true");

	REFUSED("--output-limit", "--output-limit", "2G", "true");
	REFUSED("--output-limit", "--output-limit", "1025M", "true");
	REFUSED("--output-limit", "--output-limit", "lots", "true");
	REFUSED("--tmp-size", "--tmp-size", "1T", "true");
	REFUSED("/tmp size", "--tmp-size", "1K", "true");

	REFUSED("--thread-dir", "--thread-dir", "", "true");
	REFUSED("--image: 'images/py' is not an absolute path", "--image", "images/py", "true");
	REFUSED("--image", "--image", "", "true");
	REFUSED("needs a value", "--image");
	REFUSED("--uid-base", "--uid-base", "0", "true");
	REFUSED("--uid-base", "--uid-base", "4294901760", "true");
	REFUSED("--cgroup", "--cgroup", "v3", "true");
	REFUSED("--cgroup", "--cgroup", "V2", "true");

	REFUSED("--language", "--language", "cobol", "--code", "x");
	REFUSED("unknown language 'cobol'", "--language", "cobol", "--code", "x");
	REFUSED("--language needs --code", "--language", "bash");
	REFUSED("--language needs --code", "--language", "bash", "--", "echo", "hi");
	REFUSED("give either code or a command", "--code", "x", "echo", "hi");
	REFUSED("give either code or a command", "--code", "x", "--", "echo");
	REFUSED("the code is empty", "--code", "");
	REFUSED("the code is empty", "--language", "bash", "--code", "");

	REFUSED("--env", "--env", "PATH=x", "true");
	REFUSED("reserved", "--env", "PATH=x", "true");
	REFUSED("reserved", "--env", "LD_PRELOAD=/x.so", "true");
	REFUSED("reserved", "--env", "BASH_FUNC_x=() { :; }", "true");
	REFUSED("--env", "--env", "NOEQUALS", "true");
	REFUSED("--env", "--env", "1X=a", "true");
	REFUSED("--env", "--env", "A-B=a", "true");

	REFUSED("--user", "--user", "Root", "true");
	REFUSED("--user", "--user", "root", "true");
	REFUSED("--user", "--user", "", "true");
	REFUSED("--user", "--user", "../x", "true");

	REFUSED("nothing to run", "--json");
	REFUSED("nothing to run", "--");
	REFUSED("nothing to run", "--timeout", "5");
	REFUSED("the command name is empty", "--", "");
	REFUSED("the command name is empty", "", "x");
}

/* Parsing many times in one process: getopt state must not leak across. */
static void test_repeat(void)
{
	struct run_options o;

	for (int i = 0; i < 3; i++) {
		REFUSED("--timeout", "--timeout", "abc", "true");
		PARSE_OK(&o, "--json", "--", "echo", "hi");
		CHECK(o.json && argv_is(o.cfg.argv, (const char *const[]){ "echo", "hi", NULL }));
		run_options_release(&o);
		REFUSED("unknown option '-x'", "-x");
		PARSE_OK(&o, "echo");
		CHECK(!o.json && argv_is(o.cfg.argv, (const char *const[]){ "echo", NULL }));
		run_options_release(&o);
	}
}

/* --- cli_run_result_json ------------------------------------------------ */

static void result_init(struct sandbox_result *r)
{
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
}

static void result_release(struct sandbox_result *r)
{
	buf_release(&r->output[0]);
	buf_release(&r->output[1]);
}

/* The object has exactly the documented keys with the documented types. */
static int json_shape_ok(json_t *o)
{
	static const struct {
		const char *key;
		int types;   /* bit set of json_type values */
	} want[] = {
		{ "status", 1 << JSON_STRING },
		{ "exit_code", 1 << JSON_INTEGER | 1 << JSON_NULL },
		{ "signal", 1 << JSON_INTEGER | 1 << JSON_NULL },
		{ "stdout", 1 << JSON_STRING },
		{ "stderr", 1 << JSON_STRING },
		{ "truncated", 1 << JSON_TRUE | 1 << JSON_FALSE },
		{ "duration_ms", 1 << JSON_INTEGER },
		{ "cpu_ms", 1 << JSON_INTEGER },
		{ "peak_memory_bytes", 1 << JSON_INTEGER },
		{ "error", 1 << JSON_STRING | 1 << JSON_NULL },
	};
	int ok = json_is_object(o) && json_object_size(o) == sizeof(want) / sizeof(want[0]);

	for (size_t i = 0; o && i < sizeof(want) / sizeof(want[0]); i++) {
		json_t *v = json_object_get(o, want[i].key);
		if (v == NULL || !(want[i].types & (1 << json_typeof(v)))) {
			fprintf(stderr, "  key '%s' %s\n", want[i].key,
				v ? "has the wrong type" : "is missing");
			ok = 0;
		}
	}
	if (o && !ok) {
		char *s = json_dumps(o, JSON_COMPACT);
		fprintf(stderr, "  object: %s\n", s ? s : "(cannot dump)");
		free(s);
	}
	return ok;
}

static void test_json_success(void)
{
	struct sandbox_result r;
	json_t *o;

	result_init(&r);
	r.status = SANDBOX_SUCCESS;
	r.exit_code = 0;
	buf_adds(&r.output[SANDBOX_STDOUT], "hi\n");
	r.duration_ms = 12;
	r.cpu_ms = 3;
	r.peak_memory = 1 << 20;
	o = cli_run_result_json(&r);
	CHECK(json_shape_ok(o));
	CHECK_STR(json_string_value(json_object_get(o, "status")), "success");
	CHECK(json_integer_value(json_object_get(o, "exit_code")) == 0);
	CHECK(json_is_integer(json_object_get(o, "exit_code")));
	CHECK(json_is_null(json_object_get(o, "signal")));
	CHECK_STR(json_string_value(json_object_get(o, "stdout")), "hi\n");
	CHECK_STR(json_string_value(json_object_get(o, "stderr")), "");
	CHECK(json_is_false(json_object_get(o, "truncated")));
	CHECK(json_integer_value(json_object_get(o, "duration_ms")) == 12);
	CHECK(json_integer_value(json_object_get(o, "cpu_ms")) == 3);
	CHECK(json_integer_value(json_object_get(o, "peak_memory_bytes")) == 1 << 20);
	CHECK(json_is_null(json_object_get(o, "error")));
	json_decref(o);
	result_release(&r);
}

static void test_json_failures(void)
{
	struct sandbox_result r;
	json_t *o;

	/* Killed by a signal: no exit code. */
	result_init(&r);
	r.status = SANDBOX_FAILED;
	r.signal = 9;
	o = cli_run_result_json(&r);
	CHECK(json_shape_ok(o));
	CHECK_STR(json_string_value(json_object_get(o, "status")), "failed");
	CHECK(json_is_null(json_object_get(o, "exit_code")));
	CHECK(json_integer_value(json_object_get(o, "signal")) == 9);
	json_decref(o);

	/* Non-zero exit, a setup error, truncated stderr only. */
	r.signal = 0;
	r.exit_code = 3;
	r.truncated[SANDBOX_STDERR] = true;
	r.error = "cannot execute 'nope': No such file or directory";
	o = cli_run_result_json(&r);
	CHECK(json_shape_ok(o));
	CHECK(json_integer_value(json_object_get(o, "exit_code")) == 3);
	CHECK(json_is_null(json_object_get(o, "signal")));
	CHECK(json_is_true(json_object_get(o, "truncated")));
	CHECK_STR(json_string_value(json_object_get(o, "error")),
		  "cannot execute 'nope': No such file or directory");
	json_decref(o);

	r.truncated[SANDBOX_STDERR] = false;
	r.truncated[SANDBOX_STDOUT] = true;
	o = cli_run_result_json(&r);
	CHECK(json_is_true(json_object_get(o, "truncated")));
	json_decref(o);

	/* Every status has its name. */
	static const struct {
		enum sandbox_status st;
		const char *name;
	} names[] = {
		{ SANDBOX_RUNNING, "running" },   { SANDBOX_SUCCESS, "success" },
		{ SANDBOX_FAILED, "failed" },     { SANDBOX_TIMEOUT, "timeout" },
		{ SANDBOX_OOM, "oom" },           { SANDBOX_CANCELLED, "cancelled" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		r.status = names[i].st;
		r.exit_code = -1;
		r.signal = 9;
		r.error = NULL;
		o = cli_run_result_json(&r);
		CHECK(json_shape_ok(o));
		CHECK_STR(json_string_value(json_object_get(o, "status")), names[i].name);
		json_decref(o);
	}
	result_release(&r);
}

static void test_json_sanitised(void)
{
	struct sandbox_result r;
	json_t *o;
	static const char raw[] = { 'a', (char)0xff, 0, 'b', (char)0xc3, (char)0xa9, (char)0xe2 };

	result_init(&r);
	r.status = SANDBOX_SUCCESS;
	r.exit_code = 0;
	buf_add(&r.output[SANDBOX_STDOUT], raw, sizeof(raw));
	buf_add(&r.output[SANDBOX_STDERR], "\xed\xa0\x80", 3);
	o = cli_run_result_json(&r);
	CHECK(json_shape_ok(o));
	/* Invalid bytes and NUL become U+FFFD; é stays. */
	json_t *out = json_object_get(o, "stdout");
	CHECK(json_string_length(out) == 1 + 3 + 3 + 1 + 2 + 3);
	CHECK(memcmp(json_string_value(out),
		     "a\xef\xbf\xbd\xef\xbf\xbd" "b\xc3\xa9\xef\xbf\xbd", 13) == 0);
	CHECK_STR(json_string_value(json_object_get(o, "stderr")),
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");

	/* And the whole object dumps and reads back as the same thing. */
	char *s = json_dumps(o, JSON_COMPACT);
	CHECK(s != NULL);
	json_t *back = s ? json_loads(s, 0, NULL) : NULL;
	CHECK(back && json_equal(back, o));
	json_decref(back);
	free(s);
	json_decref(o);
	result_release(&r);

	/* The error sentence can quote what the user sent (a command name, a
	 * path), which need not be UTF-8: the key must stay, as a string. */
	result_init(&r);
	r.status = SANDBOX_FAILED;
	r.error = "cannot execute '\xff\xfe': No such file or directory";
	o = cli_run_result_json(&r);
	CHECK(json_shape_ok(o));
	CHECK(json_is_string(json_object_get(o, "error")));
	json_decref(o);
	result_release(&r);
}

int main(void)
{
	test_command();
	test_defaults();
	test_every_option();
	test_code();
	test_code_file();
	test_bad_options();
	test_repeat();
	test_json_success();
	test_json_failures();
	test_json_sanitised();
	return unit_report("test-run-options");
}
