/* cli-exec.c - `corral exec`: run code on a corral server over its HTTP API.
 *
 * The client side of POST /v1/sandbox/execute (inline delivery), with
 * libcurl and jansson.  It prints the execution's stdout on stdout and its
 * stderr on stderr and exits as the sandboxed program did, so that it can
 * stand in for running the code locally in scripts:
 *
 *   the program's exit code      the run ended (status success or failed)
 *   124                          status timeout (timeout(1)'s number)
 *   125                          anything else: the server refused the
 *                                request ("corral exec: <code>: <message>"),
 *                                could not be reached, or the run ended
 *                                without an exit code (oom, blocked,
 *                                cancelled, a platform error)
 *   2                            bad options, or no API key
 *
 * NEEDSWORK: inline delivery returns both streams at the end, so stdout is
 * written before stderr and nothing shows until the run ends.  Once the
 * server streams (Accept: application/x-ndjson), print the chunks as they
 * arrive instead.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXEC_DEFAULT_URL "http://127.0.0.1:8080"
/* The server's default when the request names no timeout. */
#define EXEC_DEFAULT_TIMEOUT 30.0
/* How long to wait for the reply beyond the execution's own timeout:
 * queueing, sandbox start-up and the transfer. */
#define EXEC_REPLY_MARGIN 30
#define EXEC_CONNECT_TIMEOUT 10
/* Refuse to read more code than this from stdin: the API's limit is 1 MiB
 * and the server says so itself; this only bounds the client's memory. */
#define EXEC_MAX_INPUT (16u << 20)
/* And do not hold more reply than this in memory. */
#define EXEC_MAX_REPLY ((size_t)1 << 30)

static const char exec_usage[] =
	"usage: corral exec [options] CODE\n"
	"       corral exec [options] -          (read the code from stdin)\n"
	"\n"
	"Run code on a corral server and pass its output through: the program's\n"
	"stdout to stdout, its stderr to stderr, its exit code as ours (124 when\n"
	"it timed out, 125 when the server refused or could not run it).\n"
	"\n"
	"  --url URL          server (default $CORRAL_BASE_URL, else " EXEC_DEFAULT_URL ")\n"
	"  --key KEY          API key (default $CORRAL_API_KEY)\n"
	"  --language L       python (default), node or bash\n"
	"  --thread ID        run in thread ID: its home persists between runs\n"
	"  --timeout SECONDS  wall-clock limit (default: the server's, 30)\n"
	"  --env NAME=VALUE   add to the program's environment (repeatable)\n"
	"  --json             print the server's reply as JSON instead\n"
	"  -h, --help         show this help\n";

struct exec_options {
	const char *url;             /* base URL, no trailing slash (owned: url_buf) */
	const char *key;
	const char *language;        /* NULL: the server's default */
	const char *thread;
	double timeout;              /* < 0: not given */
	json_t *env;                 /* object, NULL when no --env */
	bool json;
	bool help;
	char *code;
	size_t code_len;
	char *url_buf;
};

static void exec_options_release(struct exec_options *o)
{
	json_decref(o->env);
	free(o->code);
	free(o->url_buf);
	memset(o, 0, sizeof(*o));
}

static int read_stdin(struct exec_options *o, struct cr_error *err)
{
	struct buf b = BUF_INIT;
	char chunk[65536];

	for (;;) {
		ssize_t r = read_noeintr(0, chunk, sizeof(chunk));
		if (r < 0) {
			buf_release(&b);
			return cr_error_set(err, errno, "cannot read the code from stdin");
		}
		if (r == 0)
			break;
		buf_add(&b, chunk, (size_t)r);
		if (b.len > EXEC_MAX_INPUT) {
			buf_release(&b);
			return cr_error_set(err, 0, "the code on stdin is larger than %u bytes",
					    EXEC_MAX_INPUT);
		}
	}
	o->code = buf_detach(&b, &o->code_len);
	return 0;
}

static bool utf8_valid(const char *s)
{
	size_t len = strlen(s), n;

	for (size_t i = 0; i < len; i += n)
		if ((n = utf8_seq_len((const unsigned char *)s + i, len - i)) == 0)
			return false;
	return true;
}

/* Seconds: a positive decimal number ("30", "0.5"). */
static int parse_timeout(const char *s, double *out, struct cr_error *err)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v <= 0 || v > 1e9 ||
	    strspn(s, "0123456789.") != strlen(s))
		return cr_error_set(err, 0, "--timeout: '%s' is not a positive number of seconds",
				    s);
	*out = v;
	return 0;
}

static int parse_env(const char *a, struct exec_options *o, struct cr_error *err)
{
	const char *eq = strchr(a, '=');
	cleanup_free char *name = NULL;
	json_t *value;

	if (eq == NULL || eq == a)
		return cr_error_set(err, 0, "--env: '%s' is not NAME=VALUE", a);
	/* The server judges the name (it refuses PATH, LD_PRELOAD...); only
	 * what JSON cannot carry is refused here. */
	name = xstrndup(a, (size_t)(eq - a));
	value = json_string(eq + 1);
	if (value == NULL || !utf8_valid(name)) {
		json_decref(value);
		return cr_error_set(err, 0, "--env: '%s' is not valid UTF-8", a);
	}
	if (o->env == NULL)
		o->env = json_object();
	json_object_set_new(o->env, name, value);
	return 0;
}

/* Parse argv (argv[0] is "exec") and the environment defaults.  Returns 0,
 * or -1 with a sentence for a usage error. */
static int exec_parse(int argc, char **argv, struct exec_options *o, struct cr_error *err)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "language", required_argument, NULL, 'l' },
		{ "thread", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "env", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *code;
	size_t n;
	int c;

	memset(o, 0, sizeof(*o));
	o->timeout = -1;
	optind = 0;
	opterr = 0;
	/* '+': the code is the one operand and may itself start with '-'
	 * only after "--". */
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "python") != 0 && strcmp(optarg, "node") != 0 &&
			    strcmp(optarg, "bash") != 0)
				return cr_error_set(err, 0,
						    "--language: '%s' is not python, node or bash",
						    optarg);
			o->language = optarg;
			break;
		case 't':
			if (*optarg == '\0')
				return cr_error_set(err, 0, "--thread: the id is empty");
			o->thread = optarg;
			break;
		case 'T':
			if (parse_timeout(optarg, &o->timeout, err) < 0)
				return -1;
			break;
		case 'e':
			if (parse_env(optarg, o, err) < 0)
				return -1;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			o->help = true;
			return 0;
		default:
			return cli_option_error(c, argv, err);
		}
	}
	if (optind >= argc)
		return cr_error_set(err, 0,
				    "no code: give it as an argument, or '-' to read stdin");
	if (argc - optind > 1)
		return cr_error_set(err, 0, "give the code as one argument (found '%s' after it)",
				    argv[optind + 1]);
	code = argv[optind];

	if (url == NULL)
		url = getenv("CORRAL_BASE_URL");
	if (url == NULL || *url == '\0')
		url = EXEC_DEFAULT_URL;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return cr_error_set(err, 0, "--url: '%s' is not an http:// or https:// URL", url);
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	o->url_buf = xstrndup(url, n);
	o->url = o->url_buf;

	if (o->key == NULL)
		o->key = getenv("CORRAL_API_KEY");
	if (o->key == NULL || *o->key == '\0')
		return cr_error_set(err, 0, "no API key: give --key or set CORRAL_API_KEY");
	if (strpbrk(o->key, "\r\n") != NULL)
		return cr_error_set(err, 0, "--key: the key holds a line break");

	if (strcmp(code, "-") == 0)
		return read_stdin(o, err);
	o->code = xstrdup(code);
	o->code_len = strlen(code);
	return 0;
}

/* The request body (new reference), or NULL when the code is not UTF-8. */
static json_t *exec_request_json(const struct exec_options *o)
{
	json_t *body, *code = json_stringn(o->code, o->code_len);

	if (code == NULL)
		return NULL;
	body = json_object();
	json_object_set_new(body, "code", code);
	if (o->language)
		json_object_set_new(body, "language", json_string(o->language));
	if (o->timeout > 0)
		json_object_set_new(body, "timeout", o->timeout == floor(o->timeout)
							     ? json_integer((json_int_t)o->timeout)
							     : json_real(o->timeout));
	if (o->thread)
		json_object_set_new(body, "thread_id", json_string(o->thread));
	if (o->env)
		json_object_set(body, "env_vars", o->env);
	return body;
}

struct reply {
	struct buf body;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct reply *r = userdata;
	size_t len = size * nmemb;

	if (r->body.len + len > EXEC_MAX_REPLY) {
		r->too_big = true;
		return 0; /* makes curl fail the transfer */
	}
	buf_add(&r->body, data, len);
	return len;
}

/* POST the body; fills *status and the reply.  Returns 0, or -1 with a
 * sentence when there was no HTTP reply. */
static int exec_post(const struct exec_options *o, const char *body, long *status,
		     struct reply *r, struct cr_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	cleanup_free char *endpoint = xasprintf("%s/v1/sandbox/execute", o->url);
	cleanup_free char *auth = xasprintf("Authorization: Bearer %s", o->key);
	double limit = (o->timeout > 0 ? o->timeout : EXEC_DEFAULT_TIMEOUT) + EXEC_REPLY_MARGIN;
	CURLcode rc;
	CURL *h;

	h = curl_easy_init();
	if (h == NULL)
		return cr_error_set(err, 0, "cannot start libcurl");
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* Send the body at once: no 100-continue round trip for large code. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, endpoint);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "corral-exec");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)EXEC_CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)ceil(limit));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rc == CURLE_OK)
		return 0;
	if (r->too_big)
		return cr_error_set(err, 0, "the reply from %s is larger than %zu bytes", o->url,
				    EXEC_MAX_REPLY);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return cr_error_set(err, 0, "no reply from %s within %.0f s", o->url, ceil(limit));
	return cr_error_set(err, 0, "cannot reach %s: %s", o->url,
			    errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* A string field of `o`, or NULL; *len gets its length (it may hold NUL). */
static const char *str_field(json_t *o, const char *name, size_t *len)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_string(v))
		return NULL;
	if (len)
		*len = json_string_length(v);
	return json_string_value(v);
}

/* Print a non-2xx reply: the API's flat error, or what came instead. */
static int report_refusal(const struct exec_options *o, long status, json_t *j,
			  const struct buf *raw)
{
	const char *code = str_field(j, "error", NULL), *msg = str_field(j, "message", NULL);

	if (code && msg)
		fprintf(stderr, "corral exec: %s: %s\n", code, msg);
	else if (code)
		fprintf(stderr, "corral exec: %s: HTTP %ld\n", code, status);
	else {
		size_t n, shown = raw->len < 200 ? raw->len : 200;
		char *s = utf8_sanitize(raw->data ? raw->data : "", shown, &n);
		fprintf(stderr, "corral exec: HTTP %ld from %s%s%s\n", status, o->url,
			n ? ": " : "", s);
		free(s);
	}
	return EXIT_CORRAL;
}

/* Print a 200 reply's output and return the exit code it stands for. */
static int report_result(const struct exec_options *o, json_t *j, const struct buf *raw)
{
	const char *status = str_field(j, "status", NULL), *text, *error;
	json_t *exit_code = json_object_get(j, "exit_code");
	size_t len;

	if (status == NULL) {
		fprintf(stderr, "corral exec: the reply from %s has no 'status'\n", o->url);
		return EXIT_CORRAL;
	}
	if (o->json) {
		(void)write_all(1, raw->data, raw->len);
		if (raw->len == 0 || raw->data[raw->len - 1] != '\n')
			(void)write_all(1, "\n", 1);
	} else {
		if ((text = str_field(j, "stdout", &len)) != NULL)
			(void)write_all(1, text, len);
		if ((text = str_field(j, "stderr", &len)) != NULL)
			(void)write_all(2, text, len);
		error = str_field(j, "error", NULL);
		if (error && *error)
			fprintf(stderr, "corral exec: %s\n", error);
		else if (strcmp(status, "timeout") == 0)
			fprintf(stderr, "corral exec: timed out\n");
	}
	if (strcmp(status, "timeout") == 0)
		return EXIT_TIMEOUT;
	if (strcmp(status, "success") == 0)
		return 0;
	if (strcmp(status, "failed") == 0 && json_is_integer(exit_code)) {
		json_int_t c = json_integer_value(exit_code);
		/* A failure must not look like success to the shell. */
		return c > 0 && c < 256 ? (int)c : 1;
	}
	return EXIT_CORRAL;
}

int cmd_exec(int argc, char **argv)
{
	struct exec_options o;
	struct cr_error err = CR_ERROR_INIT;
	struct reply r = { BUF_INIT, false };
	json_error_t jerr;
	json_t *req, *reply;
	char *body;
	long status = 0;
	int code;

	if (exec_parse(argc, argv, &o, &err) < 0) {
		fprintf(stderr, "corral exec: %s\n(see 'corral exec --help')\n", err.msg);
		cr_error_release(&err);
		exec_options_release(&o);
		return EXIT_USAGE;
	}
	if (o.help) {
		fputs(exec_usage, stdout);
		exec_options_release(&o);
		return 0;
	}
	req = exec_request_json(&o);
	if (req == NULL) {
		fprintf(stderr, "corral exec: the code is not valid UTF-8\n");
		exec_options_release(&o);
		return EXIT_USAGE;
	}
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);

	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "corral exec: cannot initialise libcurl\n");
		code = EXIT_CORRAL;
		goto out;
	}
	if (exec_post(&o, body, &status, &r, &err) < 0) {
		fprintf(stderr, "corral exec: %s\n", err.msg);
		cr_error_release(&err);
		code = EXIT_CORRAL;
		goto out_curl;
	}
	reply = json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_ALLOW_NUL, &jerr);
	fflush(stdout);
	if (status < 200 || status > 299)
		code = report_refusal(&o, status, reply, &r.body);
	else if (!json_is_object(reply)) {
		fprintf(stderr, "corral exec: the reply from %s is not a JSON object: %s\n", o.url,
			jerr.text);
		code = EXIT_CORRAL;
	} else
		code = report_result(&o, reply, &r.body);
	json_decref(reply);
out_curl:
	curl_global_cleanup();
out:
	buf_release(&r.body);
	free(body);
	exec_options_release(&o);
	return code;
}
