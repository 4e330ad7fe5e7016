/* fuzz-run-options.c - `corral run` option parsing on arbitrary argv.
 *
 * The input is split at NUL bytes into arguments after "run".  Arguments
 * that could name --code-file (any "--code-..." spelling, since getopt
 * takes abbreviations) are dropped so the target never reads files or
 * stdin.  A success must leave a config that sandbox_config_check()
 * accepts; a refusal must carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	struct run_options opts;
	struct cr_error err = CR_ERROR_INIT;
	char *p = copy, *end = copy + size;
	int r;

	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = "run";
	while (p <= end && argc < MAX_ARGS) {
		size_t len = strlen(p);
		if (strncmp(p, "--code-", 7) != 0)
			argv[argc++] = p;
		p += len + 1;
	}
	argv[argc] = NULL;

	r = cli_run_parse(argc, argv, &opts, &err);
	if (r != 0 && r != -1)
		abort();
	if ((r == 0) != (err.msg == NULL))
		abort();
	if (r == 0 && !opts.help) {
		struct cr_error again = CR_ERROR_INIT;
		if (sandbox_config_check(&opts.cfg, &again) != 0)
			abort();
		if (opts.cfg.language == SANDBOX_LANG_NONE) {
			if (opts.cfg.argv == NULL || opts.cfg.argv[0] == NULL || opts.cfg.argv[0][0] == '\0')
				abort();
		} else if (opts.cfg.code == NULL || opts.cfg.code_len == 0 || opts.cfg.argv != NULL) {
			abort();
		}
	}
	cr_error_release(&err);
	run_options_release(&opts);
	free(copy);
	return 0;
}
