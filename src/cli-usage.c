/* cli-usage.c - `corral usage`: credits and executions per key and month. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/util.h"

#include <string.h>

static const char usage_usage[] =
	"usage: corral usage [--env NAME] [--month YYYY-MM]\n"
	"\n"
	"Credits and executions of every API key in a month (default: this month,\n"
	"UTC), optionally of one environment's keys only.\n"
	"\n"
	"  --env NAME         only this environment's keys\n"
	"  --month YYYY-MM    the month (default: the current one)\n" ADMIN_COMMON_HELP;

enum { OPT_ENV = 256, OPT_MONTH };

static const struct option usage_longopts[] = {
	{ "env", required_argument, NULL, OPT_ENV },
	{ "month", required_argument, NULL, OPT_MONTH },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

/* "YYYY-MM" with a month from 01 to 12. */
static bool month_ok(const char *m)
{
	if (strlen(m) != 7 || m[4] != '-')
		return false;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (m[i] < '0' || m[i] > '9'))
			return false;
	return (m[5] == '0' && m[6] != '0') || (m[5] == '1' && m[6] <= '2');
}

static int show_usage(const struct admin_opts *o, struct store_state *s, const char *env,
		      const char *month)
{
	static const char *const headers[] = { "ENV", "KEY", "ID", "EXECUTIONS", "CREDITS" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_usage *v;
	int64_t credits = 0, execs = 0;
	size_t n;

	if (store_usage_list(s->store, env, month, &v, &n, &err) < 0)
		return admin_fail(o->verb, &err);
	for (size_t i = 0; i < n; i++) {
		credits += v[i].credits;
		execs += v[i].executions;
	}
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_usage_json(&v[i]));
		admin_print_json(json_pack("{s:s,s:o,s:I,s:I,s:o}", "month", month, "environment",
					   env ? json_string(env) : json_null(), "credits",
					   (json_int_t)credits, "executions", (json_int_t)execs,
					   "keys", a));
	} else {
		struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
		cleanup_free char *tc = xasprintf("%lld", (long long)credits);
		cleanup_free char *te = xasprintf("%lld", (long long)execs);
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *id = xasprintf("%lld", (long long)v[i].key_id);
			cleanup_free char *prefix = xasprintf("%s...", v[i].key_prefix);
			cleanup_free char *c = xasprintf("%lld", (long long)v[i].credits);
			cleanup_free char *e = xasprintf("%lld", (long long)v[i].executions);
			admin_table_add(t, v[i].env_name, prefix, id, e, c);
		}
		admin_table_add(t, "total", "", "", te, tc);
		printf("usage in %s%s%s\n", month, env ? " of environment " : "", env ? env : "");
		admin_table_print(t, stdout);
	}
	store_usage_list_free(v, n);
	return 0;
}

int cmd_usage(int argc, char **argv)
{
	struct admin_opts o = { .verb = "usage" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_state s;
	const char *env = NULL, *month = NULL;
	char now[8];
	int ch, rc;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", usage_longopts, NULL)) != -1) {
		if (admin_common_option(&o, ch, optarg))
			continue;
		switch (ch) {
		case OPT_ENV:
			env = optarg;
			break;
		case OPT_MONTH:
			month = optarg;
			break;
		default:
			return admin_option_error(o.verb, ch, argv);
		}
	}
	if (o.help) {
		fputs(usage_usage, stdout);
		return 0;
	}
	if (optind < argc)
		return admin_usage_error(o.verb, "unexpected argument '%s'", argv[optind]);
	if (env && store_check_env_name(env, &err) < 0) {
		cr_error_wrap(&err, "--env");
		return admin_bad_usage(o.verb, &err);
	}
	if (month && !month_ok(month))
		return admin_usage_error(o.verb, "--month: '%s' is not a month such as 2026-01",
					 month);
	if (month == NULL) {
		store_month_of(NULL, now);
		month = now;
	}
	if ((rc = admin_open(&o, &s)) != 0)
		return rc;
	rc = show_usage(&o, &s, env, month);
	store_state_close(&s);
	return rc;
}
