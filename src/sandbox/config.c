/* config.c - see config.h. */
#define _GNU_SOURCE
#include "sandbox/config.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sandbox_config_init(struct sandbox_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = SANDBOX_DEFAULT_TIMEOUT_MS;
	cfg->memory_bytes = SANDBOX_DEFAULT_MEMORY;
	cfg->pids = SANDBOX_DEFAULT_PIDS;
	cfg->cpu_milli = SANDBOX_DEFAULT_CPU_MILLI;
	cfg->output_limit = SANDBOX_DEFAULT_OUTPUT_LIMIT;
	cfg->tmp_size = SANDBOX_DEFAULT_TMP_SIZE;
	cfg->home_size = SANDBOX_DEFAULT_HOME_SIZE;
	cfg->fsize = SANDBOX_DEFAULT_FSIZE;
	cfg->nofile = SANDBOX_DEFAULT_NOFILE;
	cfg->host_uid_base = SANDBOX_DEFAULT_HOST_UID_BASE;
}

/* Free a string vector, wiping each string first: environments carry
 * connector secrets, and freed memory is copied into every later
 * sandbox's init (which is a clone of this process). */
static void free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
	free(v);
}

void sandbox_config_release(struct sandbox_config *cfg)
{
	free_strv(cfg->argv);
	free_strv(cfg->env);
	free(cfg->code);
	for (size_t i = 0; i < cfg->n_etc_files; i++) {
		free(cfg->etc_files[i].name);
		if (cfg->etc_files[i].content)
			explicit_bzero(cfg->etc_files[i].content, strlen(cfg->etc_files[i].content));
		free(cfg->etc_files[i].content);
	}
	free(cfg->etc_files);
	free(cfg->user);
	free(cfg->image);
	free(cfg->thread_dir);
	memset(cfg, 0, sizeof(*cfg));
}

int sandbox_parse_uint(const char *s, const char *what, uint64_t min, uint64_t max, uint64_t *out,
		       struct cr_error *err)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s == '\0' || !isdigit((unsigned char)*s))
		return cr_error_set(err, 0, "%s: '%s' is not a whole number", what, s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return cr_error_set(err, 0, "%s: '%s' is not a whole number", what, s);
	if (errno == ERANGE || v < min || v > max)
		return cr_error_set(err, 0, "%s: %s is out of range (%llu to %llu)", what, s,
				    (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

/* Parse a non-negative decimal with at most 3 fraction digits into
 * thousandths.  Returns -1 on syntax error or overflow past `max_milli`. */
static int parse_milli(const char *s, uint64_t max_milli, uint64_t *out)
{
	uint64_t whole = 0, frac = 0;
	int fdigits = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > max_milli / 1000 + 1)
			return -1;
		p++;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p)) {
			if (fdigits == 3)
				return -1;
			frac = frac * 10 + (uint64_t)(*p - '0');
			fdigits++;
			p++;
		}
	}
	if (*p != '\0')
		return -1;
	while (fdigits++ < 3)
		frac *= 10;
	*out = whole * 1000 + frac;
	return *out > max_milli ? -1 : 0;
}

int sandbox_parse_seconds(const char *s, const char *what, uint32_t *ms, struct cr_error *err)
{
	uint64_t v;

	if (s == NULL || parse_milli(s, SANDBOX_MAX_TIMEOUT_MS, &v) < 0)
		return cr_error_set(err, 0, "%s: '%s' is not a number of seconds between 0.001 and %u",
				    what, s ? s : "", SANDBOX_MAX_TIMEOUT_MS / 1000);
	if (v == 0)
		return cr_error_set(err, 0, "%s: must be more than 0 seconds", what);
	*ms = (uint32_t)v;
	return 0;
}

int sandbox_parse_cpus(const char *s, const char *what, uint32_t *milli, struct cr_error *err)
{
	uint64_t v;

	if (s == NULL || parse_milli(s, 1024 * 1000, &v) < 0)
		return cr_error_set(err, 0, "%s: '%s' is not a number of CPUs such as 0.5 or 2",
				    what, s ? s : "");
	if (v < 10)
		return cr_error_set(err, 0, "%s: %s is below the minimum of 0.01 CPUs", what, s);
	*milli = (uint32_t)v;
	return 0;
}

int sandbox_parse_size(const char *s, const char *what, uint64_t *out, struct cr_error *err)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return cr_error_set(err, 0, "%s: '%s' is not a size such as 4096, 64K, 10M or 1G",
				    what, s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return cr_error_set(err, 0, "%s: '%s' is too large", what, s);
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm': case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g': case 'G':
		mult = 1ull << 30;
		end++;
		break;
	default:
		return cr_error_set(err, 0, "%s: '%s' is not a size such as 4096, 64K, 10M or 1G",
				    what, s);
	}
	if (*end != '\0')
		return cr_error_set(err, 0, "%s: '%s' is not a size such as 4096, 64K, 10M or 1G",
				    what, s);
	if (v > UINT64_MAX / mult / 2)
		return cr_error_set(err, 0, "%s: '%s' is too large", what, s);
	*out = (uint64_t)v * mult;
	return 0;
}

static const char *const language_names[] = {
	[SANDBOX_LANG_NONE] = "command",
	[SANDBOX_LANG_PYTHON] = "python",
	[SANDBOX_LANG_NODE] = "node",
	[SANDBOX_LANG_BASH] = "bash",
};

const char *sandbox_language_name(enum sandbox_language lang)
{
	if ((size_t)lang < ARRAY_SIZE(language_names))
		return language_names[lang];
	return "unknown";
}

int sandbox_parse_language(const char *s, enum sandbox_language *out, struct cr_error *err)
{
	if (s == NULL)
		s = "";
	for (size_t i = SANDBOX_LANG_PYTHON; i < ARRAY_SIZE(language_names); i++) {
		if (strcmp(s, language_names[i]) == 0) {
			*out = (enum sandbox_language)i;
			return 0;
		}
	}
	return cr_error_set(err, 0, "unknown language '%s' (expected python, node or bash)", s);
}

int sandbox_check_user_name(const char *name, struct cr_error *err)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 32)
		return cr_error_set(err, 0, "user name '%s' must be 1 to 32 characters",
				    name ? name : "");
	if (!(islower((unsigned char)name[0]) || name[0] == '_'))
		return cr_error_set(err, 0, "user name '%s' must start with a lowercase letter or '_'",
				    name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!(islower(c) || isdigit(c) || c == '_' || c == '-'))
			return cr_error_set(err, 0,
					    "user name '%s' may only hold a-z, 0-9, '_' and '-'", name);
	}
	if (strcmp(name, "root") == 0 || strcmp(name, "nobody") == 0)
		return cr_error_set(err, 0, "user name '%s' is reserved", name);
	return 0;
}

/* Names the sandbox sets itself, or that change how the loader or the
 * shell start and so could turn a request into code the caller did not
 * send.  Prefixes end in '*'. */
static const char *const forbidden_env[] = {
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR",
	"LD_*", "GCONV_PATH", "LOCPATH", "MALLOC_*", "GLIBC_TUNABLES",
	"BASH_ENV", "ENV", "BASH_FUNC_*", "IFS", "PS4", "SHELLOPTS", "BASHOPTS",
	"CORRAL_*",
};

int sandbox_check_env_assignment(const char *assignment, struct cr_error *err)
{
	const char *eq = strchr(assignment, '=');
	size_t n;

	if (eq == NULL)
		return cr_error_set(err, 0, "environment entry '%s' is not NAME=VALUE", assignment);
	n = (size_t)(eq - assignment);
	if (n == 0 || n > 128)
		return cr_error_set(err, 0, "environment name in '%.40s' must be 1 to 128 characters",
				    assignment);
	if (!(isalpha((unsigned char)assignment[0]) || assignment[0] == '_'))
		return cr_error_set(err, 0, "environment name '%.*s' must start with a letter or '_'",
				    (int)n, assignment);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)assignment[i];
		if (!(isalnum(c) || c == '_'))
			return cr_error_set(err, 0,
					    "environment name '%.*s' may only hold letters, digits and '_'",
					    (int)n, assignment);
	}
	for (size_t i = 0; i < ARRAY_SIZE(forbidden_env); i++) {
		const char *f = forbidden_env[i];
		size_t fl = strlen(f);
		bool match;
		if (f[fl - 1] == '*')
			match = n >= fl - 1 && strncmp(assignment, f, fl - 1) == 0;
		else
			match = n == fl && strncmp(assignment, f, n) == 0;
		if (match)
			return cr_error_set(err, 0,
					    "environment name '%.*s' is reserved: the sandbox sets it or it would change how programs load",
					    (int)n, assignment);
	}
	/* The kernel's limit is on the whole "NAME=VALUE\0" string. */
	if (strlen(assignment) + 1 > 128 * 1024)
		return cr_error_set(err, 0, "environment variable '%.*s' is longer than 128 KiB with its name",
				    (int)n, assignment);
	return 0;
}

int sandbox_config_check(const struct sandbox_config *cfg, struct cr_error *err)
{
	if (cfg->language == SANDBOX_LANG_NONE) {
		if (cfg->argv == NULL || cfg->argv[0] == NULL || cfg->argv[0][0] == '\0')
			return cr_error_set(err, 0, "nothing to run: give a command after '--' or --code");
	} else {
		if (cfg->code == NULL)
			return cr_error_set(err, 0, "no code given for language '%s'",
					    sandbox_language_name(cfg->language));
		if (cfg->code_len > SANDBOX_MAX_CODE)
			return cr_error_set(err, 0, "code is %zu bytes, more than the limit of %u",
					    cfg->code_len, SANDBOX_MAX_CODE);
	}
	if (cfg->n_listen > SANDBOX_MAX_LISTEN)
		return cr_error_set(err, 0, "at most %d listening ports", SANDBOX_MAX_LISTEN);
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (cfg->listen_ports[i] == 0)
			return cr_error_set(err, 0, "listening port 0 is not a port");
		for (size_t k = 0; k < i; k++)
			if (cfg->listen_ports[k] == cfg->listen_ports[i])
				return cr_error_set(err, 0, "listening port %u is given twice",
						    cfg->listen_ports[i]);
	}
	if (sandbox_check_user_name(cfg->user ? cfg->user : SANDBOX_DEFAULT_USER, err) < 0)
		return -1;
	for (char **e = cfg->env; e && *e; e++)
		if (sandbox_check_env_assignment(*e, err) < 0)
			return -1;
	for (size_t i = 0; i < cfg->n_etc_files; i++) {
		const char *n = cfg->etc_files[i].name;
		if (n == NULL || *n == '\0' || strchr(n, '/') || strcmp(n, ".") == 0 ||
		    strcmp(n, "..") == 0 || cfg->etc_files[i].content == NULL)
			return cr_error_set(err, 0, "extra /etc file '%s' must be a plain name with content",
					    n ? n : "");
	}
	if (cfg->n_etc_files > 8)
		return cr_error_set(err, 0, "at most 8 extra /etc files");
	if (cfg->timeout_ms == 0 || cfg->timeout_ms > SANDBOX_MAX_TIMEOUT_MS)
		return cr_error_set(err, 0, "timeout must be between 1 ms and %u s",
				    SANDBOX_MAX_TIMEOUT_MS / 1000);
	if (cfg->memory_bytes != 0 && cfg->memory_bytes < SANDBOX_MIN_MEMORY)
		return cr_error_set(err, 0, "memory limit of %llu bytes is below the minimum of %llu MiB",
				    (unsigned long long)cfg->memory_bytes,
				    (unsigned long long)(SANDBOX_MIN_MEMORY >> 20));
	if (cfg->pids != 0 && cfg->pids < 2)
		return cr_error_set(err, 0, "pids limit must be at least 2 (the sandbox's init and the program)");
	if (cfg->tmp_size < (1 << 20))
		return cr_error_set(err, 0, "/tmp size must be at least 1 MiB");
	if (cfg->nofile < 16)
		return cr_error_set(err, 0, "open-files limit must be at least 16");
	if ((uint64_t)cfg->host_uid_base + SANDBOX_ID_RANGE > UINT32_MAX || cfg->host_uid_base == 0)
		return cr_error_set(err, 0, "host id range %u..%llu is not usable (it must start above 0 and fit in 32 bits)",
				    cfg->host_uid_base,
				    (unsigned long long)cfg->host_uid_base + SANDBOX_ID_RANGE - 1);
	return 0;
}
