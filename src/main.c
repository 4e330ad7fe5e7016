/* main.c - the corral binary: dispatch to a subcommand. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CORRAL_VERSION "0.1.0"

static const char usage[] =
	"usage: corral <command> [options]\n"
	"\n"
	"commands:\n"
	"  serve     run the HTTP API (Baponi-compatible)\n"
	"  exec      run code through a corral server\n"
	"  run       run one program in a fresh sandbox on this machine\n"
	"  env       create, list, show, change and delete environments\n"
	"  key       create, list and revoke API keys\n"
	"  thread    list, show and delete the threads of an environment\n"
	"  usage     credits and executions per key and month\n"
	"  plan      list plans and set their limits\n"
	"  connector store credentials and attach them to environments\n"
	"  version   print the version\n"
	"\n"
	"'corral <command> --help' describes a command.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

#ifdef CORRAL_NET
#define NET(fn) fn
#else
/* In corral itself the network commands run corral-net, built beside it
 * from the same sources with libmicrohttpd and libcurl (see the Makefile
 * for why they are kept out of this binary). */
static int run_net(int argc, char **argv)
{
	char self[PATH_MAX], net[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	(void)argc;
	if (n <= 0) {
		fprintf(stderr, "corral: cannot find my own executable: %s\n", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(net, sizeof(net), "%s/corral-net", self);
	execv(net, cli_process_argv);
	fprintf(stderr, "corral %s: cannot run '%s' (it is built and installed beside corral): %s\n",
		argv[0], net, strerror(errno));
	return 1;
}
#define NET(fn) run_net
#endif

static const struct command commands[] = {
	{ "serve", NET(cmd_serve) },
#if !defined(CORRAL_NET) || defined(CORRAL_HAVE_EXEC)
	{ "exec", NET(cmd_exec) },
#endif
	{ "run", cmd_run },
	{ "env", cmd_env },
	{ "key", cmd_key },
	{ "thread", cmd_thread },
	{ "usage", cmd_usage },
	{ "plan", cmd_plan },
	{ "connector", cmd_connector },
};

int main(int argc, char **argv)
{
	cli_process_argv = argv;
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("corral %s\n", CORRAL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "corral: unknown command '%s'\n%s", argv[1], usage);
	return EXIT_USAGE;
}
