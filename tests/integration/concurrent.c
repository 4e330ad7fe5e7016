/* concurrent.c - start N sandboxes at once from the library and check that
 * every one finishes with its own output.  Run by test_run.py.
 *
 * usage: concurrent N SLEEP_SECONDS
 * Prints "ok N" and exits 0, or one line per mismatch and exits 1. */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int finished;

static void on_exit_cb(struct sandbox_exec *ex, void *data)
{
	(void)ex;
	(void)data;
	finished++;
}

int main(int argc, char **argv)
{
	struct cr_error err = CR_ERROR_INIT;
	struct sandbox_runtime *rt;
	struct sandbox_callbacks cb = { .on_exit = on_exit_cb };
	struct sandbox_exec **ex;
	int n = argc > 1 ? atoi(argv[1]) : 50;
	const char *sleep_s = argc > 2 ? argv[2] : "1";
	int bad = 0;

	rt = sandbox_runtime_new(NULL, &err);
	if (rt == NULL) {
		fprintf(stderr, "runtime: %s\n", err.msg);
		return 2;
	}
	ex = xzalloc(sizeof(*ex) * (size_t)n);
	for (int i = 0; i < n; i++) {
		struct sandbox_config cfg;
		sandbox_config_init(&cfg);
		cfg.language = SANDBOX_LANG_BASH;
		cfg.code = xasprintf("sleep %s; echo sandbox-%d; echo err-%d >&2; exit %d", sleep_s, i,
				     i, i % 7);
		cfg.code_len = strlen(cfg.code);
		cfg.memory_bytes = 64ull << 20;
		ex[i] = sandbox_start(rt, &cfg, &cb, NULL, &err);
		sandbox_config_release(&cfg);
		if (ex[i] == NULL) {
			fprintf(stderr, "start %d: %s\n", i, err.msg);
			return 2;
		}
	}
	while (sandbox_runtime_active(rt) > 0)
		if (sandbox_runtime_dispatch(rt, -1, &err) < 0) {
			fprintf(stderr, "dispatch: %s\n", err.msg);
			return 2;
		}
	for (int i = 0; i < n; i++) {
		const struct sandbox_result *r = sandbox_exec_result(ex[i]);
		char want_out[64], want_err[64];
		snprintf(want_out, sizeof(want_out), "sandbox-%d\n", i);
		snprintf(want_err, sizeof(want_err), "err-%d\n", i);
		if (r->exit_code != i % 7 || !r->output[0].data || strcmp(r->output[0].data, want_out) ||
		    !r->output[1].data || strcmp(r->output[1].data, want_err) ||
		    r->status != (i % 7 ? SANDBOX_FAILED : SANDBOX_SUCCESS)) {
			printf("sandbox %d: status %s exit %d stdout '%s' stderr '%s' error %s\n", i,
			       sandbox_status_name(r->status), r->exit_code,
			       r->output[0].data ? r->output[0].data : "",
			       r->output[1].data ? r->output[1].data : "", r->error ? r->error : "-");
			bad++;
		}
		sandbox_exec_free(ex[i]);
	}
	free(ex);
	sandbox_runtime_free(rt);
	if (bad || finished != n) {
		printf("%d bad, %d of %d finished callbacks\n", bad, finished, n);
		return 1;
	}
	printf("ok %d\n", n);
	return 0;
}
