/* cli-env.c - `corral env`: create, list, show, change and delete
 * environments (sandbox profiles every API key is bound to). */
#define _GNU_SOURCE
#include "cli.h"
#include "proxy/policy.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

static const char env_usage[] =
	"usage: corral env create NAME [--memory MIB] [--pids N] [--cpus F] [--tmp-size MIB]\n"
	"                              [--allow-nested] [--network MODE [--allow ENTRY]...]\n"
	"       corral env list\n"
	"       corral env show NAME\n"
	"       corral env set NAME [same options as create] [--no-allow-nested] [--no-allow]\n"
	"       corral env delete NAME [--force]\n"
	"\n"
	"An environment is a named sandbox profile; every API key is bound to one.\n"
	"A new state directory starts with the environment 'default'.\n"
	"\n"
	"  --memory MIB       memory limit in MiB, swap off (default 512)\n"
	"  --pids N           process limit (default 256)\n"
	"  --cpus F           CPU quota such as 0.5 or 2 (default 1)\n"
	"  --tmp-size MIB     size of the private /tmp in MiB (default 256)\n"
	"  --allow-nested     let sandboxes create their own namespaces (bubblewrap)\n"
	"  --no-allow-nested  refuse that again (the default)\n"
	"  --network MODE     egress: none (the default: no network at all), allowlist\n"
	"                     (only what --allow lists) or open (any public address);\n"
	"                     on set, the entries stay unless --allow or --no-allow is\n"
	"                     given, and none drops them\n"
	"  --allow ENTRY      what the sandbox may reach, repeatable; replaces the listed\n"
	"                     entries: example.com, *.example.com (names below it),\n"
	"                     example.com:443, 10.0.0.5, [2001:db8::1]:443.  Private and\n"
	"                     loopback addresses only when listed literally; with open,\n"
	"                     only IP addresses.  On set alone it keeps the mode\n"
	"  --no-allow         (set) drop the listed entries, keeping the mode\n"
	"  --force            delete even with active API keys, revoking them\n" ADMIN_COMMON_HELP;

enum {
	OPT_MEMORY = 256, OPT_PIDS, OPT_CPUS, OPT_TMP_SIZE, OPT_ALLOW_NESTED, OPT_NO_ALLOW_NESTED,
	OPT_FORCE, OPT_NETWORK, OPT_ALLOW, OPT_NO_ALLOW,
};

static const struct option env_longopts[] = {
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "tmp-size", required_argument, NULL, OPT_TMP_SIZE },
	{ "allow-nested", no_argument, NULL, OPT_ALLOW_NESTED },
	{ "no-allow-nested", no_argument, NULL, OPT_NO_ALLOW_NESTED },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "no-allow", no_argument, NULL, OPT_NO_ALLOW },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static const char *option_name(int val)
{
	for (const struct option *p = env_longopts; p->name; p++)
		if (p->val == val)
			return p->name;
	return "?";
}

/* The settings given on the command line; a flag says which. */
struct env_changes {
	bool memory, pids, cpus, tmp, nested;
	uint64_t memory_mib, npids, tmp_mib;
	uint32_t cpu_milli;
	bool allow_nested;
	const char *network;         /* --network: a mode, NULL when not given */
	const char **allow;          /* --allow, in order */
	size_t nallow;
	bool no_allow;
	const char *first;           /* the first such option, for messages */
};

/* The network policy `c` asks for, from what `e` holds now: --network
 * sets the mode (none drops the entries), --allow replaces the entries,
 * --no-allow drops them; what is not given stays.  e->network becomes
 * the new policy's text.  EINVAL with a sentence when the result is not a
 * policy. */
static int apply_network(const struct env_changes *c, struct store_env *e, struct cr_error *err)
{
	struct egress_policy now = EGRESS_POLICY_INIT, p = EGRESS_POLICY_INIT;
	struct cr_error perr = CR_ERROR_INIT;
	char **kept = NULL;
	const char *const *entries = NULL;
	const char *mode;
	size_t n = 0;
	int r;

	if (c->network == NULL && c->nallow == 0 && !c->no_allow)
		return 0;
	if (egress_policy_parse_string(e->network ? e->network : "none", &now, &perr) < 0) {
		cr_error_setn(err, EINVAL, "environment '%s' holds a network policy that does "
			      "not parse (%s); give --network and --allow", e->name, perr.msg);
		cr_error_release(&perr);
		return -1;
	}
	mode = c->network ? c->network : egress_mode_name(now.mode);
	if (c->nallow > 0) {
		entries = c->allow;
		n = c->nallow;
		if (strcmp(mode, "none") == 0) {
			egress_policy_release(&now);
			return cr_error_setn(err, EINVAL,
					     "--allow: environment '%s' has network none, which takes "
					     "no entries; give --network allowlist or --network open "
					     "too", e->name);
		}
	} else if (!c->no_allow && strcmp(mode, "none") != 0) {
		kept = xmalloc((now.nrules ? now.nrules : 1) * sizeof(*kept));
		for (n = 0; n < now.nrules; n++)
			kept[n] = egress_rule_to_string(&now.rules[n]);
		entries = (const char *const *)kept;
	}
	r = egress_policy_parse(mode, entries, n, &p, &perr);
	if (r < 0 && kept) {
		cr_error_setn(err, EINVAL, "%s (environment '%s' lists it already: replace the "
			      "entries with --allow or drop them with --no-allow)", perr.msg,
			      e->name);
		cr_error_release(&perr);
	} else if (r < 0) {
		cr_error_setn(err, EINVAL, "%s", perr.msg);
		cr_error_release(&perr);
	} else {
		free(e->network);
		e->network = egress_policy_to_string(&p);
	}
	for (size_t i = 0; kept && i < n; i++)
		free(kept[i]);
	free(kept);
	egress_policy_release(&now);
	egress_policy_release(&p);
	return r;
}

static void env_changes_release(struct env_changes *c)
{
	free(c->allow);
}

static void apply_changes(const struct env_changes *c, struct store_env *e)
{
	if (c->memory)
		e->memory_mib = (int64_t)c->memory_mib;
	if (c->pids)
		e->pids = (int64_t)c->npids;
	if (c->cpus)
		e->cpu_milli = c->cpu_milli;
	if (c->tmp)
		e->tmp_mib = (int64_t)c->tmp_mib;
	if (c->nested)
		e->allow_nested = c->allow_nested;
}

static void print_env(const struct store_env *e)
{
	cleanup_free char *cpus = admin_format_cpus(e->cpu_milli);

	printf("name:          %s\n", e->name);
	printf("id:            %lld\n", (long long)e->id);
	printf("image:         %s\n", e->image);
	printf("network:       %s\n", e->network);
	printf("memory:        %lld MiB\n", (long long)e->memory_mib);
	printf("pids:          %lld\n", (long long)e->pids);
	printf("cpus:          %s\n", cpus);
	printf("tmp size:      %lld MiB\n", (long long)e->tmp_mib);
	printf("allow nested:  %s\n", e->allow_nested ? "yes" : "no");
	printf("created:       %s\n", e->created_at);
}

static int env_list(const struct admin_opts *o, struct store_state *s)
{
	static const char *const headers[] = { "NAME", "IMAGE", "NETWORK", "MEMORY", "PIDS",
					       "CPUS", "TMP", "NESTED", "CREATED" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_env *v;
	size_t n;

	if (store_env_list(s->store, &v, &n, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_env_json(&v[i]));
		admin_print_json(json_pack("{s:o}", "environments", a));
	} else {
		struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *mem = xasprintf("%lld MiB", (long long)v[i].memory_mib);
			cleanup_free char *pids = xasprintf("%lld", (long long)v[i].pids);
			cleanup_free char *cpus = admin_format_cpus(v[i].cpu_milli);
			cleanup_free char *tmp = xasprintf("%lld MiB", (long long)v[i].tmp_mib);
			admin_table_add(t, v[i].name, v[i].image, v[i].network, mem, pids, cpus, tmp,
					v[i].allow_nested ? "yes" : "no", v[i].created_at);
		}
		admin_table_print(t, stdout);
	}
	store_env_list_free(v, n);
	return 0;
}

static int env_create(const struct admin_opts *o, struct store_state *s, const char *name,
		      const struct env_changes *c)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_env e = { 0 };

	store_env_defaults(&e);
	e.name = xstrdup(name);
	apply_changes(c, &e);
	if (apply_network(c, &e, &err) < 0 || store_env_create(s->store, &e, &err) < 0) {
		store_env_release(&e);
		return admin_fail(o->verb, &err);
	}
	if (o->json)
		admin_print_json(cli_env_json(&e));
	else
		printf("created environment '%s'\n", e.name);
	store_env_release(&e);
	return 0;
}

static int env_show_or_set(const struct admin_opts *o, struct store_state *s, const char *name,
			   const struct env_changes *c, bool set)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_env e;

	if (store_env_get(s->store, name, &e, &err) < 0)
		return admin_fail(o->verb, &err);
	if (set) {
		apply_changes(c, &e);
		if (apply_network(c, &e, &err) < 0 || store_env_update(s->store, &e, &err) < 0) {
			store_env_release(&e);
			return admin_fail(o->verb, &err);
		}
	}
	if (o->json)
		admin_print_json(cli_env_json(&e));
	else if (set)
		printf("updated environment '%s'\n", e.name);
	else
		print_env(&e);
	store_env_release(&e);
	return 0;
}

static int env_delete(const struct admin_opts *o, struct store_state *s, const char *name,
		      bool force)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_env e;
	bool removed = false;

	if (store_env_get(s->store, name, &e, &err) < 0)
		return admin_fail(o->verb, &err);
	if (store_env_delete(s->store, name, force, &err) < 0) {
		store_env_release(&e);
		if (err.errnum == EBUSY) {
			fprintf(stderr, "corral %s: %s; revoke the keys first, or use --force to "
				"revoke them with the environment\n", o->verb, err.msg);
			cr_error_release(&err);
			return 1;
		}
		return admin_fail(o->verb, &err);
	}
	/* Environment ids are never reused, so these homes are unreachable
	 * now: remove them rather than leave them behind. */
	if (store_state_remove_home(s, e.id, NULL, &removed, &err) < 0) {
		store_env_release(&e);
		cr_error_wrap(&err, "environment '%s' deleted, but its thread homes remain", name);
		return admin_fail(o->verb, &err);
	}
	if (o->json)
		admin_print_json(json_pack("{s:s,s:b}", "deleted", name, "homes_removed", removed));
	else
		printf("deleted environment '%s'\n", name);
	store_env_release(&e);
	return 0;
}

int cmd_env(int argc, char **argv)
{
	struct admin_opts o = { .verb = "env" };
	struct env_changes c __attribute__((cleanup(env_changes_release))) = { 0 };
	struct cr_error err = CR_ERROR_INIT;
	struct egress_policy policy = EGRESS_POLICY_INIT;
	struct store_state s;
	const char *sub, *name = NULL;
	bool force = false;
	uint64_t v;
	int ch, rc;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", env_longopts, NULL)) != -1) {
		const char *a = optarg;
		if (admin_common_option(&o, ch, a))
			continue;
		switch (ch) {
		case OPT_MEMORY:
			if (sandbox_parse_uint(a, "--memory (MiB)", 8, 1u << 20, &c.memory_mib, &err) < 0)
				return admin_bad_usage(o.verb, &err);
			c.memory = true;
			break;
		case OPT_PIDS:
			if (sandbox_parse_uint(a, "--pids", 2, 4194304, &c.npids, &err) < 0)
				return admin_bad_usage(o.verb, &err);
			c.pids = true;
			break;
		case OPT_CPUS:
			if (sandbox_parse_cpus(a, "--cpus", &c.cpu_milli, &err) < 0)
				return admin_bad_usage(o.verb, &err);
			c.cpus = true;
			break;
		case OPT_TMP_SIZE:
			if (sandbox_parse_uint(a, "--tmp-size (MiB)", 1, 1u << 20, &v, &err) < 0)
				return admin_bad_usage(o.verb, &err);
			c.tmp_mib = v;
			c.tmp = true;
			break;
		case OPT_ALLOW_NESTED:
		case OPT_NO_ALLOW_NESTED:
			c.nested = true;
			c.allow_nested = ch == OPT_ALLOW_NESTED;
			break;
		case OPT_FORCE:
			force = true;
			break;
		case OPT_NETWORK:
			if (egress_policy_parse(a, NULL, 0, &policy, &err) < 0) {
				cr_error_wrap(&err, "--network");
				return admin_bad_usage(o.verb, &err);
			}
			egress_policy_release(&policy);
			c.network = a;
			break;
		case OPT_ALLOW:
			c.allow = xrealloc(c.allow, (c.nallow + 1) * sizeof(*c.allow));
			c.allow[c.nallow++] = a;
			break;
		case OPT_NO_ALLOW:
			c.no_allow = true;
			break;
		default:
			return admin_option_error(o.verb, ch, argv);
		}
		if (ch != OPT_FORCE && c.first == NULL)
			c.first = option_name(ch);
	}
	if (o.help) {
		fputs(env_usage, stdout);
		return 0;
	}
	if (optind >= argc)
		return admin_usage_error(o.verb, "give a subcommand: create, list, show, set or delete");
	sub = argv[optind++];
	if (strcmp(sub, "list") == 0) {
		if (optind < argc)
			return admin_usage_error(o.verb, "list takes no argument (found '%s')",
						 argv[optind]);
	} else if (strcmp(sub, "create") == 0 || strcmp(sub, "show") == 0 ||
		   strcmp(sub, "set") == 0 || strcmp(sub, "delete") == 0) {
		if (optind >= argc)
			return admin_usage_error(o.verb, "%s needs an environment name", sub);
		name = argv[optind++];
		if (optind < argc)
			return admin_usage_error(o.verb, "%s takes one name (found also '%s')", sub,
						 argv[optind]);
		if (store_check_env_name(name, &err) < 0)
			return admin_fail(o.verb, &err);
	} else {
		return admin_usage_error(o.verb, "unknown subcommand '%s'", sub);
	}
	if (c.first && strcmp(sub, "create") != 0 && strcmp(sub, "set") != 0)
		return admin_usage_error(o.verb, "--%s applies only to 'env create' and 'env set'",
					 c.first);
	if (c.nested && !c.allow_nested && strcmp(sub, "create") == 0)
		return admin_usage_error(o.verb, "--no-allow-nested applies only to 'env set'");
	if (force && strcmp(sub, "delete") != 0)
		return admin_usage_error(o.verb, "--force applies only to 'env delete'");
	if (strcmp(sub, "set") == 0 && c.first == NULL)
		return admin_usage_error(o.verb, "set: nothing to change (give --memory, --pids, "
						 "--cpus, --tmp-size, --[no-]allow-nested, --network, "
						 "--allow or --no-allow)");
	if (c.no_allow && strcmp(sub, "create") == 0)
		return admin_usage_error(o.verb, "--no-allow applies only to 'env set'");
	if (c.no_allow && c.nallow > 0)
		return admin_usage_error(o.verb, "--allow and --no-allow contradict each other");
	if (c.nallow > 0 && c.network && strcmp(c.network, "none") == 0)
		return admin_usage_error(o.verb, "--allow: --network none takes no entries (it "
						 "allows no egress at all)");
	if (c.nallow > 0 && c.network == NULL && strcmp(sub, "create") == 0)
		return admin_usage_error(o.verb, "--allow needs --network allowlist or --network "
						 "open (the default, none, takes no entries)");
	/* Each entry on its own now, before the state directory is opened;
	 * the whole policy once the mode is known (on set, from the store). */
	if (c.nallow > 0) {
		const char *mode = c.network && strcmp(c.network, "open") == 0 ? "open" : "allowlist";
		if (egress_policy_parse(mode, c.allow, c.nallow, &policy, &err) < 0) {
			cr_error_wrap(&err, "--allow");
			return admin_bad_usage(o.verb, &err);
		}
		egress_policy_release(&policy);
	}

	if ((rc = admin_open(&o, &s)) != 0)
		return rc;
	if (strcmp(sub, "list") == 0)
		rc = env_list(&o, &s);
	else if (strcmp(sub, "create") == 0)
		rc = env_create(&o, &s, name, &c);
	else if (strcmp(sub, "show") == 0)
		rc = env_show_or_set(&o, &s, name, &c, false);
	else if (strcmp(sub, "set") == 0)
		rc = env_show_or_set(&o, &s, name, &c, true);
	else
		rc = env_delete(&o, &s, name, force);
	store_state_close(&s);
	return rc;
}
