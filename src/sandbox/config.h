/* config.h - what one sandbox execution should be: command, limits, home.
 *
 * A `struct sandbox_config` is plain data filled by a front end (the
 * `corral run` option parser, later the HTTP API) and validated by
 * sandbox_config_check() before anything touches the kernel.  The parsers
 * here are pure functions so that they can be unit tested and fuzzed.
 *
 * Ownership: the config owns every string and array in it;
 * sandbox_config_release() frees them.
 */
#ifndef CORRAL_SANDBOX_CONFIG_H
#define CORRAL_SANDBOX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Defaults, also the documented values in README and `corral run --help`. */
#define SANDBOX_DEFAULT_TIMEOUT_MS      30000u
#define SANDBOX_DEFAULT_MEMORY          (512ull << 20)
#define SANDBOX_DEFAULT_PIDS            256u
#define SANDBOX_DEFAULT_CPU_MILLI       1000u      /* one CPU */
#define SANDBOX_DEFAULT_OUTPUT_LIMIT    (10ull << 20)
#define SANDBOX_DEFAULT_TMP_SIZE        (256ull << 20)
#define SANDBOX_DEFAULT_HOME_SIZE       (256ull << 20)   /* tmpfs home only */
#define SANDBOX_DEFAULT_FSIZE           (1ull << 30)
#define SANDBOX_DEFAULT_NOFILE          1024u
#define SANDBOX_DEFAULT_USER            "baponi"
#define SANDBOX_UID                     1000u
#define SANDBOX_HOSTNAME                "corral"
#define SANDBOX_DEFAULT_HOST_UID_BASE   100000u
#define SANDBOX_ID_RANGE                65536u

#define SANDBOX_MAX_TIMEOUT_MS          (24u * 3600u * 1000u)
#define SANDBOX_MIN_MEMORY              (8ull << 20)
#define SANDBOX_MAX_CODE                (1u << 20)
#define SANDBOX_MAX_LISTEN              4

enum sandbox_language {
	SANDBOX_LANG_NONE = 0,   /* argv given directly */
	SANDBOX_LANG_PYTHON,
	SANDBOX_LANG_NODE,
	SANDBOX_LANG_BASH,
};

struct sandbox_config {
	/* What to run: either argv (language NONE) or code in a language. */
	char **argv;                 /* NULL-terminated; owned */
	enum sandbox_language language;
	char *code;                  /* owned, may contain NULs: see code_len */
	size_t code_len;

	/* Environment added to the clean base environment, "NAME=VALUE". */
	char **env;                  /* NULL-terminated or NULL; owned */

	char *image;                 /* image root directory; NULL: the host ("/") */
	char *user;                  /* sandbox user name; home is /home/<user> */
	char *thread_dir;            /* host directory for the home, or NULL */

	uint32_t timeout_ms;
	uint64_t memory_bytes;       /* 0: unlimited */
	uint32_t pids;               /* 0: unlimited */
	uint32_t cpu_milli;          /* thousandths of a CPU; 0: unlimited */
	uint64_t output_limit;       /* per stream */
	uint64_t tmp_size;
	uint64_t home_size;          /* size of the tmpfs home without a thread */
	uint64_t fsize;              /* RLIMIT_FSIZE */
	uint32_t nofile;             /* RLIMIT_NOFILE */

	/* Extra files for the generated /etc (e.g. a connector's system-wide
	 * gitconfig): read-only inside, gone with the execution. */
	struct sandbox_file {
		char *name;          /* a plain name in /etc, e.g. "gitconfig" */
		char *content;
	} *etc_files;
	size_t n_etc_files;

	/* Secrets to scrub from the output (borrowed: must outlive the
	 * execution); NULL for none.  See util/redact.h. */
	const struct redact_set *redact;

	/* TCP ports to listen on at 127.0.0.1 inside the sandbox's network
	 * namespace before the program starts; the sockets are handed to the
	 * caller (sandbox_callbacks.on_listen), which serves them.  The
	 * egress proxy and brokers (egress/egress.h) come in this way. */
	uint16_t listen_ports[SANDBOX_MAX_LISTEN];
	size_t n_listen;

	uid_t host_uid_base;         /* sandbox ids 0..65535 map from here */
	bool allow_nested;           /* let the sandbox create user namespaces */
};

/* Fill with the defaults above; strings are NULL. */
void sandbox_config_init(struct sandbox_config *cfg);
void sandbox_config_release(struct sandbox_config *cfg);

/* Check the whole config for consistency.  0, or -1 with a sentence. */
int sandbox_config_check(const struct sandbox_config *cfg, struct cr_error *err);

/* Parsers for option values; each returns 0 or -1 with a sentence that
 * names `what` (the option) and the offending text. */
int sandbox_parse_seconds(const char *s, const char *what, uint32_t *ms, struct cr_error *err);
int sandbox_parse_uint(const char *s, const char *what, uint64_t min, uint64_t max, uint64_t *out,
		       struct cr_error *err);
/* "0.5", "2", "1.25" CPUs -> thousandths. */
int sandbox_parse_cpus(const char *s, const char *what, uint32_t *milli, struct cr_error *err);
/* Bytes with an optional K/M/G suffix (powers of 1024). */
int sandbox_parse_size(const char *s, const char *what, uint64_t *out, struct cr_error *err);
int sandbox_parse_language(const char *s, enum sandbox_language *out, struct cr_error *err);
const char *sandbox_language_name(enum sandbox_language lang);

/* A user name the sandbox can use as a login and a home path. */
int sandbox_check_user_name(const char *name, struct cr_error *err);

/* Validate "NAME=VALUE" for the sandbox environment: NAME is a POSIX name
 * and not one that would break the sandbox (PATH, HOME, LD_*, ...). */
int sandbox_check_env_assignment(const char *assignment, struct cr_error *err);

#endif
