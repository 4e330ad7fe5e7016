/* api.h - the HTTP API's request handling, shared by server.c and api.c.
 *
 * Ownership of a `struct job` moves between the threads: the HTTP thread
 * creates it and queues it (server_submit), the sandbox thread runs it and
 * fills its reply, then resumes the connection; from then on the HTTP
 * thread owns it again and frees it with the request.
 */
#ifndef CORRAL_SERVER_API_H
#define CORRAL_SERVER_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "egress/egress.h"
#include "sandbox/sandbox.h"
#include "store/state.h"
#include "util/buf.h"

/* A request body, JSON and all: room for 1 MiB of code even when every
 * byte is escaped as \uXXXX, plus env_vars. */
#define API_MAX_BODY (8u << 20)
#define API_MAX_BUFFERED (256ull << 20)   /* request bodies held at once */
#define API_MAX_STORED_OUTPUT (1u << 20)  /* per stream, in the execution record */
#define API_MAX_CODE (1u << 20)
#define API_DISCARD_MAX (64u << 20)      /* oversized bodies read and dropped up to this */

struct job {
	struct server *srv;
	struct MHD_Connection *conn;
	struct job *next;                /* queue link */
	struct sandbox_config cfg;
	struct sandbox_exec *ex;         /* sandbox thread only */
	char trace_id[40];
	int64_t key_id;
	int64_t env_id;
	char *thread_id;                 /* NULL without a thread */
	char *thread_home;
	char *language;
	uint64_t start_ns;
	struct redact_set *redact;       /* connector secrets to scrub; owned */
	int64_t *connector_ids;          /* connectors injected, for the audit */
	size_t nconnectors;
	bool busy_registered;
	/* The execution's network: the proxy and brokers, or NULL when it
	 * has none (policy none, no broker); listen_kinds[i] is what
	 * cfg.listen_ports[i] serves. */
	struct egress_sandbox *egress;
	enum egress_port_kind listen_kinds[EGRESS_PORT_COUNT];
	struct connector_broker *brokers;  /* from the connectors, until moved */
	size_t nbrokers;
	/* Filled by the sandbox thread before it resumes the connection. */
	bool done;
	unsigned http_status;
	char *reply;                     /* JSON text */
};

struct request {
	struct buf body;
	uint64_t received;
	bool too_large;
	struct job *job;                 /* an execution in flight or done */
};

struct running_key {
	int64_t key_id;
	unsigned count;
	struct running_key *next;
};

struct busy_thread {
	int64_t env_id;
	char *thread_id;
	struct busy_thread *next;
};

struct server {
	struct MHD_Daemon *mhd;
	struct sandbox_runtime *rt;
	struct egress_service *egress;
	struct store_state state;
	bool state_open;
	int wake_fd;
	int log_level;
	uint32_t grace_s;
	bool draining;                   /* set by the main thread, read by HTTP */
	bool killing;                    /* main thread only: the grace period is over */

	pthread_mutex_t lock;            /* everything below */
	struct job *queue_head, *queue_tail;
	size_t running;                  /* started, not yet finished */
	size_t open_jobs;                /* created, reply not yet sent */
	size_t suspended;                /* connections suspended or about to be */
	size_t requests;                 /* requests begun and not yet completed */
	uint64_t buffered;               /* request body bytes held, all connections */
	struct running_key *keys;        /* per-key executions in flight */
	struct busy_thread *busy;        /* threads with an execution in flight */
};

void srv_log(struct server *srv, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void server_submit(struct server *srv, struct job *job);

/* HTTP thread: first call for a request (headers only). */
enum MHD_Result api_begin(struct server *srv, struct MHD_Connection *conn, struct request *req,
			  const char *url, const char *method);
/* HTTP thread: the body is complete (or the connection was resumed). */
enum MHD_Result api_handle(struct server *srv, struct MHD_Connection *conn, struct request *req,
			   const char *url, const char *method);
void api_request_free(struct server *srv, struct request *req);

/* Sandbox thread: record an execution's end and build its reply. */
void api_job_finished(struct server *srv, struct job *job, const struct sandbox_result *res);
void api_job_failed_to_start(struct server *srv, struct job *job, const char *why);
/* Sandbox thread: the sandbox's listening sockets are ready. */
void api_job_listening(struct server *srv, struct job *job, const int *fds, size_t n);
/* Sandbox thread: kill every running execution (end of the grace period). */
void api_cancel_all(struct server *srv);
/* Sandbox thread, at shutdown: answer a queued job 503 without running it. */
void api_job_refused(struct server *srv, struct job *job);
/* Admin API replies (admin.c), shared by admin-connectors.c: send `body`
 * (consumed) as JSON; send {"error": code, "message": msg}; map a store
 * error (ENOENT 404, EEXIST/EBUSY/ENOTUNIQ/EKEYREVOKED 409, EINVAL 400,
 * EAGAIN 503, else 500) and release it. */
enum MHD_Result http_admin_reply(struct MHD_Connection *conn, unsigned status, json_t *body);
enum MHD_Result http_admin_fail(struct MHD_Connection *conn, unsigned status, const char *code,
			   const char *msg);
enum MHD_Result http_admin_store_fail(struct MHD_Connection *conn, struct cr_error *err);

/* Is an execution in flight on this thread, or in this environment? */
bool api_thread_busy(struct server *srv, int64_t env_id, const char *thread_id);

#endif
