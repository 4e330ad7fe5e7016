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
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "sandbox/config.h"
#include "sandbox/sandbox.h"
#include "store/state.h"
#include "store/store.h"
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

/* A JSON string from arbitrary bytes, NULL as ""; invalid UTF-8 becomes
 * U+FFFD (new reference).  Program output goes through it everywhere. */
json_t *cli_json_text(const char *data, size_t len);

/* The --json object for a finished execution (new reference). */
json_t *cli_run_result_json(const struct sandbox_result *res);

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_exec(int argc, char **argv);

/* After getopt_long() (optstring starting with ':') returned ':' or '?':
 * fill err with "option '--x' needs a value" or "unknown option '...'".
 * Returns -1.  Every verb's option parser shares it. */
int cli_option_error(int c, char **argv, struct cr_error *err);

/* main()'s argv, for code that needs the whole command line. */
extern char **cli_process_argv;

/* --- admin verbs: env, key, thread, usage -----------------------------
 *
 * They act on the state directory directly (store/state.h), so they work
 * with `corral serve` stopped or running.  Every verb takes --state-dir DIR
 * (default $CORRAL_STATE_DIR, else ./corral-data) and --json (one JSON
 * value on stdout instead of a table).  A refusal prints
 * "corral <verb>: <sentence>" on stderr and exits EXIT_USAGE for a usage
 * error (unknown option, missing or bad value, bad name: EINVAL from the
 * store) or 1 when the operation failed (not found, conflict, revoked),
 * and changes nothing: every argument is checked before the state
 * directory is opened.  cli-admin.c holds what they share.
 */
int cmd_env(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_thread(int argc, char **argv);
int cmd_usage(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_connector(int argc, char **argv);

enum { ADMIN_OPT_STATE_DIR = 1000, ADMIN_OPT_JSON };
#define ADMIN_COMMON_LONGOPTS                                                 \
	{ "state-dir", required_argument, NULL, ADMIN_OPT_STATE_DIR },        \
	{ "json", no_argument, NULL, ADMIN_OPT_JSON },                        \
	{ "help", no_argument, NULL, 'h' }
#define ADMIN_COMMON_HELP                                                     \
	"  --state-dir DIR    state directory (default $CORRAL_STATE_DIR, else ./corral-data)\n" \
	"  --json             print JSON instead of a table\n"                    \
	"  -h, --help         show this help\n"

struct admin_opts {
	const char *verb;            /* "env", ...: the prefix of every message */
	const char *state_dir;       /* NULL: store_state_default_dir() */
	bool json;
	bool help;
};

/* Handle --state-dir, --json and --help; 1 when `c` was one of them. */
int admin_common_option(struct admin_opts *o, int c, const char *arg);
/* Report getopt's ':' (missing value) or '?' (unknown option); EXIT_USAGE. */
int admin_option_error(const char *verb, int c, char **argv);
/* "corral <verb>: <sentence>" and a pointer to --help; returns EXIT_USAGE. */
int admin_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a sentence in err (released): a bad option value. */
int admin_bad_usage(const char *verb, struct cr_error *err);
/* Print err, release it; EXIT_USAGE when err->errnum is EINVAL, else 1. */
int admin_fail(const char *verb, struct cr_error *err);
/* Open the state directory; 0, or the exit code after printing why not. */
int admin_open(const struct admin_opts *o, struct store_state *s);
/* Print `j` (consumed) on stdout. */
void admin_print_json(json_t *j);

/* The --json shapes (new references), shared with the admin HTTP API. */
json_t *cli_env_json(const struct store_env *e);
json_t *cli_key_json(const struct store_key *k);
json_t *cli_thread_json(const struct store_thread *t, const char *env_name);
json_t *cli_usage_json(const struct store_usage *u);

/* "1", "0.5", "1.25"; "512 B", "1.5 MiB" (caller frees). */
char *admin_format_cpus(int64_t milli);
char *admin_format_bytes(int64_t bytes);

/* A table for people: columns padded to their widest cell.  Add takes
 * `ncols` strings (NULL prints "-"); print writes and frees the table. */
struct admin_table;
struct admin_table *admin_table_new(size_t ncols, const char *const *headers);
void admin_table_add(struct admin_table *t, ...);
void admin_table_print(struct admin_table *t, FILE *f);

#endif
