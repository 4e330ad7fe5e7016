/* server.c - `corral serve`: HTTP plumbing, the execution queue, the main
 * loop and draining.  The API's request handling is in api.c. */
#define _GNU_SOURCE
#include "server/server.h"
#include "server/api.h"
#include "server/metrics.h"
#include "sandbox/sandbox.h"
#include "store/state.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

int server_parse_listen(const char *s, uint32_t *addr_be, uint16_t *port, struct cr_error *err)
{
	const char *colon = s ? strrchr(s, ':') : NULL;
	char host[64];
	char *end;
	unsigned long p;
	struct in_addr in;

	if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host))
		return cr_error_set(err, 0, "--listen: '%s' is not HOST:PORT", s ? s : "");
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p > 65535)
		return cr_error_set(err, 0, "--listen: '%s' has no valid port", s);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &in) != 1)
		return cr_error_set(err, 0, "--listen: '%s' is not an IPv4 address", host);
	*addr_be = in.s_addr;
	*port = (uint16_t)p;
	return 0;
}

/* --- the queue from the HTTP thread to the sandbox thread ------------- */

void server_submit(struct server *srv, struct job *job)
{
	uint64_t one = 1;

	pthread_mutex_lock(&srv->lock);
	job->next = NULL;
	if (srv->queue_tail)
		srv->queue_tail->next = job;
	else
		srv->queue_head = job;
	srv->queue_tail = job;
	pthread_mutex_unlock(&srv->lock);
	metrics_queue_add(1);
	if (write(srv->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		srv_log(srv, 0, "cannot wake the sandbox thread: %s", strerror(errno));
}

static struct job *queue_pop(struct server *srv)
{
	struct job *job;

	pthread_mutex_lock(&srv->lock);
	job = srv->queue_head;
	if (job) {
		srv->queue_head = job->next;
		if (srv->queue_head == NULL)
			srv->queue_tail = NULL;
	}
	pthread_mutex_unlock(&srv->lock);
	if (job)
		metrics_queue_add(-1);
	return job;
}

void srv_log(struct server *srv, int level, const char *fmt, ...)
{
	va_list ap;
	char ts[32];
	time_t now;
	struct tm tm;

	if (level > srv->log_level)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_start(ap, fmt);
	flockfile(stderr);
	fprintf(stderr, "%s corral[%s]: ", ts, level == 0 ? "error" : level == 1 ? "info" : "debug");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

/* --- executions on the sandbox thread --------------------------------- */

static void resume(struct server *srv, struct MHD_Connection *conn)
{
	MHD_resume_connection(conn);
	pthread_mutex_lock(&srv->lock);
	srv->suspended--;
	pthread_mutex_unlock(&srv->lock);
}

/* At shutdown: answer every job still queued 503 without starting it. */
static void refuse_queued(struct server *srv)
{
	struct job *job;

	while ((job = queue_pop(srv)) != NULL) {
		api_job_refused(srv, job);
		resume(srv, job->conn);
	}
}

static void on_exit_cb(struct sandbox_exec *ex, void *data)
{
	struct job *job = data;
	struct server *srv = job->srv;

	api_job_finished(srv, job, sandbox_exec_result(ex));
	job->ex = NULL;
	/* After this the HTTP thread owns the job again: touch it no more. */
	resume(srv, job->conn);
	/* Cleanup that does not change the reply runs while it is sent. */
	sandbox_exec_free(ex);
	pthread_mutex_lock(&srv->lock);
	srv->running--;
	pthread_mutex_unlock(&srv->lock);
}

static void on_listen_cb(struct sandbox_exec *ex, const int *fds, size_t n, void *data)
{
	struct job *job = data;

	(void)ex;
	api_job_listening(job->srv, job, fds, n);
}

static void start_queued(struct server *srv)
{
	static const struct sandbox_callbacks cb = { .on_listen = on_listen_cb,
						     .on_exit = on_exit_cb };
	struct job *job;

	while ((job = queue_pop(srv)) != NULL) {
		struct cr_error err = CR_ERROR_INIT;

		if (srv->killing) {
			api_job_refused(srv, job);
			resume(srv, job->conn);
			continue;
		}
		job->ex = sandbox_start(srv->rt, &job->cfg, &cb, job, &err);
		if (job->ex == NULL) {
			srv_log(srv, 0, "%s: cannot start: %s", job->trace_id, err.msg);
			api_job_failed_to_start(srv, job, err.msg);
			cr_error_release(&err);
			resume(srv, job->conn);
			continue;
		}
		pthread_mutex_lock(&srv->lock);
		srv->running++;
		pthread_mutex_unlock(&srv->lock);
		metrics_execution_started();
		srv_log(srv, 2, "%s: started (pid %d)", job->trace_id, sandbox_exec_pid(job->ex));
	}
}

/* --- HTTP --------------------------------------------------------------- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct request *req = *con_cls;

	(void)version;
	if (req == NULL) {
		req = xzalloc(sizeof(*req));
		*con_cls = req;
		pthread_mutex_lock(&srv->lock);
		srv->requests++;
		pthread_mutex_unlock(&srv->lock);
		return api_begin(srv, conn, req, url, method);
	}
	if (*upload_data_size > 0) {
		req->received += *upload_data_size;
		if (req->received > API_DISCARD_MAX)
			return MHD_NO;
		if (!req->too_large) {
			bool over_all;
			pthread_mutex_lock(&srv->lock);
			over_all = srv->buffered + *upload_data_size > API_MAX_BUFFERED;
			if (!over_all && req->body.len + *upload_data_size <= API_MAX_BODY)
				srv->buffered += *upload_data_size;
			pthread_mutex_unlock(&srv->lock);
			if (over_all)
				return MHD_NO; /* every body in flight together is capped */
			if (req->body.len + *upload_data_size > API_MAX_BODY)
				req->too_large = true;
			else
				buf_add(&req->body, upload_data, *upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return api_handle(srv, conn, req, url, method);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *req = *con_cls;

	(void)conn;
	if (req == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		srv_log(srv, 2, "request ended early (%d)", (int)toe);
	api_request_free(srv, req);
	*con_cls = NULL;
	pthread_mutex_lock(&srv->lock);
	srv->requests--;
	pthread_mutex_unlock(&srv->lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct server *srv = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	srv_log(srv, 1, "http: %s", msg);
}

static void egress_log(void *cls, int level, const char *line)
{
	srv_log(cls, level, "%s", line);
}

/* --- main loop ---------------------------------------------------------- */

static int loop(struct server *srv, int sig_fd, struct cr_error *err)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t deadline = 0, settle_deadline = 0;
	bool killed = false;

	if (ep < 0)
		return cr_error_set(err, errno, "epoll_create1");
	ev.data.u32 = 0;
	epoll_ctl(ep, EPOLL_CTL_ADD, sandbox_runtime_fd(srv->rt), &ev);
	ev.data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, srv->wake_fd, &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);

	for (;;) {
		struct epoll_event evs[8];
		int timeout = -1, n;

		if (srv->draining) {
			size_t open_jobs, running, suspended, requests;
			bool queued;
			uint64_t now = now_ns();
			pthread_mutex_lock(&srv->lock);
			open_jobs = srv->open_jobs;
			running = srv->running;
			suspended = srv->suspended;
			requests = srv->requests;
			queued = srv->queue_head != NULL;
			pthread_mutex_unlock(&srv->lock);
			/* libmicrohttpd must not be stopped with a connection
			 * suspended: every execution is answered first. */
			/* Requests still arriving are answered (503) before we
			 * stop, unless the final deadline has passed. */
			/* A connection whose request has not begun yet (its
			 * bytes wait in the socket for the HTTP thread) is
			 * given a moment to begin, so it is answered too. */
			if (open_jobs == 0 && requests == 0 && now < settle_deadline) {
				const union MHD_DaemonInfo *di =
					MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
				if (di && di->num_connections > 0)
					requests = 1;
			}
			if (suspended == 0 && running == 0 && !queued &&
			    ((open_jobs == 0 && requests == 0) || (killed && now >= deadline)))
				break;
			if (!killed && now >= deadline) {
				/* The grace period is over: kill what still runs;
				 * each is recorded as cancelled and answered. */
				srv_log(srv, 1, "grace period over: killing %zu execution(s)", running);
				srv->killing = true;
				api_cancel_all(srv);
				refuse_queued(srv);
				killed = true;
				deadline = now + 10ull * 1000000000ull;
			}
			timeout = 100; /* re-check counters set by the HTTP thread */
		}
		n = epoll_wait(ep, evs, 8, timeout);
		if (n < 0 && errno != EINTR) {
			cr_error_set(err, errno, "epoll_wait");
			close(ep);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case 0:
				if (sandbox_runtime_dispatch(srv->rt, 0, err) < 0) {
					close(ep);
					return -1;
				}
				break;
			case 1: {
				uint64_t v;
				if (read(srv->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					srv_log(srv, 0, "eventfd: %s", strerror(errno));
				start_queued(srv);
				break;
			}
			case 2: {
				struct signalfd_siginfo si;
				if (read(sig_fd, &si, sizeof(si)) > 0 && !srv->draining) {
					srv_log(srv, 1, "%s: draining (grace %u s)", strsignal((int)si.ssi_signo),
						srv->grace_s);
					pthread_mutex_lock(&srv->lock);
					__atomic_store_n(&srv->draining, true, __ATOMIC_SEQ_CST);
					pthread_mutex_unlock(&srv->lock);
					deadline = now_ns() + (uint64_t)srv->grace_s * 1000000000ull;
					settle_deadline = now_ns() + 1000000000ull;
				}
				break;
			}
			}
		}
	}
	close(ep);
	return 0;
}

int server_run(const struct server_options *opts, struct cr_error *err)
{
	struct server srv;
	struct sandbox_runtime_options ropts = { 0 };
	struct sockaddr_in addr = { .sin_family = AF_INET };
	uint32_t ip;
	uint16_t port;
	sigset_t mask;
	int sig_fd = -1, ret = -1;
	char *token = NULL;
	int n;

	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.lock, NULL);
	srv.grace_s = opts->grace_s;
	srv.log_level = opts->log_level;
	srv.wake_fd = -1;
	if (server_parse_listen(opts->listen, &ip, &port, err) < 0)
		return -1;
	addr.sin_addr.s_addr = ip;
	addr.sin_port = htons(port);

	/* Signals become events of the main loop; SIGPIPE must not kill us
	 * when a client goes away. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	srv.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sig_fd < 0 || srv.wake_fd < 0) {
		cr_error_set(err, errno, "cannot create the event descriptors");
		goto out;
	}

	if (store_state_open(&srv.state, opts->state_dir, err) < 0)
		goto out;
	srv.state_open = true;
	if (store_admin_token_ensure(srv.state.store, &token, err) < 0)
		goto out;
	/* Crash recovery: what a previous server left "running" cannot be
	 * running any more (its sandboxes died with it: PDEATHSIG). */
	n = store_exec_fail_running(srv.state.store,
				    "the server stopped while this execution was running", err);
	if (n < 0)
		goto out;

	ropts.process_argv = opts->process_argv;
	srv.rt = sandbox_runtime_new(&ropts, err);
	if (srv.rt == NULL)
		goto out;
	{
		struct egress_options eo = {
			.upstream_ca = opts->upstream_ca,
			.idle_timeout_ms = opts->egress_idle_s * 1000u,
			.log = egress_log,
			.log_data = &srv,
		};
		struct rlimit rl;
		/* Every proxied connection holds six descriptors (two sockets,
		 * two pipes): take the hard limit, and keep the proxy within
		 * it, with room for the API, the store and the sandboxes. */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
			if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 2048 * 6 + 4096)
				eo.max_threads = rl.rlim_cur > 4096 + 6 * 64
							 ? (uint32_t)((rl.rlim_cur - 4096) / 6) : 64;
		}
		srv.egress = egress_service_new(&eo, err);
		if (srv.egress == NULL)
			goto out;
	}

	srv.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
					   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
				   port, NULL, NULL, &handle, &srv,
				   MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, &srv,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)opts->request_timeout_s,
				   MHD_OPTION_NOTIFY_COMPLETED, &completed, &srv,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned int)4096,
				   MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)1024,
				   MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
				   MHD_OPTION_END);
	if (srv.mhd == NULL) {
		cr_error_set(err, errno, "cannot listen on %s", opts->listen);
		goto out;
	}

	printf("corral: state in %s%s\n", srv.state.dir, srv.state.created ? " (created)" : "");
	if (token)
		printf("corral: admin token (shown once, keep it): %s\n", token);
	if (n > 0)
		printf("corral: marked %d execution(s) left running by a previous server as failed\n", n);
	printf("corral: listening on http://%s\n", opts->listen);
	fflush(stdout);
	srv_log(&srv, 1, "serving on %s, state in %s, cgroup v%d", opts->listen, srv.state.dir,
		(int)sandbox_runtime_cgroup_version(srv.rt));

	if (loop(&srv, sig_fd, err) < 0)
		goto out;
	srv_log(&srv, 1, "drained; exiting");
	ret = 0;
out:
	if (srv.mhd) {
		/* loop() returned with nothing suspended (or failed before any
		 * request): stopping is safe. */
		MHD_stop_daemon(srv.mhd);
	}
	sandbox_runtime_free(srv.rt);
	/* After the runtime: every sandbox is gone, so are its connections. */
	egress_service_free(srv.egress);
	if (srv.state_open)
		store_state_close(&srv.state);
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	if (sig_fd >= 0)
		close(sig_fd);
	if (srv.wake_fd >= 0)
		close(srv.wake_fd);
	return ret;
}
