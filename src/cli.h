/* cli.h - the subcommands of the corral binary.
 *
 * Each verb lives in cli-<verb>.c and exposes its entry point here, plus
 * the pure pieces its tests need (option parsing, output shapes).  Exit
 * codes follow the usual conventions: 0 success, 1 failure, 2 bad usage;
 * `corral run` returns the sandboxed program's own code, 124 on timeout,
 * 125 when corral itself failed (docker's and timeout(1)'s numbers).
 */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#include <jansson.h>
#include <stdbool.h>

#include "sandbox/config.h"
#include "sandbox/sandbox.h"
#include "util/error.h"

#define EXIT_USAGE 2
#define EXIT_TIMEOUT 124
#define EXIT_CORRAL 125

struct run_options {
	struct sandbox_config cfg;
	bool json;
	bool help;
	enum cgroup_version cgroup;
	char *code_file;             /* path or "-" */
};

/* Parse `corral run` arguments (argv[0] is "run").  Reads --code-file.
 * Returns 0, or -1 with a sentence (the caller prints it and exits 2). */
int cli_run_parse(int argc, char **argv, struct run_options *opts, struct cr_error *err);
void run_options_release(struct run_options *opts);

/* The --json object for a finished execution (new reference). */
json_t *cli_run_result_json(const struct sandbox_result *res);

int cmd_run(int argc, char **argv);

/* main()'s argv, for code that needs the whole command line. */
extern char **cli_process_argv;

#endif
