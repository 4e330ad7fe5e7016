/* cli-thread.c - `corral thread`: list, inspect and delete the persistent
 * homes of an environment. */
#define _GNU_SOURCE
#include "cli.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

static const char thread_usage[] =
	"usage: corral thread list --env NAME\n"
	"       corral thread show ID --env NAME\n"
	"       corral thread delete ID --env NAME\n"
	"\n"
	"A thread is a persistent home directory scoped to (environment, thread id).\n"
	"'delete' removes its record and its home with every file in it.\n"
	"\n"
	"  --env NAME         the environment (required)\n" ADMIN_COMMON_HELP;

enum { OPT_ENV = 256 };

static const struct option thread_longopts[] = {
	{ "env", required_argument, NULL, OPT_ENV },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static int thread_list(const struct admin_opts *o, struct store_state *s,
		       const struct store_env *env)
{
	static const char *const headers[] = { "THREAD", "CREATED", "LAST USED", "SIZE" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_thread *v;
	size_t n;

	if (store_thread_list(s->store, env->id, &v, &n, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_thread_json(&v[i], env->name));
		admin_print_json(json_pack("{s:s,s:o}", "environment", env->name, "threads", a));
	} else {
		struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *size = admin_format_bytes(v[i].bytes);
			admin_table_add(t, v[i].thread_id, v[i].created_at, v[i].last_used_at, size);
		}
		admin_table_print(t, stdout);
	}
	store_thread_list_free(v, n);
	return 0;
}

static int thread_show(const struct admin_opts *o, struct store_state *s,
		       const struct store_env *env, const char *id)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_thread t;
	cleanup_free char *home = NULL;
	cleanup_free char *size = NULL;

	if (store_thread_get(s->store, env->id, id, &t, &err) < 0) {
		cr_error_wrap(&err, "environment '%s'", env->name);
		return admin_fail(o->verb, &err);
	}
	home = store_state_thread_home(s, env->id, id, NULL);
	if (o->json) {
		json_t *j = cli_thread_json(&t, env->name);
		json_object_set_new(j, "home", json_string(home));
		admin_print_json(j);
	} else {
		size = admin_format_bytes(t.bytes);
		printf("thread:       %s\n", t.thread_id);
		printf("environment:  %s\n", env->name);
		printf("created:      %s\n", t.created_at);
		printf("last used:    %s\n", t.last_used_at);
		printf("size:         %s\n", size);
		printf("home:         %s\n", home);
	}
	store_thread_release(&t);
	return 0;
}

static int thread_delete(const struct admin_opts *o, struct store_state *s,
			 const struct store_env *env, const char *id)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_thread t;
	bool recorded = true, removed = false;

	/* A home without a record (a crash between creating one and recording
	 * it) is still worth removing; neither is "not found". */
	if (store_thread_get(s->store, env->id, id, &t, &err) < 0) {
		if (err.errnum != ENOENT)
			return admin_fail(o->verb, &err);
		cr_error_release(&err);
		recorded = false;
	} else {
		store_thread_release(&t);
	}
	if (store_state_remove_home(s, env->id, id, &removed, &err) < 0) {
		cr_error_wrap(&err, "thread '%s' not deleted", id);
		return admin_fail(o->verb, &err);
	}
	if (!recorded && !removed) {
		fprintf(stderr, "corral %s: environment '%s': thread '%s' not found\n", o->verb,
			env->name, id);
		return 1;
	}
	if (recorded && store_thread_delete(s->store, env->id, id, &err) < 0 &&
	    err.errnum != ENOENT)
		return admin_fail(o->verb, &err);
	cr_error_release(&err);
	if (o->json)
		admin_print_json(json_pack("{s:s,s:s,s:b}", "deleted", id, "environment", env->name,
					   "home_removed", removed));
	else
		printf("deleted thread '%s' of environment '%s'\n", id, env->name);
	return 0;
}

int cmd_thread(int argc, char **argv)
{
	struct admin_opts o = { .verb = "thread" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_state s;
	struct store_env env;
	const char *env_name = NULL, *sub, *id = NULL;
	int ch, rc;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", thread_longopts, NULL)) != -1) {
		if (admin_common_option(&o, ch, optarg))
			continue;
		if (ch != OPT_ENV)
			return admin_option_error(o.verb, ch, argv);
		env_name = optarg;
	}
	if (o.help) {
		fputs(thread_usage, stdout);
		return 0;
	}
	if (optind >= argc)
		return admin_usage_error(o.verb, "give a subcommand: list, show or delete");
	sub = argv[optind++];
	if (strcmp(sub, "show") == 0 || strcmp(sub, "delete") == 0) {
		if (optind >= argc)
			return admin_usage_error(o.verb, "%s needs a thread id", sub);
		id = argv[optind++];
	} else if (strcmp(sub, "list") != 0) {
		return admin_usage_error(o.verb, "unknown subcommand '%s'", sub);
	}
	if (optind < argc)
		return admin_usage_error(o.verb, "unexpected argument '%s'", argv[optind]);
	if (env_name == NULL)
		return admin_usage_error(o.verb, "%s needs --env NAME", sub);
	if (store_check_env_name(env_name, &err) < 0) {
		cr_error_wrap(&err, "--env");
		return admin_bad_usage(o.verb, &err);
	}
	if (id && store_check_thread_id(id, &err) < 0)
		return admin_bad_usage(o.verb, &err);

	if ((rc = admin_open(&o, &s)) != 0)
		return rc;
	if (store_env_get(s.store, env_name, &env, &err) < 0) {
		rc = admin_fail(o.verb, &err);
	} else {
		if (strcmp(sub, "list") == 0)
			rc = thread_list(&o, &s, &env);
		else if (strcmp(sub, "show") == 0)
			rc = thread_show(&o, &s, &env, id);
		else
			rc = thread_delete(&o, &s, &env, id);
		store_env_release(&env);
	}
	store_state_close(&s);
	return rc;
}
