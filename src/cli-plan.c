/* cli-plan.c - `corral plan`: list plans and set their limits.  Plans are
 * rows in the store (DESIGN.md 2): the defaults free, pro and unlimited
 * can be changed, and new ones created. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

static const char plan_usage[] =
	"usage: corral plan list\n"
	"       corral plan set NAME [--credits N|unlimited] [--max-timeout SECONDS]\n"
	"                            [--max-concurrent N] [--streaming on|off] [--async on|off]\n"
	"\n"
	"List plans, or create or change one (a new plan starts from the free plan's\n"
	"limits).  --max-concurrent 0 means no limit.\n"
	"\n" ADMIN_COMMON_HELP;

enum { OPT_CREDITS = 256, OPT_TIMEOUT, OPT_CONCURRENT, OPT_STREAMING, OPT_ASYNC };

static const struct option plan_longopts[] = {
	{ "credits", required_argument, NULL, OPT_CREDITS },
	{ "max-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-concurrent", required_argument, NULL, OPT_CONCURRENT },
	{ "streaming", required_argument, NULL, OPT_STREAMING },
	{ "async", required_argument, NULL, OPT_ASYNC },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static json_t *plan_json(const struct store_plan *p)
{
	return json_pack("{s:s,s:o,s:i,s:b,s:b,s:i}", "name", p->name, "monthly_credits",
			 p->monthly_credits >= 0 ? json_integer(p->monthly_credits) : json_null(),
			 "max_timeout_s", p->max_timeout_s, "allow_streaming", p->allow_streaming,
			 "allow_async", p->allow_async, "max_concurrent", p->max_concurrent);
}

static int on_off(const char *verb, const char *opt, const char *v, bool *out)
{
	if (strcmp(v, "on") == 0)
		*out = true;
	else if (strcmp(v, "off") == 0)
		*out = false;
	else
		return admin_usage_error(verb, "%s: '%s' is not on or off", opt, v);
	return 0;
}

int cmd_plan(int argc, char **argv)
{
	static const char *const headers[] = { "PLAN", "CREDITS", "MAX TIMEOUT", "CONCURRENT",
					       "STREAMING", "ASYNC" };
	struct admin_opts o = { .verb = "plan" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_state s;
	const char *credits = NULL, *timeout = NULL, *conc = NULL, *stream = NULL, *async = NULL;
	struct store_plan p;
	uint64_t v;
	int ch, rc = 0;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", plan_longopts, NULL)) != -1) {
		if (admin_common_option(&o, ch, optarg))
			continue;
		switch (ch) {
		case OPT_CREDITS: credits = optarg; break;
		case OPT_TIMEOUT: timeout = optarg; break;
		case OPT_CONCURRENT: conc = optarg; break;
		case OPT_STREAMING: stream = optarg; break;
		case OPT_ASYNC: async = optarg; break;
		default:
			return admin_option_error(o.verb, ch, argv);
		}
	}
	if (o.help) {
		fputs(plan_usage, stdout);
		return 0;
	}
	if (optind >= argc)
		return admin_usage_error(o.verb, "give 'list' or 'set NAME'");

	if (strcmp(argv[optind], "list") == 0) {
		struct store_plan *list;
		size_t n;
		if (optind + 1 != argc)
			return admin_usage_error(o.verb, "unexpected argument '%s'", argv[optind + 1]);
		if (admin_open(&o, &s) < 0)
			return 1;
		if (store_plan_list(s.store, &list, &n, &err) < 0) {
			store_state_close(&s);
			return admin_fail(o.verb, &err);
		}
		if (o.json) {
			json_t *a = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(a, plan_json(&list[i]));
			admin_print_json(a);
		} else {
			struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
			for (size_t i = 0; i < n; i++) {
				cleanup_free char *c = list[i].monthly_credits >= 0
					? xasprintf("%lld", (long long)list[i].monthly_credits)
					: xstrdup("unlimited");
				cleanup_free char *tm = xasprintf("%d s", list[i].max_timeout_s);
				cleanup_free char *cc = list[i].max_concurrent
					? xasprintf("%d", list[i].max_concurrent) : xstrdup("unlimited");
				admin_table_add(t, list[i].name, c, tm, cc,
						list[i].allow_streaming ? "on" : "off",
						list[i].allow_async ? "on" : "off");
			}
			admin_table_print(t, stdout);
		}
		store_plan_list_free(list, n);
		store_state_close(&s);
		return 0;
	}
	if (strcmp(argv[optind], "set") != 0)
		return admin_usage_error(o.verb, "unknown subcommand '%s' (list or set)", argv[optind]);
	if (optind + 2 != argc)
		return admin_usage_error(o.verb, "give exactly one plan name after 'set'");

	/* Check every value before touching the state. */
	memset(&p, 0, sizeof(p));
	p.name = argv[optind + 1];
	if (store_check_env_name(p.name, &err) < 0) {
		cr_error_wrap(&err, "plan name");
		return admin_bad_usage(o.verb, &err);
	}
	if (credits && strcmp(credits, "unlimited") != 0 &&
	    sandbox_parse_uint(credits, "--credits", 0, INT64_MAX / 2, &v, &err) < 0)
		return admin_bad_usage(o.verb, &err);
	if (timeout && sandbox_parse_uint(timeout, "--max-timeout", 1, 86400, &v, &err) < 0)
		return admin_bad_usage(o.verb, &err);
	if (conc && sandbox_parse_uint(conc, "--max-concurrent", 0, 100000, &v, &err) < 0)
		return admin_bad_usage(o.verb, &err);
	{
		bool b;
		if ((stream && on_off(o.verb, "--streaming", stream, &b)) ||
		    (async && on_off(o.verb, "--async", async, &b)))
			return EXIT_USAGE;
	}

	if (admin_open(&o, &s) < 0)
		return 1;
	{
		struct store_plan cur;
		memset(&cur, 0, sizeof(cur));
		if (store_plan_get(s.store, p.name, &cur, &err) < 0) {
			if (err.errnum != ENOENT) {
				store_state_close(&s);
				return admin_fail(o.verb, &err);
			}
			cr_error_release(&err);
			if (store_plan_get(s.store, "free", &cur, &err) < 0) {
				store_state_close(&s);
				return admin_fail(o.verb, &err);
			}
		}
		p.monthly_credits = cur.monthly_credits;
		p.max_timeout_s = cur.max_timeout_s;
		p.max_concurrent = cur.max_concurrent;
		p.allow_streaming = cur.allow_streaming;
		p.allow_async = cur.allow_async;
		store_plan_release(&cur);
	}
	if (credits)
		p.monthly_credits = strcmp(credits, "unlimited") == 0 ? -1 : strtoll(credits, NULL, 10);
	if (timeout)
		p.max_timeout_s = (int32_t)strtol(timeout, NULL, 10);
	if (conc)
		p.max_concurrent = (int32_t)strtol(conc, NULL, 10);
	if (stream)
		p.allow_streaming = strcmp(stream, "on") == 0;
	if (async)
		p.allow_async = strcmp(async, "on") == 0;
	if (store_plan_set(s.store, &p, &err) < 0) {
		rc = admin_fail(o.verb, &err);
	} else if (o.json) {
		admin_print_json(plan_json(&p));
	} else {
		printf("plan '%s' set\n", p.name);
	}
	store_state_close(&s);
	return rc;
}
