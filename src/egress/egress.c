/* egress.c - the acceptor, the per-execution context and its report.
 *
 * One thread waits in epoll on every sandbox's listening sockets.  A
 * listener is closed by egress_sandbox_close() from another thread, while
 * the acceptor may hold an event for it from an epoll_wait() that returned
 * just before: so a closed listener is only marked, removed from the epoll
 * set and put on a list the acceptor frees after the batch it is working
 * on.  Everything about listeners is under svc->lock; a sandbox's report
 * under its own lock.
 */
#define _GNU_SOURCE
#include "egress/egress.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

struct egress_counters egress_counters;

void egress_count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

void egress_counters_get(struct egress_counters *out)
{
	out->proxy_allowed = __atomic_load_n(&egress_counters.proxy_allowed, __ATOMIC_RELAXED);
	out->proxy_denied = __atomic_load_n(&egress_counters.proxy_denied, __ATOMIC_RELAXED);
	out->broker_requests = __atomic_load_n(&egress_counters.broker_requests, __ATOMIC_RELAXED);
	out->broker_failures = __atomic_load_n(&egress_counters.broker_failures, __ATOMIC_RELAXED);
}

uint16_t egress_port_number(enum egress_port_kind kind)
{
	static const uint16_t ports[EGRESS_PORT_COUNT] = {
		[EGRESS_PORT_PROXY] = EGRESS_PROXY_PORT,
		[EGRESS_PORT_ANTHROPIC] = EGRESS_ANTHROPIC_PORT,
		[EGRESS_PORT_GITHUB] = EGRESS_GITHUB_PORT,
	};
	return (unsigned)kind < EGRESS_PORT_COUNT ? ports[kind] : 0;
}

/* Proxy connection threads need little: blocking calls, a head buffer. */
#define CONN_STACK_SIZE (256u << 10)

struct listener {
	struct egress_sandbox *sb;     /* a reference */
	enum egress_port_kind kind;
	int fd;
	bool closed;
	struct listener *next;         /* in sb->listeners, then svc->graveyard */
};

struct egress_service {
	struct egress_options opts;
	char *upstream_ca;
	int epfd;
	int wakefd;
	pthread_t acceptor;
	bool stopping;                 /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t idle;           /* live_threads reached 0 */
	struct listener *graveyard;
	unsigned live_threads;         /* proxy connection threads */
	bool told_full;                /* logged that max_threads was reached */
	int spare_fd;                  /* given up to refuse a connection at EMFILE */
	struct egress_conn *conns;     /* live proxy connections */
	struct broker *broker;
};

struct egress_sandbox {
	unsigned refs;                 /* atomic */
	struct egress_service *svc;
	char *trace_id;
	struct egress_policy policy;
	struct egress_broker_target targets[EGRESS_PORT_COUNT];
	size_t header_map_len[EGRESS_PORT_COUNT];
	unsigned connections;          /* live, atomic */
	bool told_max;                 /* under svc->lock */
	bool told_accept;              /* under svc->lock */
	struct listener *listeners;    /* under svc->lock */
	pthread_mutex_t lock;          /* the report */
	struct egress_report report;
};

/* A proxy connection: on svc->conns while its thread serves it. */
struct egress_conn {
	struct egress_sandbox *sb;     /* a reference */
	int fd;                        /* the sandbox's side */
	int up_fd;                     /* the upstream, once connected; -1 */
	bool closing;                  /* shut down by the execution's end */
	struct egress_conn *prev, *next;
};

/* Under svc->lock. */
static void conn_shutdown_locked(struct egress_conn *c)
{
	c->closing = true;
	shutdown(c->fd, SHUT_RDWR);
	if (c->up_fd >= 0)
		shutdown(c->up_fd, SHUT_RDWR);
}

/* --- the credential's memory -------------------------------------------- */

/* A copy of `s` in pages of its own that a child created without CLONE_VM
 * (every sandbox's init is one) receives zeroed, kept out of swap. */
static char *secret_dup(const char *s, size_t *map_len)
{
	size_t len = strlen(s) + 1;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = (len + page - 1) / page * page;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (madvise(p, n, MADV_WIPEONFORK) < 0 || madvise(p, n, MADV_DONTDUMP) < 0) {
		munmap(p, n);
		return NULL;
	}
	(void)mlock(p, n); /* best effort: RLIMIT_MEMLOCK may be small */
	memcpy(p, s, len);
	*map_len = n;
	return p;
}

static void secret_free(char *p, size_t map_len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, map_len);
	munlock(p, map_len);
	munmap(p, map_len);
}

/* --- sandboxes ------------------------------------------------------------ */

struct egress_sandbox *egress_sandbox_new(struct egress_service *svc, const char *trace_id,
					  struct egress_policy *policy,
					  struct egress_broker_target targets[EGRESS_PORT_COUNT])
{
	struct egress_sandbox *sb = xzalloc(sizeof(*sb));

	sb->refs = 1;
	sb->svc = svc;
	sb->trace_id = xstrdup(trace_id ? trace_id : "");
	sb->policy = *policy;
	*policy = (struct egress_policy)EGRESS_POLICY_INIT;
	pthread_mutex_init(&sb->lock, NULL);
	for (int k = 0; targets && k < EGRESS_PORT_COUNT; k++) {
		struct egress_broker_target *t = &targets[k];
		if (k != EGRESS_PORT_PROXY && t->upstream) {
			sb->targets[k].connector = t->connector;
			sb->targets[k].upstream = t->upstream;
			t->connector = t->upstream = NULL;
			if (t->header) {
				sb->targets[k].header = secret_dup(t->header, &sb->header_map_len[k]);
				if (sb->targets[k].header == NULL) {
					/* No memory to keep it safely: then no broker. */
					free(sb->targets[k].upstream);
					sb->targets[k].upstream = NULL;
				}
			}
		}
		if (t->header) {
			explicit_bzero(t->header, strlen(t->header));
			free(t->header);
			t->header = NULL;
		}
		free(t->connector);
		free(t->upstream);
		t->connector = t->upstream = NULL;
	}
	return sb;
}

struct egress_sandbox *egress_sandbox_ref(struct egress_sandbox *sb)
{
	__atomic_add_fetch(&sb->refs, 1, __ATOMIC_RELAXED);
	return sb;
}

void egress_sandbox_unref(struct egress_sandbox *sb)
{
	if (sb == NULL || __atomic_sub_fetch(&sb->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (int k = 0; k < EGRESS_PORT_COUNT; k++) {
		free(sb->targets[k].connector);
		free(sb->targets[k].upstream);
		secret_free(sb->targets[k].header, sb->header_map_len[k]);
	}
	egress_policy_release(&sb->policy);
	egress_report_release(&sb->report);
	pthread_mutex_destroy(&sb->lock);
	free(sb->trace_id);
	free(sb);
}

bool egress_sandbox_conn_begin(struct egress_sandbox *sb)
{
	unsigned n = __atomic_add_fetch(&sb->connections, 1, __ATOMIC_RELAXED);

	if (n > sb->svc->opts.max_connections) {
		__atomic_sub_fetch(&sb->connections, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

void egress_sandbox_conn_end(struct egress_sandbox *sb)
{
	if (sb)
		__atomic_sub_fetch(&sb->connections, 1, __ATOMIC_RELAXED);
}

const struct egress_policy *egress_sandbox_policy(const struct egress_sandbox *sb)
{
	return &sb->policy;
}

const struct egress_broker_target *egress_sandbox_target(const struct egress_sandbox *sb,
							  enum egress_port_kind kind)
{
	if ((unsigned)kind >= EGRESS_PORT_COUNT || sb->targets[kind].upstream == NULL)
		return NULL;
	return &sb->targets[kind];
}

const char *egress_sandbox_trace_id(const struct egress_sandbox *sb)
{
	return sb->trace_id;
}

const struct egress_options *egress_sandbox_options(const struct egress_sandbox *sb)
{
	return &sb->svc->opts;
}

void egress_sandbox_log(const struct egress_sandbox *sb, int level, const char *fmt, ...)
{
	const struct egress_options *o = &sb->svc->opts;
	char line[1024];
	int n;
	va_list ap;

	if (o->log == NULL)
		return;
	n = snprintf(line, sizeof(line), "%s: egress: ", sb->trace_id);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	o->log(o->log_data, level, line);
}

void egress_sandbox_record(struct egress_sandbox *sb, bool allowed, const char *target,
			   const char *code, const char *reason)
{
	struct egress_report *r = &sb->report;

	pthread_mutex_lock(&sb->lock);
	if (allowed) {
		for (size_t i = 0; i < r->nallowed; i++)
			if (strcmp(r->allowed[i], target) == 0)
				goto out;
		if (r->nallowed == EGRESS_REPORT_MAX) {
			r->dropped++;
			goto out;
		}
		r->allowed = xrealloc(r->allowed, sizeof(*r->allowed) * (r->nallowed + 1));
		r->allowed[r->nallowed++] = xstrdup(target);
	} else {
		r->denials++;
		for (size_t i = 0; i < r->ndenied; i++)
			if (strcmp(r->denied[i].target, target) == 0)
				goto out;
		if (r->ndenied == EGRESS_REPORT_MAX) {
			r->dropped++;
			goto out;
		}
		r->denied = xrealloc(r->denied, sizeof(*r->denied) * (r->ndenied + 1));
		r->denied[r->ndenied].target = xstrdup(target);
		r->denied[r->ndenied].code = xstrdup(code ? code : "denied");
		r->denied[r->ndenied].reason = xstrdup(reason ? reason : "");
		r->ndenied++;
	}
out:
	pthread_mutex_unlock(&sb->lock);
}

void egress_report_release(struct egress_report *r)
{
	for (size_t i = 0; i < r->nallowed; i++)
		free(r->allowed[i]);
	for (size_t i = 0; i < r->ndenied; i++) {
		free(r->denied[i].target);
		free(r->denied[i].code);
		free(r->denied[i].reason);
	}
	free(r->allowed);
	free(r->denied);
	memset(r, 0, sizeof(*r));
}

static void report_copy(const struct egress_report *from, struct egress_report *to)
{
	memset(to, 0, sizeof(*to));
	to->dropped = from->dropped;
	to->connections = from->connections;
	to->denials = from->denials;
	if (from->nallowed) {
		to->allowed = xmalloc(sizeof(*to->allowed) * from->nallowed);
		for (size_t i = 0; i < from->nallowed; i++)
			to->allowed[i] = xstrdup(from->allowed[i]);
		to->nallowed = from->nallowed;
	}
	if (from->ndenied) {
		to->denied = xmalloc(sizeof(*to->denied) * from->ndenied);
		for (size_t i = 0; i < from->ndenied; i++) {
			to->denied[i].target = xstrdup(from->denied[i].target);
			to->denied[i].code = xstrdup(from->denied[i].code);
			to->denied[i].reason = xstrdup(from->denied[i].reason);
		}
		to->ndenied = from->ndenied;
	}
}

int egress_sandbox_listen(struct egress_sandbox *sb, enum egress_port_kind kind, int fd,
			  struct cr_error *err)
{
	struct egress_service *svc = sb->svc;
	struct listener *l;
	struct epoll_event ev;
	int fl;

	if ((unsigned)kind >= EGRESS_PORT_COUNT) {
		close(fd);
		return cr_error_set(err, EINVAL, "no egress service of kind %d", (int)kind);
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return cr_error_set(err, e, "cannot make the %u listener non-blocking",
				    egress_port_number(kind));
	}
	l = xzalloc(sizeof(*l));
	l->sb = egress_sandbox_ref(sb);
	l->kind = kind;
	l->fd = fd;
	ev.events = EPOLLIN;
	ev.data.ptr = l;
	pthread_mutex_lock(&svc->lock);
	if (svc->stopping || epoll_ctl(svc->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = svc->stopping ? ESHUTDOWN : errno;
		pthread_mutex_unlock(&svc->lock);
		close(fd);
		egress_sandbox_unref(l->sb);
		free(l);
		return cr_error_set(err, e, "cannot serve port %u", egress_port_number(kind));
	}
	l->next = sb->listeners;
	sb->listeners = l;
	pthread_mutex_unlock(&svc->lock);
	return 0;
}

static void wake(struct egress_service *svc)
{
	uint64_t one = 1;
	ssize_t r = write(svc->wakefd, &one, sizeof(one));
	(void)r;
}

/* Under svc->lock: stop serving every listener of sb. */
static void close_listeners_locked(struct egress_service *svc, struct egress_sandbox *sb)
{
	while (sb->listeners) {
		struct listener *l = sb->listeners;
		sb->listeners = l->next;
		l->closed = true;
		epoll_ctl(svc->epfd, EPOLL_CTL_DEL, l->fd, NULL);
		close(l->fd);
		l->fd = -1;
		l->next = svc->graveyard;
		svc->graveyard = l;
	}
}

void egress_sandbox_close(struct egress_sandbox *sb, struct egress_report *out)
{
	struct egress_service *svc = sb->svc;

	pthread_mutex_lock(&svc->lock);
	close_listeners_locked(svc, sb);
	for (struct egress_conn *c = svc->conns; c; c = c->next)
		if (c->sb == sb)
			conn_shutdown_locked(c);
	pthread_mutex_unlock(&svc->lock);
	wake(svc);
	pthread_mutex_lock(&sb->lock);
	if (out)
		report_copy(&sb->report, out);
	pthread_mutex_unlock(&sb->lock);
	egress_sandbox_unref(sb);
}

/* --- accepting ------------------------------------------------------------ */

bool egress_conn_set_upstream(struct egress_conn *c, int fd)
{
	struct egress_service *svc = c->sb->svc;
	bool ok;

	pthread_mutex_lock(&svc->lock);
	c->up_fd = fd;
	ok = !c->closing;
	pthread_mutex_unlock(&svc->lock);
	return ok;
}

static void *conn_main(void *arg)
{
	struct egress_conn *c = arg;
	struct egress_sandbox *sb = c->sb;
	struct egress_service *svc = sb->svc;

	forward_serve(sb, c->fd, c);
	/* Off the list first: its fds must not be shut down once closed
	 * (the numbers may be reused at once). */
	pthread_mutex_lock(&svc->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		svc->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&svc->lock);
	close(c->fd);
	if (c->up_fd >= 0)
		close(c->up_fd);
	free(c);
	egress_sandbox_conn_end(sb);
	egress_sandbox_unref(sb);
	pthread_mutex_lock(&svc->lock);
	if (--svc->live_threads == 0)
		pthread_cond_broadcast(&svc->idle);
	pthread_mutex_unlock(&svc->lock);
	return NULL;
}

/* Under svc->lock. */
static void start_proxy_conn(struct egress_service *svc, struct egress_sandbox *sb, int fd)
{
	pthread_attr_t attr;
	pthread_t t;
	struct egress_conn *c;
	int r;

	if (svc->live_threads >= svc->opts.max_threads) {
		if (!svc->told_full)
			egress_sandbox_log(sb, 0, "%u proxy connections at once, the most this "
					   "server serves: refusing more", svc->live_threads);
		svc->told_full = true;
		close(fd);
		egress_sandbox_conn_end(sb);
		return;
	}
	svc->told_full = false;
	c = xzalloc(sizeof(*c));
	c->sb = egress_sandbox_ref(sb);
	c->fd = fd;
	c->up_fd = -1;
	c->next = svc->conns;
	if (svc->conns)
		svc->conns->prev = c;
	svc->conns = c;
	svc->live_threads++;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CONN_STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		egress_sandbox_log(sb, 0, "cannot start a connection thread: %s", strerror(r));
		svc->live_threads--;
		svc->conns = c->next;
		if (c->next)
			c->next->prev = NULL;
		egress_sandbox_conn_end(sb);
		close(fd);
		egress_sandbox_unref(sb);
		free(c);
	}
}

/* Under svc->lock. */
/* Under svc->lock: accept what waits on l, a bounded batch so that one
 * sandbox connecting in a loop cannot keep the acceptor (and the lock)
 * from the others; epoll reports the rest again. */
#define ACCEPT_BATCH 16
static void accept_some(struct egress_service *svc, struct listener *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		struct cr_error err = CR_ERROR_INIT;

		if (fd < 0) {
			int e = errno;
			if (e == EINTR || e == ECONNABORTED)
				continue;
			if (e == EAGAIN)
				return;
			if ((e == EMFILE || e == ENFILE) && svc->spare_fd >= 0) {
				/* Out of descriptors: the connection would wait in
				 * the backlog and wake us again at once, for ever.
				 * Give up the spare to take it, and refuse it. */
				close(svc->spare_fd);
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				svc->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			if (!l->sb->told_accept)
				egress_sandbox_log(l->sb, 0, "accept on port %u: %s: refused",
						   egress_port_number(l->kind), strerror(e));
			l->sb->told_accept = true;
			if (e == EMFILE || e == ENFILE)
				continue;
			return;
		}
		pthread_mutex_lock(&l->sb->lock);
		l->sb->report.connections++;
		pthread_mutex_unlock(&l->sb->lock);
		if (!egress_sandbox_conn_begin(l->sb)) {
			/* Logged once per execution: the sandbox decides how
			 * often this happens. */
			if (!l->sb->told_max)
				egress_sandbox_log(l->sb, 1, "more than %u connections at once: refused",
						   svc->opts.max_connections);
			l->sb->told_max = true;
			close(fd);
			continue;
		}
		if (l->kind == EGRESS_PORT_PROXY) {
			start_proxy_conn(svc, l->sb, fd);
		} else if (broker_add(svc->broker, fd, l->sb, l->kind, &err) < 0) {
			egress_sandbox_log(l->sb, 0, "%s", err.msg);
			cr_error_release(&err);
		}
	}
}

static void *acceptor_main(void *arg)
{
	struct egress_service *svc = arg;
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(svc->epfd, ev, 32, -1);
		struct listener *dead;
		bool stop;

		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&svc->lock);
		for (int i = 0; i < n; i++) {
			struct listener *l = ev[i].data.ptr;
			if (l == NULL) {
				uint64_t v;
				ssize_t r = read(svc->wakefd, &v, sizeof(v));
				(void)r;
				continue;
			}
			if (!l->closed && !svc->stopping)
				accept_some(svc, l);
		}
		dead = svc->graveyard;
		svc->graveyard = NULL;
		stop = svc->stopping;
		pthread_mutex_unlock(&svc->lock);
		/* Outside the lock: the last reference may free a sandbox. */
		while (dead) {
			struct listener *next = dead->next;
			egress_sandbox_unref(dead->sb);
			free(dead);
			dead = next;
		}
		if (stop)
			break;
	}
	return NULL;
}

struct egress_service *egress_service_new(const struct egress_options *opts,
					  struct cr_error *err)
{
	struct egress_service *svc = xzalloc(sizeof(*svc));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int r;

	if (opts)
		svc->opts = *opts;
	if (svc->opts.upstream_ca)
		svc->opts.upstream_ca = svc->upstream_ca = xstrdup(svc->opts.upstream_ca);
	if (svc->opts.connect_timeout_ms == 0)
		svc->opts.connect_timeout_ms = 10000;
	if (svc->opts.idle_timeout_ms == 0)
		svc->opts.idle_timeout_ms = 300000;
	if (svc->opts.head_timeout_ms == 0)
		svc->opts.head_timeout_ms = 10000;
	if (svc->opts.max_connections == 0)
		svc->opts.max_connections = 256;
	if (svc->opts.max_threads == 0)
		svc->opts.max_threads = 2048;
	pthread_mutex_init(&svc->lock, NULL);
	pthread_cond_init(&svc->idle, NULL);
	svc->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	svc->epfd = epoll_create1(EPOLL_CLOEXEC);
	svc->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (svc->epfd < 0 || svc->wakefd < 0 ||
	    epoll_ctl(svc->epfd, EPOLL_CTL_ADD, svc->wakefd, &ev) < 0) {
		cr_error_set(err, errno, "cannot create the egress event loop");
		goto fail;
	}
	svc->broker = broker_new(&svc->opts, err);
	if (svc->broker == NULL)
		goto fail;
	r = pthread_create(&svc->acceptor, NULL, acceptor_main, svc);
	if (r != 0) {
		cr_error_set(err, r, "cannot start the egress acceptor");
		broker_free(svc->broker);
		goto fail;
	}
	return svc;
fail:
	if (svc->epfd >= 0)
		close(svc->epfd);
	if (svc->wakefd >= 0)
		close(svc->wakefd);
	if (svc->spare_fd >= 0)
		close(svc->spare_fd);
	free(svc->upstream_ca);
	free(svc);
	return NULL;
}

void egress_service_free(struct egress_service *svc)
{
	struct timespec deadline;
	bool idle = true;

	if (svc == NULL)
		return;
	pthread_mutex_lock(&svc->lock);
	svc->stopping = true;
	pthread_mutex_unlock(&svc->lock);
	wake(svc);
	pthread_join(svc->acceptor, NULL);
	broker_free(svc->broker);
	/* Shut down, proxy connections end at once; one stuck in a slow name
	 * lookup may take longer: then the service is left allocated rather
	 * than pulled from under its thread (the process is about to exit). */
	/* Longer than a name lookup may take (the connect deadline). */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5 + svc->opts.connect_timeout_ms / 1000;
	pthread_mutex_lock(&svc->lock);
	for (struct egress_conn *c = svc->conns; c; c = c->next)
		conn_shutdown_locked(c);
	while (svc->live_threads > 0)
		if (pthread_cond_timedwait(&svc->idle, &svc->lock, &deadline) == ETIMEDOUT) {
			idle = svc->live_threads == 0;
			break;
		}
	pthread_mutex_unlock(&svc->lock);
	if (!idle)
		return;
	close(svc->epfd);
	close(svc->wakefd);
	if (svc->spare_fd >= 0)
		close(svc->spare_fd);
	pthread_cond_destroy(&svc->idle);
	pthread_mutex_destroy(&svc->lock);
	free(svc->upstream_ca);
	free(svc);
}
