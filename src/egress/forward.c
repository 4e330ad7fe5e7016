/* forward.c - the forward proxy a sandbox reaches at 127.0.0.1:3128.
 *
 * One connection, one thread, blocking calls with deadlines:
 *
 *   1. read the request head (at most PROXY_HEAD_MAX bytes, within
 *      head_timeout_ms) and parse it (request.h): "CONNECT host:port" (a
 *      tunnel, usually TLS) or an absolute-form "GET http://host/path";
 *      anything else is refused with 400;
 *   2. ask the policy about the name, resolve it here (the sandbox has no
 *      resolver that could disagree), ask again about every address, and
 *      connect to the first allowed one;
 *   3. answer 200 to a CONNECT, or send an absolute-form request on in
 *      origin form with "Connection: close" (so one connection carries one
 *      request to the host that was checked);
 *   4. relay both ways with splice() through a pipe per direction: no
 *      bytes are copied through user space, and the memory a connection
 *      holds is fixed however much it carries.  A direction that reaches
 *      EOF half-closes the other side; no byte either way for
 *      idle_timeout_ms ends the tunnel.
 *
 * Every refusal is an HTTP answer with a code and a sentence, never a
 * silent close, and is recorded in the execution's report.
 */
#define _GNU_SOURCE
#include "egress/egress.h"
#include "egress/request.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <signal.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PIPE_CAP (256u << 10)

/* What a connection holds while it reads the head. */
struct head {
	char buf[PROXY_HEAD_MAX + 1];
	size_t len;              /* bytes read */
	size_t head_len;         /* through the blank line */
};

static int64_t ms_left(uint64_t deadline_ns)
{
	uint64_t now = now_ns();
	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Answer the sandbox and let the connection close. */
static void reply(int fd, int status, const char *phrase, const char *code, const char *sentence)
{
	char body[1024], head[512];
	int bn = snprintf(body, sizeof(body), "corral egress proxy: %s\n", sentence);
	int hn;

	if (bn < 0 || (size_t)bn >= sizeof(body))
		bn = (int)sizeof(body) - 1;
	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		      "Content-Length: %d\r\nConnection: close\r\nX-Corral-Egress: %s\r\n\r\n",
		      status, phrase, bn, code);
	if (send_all(fd, head, (size_t)hn))
		send_all(fd, body, (size_t)bn);
}

/* Read the head and parse it.  0, or -1 after answering (or on a silent
 * peer, which gets nothing: it is gone or never spoke). */
static int read_request(struct egress_sandbox *sb, int fd, struct head *h,
			struct proxy_request *rq)
{
	const struct egress_options *o = egress_sandbox_options(sb);
	uint64_t deadline = now_ns() + (uint64_t)o->head_timeout_ms * 1000000u;
	struct proxy_refusal why;

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = ms_left(deadline);
		ssize_t r;

		int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			if (h->len > 0)
				reply(fd, 408, "Request Timeout", "head_timeout",
				      "the request head did not arrive in time");
			return -1;
		}
		r = recv(fd, h->buf + h->len, PROXY_HEAD_MAX - h->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		h->len += (size_t)r;
		h->buf[h->len] = '\0';
		h->head_len = proxy_head_length(h->buf, h->len);
		if (h->head_len)
			break;
		if (h->len == PROXY_HEAD_MAX) {
			reply(fd, 431, "Request Header Fields Too Large", "head_too_large",
			      "the request head is larger than 16384 bytes");
			return -1;
		}
	}
	if (proxy_request_parse(h->buf, h->head_len, rq, &why) < 0) {
		reply(fd, why.status, why.phrase, why.code, why.sentence);
		return -1;
	}
	return 0;
}

/* Refuse: `reason` (the whole sentence) for the log and the audit,
 * `shown` for the sandbox. */
static void deny(struct egress_sandbox *sb, int fd, const struct proxy_request *t, int status,
		 const char *phrase, const char *code, const char *reason, const char *shown)
{
	egress_count(&egress_counters.proxy_denied);
	egress_sandbox_record(sb, false, t->display, code, reason);
	egress_sandbox_log(sb, 1, "refused %s: %s", t->display, reason);
	reply(fd, status, phrase, code, shown);
}

/* Connect to `ai` within the deadline; the socket (blocking), or -1. */
static int connect_to(const struct addrinfo *ai, int port, uint64_t deadline, int *err)
{
	struct sockaddr_storage ss;
	int s, fl;

	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		*err = errno;
		return -1;
	}
	if (connect(s, (struct sockaddr *)&ss, ai->ai_addrlen) < 0) {
		struct pollfd pfd = { s, POLLOUT, 0 };
		socklen_t len = sizeof(*err);
		int r;

		if (errno != EINPROGRESS) {
			*err = errno;
			close(s);
			return -1;
		}
		do
			r = poll(&pfd, 1, (int)ms_left(deadline));
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			*err = ETIMEDOUT;
			close(s);
			return -1;
		}
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, err, &len) < 0 || *err != 0) {
			close(s);
			return -1;
		}
	}
	fl = fcntl(s, F_GETFL);
	fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
	return s;
}

/* The host's own addresses (every interface's), read at most once a
 * second: in mode open (or with a literal entry for some other address) a
 * public address of the host itself is not "the internet" but its own
 * services, which listen there too and are reached over `lo`. */
static pthread_mutex_t host_addrs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sockaddr_storage host_addrs[64];
static size_t n_host_addrs;
static uint64_t host_addrs_at;

static bool same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static bool is_host_address(const struct sockaddr *addr)
{
	uint64_t now = now_ns();
	bool found = false;
	struct sockaddr_in v4;
	const struct sockaddr *want = addr;

	/* An IPv4-mapped IPv6 address is the IPv4 address. */
	if (addr->sa_family == AF_INET6) {
		const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, a + 12, 4);
			want = (const struct sockaddr *)&v4;
		}
	}
	pthread_mutex_lock(&host_addrs_lock);
	if (host_addrs_at == 0 || now - host_addrs_at > 1000000000u) {
		struct ifaddrs *ifa = NULL;
		n_host_addrs = 0;
		if (getifaddrs(&ifa) == 0) {
			for (struct ifaddrs *i = ifa; i && n_host_addrs < ARRAY_SIZE(host_addrs); i = i->ifa_next) {
				if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
							    i->ifa_addr->sa_family != AF_INET6))
					continue;
				memcpy(&host_addrs[n_host_addrs++], i->ifa_addr,
				       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
									 : sizeof(struct sockaddr_in6));
			}
			freeifaddrs(ifa);
		}
		host_addrs_at = now;
	}
	for (size_t i = 0; i < n_host_addrs && !found; i++)
		found = same_address(want, &host_addrs[i]);
	pthread_mutex_unlock(&host_addrs_lock);
	return found;
}

/* A name lookup with a deadline: glibc's getaddrinfo_a() runs it on a
 * thread of its own; we wait for it at most until `deadline`.  The lookup
 * is shared by us and its completion notice, and freed by whichever lets
 * go of it last, so a lookup we gave up on cleans up after itself. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char name[260];
	unsigned refs;
};

static void lookup_unref(struct lookup *l)
{
	if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

static void lookup_done(union sigval sv)
{
	lookup_unref(sv.sival_ptr);
}

/* 0 with *res, or an EAI_* code (EAI_AGAIN when the deadline passed). */
static int resolve(const char *host, uint64_t deadline, struct addrinfo **res)
{
	struct lookup *l = xzalloc(sizeof(*l));
	struct gaicb *list[1] = { &l->cb };
	struct sigevent sev;
	int r;

	snprintf(l->name, sizeof(l->name), "%s", host);
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->name;
	l->cb.ar_request = &l->hints;
	l->refs = 2;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = lookup_done;
	sev.sigev_value.sival_ptr = l;
	r = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (r != 0) {
		free(l);
		return r;
	}
	for (;;) {
		int64_t left = ms_left(deadline);
		struct timespec ts = { left / 1000, (left % 1000) * 1000000 };
		const struct gaicb *const wait_list[1] = { &l->cb };

		r = gai_error(&l->cb);
		if (r != EAI_INPROGRESS)
			break;
		if (left <= 0) {
			r = gai_cancel(&l->cb);
			if (r == EAI_CANCELED) {
				/* Never ran: no notice will come. */
				lookup_unref(l);
				lookup_unref(l);
				return EAI_AGAIN;
			}
			if (r == EAI_ALLDONE) {
				r = gai_error(&l->cb);
				break;
			}
			lookup_unref(l); /* the notice frees it */
			return EAI_AGAIN;
		}
		gai_suspend(wait_list, 1, &ts);
	}
	if (r == 0) {
		*res = l->cb.ar_result;
		l->cb.ar_result = NULL;
	}
	lookup_unref(l);
	return r;
}

/* Resolve, check and connect; the upstream socket, or -1 after answering.
 * A refused name is answered without the addresses it resolved to (the
 * sandbox would learn the host's internal DNS from them); the log and the
 * audit keep the whole sentence. */
static int open_upstream(struct egress_sandbox *sb, int fd, const struct proxy_request *t)
{
	const struct egress_policy *pol = egress_sandbox_policy(sb);
	const struct egress_options *o = egress_sandbox_options(sb);
	struct egress_verdict v, first_refusal;
	struct addrinfo *res = NULL;
	char sentence[900];
	bool any_allowed = false, any_refused = false;
	int gai, s = -1, cerr = 0;
	uint64_t deadline;

	if (!egress_check_name(pol, t->host, t->port, &v)) {
		deny(sb, fd, t, 403, "Forbidden", v.code, v.reason, v.reason);
		return -1;
	}
	deadline = now_ns() + (uint64_t)o->connect_timeout_ms * 1000000u;
	gai = resolve(t->host, deadline, &res);
	if (gai != 0) {
		snprintf(sentence, sizeof(sentence), "cannot resolve '%s': %s", t->host,
			 gai_strerror(gai));
		deny(sb, fd, t, 502, "Bad Gateway", "unresolvable", sentence, sentence);
		return -1;
	}
	for (struct addrinfo *ai = res; ai && s < 0; ai = ai->ai_next) {
		bool ok = egress_check_address(pol, t->host, t->port, ai->ai_addr, &v);
		if (ok && is_host_address(ai->ai_addr) &&
		    !egress_policy_lists_address(pol, ai->ai_addr, t->port)) {
			char text[INET6_ADDRSTRLEN] = "";
			const void *a = ai->ai_family == AF_INET
						? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
						: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			inet_ntop(ai->ai_family, a, text, sizeof(text));
			ok = false;
			v.allowed = false;
			v.code = "host_address";
			snprintf(v.reason, sizeof(v.reason),
				 "egress to '%s' refused: %s is an address of this host itself", t->display,
				 text);
		}
		if (!ok) {
			if (!any_refused)
				first_refusal = v;
			any_refused = true;
			continue;
		}
		any_allowed = true;
		if (ms_left(deadline) <= 0)
			break;
		s = connect_to(ai, t->port, deadline, &cerr);
	}
	freeaddrinfo(res);
	if (!any_allowed) {
		/* A literal address is the sandbox's own words; for a name,
		 * say only what kind of address it resolves to. */
		unsigned char probe[16];
		bool literal = inet_pton(AF_INET, t->host, probe) == 1 ||
			       inet_pton(AF_INET6, t->host, probe) == 1;
		if (literal)
			snprintf(sentence, sizeof(sentence), "%s", first_refusal.reason);
		else
			snprintf(sentence, sizeof(sentence),
				 "egress to '%s' refused: the name resolves to an address the policy "
				 "does not allow (%s)", t->display, first_refusal.code);
		deny(sb, fd, t, 403, "Forbidden", first_refusal.code, first_refusal.reason, sentence);
		return -1;
	}
	if (s < 0) {
		snprintf(sentence, sizeof(sentence), "cannot connect to '%s': %s", t->display,
			 strerror(cerr ? cerr : ETIMEDOUT));
		if (cerr == ETIMEDOUT || cerr == 0)
			deny(sb, fd, t, 504, "Gateway Timeout", "unreachable", sentence, sentence);
		else
			deny(sb, fd, t, 502, "Bad Gateway", "unreachable", sentence, sentence);
		return -1;
	}
	egress_count(&egress_counters.proxy_allowed);
	egress_sandbox_record(sb, true, t->display, "allowed", NULL);
	egress_sandbox_log(sb, 2, "%s %s", t->tunnel ? "tunnel to" : "request to", t->display);
	return s;
}

/* --- the relay ------------------------------------------------------------ */

struct direction {
	int from, to;
	int pipe[2];
	size_t cap;              /* the pipe's size */
	size_t queued;           /* bytes in the pipe */
	uint64_t left;           /* bytes still to carry (UINT64_MAX: to EOF) */
	bool full;               /* the last splice in found no room */
	bool eof;                /* `from` ended, or `left` reached 0 */
	bool done;               /* nothing more will move this way */
};

/* Move what can move one way.  -1 when the tunnel must end (an error that
 * is not a would-block). */
static int relay_step(struct direction *d, short from_rev, short to_rev, bool *moved)
{
	if (!d->done && !d->eof && !d->full && d->queued >= d->cap)
		d->full = true; /* a splice of 0 bytes would read as EOF */
	if (!d->done && !d->eof && !d->full && (from_rev & (POLLIN | POLLHUP | POLLERR))) {
		size_t want = d->cap - d->queued;
		ssize_t r;
		if (want > d->left)
			want = (size_t)d->left;
		r = splice(d->from, NULL, d->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (r > 0) {
			d->queued += (size_t)r;
			d->left -= (uint64_t)r;
			*moved = true;
			if (d->left == 0)
				d->eof = true;
		} else if (r == 0) {
			d->eof = true;
		} else if (errno == EAGAIN) {
			/* Either the socket had nothing (then poll lied about
			 * it only with POLLHUP/POLLERR, handled by the caller)
			 * or the pipe is full: wait for it to drain. */
			d->full = d->queued > 0;
		} else if (errno != EINTR) {
			return -1;
		}
	}
	if (!d->done && d->queued > 0 && (to_rev & (POLLOUT | POLLERR | POLLHUP))) {
		ssize_t w = splice(d->pipe[0], NULL, d->to, NULL, d->queued,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w > 0) {
			d->queued -= (size_t)w;
			d->full = false;
			*moved = true;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			return -1;
		}
	}
	if (d->eof && d->queued == 0 && !d->done) {
		/* A request carried to its end leaves the origin's side open:
		 * it answers, then closes ("Connection: close"). */
		if (d->left != 0)
			shutdown(d->to, SHUT_WR);
		d->done = true;
	}
	return 0;
}

/* Carry bytes both ways between the sandbox's socket `a` and the
 * upstream `b`, at most `a_to_b` bytes from a (UINT64_MAX: until EOF),
 * until both ways are done, either socket fails, or nothing moves for
 * idle_timeout_ms. */
static void relay(struct egress_sandbox *sb, int a, int b, uint64_t a_to_b)
{
	const struct egress_options *o = egress_sandbox_options(sb);
	struct direction d[2] = {
		{ .from = a, .to = b, .pipe = { -1, -1 }, .left = a_to_b },
		{ .from = b, .to = a, .pipe = { -1, -1 }, .left = UINT64_MAX },
	};
	uint64_t idle_ns = (uint64_t)o->idle_timeout_ms * 1000000u;
	uint64_t idle_deadline = now_ns() + idle_ns;
	unsigned idle_wakeups = 0;
	bool abort_client = false;

	for (int i = 0; i < 2; i++) {
		int sz;
		if (pipe2(d[i].pipe, O_CLOEXEC | O_NONBLOCK) < 0)
			goto out;
		sz = fcntl(d[i].pipe[1], F_SETPIPE_SZ, PIPE_CAP);
		if (sz < 0)
			sz = fcntl(d[i].pipe[1], F_GETPIPE_SZ);
		d[i].cap = sz > 0 ? (size_t)sz : 4096;
	}
	d[0].eof = d[0].done = a_to_b == 0;
	fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
	fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
	while (!(d[0].done && d[1].done)) {
		struct pollfd pfd[2] = { { a, 0, 0 }, { b, 0, 0 } };
		int64_t left = ms_left(idle_deadline);
		bool moved = false;
		int r;

		if (left <= 0) {
			egress_sandbox_log(sb, 2, "tunnel idle for %u ms: closed", o->idle_timeout_ms);
			abort_client = true;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (!d[i].done && !d[i].eof && !d[i].full && d[i].queued < d[i].cap)
				pfd[i].events |= POLLIN;
			if (!d[i].done && d[i].queued > 0)
				pfd[1 - i].events |= POLLOUT;
		}
		/* poll() reports POLLHUP and POLLERR even for no events: a
		 * socket we want nothing from must not wake us (a half-closed
		 * tunnel would spin on its POLLHUP). */
		for (int i = 0; i < 2; i++)
			if (pfd[i].events == 0)
				pfd[i].fd = -1;
		r = poll(pfd, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0)
			continue; /* the deadline is checked above */
		/* A reset or error on the upstream: hand the sandbox what is
		 * already here, then reset its side too, so that it sees a
		 * broken transfer and not a clean end.  On the sandbox's side:
		 * nobody is left to tell. */
		if (pfd[1].revents & (POLLERR | POLLNVAL)) {
			bool ignored;
			relay_step(&d[1], pfd[1].revents | POLLIN, POLLOUT, &ignored);
			abort_client = true;
			break;
		}
		if (pfd[0].revents & (POLLERR | POLLNVAL))
			break;
		if (relay_step(&d[0], pfd[0].revents, pfd[1].revents, &moved) < 0 ||
		    relay_step(&d[1], pfd[1].revents, pfd[0].revents, &moved) < 0)
			break;
		/* POLLHUP: that socket can take nothing more (its peer is gone
		 * both ways, or the daemon shut it down at the execution's
		 * end), so the way into it is done; the way out of it ends at
		 * its EOF, which the splice above reads. */
		for (int i = 0; i < 2; i++)
			if (pfd[i].revents & POLLHUP)
				d[1 - i].done = true;
		if (moved) {
			idle_deadline = now_ns() + idle_ns;
			idle_wakeups = 0;
		} else if (++idle_wakeups > 64) {
			/* Woken again and again with nothing to move: a state
			 * poll keeps reporting that no step consumes.  Better
			 * to end the tunnel than to spin. */
			egress_sandbox_log(sb, 1, "tunnel woke %u times without progress: closed",
					   idle_wakeups);
			abort_client = true;
			break;
		}
	}
out:
	/* A tunnel cut short (upstream reset, idle, stuck) closes the
	 * sandbox's side with a reset: a clean end would pass a truncated
	 * transfer off as a whole one. */
	if (abort_client || !(d[0].done && d[1].done)) {
		struct linger lg = { 1, 0 };
		setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	for (int i = 0; i < 2; i++) {
		if (d[i].pipe[0] >= 0)
			close(d[i].pipe[0]);
		if (d[i].pipe[1] >= 0)
			close(d[i].pipe[1]);
	}
}

/* Before closing after an answer: closing a socket with unread input
 * makes the kernel send a reset, which can overtake the answer.  So
 * half-close, then read and drop what the peer still sends, for a moment. */
static void linger(int fd)
{
	uint64_t deadline = now_ns() + 1000000000u;
	size_t dropped = 0;
	char sink[4096];

	shutdown(fd, SHUT_WR);
	while (dropped < (256u << 10)) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t r;
		if (poll(&pfd, 1, (int)ms_left(deadline)) <= 0)
			break;
		r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (r <= 0)
			break;
		dropped += (size_t)r;
	}
}

void forward_serve(struct egress_sandbox *sb, int fd, struct egress_conn *conn)
{
	struct head *h = xzalloc(sizeof(*h));
	struct proxy_request t;
	uint64_t body = UINT64_MAX;
	int up = -1;

	if (read_request(sb, fd, h, &t) < 0)
		goto refused;
	up = open_upstream(sb, fd, &t);
	if (up < 0)
		goto refused;
	/* From here the execution's end shuts the upstream down too. */
	if (!egress_conn_set_upstream(conn, up))
		goto out;
	if (t.tunnel) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		if (!send_all(fd, ok, sizeof(ok) - 1))
			goto out;
	} else {
		size_t n;
		char *head = proxy_request_origin_head(&t, &n);
		bool ok = send_all(up, head, n);
		free(head);
		if (!ok)
			goto out;
		body = t.body_len;
	}
	/* What the sandbox sent after the head: a TLS hello, or the start of
	 * the body (and never more than the body). */
	if (h->len > h->head_len) {
		uint64_t extra = h->len - h->head_len;
		if (extra > body)
			extra = body;
		if (!send_all(up, h->buf + h->head_len, (size_t)extra))
			goto out;
		if (body != UINT64_MAX)
			body -= extra;
	}
	free(h);
	h = NULL;
	relay(sb, fd, up, body);
	goto out;
refused:
	linger(fd);
out:
	free(h);
	/* The caller closes fd and up (after taking them off the list the
	 * execution's end walks). */
}
