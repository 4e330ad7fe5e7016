/* cli-run.c - `corral run`: one sandbox on this machine, no daemon. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

char **cli_process_argv;

static const char run_usage[] =
	"usage: corral run [options] -- CMD [ARGS...]\n"
	"       corral run [options] [--language python|node|bash] --code SOURCE\n"
	"       corral run [options] [--language python|node|bash] --code-file PATH|-\n"
	"\n"
	"Run one program in a fresh sandbox and report what happened.\n"
	"\n"
	"  --timeout SECONDS     wall-clock limit (default 30)\n"
	"  --memory MIB          memory limit, swap off (default 512)\n"
	"  --pids N              process limit (default 256)\n"
	"  --cpus FRACTION       CPU quota, e.g. 0.5 or 2 (default 1)\n"
	"  --output-limit BYTES  per stream, K/M/G suffixes (default 10M)\n"
	"  --tmp-size BYTES      size of the private /tmp (default 256M)\n"
	"  --thread-dir DIR      persistent home, created if missing\n"
	"                        (default: a fresh tmpfs home)\n"
	"  --env NAME=VALUE      add to the environment (repeatable)\n"
	"  --user NAME           sandbox user, uid 1000 (default baponi)\n"
	"  --image DIR           image root holding usr/ (default: the host's /usr)\n"
	"  --uid-base UID        first host uid of the sandbox range (default 100000)\n"
	"  --allow-nested        let the program create its own namespaces\n"
	"  --cgroup v1|v2        force a cgroup version (default: detect)\n"
	"  --json                print one JSON object instead of passing output through\n"
	"  -h, --help            show this help\n";

enum {
	OPT_TIMEOUT = 256, OPT_MEMORY, OPT_PIDS, OPT_CPUS, OPT_OUTPUT_LIMIT, OPT_TMP_SIZE,
	OPT_THREAD_DIR, OPT_ENV, OPT_USER, OPT_JSON, OPT_LANGUAGE, OPT_CODE, OPT_CODE_FILE,
	OPT_UID_BASE, OPT_ALLOW_NESTED, OPT_CGROUP, OPT_IMAGE,
};

static const struct option run_longopts[] = {
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "output-limit", required_argument, NULL, OPT_OUTPUT_LIMIT },
	{ "tmp-size", required_argument, NULL, OPT_TMP_SIZE },
	{ "thread-dir", required_argument, NULL, OPT_THREAD_DIR },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "user", required_argument, NULL, OPT_USER },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "language", required_argument, NULL, OPT_LANGUAGE },
	{ "code", required_argument, NULL, OPT_CODE },
	{ "code-file", required_argument, NULL, OPT_CODE_FILE },
	{ "uid-base", required_argument, NULL, OPT_UID_BASE },
	{ "allow-nested", no_argument, NULL, OPT_ALLOW_NESTED },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int cli_option_error(int c, char **argv, struct cr_error *err)
{
	if (c == ':')
		return cr_error_set(err, 0, "option '%s' needs a value", argv[optind - 1]);
	if (optopt > 0 && optopt < 256)
		return cr_error_set(err, 0, "unknown option '-%c'", optopt);
	return cr_error_set(err, 0, "unknown option '%s'", argv[optind - 1]);
}

static void strv_push(char ***v, const char *s)
{
	size_t n = 0;
	while (*v && (*v)[n])
		n++;
	*v = xrealloc(*v, sizeof(char *) * (n + 2));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

static int read_code_file(const char *path, struct sandbox_config *cfg, struct cr_error *err)
{
	struct buf b = BUF_INIT;
	cleanup_close int fd = -1;
	int in = 0;
	char chunk[65536];

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return cr_error_set(err, errno, "--code-file: cannot open '%s'", path);
		in = fd;
	}
	for (;;) {
		ssize_t r = read_noeintr(in, chunk, sizeof(chunk));
		if (r < 0) {
			buf_release(&b);
			return cr_error_set(err, errno, "--code-file: cannot read '%s'", path);
		}
		if (r == 0)
			break;
		buf_add(&b, chunk, (size_t)r);
		if (b.len > SANDBOX_MAX_CODE) {
			buf_release(&b);
			return cr_error_set(err, 0, "--code-file: '%s' is larger than %u bytes", path,
					    SANDBOX_MAX_CODE);
		}
	}
	free(cfg->code);
	cfg->code = buf_detach(&b, &cfg->code_len);
	return 0;
}

int cli_run_parse(int argc, char **argv, struct run_options *opts, struct cr_error *err)
{
	struct sandbox_config *cfg = &opts->cfg;
	bool have_code = false, have_lang = false;
	uint64_t v;
	int c;

	memset(opts, 0, sizeof(*opts));
	sandbox_config_init(cfg);
	optind = 0;
	opterr = 0;
	/* '+': stop at the first non-option, so the command's own flags are
	 * left alone even without "--". */
	while ((c = getopt_long(argc, argv, "+:h", run_longopts, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case OPT_TIMEOUT:
			if (sandbox_parse_seconds(a, "--timeout", &cfg->timeout_ms, err) < 0)
				return -1;
			break;
		case OPT_MEMORY:
			if (sandbox_parse_uint(a, "--memory (MiB)", SANDBOX_MIN_MEMORY >> 20, 1u << 20, &v, err) < 0)
				return -1;
			cfg->memory_bytes = v << 20;
			break;
		case OPT_PIDS:
			if (sandbox_parse_uint(a, "--pids", 2, 4194304, &v, err) < 0)
				return -1;
			cfg->pids = (uint32_t)v;
			break;
		case OPT_CPUS:
			if (sandbox_parse_cpus(a, "--cpus", &cfg->cpu_milli, err) < 0)
				return -1;
			break;
		case OPT_OUTPUT_LIMIT:
			if (sandbox_parse_size(a, "--output-limit", &cfg->output_limit, err) < 0)
				return -1;
			if (cfg->output_limit > (1ull << 30))
				return cr_error_set(err, 0, "--output-limit: %s is more than 1G", a);
			break;
		case OPT_TMP_SIZE:
			if (sandbox_parse_size(a, "--tmp-size", &cfg->tmp_size, err) < 0)
				return -1;
			break;
		case OPT_THREAD_DIR:
			if (*a == '\0')
				return cr_error_set(err, 0, "--thread-dir: the path is empty");
			free(cfg->thread_dir);
			cfg->thread_dir = xstrdup(a);
			break;
		case OPT_ENV:
			if (sandbox_check_env_assignment(a, err) < 0)
				return cr_error_wrap(err, "--env");
			strv_push(&cfg->env, a);
			break;
		case OPT_USER:
			if (sandbox_check_user_name(a, err) < 0)
				return cr_error_wrap(err, "--user");
			free(cfg->user);
			cfg->user = xstrdup(a);
			break;
		case OPT_JSON:
			opts->json = true;
			break;
		case OPT_LANGUAGE:
			if (sandbox_parse_language(a, &cfg->language, err) < 0)
				return cr_error_wrap(err, "--language");
			have_lang = true;
			break;
		case OPT_CODE:
			if (have_code)
				return cr_error_set(err, 0, "give only one of --code and --code-file");
			cfg->code = xstrdup(a);
			cfg->code_len = strlen(a);
			have_code = true;
			break;
		case OPT_CODE_FILE:
			if (have_code)
				return cr_error_set(err, 0, "give only one of --code and --code-file");
			opts->code_file = xstrdup(a);
			have_code = true;
			break;
		case OPT_UID_BASE:
			if (sandbox_parse_uint(a, "--uid-base", 1, UINT32_MAX - SANDBOX_ID_RANGE, &v, err) < 0)
				return -1;
			cfg->host_uid_base = (uid_t)v;
			break;
		case OPT_IMAGE:
			if (a[0] != '/')
				return cr_error_set(err, 0, "--image: '%s' is not an absolute path", a);
			free(cfg->image);
			cfg->image = xstrdup(a);
			break;
		case OPT_ALLOW_NESTED:
			cfg->allow_nested = true;
			break;
		case OPT_CGROUP:
			if (strcmp(a, "v1") == 0)
				opts->cgroup = CGROUP_V1;
			else if (strcmp(a, "v2") == 0)
				opts->cgroup = CGROUP_V2;
			else
				return cr_error_set(err, 0, "--cgroup: '%s' is not v1 or v2", a);
			break;
		case 'h':
			opts->help = true;
			return 0;
		default:
			return cli_option_error(c, argv, err);
		}
	}

	if (have_code) {
		if (optind < argc)
			return cr_error_set(err, 0, "give either code or a command, not both (found '%s')",
					    argv[optind]);
		if (!have_lang)
			cfg->language = SANDBOX_LANG_PYTHON;
		if (opts->code_file && read_code_file(opts->code_file, cfg, err) < 0)
			return -1;
		if (cfg->code_len == 0)
			return cr_error_set(err, 0, "the code is empty");
	} else {
		if (have_lang)
			return cr_error_set(err, 0, "--language needs --code or --code-file");
		if (optind >= argc)
			return cr_error_set(err, 0, "nothing to run: give a command after '--', or --code");
		for (int i = optind; i < argc; i++)
			strv_push(&cfg->argv, argv[i]);
		if (cfg->argv[0][0] == '\0')
			return cr_error_set(err, 0, "the command name is empty");
	}
	return sandbox_config_check(cfg, err);
}

void run_options_release(struct run_options *opts)
{
	sandbox_config_release(&opts->cfg);
	free(opts->code_file);
	memset(opts, 0, sizeof(*opts));
}

json_t *cli_json_text(const char *data, size_t len)
{
	size_t n;
	char *s = utf8_sanitize(data ? data : "", data ? len : 0, &n);
	json_t *j = json_stringn(s, n);
	free(s);
	return j;
}

static json_t *json_bytes(const struct buf *b)
{
	return cli_json_text(b->data ? b->data : "", b->len);
}

json_t *cli_run_result_json(const struct sandbox_result *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "status", json_string(sandbox_status_name(res->status)));
	json_object_set_new(o, "exit_code", res->exit_code >= 0 ? json_integer(res->exit_code) : json_null());
	json_object_set_new(o, "signal", res->signal ? json_integer(res->signal) : json_null());
	json_object_set_new(o, "stdout", json_bytes(&res->output[SANDBOX_STDOUT]));
	json_object_set_new(o, "stderr", json_bytes(&res->output[SANDBOX_STDERR]));
	json_object_set_new(o, "truncated",
			    json_boolean(res->truncated[SANDBOX_STDOUT] || res->truncated[SANDBOX_STDERR]));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)res->duration_ms));
	json_object_set_new(o, "cpu_ms", json_integer((json_int_t)res->cpu_ms));
	json_object_set_new(o, "peak_memory_bytes", json_integer((json_int_t)res->peak_memory));
	json_object_set_new(o, "error", res->error ? cli_json_text(res->error, strlen(res->error)) : json_null());
	return o;
}

struct run_state {
	bool json;
	uint64_t limit;
	uint64_t written[2];
};

/* Plain mode: pass output through as it arrives, up to the limit. */
static void on_output(struct sandbox_exec *ex, enum sandbox_stream s, const char *data, size_t len,
		      void *userdata)
{
	struct run_state *st = userdata;
	size_t room;

	(void)ex;
	if (st->json || st->written[s] >= st->limit)
		return;
	room = (size_t)(st->limit - st->written[s]);
	if (len > room)
		len = room;
	st->written[s] += len;
	(void)write_all(s == SANDBOX_STDOUT ? 1 : 2, data, len);
}

int cmd_run(int argc, char **argv)
{
	struct run_options opts;
	struct cr_error err = CR_ERROR_INIT;
	struct sandbox_runtime_options ropts = { 0 };
	struct sandbox_runtime *rt = NULL;
	struct sandbox_exec *ex = NULL;
	struct run_state st = { 0 };
	struct sandbox_callbacks cb = { .on_output = on_output };
	const struct sandbox_result *res;
	sigset_t mask;
	int sfd = -1, code;

	if (cli_run_parse(argc, argv, &opts, &err) < 0) {
		fprintf(stderr, "corral run: %s\n(see 'corral run --help')\n", err.msg);
		cr_error_release(&err);
		run_options_release(&opts);
		return EXIT_USAGE;
	}
	if (opts.help) {
		fputs(run_usage, stdout);
		run_options_release(&opts);
		return 0;
	}
	st.json = opts.json;
	st.limit = opts.cfg.output_limit;

	/* Ctrl-C or a TERM cancels the sandbox instead of orphaning it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);

	ropts.cgroup_version = opts.cgroup;
	ropts.process_argv = cli_process_argv;
	rt = sandbox_runtime_new(&ropts, &err);
	if (rt == NULL)
		goto fail;
	ex = sandbox_start(rt, &opts.cfg, &cb, &st, &err);
	if (ex == NULL)
		goto fail;
	while (!sandbox_exec_done(ex)) {
		struct pollfd p[2] = { { sandbox_runtime_fd(rt), POLLIN, 0 }, { sfd, POLLIN, 0 } };
		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
			cr_error_set(&err, errno, "poll");
			goto fail;
		}
		if (sfd >= 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) > 0)
				sandbox_exec_cancel(ex);
		}
		if (sandbox_runtime_dispatch(rt, 0, &err) < 0)
			goto fail;
	}
	res = sandbox_exec_result(ex);
	if (opts.json) {
		json_t *o = cli_run_result_json(res);
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		for (int s = 0; s < 2; s++)
			if (res->truncated[s])
				fprintf(stderr, "corral: %s truncated at %llu bytes\n",
					s == 0 ? "stdout" : "stderr", (unsigned long long)st.limit);
		if (res->error)
			fprintf(stderr, "corral: %s\n", res->error);
	}
	switch (res->status) {
	case SANDBOX_SUCCESS:
		code = 0;
		break;
	case SANDBOX_TIMEOUT:
		code = EXIT_TIMEOUT;
		break;
	default:
		code = res->exit_code >= 0 ? res->exit_code : EXIT_CORRAL;
		break;
	}
	sandbox_exec_free(ex);
	sandbox_runtime_free(rt);
	run_options_release(&opts);
	if (sfd >= 0)
		close(sfd);
	return code;

fail:
	fprintf(stderr, "corral run: %s\n", err.msg);
	cr_error_release(&err);
	sandbox_exec_free(ex);
	sandbox_runtime_free(rt);
	run_options_release(&opts);
	if (sfd >= 0)
		close(sfd);
	return EXIT_CORRAL;
}
