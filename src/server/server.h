/* server.h - `corral serve`: the Baponi-compatible HTTP API.
 *
 * One process, two threads:
 *   - libmicrohttpd's polling thread parses requests, authenticates them
 *     against the store, validates them and answers everything that does
 *     not run code;
 *   - the main thread owns the sandbox runtime (sandbox.h): it starts the
 *     executions the HTTP thread queues, supervises them from one epoll
 *     loop, records their results and resumes the suspended connections.
 * No thread per request, no thread per sandbox.  SIGTERM drains: new work
 * gets 503, running work has `grace_s` to finish, then is killed and
 * recorded; SIGINT does the same.
 */
#ifndef CORRAL_SERVER_SERVER_H
#define CORRAL_SERVER_SERVER_H

#include <stdint.h>

#include "util/error.h"

struct server_options {
	const char *listen;          /* "127.0.0.1:8080" */
	const char *state_dir;
	uint32_t grace_s;            /* drain grace period, default 30 */
	uint32_t request_timeout_s;  /* idle connection timeout, default 30 */
	int log_level;               /* 0 error, 1 info, 2 debug */
	const char *upstream_ca;     /* CA bundle for brokers' upstreams; NULL: system */
	uint32_t egress_idle_s;      /* proxied tunnel idle timeout; 0: default */
	char **process_argv;         /* main()'s argv (see sandbox_runtime_options) */
};

/* Run until drained.  Returns 0 after a clean drain, -1 with err set if
 * the server could not start. */
int server_run(const struct server_options *opts, struct cr_error *err);

/* Parse "HOST:PORT" (IPv4 literal or "localhost"); exposed for tests. */
int server_parse_listen(const char *s, uint32_t *addr_be, uint16_t *port, struct cr_error *err);

#endif
