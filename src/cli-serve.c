/* cli-serve.c - `corral serve`: option parsing, then server_run(). */
#define _GNU_SOURCE
#include "cli.h"
#include "server/server.h"
#include "store/state.h"
#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char serve_usage[] =
	"usage: corral serve [--listen HOST:PORT] [--state-dir DIR] [options]\n"
	"\n"
	"Run the HTTP API (Baponi-compatible) on this machine.\n"
	"\n"
	"  --listen HOST:PORT       address to listen on (default 127.0.0.1:8080)\n"
	"  --state-dir DIR          state directory (default $CORRAL_STATE_DIR, else ./corral-data)\n"
	"  --grace SECONDS          how long SIGTERM waits for running work (default 30)\n"
	"  --request-timeout SECONDS  drop a connection idle this long (default 30)\n"
	"  --upstream-ca FILE       CA bundle the brokers trust for their upstreams\n"
	"                           (default: the system's)\n"
	"  --egress-idle SECONDS    close a proxied tunnel idle this long (default 300)\n"
	"  --log-level error|info|debug  (default info; CORRAL_TRACE=1 traces sandboxes)\n"
	"  -h, --help               show this help\n";

int cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "grace", required_argument, NULL, 'g' },
		{ "request-timeout", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "upstream-ca", required_argument, NULL, 'c' },
		{ "egress-idle", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_options o = {
		.listen = "127.0.0.1:8080",
		.state_dir = store_state_default_dir(),
		.grace_s = 30,
		.request_timeout_s = 30,
		.log_level = 1,
		.process_argv = cli_process_argv,
	};
	struct cr_error err = CR_ERROR_INIT;
	uint64_t v;
	uint32_t ip;
	uint16_t port;
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			o.listen = optarg;
			break;
		case 's':
			o.state_dir = optarg;
			break;
		case 'g':
		case 't':
			if (sandbox_parse_uint(optarg, c == 'g' ? "--grace" : "--request-timeout",
					       c == 'g' ? 0 : 1, 86400, &v, &err) < 0)
				goto usage;
			if (c == 'g')
				o.grace_s = (uint32_t)v;
			else
				o.request_timeout_s = (uint32_t)v;
			break;
		case 'c':
			if (access(optarg, R_OK) < 0) {
				cr_error_set(&err, errno, "--upstream-ca: cannot read '%s'", optarg);
				goto usage;
			}
			o.upstream_ca = optarg;
			break;
		case 'i':
			if (sandbox_parse_uint(optarg, "--egress-idle", 1, 86400, &v, &err) < 0)
				goto usage;
			o.egress_idle_s = (uint32_t)v;
			break;
		case 'v':
			if (strcmp(optarg, "error") == 0)
				o.log_level = 0;
			else if (strcmp(optarg, "info") == 0)
				o.log_level = 1;
			else if (strcmp(optarg, "debug") == 0)
				o.log_level = 2;
			else {
				cr_error_set(&err, 0, "--log-level: '%s' is not error, info or debug", optarg);
				goto usage;
			}
			break;
		case 'h':
			fputs(serve_usage, stdout);
			return 0;
		default:
			cli_option_error(c, argv, &err);
			goto usage;
		}
	}
	if (optind < argc) {
		cr_error_set(&err, 0, "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	if (server_parse_listen(o.listen, &ip, &port, &err) < 0)
		goto usage;
	if (server_run(&o, &err) < 0) {
		fprintf(stderr, "corral serve: %s\n", err.msg);
		cr_error_release(&err);
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "corral serve: %s\n(see 'corral serve --help')\n", err.msg);
	cr_error_release(&err);
	return EXIT_USAGE;
}
