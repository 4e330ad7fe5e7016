/* cli-key.c - `corral key`: create, list and revoke API keys. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/util.h"

#include <sodium.h>
#include <string.h>

static const char key_usage[] =
	"usage: corral key create --env NAME [--plan free|pro|unlimited] [--name LABEL]\n"
	"                         [--region REGION]\n"
	"       corral key list [--env NAME]\n"
	"       corral key revoke ID|PREFIX\n"
	"\n"
	"An API key ('sk-<region>-<random>') is bound to one environment and one plan.\n"
	"'create' prints the key on stdout, once: only a keyed hash of it is stored.\n"
	"'revoke' takes the key's id, the start of its prefix (8 characters or more)\n"
	"or the whole key.\n"
	"\n"
	"  --env NAME         the environment (create: required; list: filter)\n"
	"  --plan PLAN        the plan (default free)\n"
	"  --name LABEL       a label for people\n"
	"  --region REGION    the key's region (default local)\n" ADMIN_COMMON_HELP;

enum { OPT_ENV = 256, OPT_PLAN, OPT_NAME, OPT_REGION };

static const struct option key_longopts[] = {
	{ "env", required_argument, NULL, OPT_ENV },
	{ "plan", required_argument, NULL, OPT_PLAN },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "region", required_argument, NULL, OPT_REGION },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static int key_create(const struct admin_opts *o, struct store_state *s, const char *env,
		      const char *plan, const char *label, const char *region)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_key k;
	char *secret;

	if (store_key_create(s->store, env, plan, label, region, &secret, &k, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		json_t *j = cli_key_json(&k);
		json_object_set_new(j, "key", json_string(secret));
		admin_print_json(j);
	} else {
		printf("%s\n", secret);
		fprintf(stderr,
			"corral key: created key %lld (%s) for environment '%s' on plan '%s'; "
			"it is shown only this once\n",
			(long long)k.id, k.prefix, k.env_name, k.plan);
	}
	fflush(stdout);
	sodium_memzero(secret, strlen(secret));
	free(secret);
	store_key_release(&k);
	return 0;
}

static int key_list(const struct admin_opts *o, struct store_state *s, const char *env)
{
	static const char *const headers[] = { "ID", "PREFIX", "ENV", "PLAN", "NAME", "CREATED",
					       "REVOKED" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_key *v;
	size_t n;

	if (store_key_list(s->store, env, &v, &n, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_key_json(&v[i]));
		admin_print_json(json_pack("{s:o}", "keys", a));
	} else {
		struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *id = xasprintf("%lld", (long long)v[i].id);
			cleanup_free char *prefix = xasprintf("%s...", v[i].prefix);
			admin_table_add(t, id, prefix, v[i].env_name, v[i].plan, v[i].name,
					v[i].created_at, v[i].revoked_at);
		}
		admin_table_print(t, stdout);
	}
	store_key_list_free(v, n);
	return 0;
}

static int key_revoke(const struct admin_opts *o, struct store_state *s, const char *what)
{
	struct cr_error err = CR_ERROR_INIT;
	/* Never echo a whole key back: show only what a prefix would. */
	cleanup_free char *shown = xstrndup(what, 24);

	if (store_key_revoke(s->store, what, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json)
		admin_print_json(json_pack("{s:s}", "revoked", shown));
	else
		printf("revoked key '%s'\n", shown);
	return 0;
}

int cmd_key(int argc, char **argv)
{
	struct admin_opts o = { .verb = "key" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_state s;
	const char *env = NULL, *plan = NULL, *label = NULL, *region = NULL, *sub, *what = NULL;
	int ch, rc;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", key_longopts, NULL)) != -1) {
		if (admin_common_option(&o, ch, optarg))
			continue;
		switch (ch) {
		case OPT_ENV:
			env = optarg;
			break;
		case OPT_PLAN:
			plan = optarg;
			break;
		case OPT_NAME:
			label = optarg;
			break;
		case OPT_REGION:
			region = optarg;
			break;
		default:
			return admin_option_error(o.verb, ch, argv);
		}
	}
	if (o.help) {
		fputs(key_usage, stdout);
		return 0;
	}
	if (optind >= argc)
		return admin_usage_error(o.verb, "give a subcommand: create, list or revoke");
	sub = argv[optind++];
	if (strcmp(sub, "create") == 0) {
		if (env == NULL)
			return admin_usage_error(o.verb, "create needs --env NAME");
		if (optind < argc)
			return admin_usage_error(o.verb, "create takes no argument (found '%s')",
						 argv[optind]);
		if (plan && *plan == '\0')
			return admin_usage_error(o.verb, "--plan: the plan name is empty");
		if (label && *label == '\0')
			return admin_usage_error(o.verb, "--name: the label is empty");
	} else if (strcmp(sub, "list") == 0) {
		if (plan || label || region)
			return admin_usage_error(o.verb, "list takes only --env");
		if (optind < argc)
			return admin_usage_error(o.verb, "list takes no argument (found '%s')",
						 argv[optind]);
	} else if (strcmp(sub, "revoke") == 0) {
		if (env || plan || label || region)
			return admin_usage_error(o.verb, "revoke takes no option but the key");
		if (optind >= argc)
			return admin_usage_error(o.verb, "revoke needs a key id or prefix");
		what = argv[optind++];
		if (optind < argc)
			return admin_usage_error(o.verb, "revoke takes one key (found also '%s')",
						 argv[optind]);
		if (*what == '\0')
			return admin_usage_error(o.verb, "revoke: the key id or prefix is empty");
	} else {
		return admin_usage_error(o.verb, "unknown subcommand '%s'", sub);
	}
	if (env && store_check_env_name(env, &err) < 0) {
		cr_error_wrap(&err, "--env");
		return admin_bad_usage(o.verb, &err);
	}

	if ((rc = admin_open(&o, &s)) != 0)
		return rc;
	if (strcmp(sub, "create") == 0)
		rc = key_create(&o, &s, env, plan ? plan : "free", label, region ? region : "local");
	else if (strcmp(sub, "list") == 0)
		rc = key_list(&o, &s, env);
	else
		rc = key_revoke(&o, &s, what);
	store_state_close(&s);
	return rc;
}
