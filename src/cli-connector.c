/* cli-connector.c - `corral connector`: store credentials encrypted, attach
 * them to environments, rotate and delete them (secrets/connector.h).
 *
 * A secret is read from stdin or a file, never from the command line: the
 * command line of a process is readable by every user of the machine
 * (ps, /proc/PID/cmdline) and lands in shell history.  Options that look
 * like they carry a secret (--token, --password, ...) are refused with a
 * sentence saying so, and so is any argument that looks like a known kind
 * of secret; no message quotes such an argument.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "secrets/connector.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define RECENT_USES 10

static const char connector_usage[] =
	"usage: corral connector add TYPE --name NAME [SETTINGS] [--secret-file PATH|-]\n"
	"       corral connector list [--env ENV]\n"
	"       corral connector show NAME\n"
	"       corral connector rotate NAME [--secret-file PATH|-] [--var NAME ...]\n"
	"                                    [--access-key-id ID]\n"
	"       corral connector delete NAME [--force]\n"
	"       corral connector attach NAME --env ENV\n"
	"       corral connector detach NAME --env ENV\n"
	"\n"
	"A connector is a credential stored once, encrypted with the state directory's\n"
	"secrets.key, and attached to environments: every execution of an attached\n"
	"environment receives it (as variables, and for github a read-only\n"
	"/etc/gitconfig), and corral scrubs it from what the execution prints.\n"
	"The secret is read from stdin or --secret-file, never from the command line,\n"
	"and is never shown again: 'show' gives a fingerprint (a keyed hash) instead.\n"
	"'rotate' reads a new secret the same way and replaces the old one in place.\n"
	"\n"
	"TYPE, its settings, and what stdin holds:\n"
	"  anthropic  [--base-url URL]                  the API key\n"
	"  github     [--base-url URL] [--api-host H]   the token (base URL default\n"
	"                                               https://github.com/)\n"
	"  postgres                                     a URL: postgres://USER:PASSWORD@HOST:PORT/DB\n"
	"  postgres   --host H --user U [--port P] [--database D]\n"
	"                                               the password\n"
	"  aws        [--access-key-id ID] [--region R] NAME=VALUE lines: AWS_SECRET_ACCESS_KEY,\n"
	"                                               AWS_SESSION_TOKEN (optional),\n"
	"                                               AWS_ACCESS_KEY_ID (or the option)\n"
	"  env        --var NAME                        the value of NAME (it may span lines)\n"
	"  env        [--var NAME ...]                  NAME=VALUE lines (with --var: exactly\n"
	"                                               those names)\n"
	"\n"
	"NAME=VALUE lines: one variable per line, the value running to the end of the\n"
	"line as it is (no quotes, no escapes, a final CR removed); blank lines and\n"
	"lines starting with '#' are skipped.  A key, token, URL or password loses its\n"
	"trailing newlines, a single env value one trailing newline.  A secret has 4 to\n"
	"65536 bytes; env names cannot be ones the sandbox sets (PATH, HOME, LD_*...).\n"
	"Two connectors that set the same variable cannot be attached to one environment.\n"
	"\n"
	"  --name NAME          the connector's name (add): a-z, 0-9, '-', '_'\n"
	"  --mode MODE          inject (default): the secret enters the sandbox; or broker\n"
	"                       (anthropic, github): the sandbox gets a placeholder and a\n"
	"                       loopback endpoint, and corral adds the secret upstream\n"
	"  --secret-file PATH   read the secret from PATH instead of stdin ('-': stdin)\n"
	"  --env ENV            the environment (attach, detach; list: only its connectors)\n"
	"  --force              delete an attached connector, detaching it\n" ADMIN_COMMON_HELP
	"\n"
	"examples:\n"
	"  corral connector add github --name gh < token.txt\n"
	"  corral connector add anthropic --name claude --secret-file ~/.anthropic-key\n"
	"  corral connector add env --name npm --var NPM_TOKEN < npm-token.txt\n"
	"  corral connector attach gh --env default\n";

enum {
	OPT_NAME = 256, OPT_MODE, OPT_BASE_URL, OPT_API_HOST, OPT_HOST, OPT_PORT, OPT_USER,
	OPT_DATABASE, OPT_REGION, OPT_ACCESS_KEY_ID, OPT_VAR, OPT_SECRET_FILE, OPT_ENV, OPT_FORCE,
	OPT_SECRET_REFUSED,
};

static const struct option connector_longopts[] = {
	{ "name", required_argument, NULL, OPT_NAME },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "base-url", required_argument, NULL, OPT_BASE_URL },
	{ "api-host", required_argument, NULL, OPT_API_HOST },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "user", required_argument, NULL, OPT_USER },
	{ "database", required_argument, NULL, OPT_DATABASE },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "access-key-id", required_argument, NULL, OPT_ACCESS_KEY_ID },
	{ "var", required_argument, NULL, OPT_VAR },
	{ "secret-file", required_argument, NULL, OPT_SECRET_FILE },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "force", no_argument, NULL, OPT_FORCE },
	/* Options a secret would come in by: refused, whatever follows. */
	{ "token", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "api-key", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "apikey", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "key", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "password", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "secret", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "secret-access-key", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "aws-secret-access-key", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "session-token", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "url", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "database-url", optional_argument, NULL, OPT_SECRET_REFUSED },
	{ "value", optional_argument, NULL, OPT_SECRET_REFUSED },
	ADMIN_COMMON_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static const char secret_hint[] =
	"a secret is never taken from the command line, which every user of this machine can "
	"read (ps, /proc) and shell history keeps; pipe it on stdin (e.g. 'corral connector add "
	"github --name gh < token.txt') or give --secret-file PATH";

/* The option as typed, without any "=value" (which may be a secret). */
static char *option_as_typed(const char *arg)
{
	return xstrndup(arg, strcspn(arg, "="));
}

static int option_error(const char *verb, int c, char **argv)
{
	cleanup_free char *typed = option_as_typed(argv[optind - 1]);

	if (c == ':')
		return admin_usage_error(verb, "option '%s' needs a value", typed);
	if (optopt > 0 && optopt < 256)
		return admin_usage_error(verb, "unknown option '-%c'", optopt);
	return admin_usage_error(verb, "unknown option '%s'", typed);
}

/* Known shapes of secrets, and URLs with a password in them. */
static bool looks_secret(const char *arg)
{
	static const char *const prefixes[] = { "sk-ant-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
						"github_pat_", "glpat-", "xoxb-", "xoxp-" };
	const char *v = arg, *scheme;

	if (strncmp(arg, "--", 2) == 0 && strchr(arg, '='))
		v = strchr(arg, '=') + 1;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strncmp(v, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	if (strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0)
		return true;
	scheme = strstr(v, "://");
	if (scheme) {
		const char *auth = scheme + 3;
		size_t len = strcspn(auth, "/?#");
		const char *at = memchr(auth, '@', len);
		if (at && memchr(auth, ':', (size_t)(at - auth)))
			return true;
	}
	return false;
}

/* Read the whole secret input: stdin or a file.  0, or an exit code after
 * saying why not.  At a terminal the input is not echoed. */
static int read_input(const char *verb, const char *path, char **buf, size_t *len)
{
	bool from_stdin = path == NULL || strcmp(path, "-") == 0;
	struct termios saved, quiet;
	bool tty = false;
	size_t cap = 4096, n = 0;
	char *b;
	int fd;

	*buf = NULL;
	*len = 0;
	if (from_stdin) {
		fd = STDIN_FILENO;
		if (isatty(fd) && tcgetattr(fd, &saved) == 0) {
			tty = true;
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(fd, TCSAFLUSH, &quiet);
			fprintf(stderr, "corral %s: type or paste the secret, then Ctrl-D on a line of its "
				"own (it is not echoed)\n", verb);
		}
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return admin_usage_error(verb, "--secret-file: cannot open '%s': %s", path,
						 strerror(errno));
	}
	b = xmalloc(cap);
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *bigger;
			if (cap > CONNECTOR_MAX_INPUT)
				break;
			bigger = xmalloc(cap * 2);
			memcpy(bigger, b, n);
			sodium_memzero(b, n);
			free(b);
			b = bigger;
			cap *= 2;
		}
		r = read_noeintr(fd, b + n, cap - n);
		if (r < 0) {
			int e = errno;
			if (tty)
				tcsetattr(fd, TCSAFLUSH, &saved);
			if (!from_stdin)
				close(fd);
			sodium_memzero(b, n);
			free(b);
			fprintf(stderr, "corral %s: cannot read the secret: %s\n", verb, strerror(e));
			return 1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (tty) {
		tcsetattr(fd, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	if (!from_stdin)
		close(fd);
	if (n > CONNECTOR_MAX_INPUT) {
		sodium_memzero(b, n);
		free(b);
		return admin_usage_error(verb, "the secret input is larger than %u bytes",
					 CONNECTOR_MAX_INPUT);
	}
	if (n == 0) {
		free(b);
		if (from_stdin)
			return admin_usage_error(verb,
						 "no secret on stdin: pipe it in (e.g. 'corral connector "
						 "add github --name gh < token.txt') or give --secret-file PATH");
		return admin_usage_error(verb, "--secret-file: '%s' is empty", path);
	}
	*buf = b;
	*len = n;
	return 0;
}

static void print_settings(const struct store_connector *c)
{
	json_t *o = connector_json(c), *settings = json_object_get(o, "settings"), *v;
	const char *key;

	json_object_foreach(settings, key, v)
	{
		cleanup_free char *label = xasprintf("%s:", key);
		for (char *p = label; *p; p++)
			if (*p == '_')
				*p = ' ';
		if (json_is_string(v))
			printf("%-15s%s\n", label, json_string_value(v));
		else if (json_is_integer(v))
			printf("%-15s%lld\n", label, (long long)json_integer_value(v));
		else
			printf("%-15s-\n", label);
	}
	json_decref(o);
}

static char *join(char *const *v, size_t n, const char *sep)
{
	char *s = xstrdup("");

	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", s, i ? sep : "", v[i]);
		free(s);
		s = next;
	}
	return s;
}

static int connector_show(const struct admin_opts *o, struct store_state *s, const char *name)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector c;
	struct store_connector_use *u = NULL;
	size_t nu = 0;

	if (store_connector_get(s->store, name, &c, &err) < 0)
		return admin_fail(o->verb, &err);
	if (store_connector_use_list(s->store, c.id, NULL, RECENT_USES, &u, &nu, &err) < 0) {
		store_connector_release(&c);
		return admin_fail(o->verb, &err);
	}
	if (o->json) {
		json_t *j = connector_json(&c), *a = json_array();
		for (size_t i = 0; i < nu; i++)
			json_array_append_new(a, connector_use_json(&u[i]));
		json_object_set_new(j, "recent_uses", a);
		admin_print_json(j);
	} else {
		cleanup_free char *injects = join(c.names, c.nnames, " ");
		cleanup_free char *envs = join(c.envs, c.nenvs, ", ");
		printf("name:          %s\n", c.name);
		printf("id:            %lld\n", (long long)c.id);
		printf("type:          %s\n", c.type);
		printf("mode:          %s\n", c.mode);
		print_settings(&c);
		printf("injects:       %s\n", injects);
		printf("fingerprint:   %s\n", c.fingerprint);
		printf("created:       %s\n", c.created_at);
		printf("rotated:       %s\n", c.rotated_at ? c.rotated_at : "-");
		printf("environments:  %s\n", c.nenvs ? envs : "-");
		printf(nu ? "recent uses:\n" : "recent uses:   -\n");
		for (size_t i = 0; i < nu; i++)
			printf("  %s  %s  %s\n", u[i].used_at, u[i].trace_id,
			       u[i].env_name ? u[i].env_name : "-");
	}
	store_connector_use_list_free(u, nu);
	store_connector_release(&c);
	return 0;
}

static int connector_list(const struct admin_opts *o, struct store_state *s, const char *env)
{
	static const char *const headers[] = { "NAME", "TYPE", "MODE", "FINGERPRINT",
					       "ENVIRONMENTS", "CREATED", "ROTATED" };
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector *v;
	size_t n;

	if (store_connector_list(s->store, env, &v, &n, &err) < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, connector_json(&v[i]));
		admin_print_json(json_pack("{s:o}", "connectors", a));
	} else {
		struct admin_table *t = admin_table_new(ARRAY_SIZE(headers), headers);
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *envs = join(v[i].envs, v[i].nenvs, ",");
			admin_table_add(t, v[i].name, v[i].type, v[i].mode, v[i].fingerprint,
					v[i].nenvs ? envs : NULL, v[i].created_at, v[i].rotated_at);
		}
		admin_table_print(t, stdout);
	}
	store_connector_list_free(v, n);
	return 0;
}

static int connector_add_or_rotate(const struct admin_opts *o, struct store_state *s,
				   struct connector_spec *spec, bool rotate)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector c;
	int r = rotate ? connector_rotate(s, spec, &c, &err) : connector_add(s, spec, &c, &err);

	if (r < 0)
		return admin_fail(o->verb, &err);
	if (o->json)
		admin_print_json(connector_json(&c));
	else if (rotate)
		printf("rotated connector '%s' (%s, fingerprint %s)\n", c.name, c.type, c.fingerprint);
	else
		printf("created connector '%s' (%s, fingerprint %s)\n", c.name, c.type, c.fingerprint);
	store_connector_release(&c);
	return 0;
}

static int connector_delete(const struct admin_opts *o, struct store_state *s, const char *name,
			    bool force)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector c;

	if (store_connector_get(s->store, name, &c, &err) < 0)
		return admin_fail(o->verb, &err);
	if (store_connector_delete(s->store, name, force, &err) < 0) {
		store_connector_release(&c);
		if (err.errnum == EBUSY) {
			fprintf(stderr, "corral %s: %s; detach it first, or use --force to detach and "
				"delete it\n", o->verb, err.msg);
			cr_error_release(&err);
			return 1;
		}
		return admin_fail(o->verb, &err);
	}
	if (o->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < c.nenvs; i++)
			json_array_append_new(a, json_string(c.envs[i]));
		admin_print_json(json_pack("{s:s,s:o}", "deleted", name, "detached", a));
	} else if (c.nenvs) {
		cleanup_free char *envs = join(c.envs, c.nenvs, "', '");
		printf("deleted connector '%s' (detached from '%s')\n", name, envs);
	} else {
		printf("deleted connector '%s'\n", name);
	}
	store_connector_release(&c);
	return 0;
}

static int connector_attach(const struct admin_opts *o, struct store_state *s, const char *name,
			    const char *env, bool attach)
{
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector c;
	int r = attach ? store_connector_attach(s->store, name, env, &err)
		       : store_connector_detach(s->store, name, env, &err);

	if (r < 0)
		return admin_fail(o->verb, &err);
	if (o->json) {
		if (store_connector_get(s->store, name, &c, &err) < 0)
			return admin_fail(o->verb, &err);
		admin_print_json(connector_json(&c));
		store_connector_release(&c);
	} else if (attach) {
		printf("attached connector '%s' to environment '%s'\n", name, env);
	} else {
		printf("detached connector '%s' from environment '%s'\n", name, env);
	}
	return 0;
}

/* Which options each subcommand takes. */
struct given {
	const char *first_setting;   /* the first add-only option, for messages */
	bool var, access_key_id, secret_file, env, force;
};

static int check_options(const char *verb, const char *sub, const struct given *g)
{
	bool add = strcmp(sub, "add") == 0, rotate = strcmp(sub, "rotate") == 0;
	bool list = strcmp(sub, "list") == 0, delete = strcmp(sub, "delete") == 0;
	bool attach = strcmp(sub, "attach") == 0 || strcmp(sub, "detach") == 0;

	if (g->first_setting && !add)
		return admin_usage_error(verb, "--%s applies only to 'connector add'", g->first_setting);
	if (g->access_key_id && !add && !rotate)
		return admin_usage_error(verb, "--access-key-id applies only to 'add' and 'rotate'");
	if ((g->var || g->secret_file) && !add && !rotate)
		return admin_usage_error(verb, "--%s applies only to 'add' and 'rotate'",
					 g->var ? "var" : "secret-file");
	if (g->env && !list && !attach)
		return admin_usage_error(verb, "--env applies only to 'attach', 'detach' and 'list'");
	if (g->force && !delete)
		return admin_usage_error(verb, "--force applies only to 'connector delete'");
	if (attach && !g->env)
		return admin_usage_error(verb, "%s needs --env ENV", sub);
	return 0;
}

static const char *setting_option(int ch)
{
	for (const struct option *p = connector_longopts; p->name; p++)
		if (p->val == ch)
			return p->name;
	return "?";
}

int cmd_connector(int argc, char **argv)
{
	struct admin_opts o = { .verb = "connector" };
	struct connector_spec spec = { 0 };
	struct cr_error err = CR_ERROR_INIT;
	struct given g = { 0 };
	struct store_state s;
	const char *sub, *name = NULL, *env = NULL, *secret_file = NULL;
	char **slot;
	int ch, rc = 0;

	/* Before anything else: a secret on the command line is refused even
	 * next to another mistake, and never echoed. */
	for (int i = 1; i < argc; i++)
		if (looks_secret(argv[i]))
			return admin_usage_error(o.verb,
						 "an argument looks like a secret (it is not shown here): %s",
						 secret_hint);
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", connector_longopts, NULL)) != -1) {
		const char *a = optarg;
		if (admin_common_option(&o, ch, a))
			continue;
		slot = NULL;
		switch (ch) {
		case OPT_SECRET_REFUSED: {
			cleanup_free char *typed = option_as_typed(argv[optind - 1]);
			connector_spec_release(&spec);
			return admin_usage_error(o.verb, "%s: %s", typed, secret_hint);
		}
		case OPT_NAME:
			slot = &spec.name;
			break;
		case OPT_MODE:
			slot = &spec.mode;
			break;
		case OPT_BASE_URL:
			slot = &spec.base_url;
			break;
		case OPT_API_HOST:
			slot = &spec.api_host;
			break;
		case OPT_HOST:
			slot = &spec.host;
			break;
		case OPT_PORT:
			slot = &spec.port;
			break;
		case OPT_USER:
			slot = &spec.user;
			break;
		case OPT_DATABASE:
			slot = &spec.database;
			break;
		case OPT_REGION:
			slot = &spec.region;
			break;
		case OPT_ACCESS_KEY_ID:
			slot = &spec.access_key_id;
			g.access_key_id = true;
			break;
		case OPT_VAR:
			if (strchr(a, '=')) {
				connector_spec_release(&spec);
				return admin_usage_error(o.verb,
							 "--var takes only a variable name: its value is "
							 "read from stdin or --secret-file, never from the "
							 "command line");
			}
			connector_spec_add_var(&spec, a);
			g.var = true;
			break;
		case OPT_SECRET_FILE:
			secret_file = a;
			g.secret_file = true;
			break;
		case OPT_ENV:
			env = a;
			g.env = true;
			break;
		case OPT_FORCE:
			g.force = true;
			break;
		default:
			connector_spec_release(&spec);
			return option_error(o.verb, ch, argv);
		}
		if (slot) {
			if (*slot) {
				cleanup_free char *typed = option_as_typed(argv[optind - 1]);
				connector_spec_release(&spec);
				return admin_usage_error(o.verb, "%s is given twice", typed);
			}
			*slot = xstrdup(a);
			if (ch != OPT_ACCESS_KEY_ID && g.first_setting == NULL)
				g.first_setting = setting_option(ch);
		}
	}
	if (o.help) {
		connector_spec_release(&spec);
		fputs(connector_usage, stdout);
		return 0;
	}
	if (optind >= argc) {
		connector_spec_release(&spec);
		return admin_usage_error(o.verb, "give a subcommand: add, list, show, rotate, delete, "
						 "attach or detach");
	}
	sub = argv[optind++];
	if (strcmp(sub, "list") == 0) {
		if (optind < argc)
			rc = admin_usage_error(o.verb, "list takes no argument");
	} else if (strcmp(sub, "add") == 0) {
		if (optind >= argc)
			rc = admin_usage_error(o.verb, "add needs a type: anthropic, github, postgres, "
						       "aws or env");
		else if (spec.name == NULL)
			rc = admin_usage_error(o.verb, "add needs --name NAME");
		else
			spec.type = xstrdup(argv[optind++]);
		if (rc == 0 && optind < argc)
			rc = admin_usage_error(o.verb, "add takes one type and no other argument (the "
						       "extra one is not shown): %s", secret_hint);
	} else if (strcmp(sub, "show") == 0 || strcmp(sub, "rotate") == 0 ||
		   strcmp(sub, "delete") == 0 || strcmp(sub, "attach") == 0 ||
		   strcmp(sub, "detach") == 0) {
		if (optind >= argc)
			rc = admin_usage_error(o.verb, "%s needs a connector name", sub);
		else
			name = argv[optind++];
		if (rc == 0 && optind < argc)
			rc = admin_usage_error(o.verb, "%s takes one connector name and no other argument "
						       "(the extra one is not shown)", sub);
		if (rc == 0 && store_check_connector_name(name, &err) < 0)
			rc = admin_fail(o.verb, &err);
	} else {
		rc = admin_usage_error(o.verb, "unknown subcommand (add, list, show, rotate, delete, "
					       "attach or detach)");
	}
	if (rc == 0)
		rc = check_options(o.verb, sub, &g);
	if (rc == 0 && env && store_check_env_name(env, &err) < 0) {
		cr_error_wrap(&err, "--env");
		rc = admin_bad_usage(o.verb, &err);
	}
	if (rc == 0 && strcmp(sub, "rotate") == 0)
		spec.name = xstrdup(name);
	if (rc == 0 && (strcmp(sub, "add") == 0 || strcmp(sub, "rotate") == 0))
		rc = read_input(o.verb, secret_file, &spec.input, &spec.input_len);
	if (rc == 0 && strcmp(sub, "add") == 0 && connector_spec_check(&spec, &err) < 0)
		rc = admin_fail(o.verb, &err);
	if (rc != 0) {
		connector_spec_release(&spec);
		return rc;
	}

	if ((rc = admin_open(&o, &s)) != 0) {
		connector_spec_release(&spec);
		return rc;
	}
	if (strcmp(sub, "list") == 0)
		rc = connector_list(&o, &s, env);
	else if (strcmp(sub, "add") == 0)
		rc = connector_add_or_rotate(&o, &s, &spec, false);
	else if (strcmp(sub, "rotate") == 0)
		rc = connector_add_or_rotate(&o, &s, &spec, true);
	else if (strcmp(sub, "show") == 0)
		rc = connector_show(&o, &s, name);
	else if (strcmp(sub, "delete") == 0)
		rc = connector_delete(&o, &s, name, g.force);
	else
		rc = connector_attach(&o, &s, name, env, strcmp(sub, "attach") == 0);
	connector_spec_release(&spec);
	store_state_close(&s);
	return rc;
}
