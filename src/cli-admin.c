/* cli-admin.c - what the admin verbs (env, key, thread, usage) share:
 * common options, the state directory, error reporting, JSON shapes and
 * tables for people (see cli.h). */
#define _GNU_SOURCE
#include "cli.h"
#include "proxy/policy.h"
#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int admin_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "corral %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'corral %s --help')\n", verb);
	return EXIT_USAGE;
}

int admin_bad_usage(const char *verb, struct cr_error *err)
{
	admin_usage_error(verb, "%s", err->msg ? err->msg : "bad usage");
	cr_error_release(err);
	return EXIT_USAGE;
}

int admin_fail(const char *verb, struct cr_error *err)
{
	int code = err->errnum == EINVAL ? EXIT_USAGE : 1;

	fprintf(stderr, "corral %s: %s\n", verb, err->msg ? err->msg : "failed");
	cr_error_release(err);
	return code;
}

int admin_common_option(struct admin_opts *o, int c, const char *arg)
{
	switch (c) {
	case ADMIN_OPT_STATE_DIR:
		o->state_dir = arg;
		return 1;
	case ADMIN_OPT_JSON:
		o->json = true;
		return 1;
	case 'h':
		o->help = true;
		return 1;
	default:
		return 0;
	}
}

int admin_option_error(const char *verb, int c, char **argv)
{
	struct cr_error err = CR_ERROR_INIT;

	cli_option_error(c, argv, &err);
	return admin_bad_usage(verb, &err);
}

int admin_open(const struct admin_opts *o, struct store_state *s)
{
	struct cr_error err = CR_ERROR_INIT;
	const char *dir = o->state_dir ? o->state_dir : store_state_default_dir();

	if (*dir == '\0')
		return admin_usage_error(o->verb, "--state-dir: the path is empty");
	if (store_state_open(s, dir, &err) < 0) {
		fprintf(stderr, "corral %s: %s\n", o->verb, err.msg);
		cr_error_release(&err);
		return 1;
	}
	return 0;
}

void admin_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));

	if (s) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(j);
}

static json_t *json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* An environment's network policy (store_env.network) as {"mode":
 * "allowlist", "allow": ["example.com", "*.example.org:443"]}; "allow" is
 * [] when the policy lists nothing. */
static json_t *network_json(const char *network)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;
	json_t *allow = json_array(), *o;

	/* The store holds only what the parser accepted; a row edited by hand
	 * past it is shown as it is rather than hidden. */
	if (egress_policy_parse_string(network ? network : "none", &p, &err) < 0) {
		cr_error_release(&err);
		return json_pack("{s:s,s:o}", "mode", network, "allow", allow);
	}
	for (size_t i = 0; i < p.nrules; i++) {
		char *s = egress_rule_to_string(&p.rules[i]);
		json_array_append_new(allow, json_string(s));
		free(s);
	}
	o = json_pack("{s:s,s:o}", "mode", egress_mode_name(p.mode), "allow", allow);
	egress_policy_release(&p);
	return o;
}

json_t *cli_env_json(const struct store_env *e)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(e->id));
	json_object_set_new(o, "name", json_str_or_null(e->name));
	json_object_set_new(o, "image", json_str_or_null(e->image));
	json_object_set_new(o, "network", network_json(e->network));
	json_object_set_new(o, "memory_mib", json_integer(e->memory_mib));
	json_object_set_new(o, "pids", json_integer(e->pids));
	json_object_set_new(o, "cpus", json_real((double)e->cpu_milli / 1000.0));
	json_object_set_new(o, "tmp_mib", json_integer(e->tmp_mib));
	json_object_set_new(o, "allow_nested", json_boolean(e->allow_nested));
	json_object_set_new(o, "created_at", json_str_or_null(e->created_at));
	return o;
}

json_t *cli_key_json(const struct store_key *k)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(k->id));
	json_object_set_new(o, "prefix", json_str_or_null(k->prefix));
	json_object_set_new(o, "environment", json_str_or_null(k->env_name));
	json_object_set_new(o, "plan", json_str_or_null(k->plan));
	json_object_set_new(o, "name", json_str_or_null(k->name));
	json_object_set_new(o, "created_at", json_str_or_null(k->created_at));
	json_object_set_new(o, "revoked_at", json_str_or_null(k->revoked_at));
	json_object_set_new(o, "active", json_boolean(k->revoked_at == NULL));
	return o;
}

json_t *cli_thread_json(const struct store_thread *t, const char *env_name)
{
	json_t *o = json_object();

	json_object_set_new(o, "thread_id", json_str_or_null(t->thread_id));
	json_object_set_new(o, "environment", json_str_or_null(env_name));
	json_object_set_new(o, "created_at", json_str_or_null(t->created_at));
	json_object_set_new(o, "last_used_at", json_str_or_null(t->last_used_at));
	json_object_set_new(o, "bytes", json_integer(t->bytes));
	return o;
}

json_t *cli_usage_json(const struct store_usage *u)
{
	json_t *o = json_object();

	json_object_set_new(o, "key_id", json_integer(u->key_id));
	json_object_set_new(o, "key_prefix", json_str_or_null(u->key_prefix));
	json_object_set_new(o, "environment", json_str_or_null(u->env_name));
	json_object_set_new(o, "month", json_str_or_null(u->month));
	json_object_set_new(o, "credits", json_integer(u->credits));
	json_object_set_new(o, "executions", json_integer(u->executions));
	return o;
}

char *admin_format_cpus(int64_t milli)
{
	if (milli % 1000 == 0)
		return xasprintf("%lld", (long long)(milli / 1000));
	if (milli % 100 == 0)
		return xasprintf("%lld.%lld", (long long)(milli / 1000), (long long)(milli % 1000 / 100));
	if (milli % 10 == 0)
		return xasprintf("%lld.%02lld", (long long)(milli / 1000), (long long)(milli % 1000 / 10));
	return xasprintf("%lld.%03lld", (long long)(milli / 1000), (long long)(milli % 1000));
}

char *admin_format_bytes(int64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024)
		return xasprintf("%lld B", (long long)bytes);
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	return xasprintf("%.1f %s", v, units[u]);
}

/* --- tables ----------------------------------------------------------- */

struct admin_table {
	size_t ncols, nrows;
	char **cells;                /* (nrows + 1) * ncols, row 0 the headers */
};

struct admin_table *admin_table_new(size_t ncols, const char *const *headers)
{
	struct admin_table *t = xzalloc(sizeof(*t));

	t->ncols = ncols;
	t->cells = xmalloc(ncols * sizeof(char *));
	for (size_t i = 0; i < ncols; i++)
		t->cells[i] = xstrdup(headers[i]);
	return t;
}

void admin_table_add(struct admin_table *t, ...)
{
	va_list ap;
	size_t base;

	t->nrows++;
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	base = t->nrows * t->ncols;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		t->cells[base + i] = xstrdup(s ? s : "-");
	}
	va_end(ap);
}

void admin_table_print(struct admin_table *t, FILE *f)
{
	size_t *width = xzalloc(t->ncols * sizeof(size_t));

	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = strlen(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			if (c + 1 == t->ncols)
				fprintf(f, "%s\n", cell);
			else
				fprintf(f, "%-*s  ", (int)width[c], cell);
		}
	}
	for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(width);
	free(t);
}
