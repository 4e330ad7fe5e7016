/* egress.h - the daemon's side of a sandbox's network (DESIGN.md 5):
 * the forward proxy that applies the environment's egress policy, and the
 * credential brokers that add a connector's secret to requests the sandbox
 * makes without ever holding it.
 *
 * Where the sockets come from.  A sandbox's network namespace holds only
 * `lo`.  Its setup code (sandbox/child.c) creates one listening TCP socket
 * per service on 127.0.0.1 inside that namespace and hands it to the daemon
 * over the setup socket (SCM_RIGHTS); the daemon accepts on it.  A
 * connection accepted there can only come from that sandbox, so it is
 * attributed to the execution without tokens or addresses to trust.  The
 * ports are fixed, the same in every sandbox (each has its own loopback):
 *
 *   127.0.0.1:3128  the forward proxy: CONNECT host:port (TLS tunnels) and
 *                   absolute-form plain HTTP ("GET http://host/path")
 *   127.0.0.1:3129  the anthropic broker: plain HTTP, forwarded to the
 *                   connector's base URL over TLS with its x-api-key
 *   127.0.0.1:3130  the github broker: git smart HTTP, forwarded to the
 *                   connector's base URL with its token as Basic auth
 *
 * Threads.  One acceptor thread waits on every listening socket; a proxy
 * connection gets a thread of its own (small stack, blocking I/O with
 * deadlines, splice() between the sockets through a pipe, so its memory is
 * a fixed head buffer and two pipes whatever it carries); a broker
 * connection is handed to libmicrohttpd (thread per connection) and
 * forwarded with libcurl.  The context of an execution, `struct
 * egress_sandbox`, is reference counted: the listening sockets and every
 * live connection hold a reference.  When the execution ends its
 * connections are shut down (both sockets), so none outlives it by more
 * than the moment its thread takes to see that.
 */
#ifndef CORRAL_EGRESS_EGRESS_H
#define CORRAL_EGRESS_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/policy.h"
#include "util/error.h"

enum egress_port_kind {
	EGRESS_PORT_PROXY = 0,
	EGRESS_PORT_ANTHROPIC,
	EGRESS_PORT_GITHUB,
	EGRESS_PORT_COUNT,
};

/* Port of each service on the sandbox's loopback. */
#define EGRESS_PROXY_PORT       3128
#define EGRESS_ANTHROPIC_PORT   3129
#define EGRESS_GITHUB_PORT      3130
uint16_t egress_port_number(enum egress_port_kind kind);

/* What a sandbox holds instead of a brokered secret.  Not a secret: the
 * same for every sandbox, so a program may print it. */
#define EGRESS_PLACEHOLDER_KEY  "corral-brokered-credential"

struct egress_options {
	const char *upstream_ca;       /* CA bundle for brokers' upstreams; NULL: system */
	uint32_t connect_timeout_ms;   /* per upstream connect; 0: 10000 */
	uint32_t idle_timeout_ms;      /* a tunnel with no bytes either way; 0: 300000 */
	uint32_t head_timeout_ms;      /* to send a whole request head; 0: 10000 */
	uint32_t max_connections;      /* per sandbox, at once; 0: 256 */
	uint32_t max_threads;          /* proxy connections, all sandboxes; 0: 2048 */
	/* Log one line (no newline); may be NULL.  Called from any thread. */
	void (*log)(void *data, int level, const char *line);
	void *log_data;
};

struct egress_service;

/* Start the acceptor thread and the broker's HTTP engine. */
struct egress_service *egress_service_new(const struct egress_options *opts,
					  struct cr_error *err);
/* Stop accepting, close every listener, wait for the acceptor, shut
 * down every live connection and wait (a few seconds at most) for their
 * threads to end. */
void egress_service_free(struct egress_service *svc);

/* Where a broker forwards, and the credential it adds.  Strings owned by
 * the target; `header` (e.g. "x-api-key: sk-...") is a secret: it is held
 * in memory that a forked or cloned child gets zeroed (MADV_WIPEONFORK),
 * so no sandbox's init inherits a copy, and wiped when freed. */
struct egress_broker_target {
	char *connector;       /* the connector's name, for logs and reports */
	char *upstream;        /* base URL, "https://api.anthropic.com" */
	char *header;          /* the header line to add, without CRLF */
};

struct egress_sandbox;

/* A new context for execution `trace_id`: `policy` is moved in (the
 * caller's copy is reset), `targets` (indexed by port kind; an entry with
 * a NULL upstream is no broker, and [EGRESS_PORT_PROXY] is ignored) are
 * moved in too.  The caller holds one reference. */
struct egress_sandbox *egress_sandbox_new(struct egress_service *svc, const char *trace_id,
					  struct egress_policy *policy,
					  struct egress_broker_target targets[EGRESS_PORT_COUNT]);

/* Serve `fd`, a listening socket in the sandbox's namespace, as `kind`.
 * The fd is taken (closed on failure too). */
int egress_sandbox_listen(struct egress_sandbox *sb, enum egress_port_kind kind, int fd,
			  struct cr_error *err);

/* Record one decision for the report: `target` is "host:port". */
void egress_sandbox_record(struct egress_sandbox *sb, bool allowed, const char *target,
			   const char *code, const char *reason);

const struct egress_policy *egress_sandbox_policy(const struct egress_sandbox *sb);
const struct egress_broker_target *egress_sandbox_target(const struct egress_sandbox *sb,
							  enum egress_port_kind kind);
const char *egress_sandbox_trace_id(const struct egress_sandbox *sb);
const struct egress_options *egress_sandbox_options(const struct egress_sandbox *sb);
void egress_sandbox_log(const struct egress_sandbox *sb, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* What an execution's connections did.  `allowed` holds each target once,
 * in the order first seen; `denied` each refused target once, with the
 * first refusal's code and sentence.  Capped at EGRESS_REPORT_MAX each
 * (then `dropped` counts the rest). */
#define EGRESS_REPORT_MAX 256
struct egress_denial {
	char *target;
	char *code;
	char *reason;
};
struct egress_report {
	char **allowed;
	size_t nallowed;
	struct egress_denial *denied;
	size_t ndenied;
	uint64_t dropped;
	uint64_t connections;     /* accepted, proxy and brokers */
	uint64_t denials;         /* refusals, counting repeats */
};

/* Stop accepting new connections, shut down the proxy connections still
 * open (the sandbox's processes are gone by then; a broker connection
 * ends when libmicrohttpd sees its peer close), copy the report into *out
 * and drop the caller's reference. */
void egress_sandbox_close(struct egress_sandbox *sb, struct egress_report *out);
void egress_report_release(struct egress_report *r);

/* A connection of sb begins (false when it already has max_connections:
 * refuse it) or ends.  The acceptor begins every connection; whoever
 * serves it (forward.c's thread, the broker) ends it. */
bool egress_sandbox_conn_begin(struct egress_sandbox *sb);
void egress_sandbox_conn_end(struct egress_sandbox *sb);

struct egress_sandbox *egress_sandbox_ref(struct egress_sandbox *sb);
void egress_sandbox_unref(struct egress_sandbox *sb);

/* Counters since start, for /metrics (read without locks). */
struct egress_counters {
	uint64_t proxy_allowed;
	uint64_t proxy_denied;
	uint64_t broker_requests;
	uint64_t broker_failures;
};
void egress_counters_get(struct egress_counters *out);

/* The broker (broker.c), for egress.c: hand an accepted connection on a
 * broker port to the HTTP engine.  `fd` and the connection begun with
 * egress_sandbox_conn_begin() are taken (ended on failure too); the engine
 * holds a reference to `sb` while the connection lives. */
struct broker;
struct broker *broker_new(const struct egress_options *opts, struct cr_error *err);
int broker_add(struct broker *b, int fd, struct egress_sandbox *sb, enum egress_port_kind kind,
	       struct cr_error *err);
void broker_free(struct broker *b);

/* The forward proxy (forward.c): serve one accepted connection on the
 * proxy port, on the calling thread, until it is over.  The caller (the
 * connection's thread in egress.c) owns `fd` and closes it afterwards,
 * with the upstream socket forward.c registered with
 * egress_conn_set_upstream(): both are on a list that
 * egress_sandbox_close() walks to shut them down, since a tunnel must not
 * outlive its execution. */
struct egress_conn;
void forward_serve(struct egress_sandbox *sb, int fd, struct egress_conn *conn);
/* Register the upstream socket (closed by the caller in any case); false
 * when the execution has ended meanwhile: give up. */
bool egress_conn_set_upstream(struct egress_conn *conn, int fd);

/* Counters, bumped by forward.c and broker.c. */
void egress_count(uint64_t *counter);
extern struct egress_counters egress_counters;

#endif
