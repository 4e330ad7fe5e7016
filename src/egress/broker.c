/* broker.c - the credential brokers at 127.0.0.1:3129 (anthropic) and
 * 127.0.0.1:3130 (github): plain HTTP from the sandbox, forwarded to the
 * connector's upstream with its credential added (DESIGN.md 5).
 *
 * The engine is one libmicrohttpd daemon without a listening socket and
 * with a thread per connection: egress.c accepts on a sandbox's broker
 * port and hands the fd to broker_add(), which gives it to MHD.  A request
 * is handled on its connection's thread, with blocking calls:
 *
 *   1. its body is read whole into a spool (on the heap up to
 *      BODY_MEM_MAX, then in a memfd; over BODY_MAX it is refused with
 *      413), so that curl can rewind it when it has to send it again on a
 *      fresh connection because the reused one had been closed upstream.
 *      The daemon pays for spools, not the sandbox: the bytes spooled at
 *      once are capped per sandbox (SANDBOX_SPOOL_MAX) and in all
 *      (SPOOL_MAX), and a body that does not fit is answered 503 with a
 *      Retry-After.  A spool's bytes are given back when its request ends;
 *   2. a curl handle is added to the connection's multi handle (one client
 *      connection keeps reusing one upstream connection) with the same
 *      method, path and query, the end-to-end headers minus any credential
 *      the sandbox sent, plus the target's header line;
 *   3. the thread drives curl until the final status and headers are in,
 *      then queues a response whose body callback drives curl again each
 *      time what it holds has been sent.  Bytes leave as they arrive (a
 *      stream of server-sent events is not held back), and the upstream
 *      is read only as fast as the sandbox reads: a transfer holds what one
 *      curl_multi_perform() delivers, at most RESP_HELD_MAX.
 *
 * Which sandbox a connection belongs to.  MHD knows a connection by its
 * fd.  broker_add() files (fd, sandbox, port) in `pending` before handing
 * the fd over; the connection's STARTED notification, on MHD's thread,
 * takes the entry out and turns it into the connection's context, and its
 * CLOSED notification drops that.  MHD 0.9.75 notifies CLOSED before it
 * closes the fd (MHD_cleanup_connections(), and the failure path of
 * new_connection_process_()), so an fd number cannot be reused while its
 * entry or context is alive.  MHD closes a queued fd without any
 * notification only when it cannot start the connection at all (no
 * memory, at its connection limit, stopping).  The entry left behind
 * would keep its sandbox (and the pages of its credential) alive, so each
 * broker_add() and each CLOSED looks for entries whose fd no longer names
 * the socket they were filed with, and their sandbox references are let
 * go on MHD's thread, outside the caller's locks.
 *
 * A peer that goes away is noticed within WAIT_SLICE_MS while the thread
 * waits on the upstream (poll() for POLLRDHUP on its fd: a client that
 * half-closes after its request is taken for gone too); the transfer is
 * then removed from curl, which closes that upstream connection.
 *
 * The credential is read from the target (egress.c keeps it in memory a
 * sandbox's init never inherits) only to build the curl header list; the
 * list's copy is wiped as soon as the transfer ends.  It never appears in
 * a response the broker makes, a log line or the report.  TRACE, which
 * would have the upstream echo it back, is refused.
 *
 * What is forwarded at all.  The credential goes only where its kind of
 * client needs it: the github broker forwards git smart HTTP (.../info/refs
 * with a git service, POST .../git-upload-pack and .../git-receive-pack),
 * so a GitHub Enterprise base URL does not lend the token to its REST API;
 * the anthropic broker forwards "/" and /v1/...; anything else is 403 and
 * in the report.  A path with a ".." segment (plain or percent-encoded),
 * a backslash or an encoded '/' or '\' is 400: an upstream or a server in
 * front of it that decodes or normalises the path could be led out of
 * what was allowed.  A header whose name is not a token or whose value
 * holds a control character is 400 too: libmicrohttpd 0.9.75 takes
 * "Transfer-Encoding : chunked" as a header named "Transfer-Encoding ",
 * which would pass the name checks below and reach the upstream beside
 * curl's own framing, with the credential attached.
 *
 * NEEDSWORK: an upstream endpoint that echoed request headers in its body
 * would still hand the credential back; responses are not scrubbed.
 */
#define _GNU_SOURCE
#include "egress/egress.h"
#include "util/buf.h"
#include "util/util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX ((uint64_t)64 << 20)          /* a request body */
#define BODY_DISCARD_MAX ((uint64_t)64 << 20)  /* read past a refused body to answer */
#define SANDBOX_SPOOL_MAX ((uint64_t)128 << 20) /* bodies spooled at once, one sandbox */
#define SPOOL_MAX ((uint64_t)512 << 20)        /* bodies spooled at once, all sandboxes */
#define SPOOL_RETRY_AFTER "5"                  /* seconds, for a 503 over a budget */
#define BODY_MEM_MAX ((size_t)1 << 20)         /* spooled on the heap, then a memfd */
#define RESP_HEAD_MAX ((size_t)32 << 10)       /* the upstream's response headers */
#define RESP_HELD_MAX ((size_t)8 << 20)        /* body bytes a transfer holds */
#define RESP_BLOCK ((size_t)32 << 10)
#define CONN_MEMORY ((size_t)64 << 10)         /* MHD's per-connection pool */
#define CONN_LIMIT 4096u                       /* connections, all sandboxes */
#define WAIT_SLICE_MS 1000
#define LOG_PATH_MAX 200

/* --- the request body ----------------------------------------------------- */

static bool budget_charge(struct broker *b, const struct egress_sandbox *sb, uint64_t n);
static void budget_return(struct broker *b, const struct egress_sandbox *sb, uint64_t n);

/* A spool's bytes are charged to its sandbox's budget and the broker's
 * from the first spool_add() until spool_release(); moving the struct
 * moves the charge. */
struct spool {
	char *mem;
	size_t cap;
	int fd;            /* a memfd once over BODY_MEM_MAX, else -1 */
	uint64_t size;     /* bytes in all (in mem while fd < 0), all charged */
	struct broker *b;  /* charged to; NULL: nothing charged yet */
	const struct egress_sandbox *sb;
};

static void spool_init(struct spool *s)
{
	s->mem = NULL;
	s->cap = 0;
	s->fd = -1;
	s->size = 0;
	s->b = NULL;
	s->sb = NULL;
}

static void spool_release(struct spool *s)
{
	free(s->mem);
	if (s->fd >= 0)
		close(s->fd);
	if (s->b && s->size > 0)
		budget_return(s->b, s->sb, s->size);
	spool_init(s);
}

/* Store `len` more bytes (size is the caller's).  Returns 0, or -1. */
static int spool_put(struct spool *s, const char *data, size_t len)
{
	if (s->fd < 0 && s->size + len > BODY_MEM_MAX) {
		s->fd = memfd_create("corral-broker-body", MFD_CLOEXEC);
		if (s->fd < 0 || write_all(s->fd, s->mem, (size_t)s->size) < 0)
			return -1;
		free(s->mem);
		s->mem = NULL;
		s->cap = 0;
	}
	if (s->fd >= 0) {
		if (write_all(s->fd, data, len) < 0)
			return -1;
	} else {
		if (s->size + len > s->cap) {
			size_t cap = s->cap ? s->cap : 16384;
			while (cap < s->size + len)
				cap *= 2;
			s->mem = xrealloc(s->mem, cap);
			s->cap = cap;
		}
		memcpy(s->mem + s->size, data, len);
	}
	return 0;
}

/* Add `len` bytes, charged to sb's budget in b (the first call decides
 * which).  Returns 0, or -1 with errno set: EDQUOT when a budget has no
 * room for them. */
static int spool_add(struct spool *s, struct broker *b, const struct egress_sandbox *sb,
		     const char *data, size_t len)
{
	if (s->b == NULL) {
		s->b = b;
		s->sb = sb;
	}
	if (!budget_charge(s->b, s->sb, len)) {
		errno = EDQUOT;
		return -1;
	}
	if (spool_put(s, data, len) < 0) {
		int e = errno;
		budget_return(s->b, s->sb, len);
		errno = e;
		return -1;
	}
	s->size += len;
	return 0;
}

/* Up to `max` bytes at `pos`: returns the count (0 at the end), or -1. */
static ssize_t spool_read(const struct spool *s, uint64_t pos, char *out, size_t max)
{
	ssize_t n;

	if (pos >= s->size)
		return 0;
	if (max > s->size - pos)
		max = (size_t)(s->size - pos);
	if (s->fd < 0) {
		memcpy(out, s->mem + pos, max);
		return (ssize_t)max;
	}
	do
		n = pread(s->fd, out, max, (off_t)pos);
	while (n < 0 && errno == EINTR);
	return n;
}

/* --- the engine and its connections --------------------------------------- */

struct pending {
	int fd;
	dev_t dev;                     /* the socket fd named when it was filed */
	ino_t ino;
	struct egress_sandbox *sb;     /* a reference */
	enum egress_port_kind kind;
	struct pending *next;
};

/* The request bodies one sandbox has spooled.  An entry lives only while
 * a spool of that sandbox holds bytes; a spool belongs to a request of a
 * connection, which holds a reference to the sandbox, so the key cannot
 * come to name another sandbox meanwhile. */
struct budget {
	const struct egress_sandbox *sb;
	uint64_t bytes;
	struct budget *next;
};

struct broker {
	struct MHD_Daemon *mhd;
	char *upstream_ca;
	long connect_timeout_ms;
	long idle_timeout_s;
	void (*log)(void *data, int level, const char *line);
	void *log_data;
	bool stopping;                 /* atomic */
	pthread_mutex_t lock;
	struct pending *pending;       /* under lock */
	struct pending *stale;         /* under lock: to free on MHD's thread */
	uint64_t spooled;              /* under lock: body bytes, all sandboxes */
	struct budget *budgets;        /* under lock: per sandbox, those with any */
};

/* One client connection: MHD's socket context. */
struct bconn {
	unsigned refs;                 /* atomic: the context and each live transfer */
	struct broker *b;
	struct egress_sandbox *sb;     /* a reference */
	enum egress_port_kind kind;
	int fd;                        /* MHD's: only polled */
	CURLM *multi;
	char *hostport;                /* the upstream's, for the report; NULL: no valid one */
};

/* One request: MHD's con_cls, made by the URI callback. */
struct breq {
	char *target;                  /* the request-target as sent: path and query */
	bool begun;
	bool too_large;
	bool spool_failed;
	bool over_budget;
	uint64_t received;
	struct spool body;
};

/* One exchange with the upstream; once a response is queued, the response
 * owns it (transfer_free() is its free callback). */
struct transfer {
	struct bconn *conn;            /* a reference */
	const struct egress_broker_target *target; /* the sandbox's: conn holds it */
	CURL *easy;
	bool in_multi;
	struct curl_slist *headers;
	struct curl_slist *cred;       /* the entry holding the credential */
	struct spool body;
	uint64_t body_pos;
	/* the response */
	long status;                   /* of the head being read */
	bool head_done;                /* the final head is complete */
	bool head_too_large;
	bool keep_line;                /* the last header line was kept (obs-fold) */
	struct buf head;               /* "name\0value\0" of the final head */
	int64_t content_length;        /* -1: none */
	bool chunked;                  /* a Transfer-Encoding came */
	struct buf data;               /* body bytes not yet handed to MHD */
	size_t data_off;
	bool held_too_much;
	bool done;
	CURLcode result;
	bool failure_counted;
	char label[LOG_PATH_MAX + 32]; /* "POST /v1/messages", for the log */
	char errbuf[CURL_ERROR_SIZE];
};

/* Charge n spooled bytes to sb and to all; false, charging nothing, when
 * either budget has no room. */
static bool budget_charge(struct broker *b, const struct egress_sandbox *sb, uint64_t n)
{
	struct budget *bu;
	bool ok = false;

	pthread_mutex_lock(&b->lock);
	for (bu = b->budgets; bu && bu->sb != sb; bu = bu->next)
		;
	if (b->spooled + n <= SPOOL_MAX && (bu ? bu->bytes : 0) + n <= SANDBOX_SPOOL_MAX) {
		if (bu == NULL) {
			bu = xzalloc(sizeof(*bu));
			bu->sb = sb;
			bu->next = b->budgets;
			b->budgets = bu;
		}
		bu->bytes += n;
		b->spooled += n;
		ok = true;
	}
	pthread_mutex_unlock(&b->lock);
	return ok;
}

static void budget_return(struct broker *b, const struct egress_sandbox *sb, uint64_t n)
{
	struct budget **pp, *bu;

	pthread_mutex_lock(&b->lock);
	b->spooled -= n;
	for (pp = &b->budgets; (bu = *pp) != NULL; pp = &bu->next)
		if (bu->sb == sb) {
			bu->bytes -= n;
			if (bu->bytes == 0) {
				*pp = bu->next;
				free(bu);
			}
			break;
		}
	pthread_mutex_unlock(&b->lock);
}

/* Whether n more bytes would fit sb's budget and the broker's now. */
static bool budget_room(struct broker *b, const struct egress_sandbox *sb, uint64_t n)
{
	struct budget *bu;
	bool ok;

	pthread_mutex_lock(&b->lock);
	for (bu = b->budgets; bu && bu->sb != sb; bu = bu->next)
		;
	ok = (bu ? bu->bytes : 0) + n <= SANDBOX_SPOOL_MAX && b->spooled + n <= SPOOL_MAX;
	pthread_mutex_unlock(&b->lock);
	return ok;
}

static const char *kind_name(enum egress_port_kind kind)
{
	if (kind == EGRESS_PORT_ANTHROPIC)
		return "anthropic";
	return kind == EGRESS_PORT_GITHUB ? "github" : "?";
}

static void bconn_unref(struct bconn *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	egress_sandbox_conn_end(c->sb);
	egress_sandbox_unref(c->sb);
	free(c->hostport);
	free(c);
}

/* "host:port" of an http or https URL, or NULL. */
static char *upstream_hostport(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *r = NULL;

	if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    (strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0) &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		r = xasprintf("%s:%s", host, port);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

static struct pending *pending_take_fd(struct broker *b, int fd)
{
	struct pending **pp, *p;

	for (pp = &b->pending; (p = *pp) != NULL; pp = &p->next)
		if (p->fd == fd) {
			*pp = p->next;
			return p;
		}
	return NULL;
}

static bool pending_take_entry(struct broker *b, struct pending *entry)
{
	struct pending **pp;

	for (pp = &b->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == entry) {
			*pp = entry->next;
			return true;
		}
	return false;
}

static void pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	egress_sandbox_conn_end(p->sb);   /* NULL once a connection took it */
	egress_sandbox_unref(p->sb);
	free(p);
}

/* Under b->lock: move the entries MHD dropped without a word to
 * b->stale.  An entry's fd is MHD's until STARTED takes the entry, so
 * while MHD holds the connection the fd still names the socket filed;
 * once MHD has closed it, the number is free or names something else. */
static void pending_sweep_locked(struct broker *b)
{
	struct pending **pp = &b->pending, *p;
	struct stat st;

	while ((p = *pp) != NULL) {
		if (fstat(p->fd, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		p->next = b->stale;
		b->stale = p;
	}
}

/* On MHD's thread: sweep, and let the stale entries' sandboxes go. */
static void pending_reap(struct broker *b)
{
	struct pending *stale;

	pthread_mutex_lock(&b->lock);
	pending_sweep_locked(b);
	stale = steal_pointer(&b->stale);
	pthread_mutex_unlock(&b->lock);
	while (stale) {
		struct pending *next = stale->next;
		pending_free(stale);
		stale = next;
	}
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct broker *b = cls;
	const union MHD_ConnectionInfo *ci;
	const struct egress_broker_target *tg;
	struct pending *p = NULL;
	struct bconn *c;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		bconn_unref(*socket_context);
		*socket_context = NULL;
		pending_reap(b);
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	*socket_context = NULL;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	pthread_mutex_lock(&b->lock);
	if (ci)
		p = pending_take_fd(b, ci->connect_fd);
	pthread_mutex_unlock(&b->lock);
	pending_reap(b);
	if (p == NULL)
		return; /* cannot happen; its requests are refused */
	c = xzalloc(sizeof(*c));
	c->refs = 1;
	c->b = b;
	c->sb = steal_pointer(&p->sb);
	c->kind = p->kind;
	c->fd = p->fd;
	c->multi = curl_multi_init();
	tg = egress_sandbox_target(c->sb, c->kind);
	c->hostport = tg ? upstream_hostport(tg->upstream) : NULL;
	free(p);
	if (c->multi == NULL) {
		bconn_unref(c);
		return;
	}
	*socket_context = c;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	struct breq *req = xzalloc(sizeof(*req));

	req->target = xstrdup(uri ? uri : "");
	spool_init(&req->body);
	return req;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct breq *req = *con_cls;

	if (req == NULL)
		return;
	spool_release(&req->body);
	free(req->target);
	free(req);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct broker *b = cls;
	char line[512];
	size_t n;

	if (b->log == NULL)
		return;
	n = (size_t)snprintf(line, sizeof(line), "egress: broker: ");
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	b->log(b->log_data, 2, line);
}

/* --- replies the broker makes itself -------------------------------------- */

/* A JSON error {"error": code, "message": message}; with a Retry-After
 * when retry_after is not NULL. */
static enum MHD_Result reply_refusal(struct MHD_Connection *mc, unsigned status,
				     const char *code, const char *message,
				     const char *retry_after)
{
	json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(o);
	if (s == NULL)
		s = xasprintf("{\"error\":\"%s\",\"message\":\"the broker refused the request\"}",
			      code);
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
	free(s);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (retry_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
	ret = MHD_queue_response(mc, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *mc, unsigned status, const char *code,
				   const char *message)
{
	return reply_refusal(mc, status, code, message, NULL);
}

static enum MHD_Result reply_over_budget(struct bconn *c, struct MHD_Connection *mc)
{
	cleanup_free char *msg = xasprintf(
		"the broker holds at most %llu MiB of request bodies for an execution and %llu "
		"MiB in all at once, and this one does not fit now: retry when other requests "
		"are done",
		(unsigned long long)(SANDBOX_SPOOL_MAX >> 20),
		(unsigned long long)(SPOOL_MAX >> 20));

	egress_sandbox_log(c->sb, 1, "a request body does not fit the broker's budget: 503");
	return reply_refusal(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", msg,
			     SPOOL_RETRY_AFTER);
}

/* --- headers -------------------------------------------------------------- */

static bool name_is(const char *name, size_t len, const char *what)
{
	return strlen(what) == len && strncasecmp(name, what, len) == 0;
}

/* Hop-by-hop headers (RFC 9110 7.6.1) and the other framing ones that
 * belong to one connection, not to the message. */
static bool hop_by_hop(const char *name, size_t len)
{
	return name_is(name, len, "connection") || name_is(name, len, "keep-alive") ||
	       (len >= 6 && strncasecmp(name, "proxy-", 6) == 0) || name_is(name, len, "te") ||
	       name_is(name, len, "trailer") || name_is(name, len, "transfer-encoding") ||
	       name_is(name, len, "upgrade");
}

/* Whether `name` is one of the comma-separated tokens in `list`, which a
 * Connection header names as hop-by-hop too. */
static bool listed(const char *list, const char *name, size_t len)
{
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ',');
		const char *e = end ? end : p + strlen(p);

		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - p) == len && strncasecmp(p, name, len) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

struct req_headers {
	struct buf connection;         /* every Connection value, joined by ',' */
	bool has_accept;
	struct curl_slist *list;
};

static struct curl_slist *slist_add(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (l == NULL) {
		fprintf(stderr, "corral: out of memory building a header list\n");
		abort();
	}
	return l;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct req_headers *h = cls;

	if (strcasecmp(key, "connection") == 0 && value) {
		buf_adds(&h->connection, value);
		buf_adds(&h->connection, ",");
	}
	if (strcasecmp(key, "accept") == 0)
		h->has_accept = true;
	return MHD_YES;
}

static bool is_tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A header field as RFC 9110 5 has it: the name a token, the value free
 * of control characters but HTAB (obs-text, bytes over 0x7f, is let
 * through). */
static bool field_ok(const char *name, const char *value)
{
	if (name == NULL || name[0] == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!is_tchar(*p))
			return false;
	for (const unsigned char *v = (const unsigned char *)(value ? value : ""); *v; v++)
		if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
			return false;
	return true;
}

static enum MHD_Result check_field(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	bool *bad = cls;

	if (field_ok(key, value))
		return MHD_YES;
	*bad = true;
	return MHD_NO;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct req_headers *h = cls;
	size_t len = strlen(key);
	char *line;

	/* begin() refused a request with such a field; never pass one on. */
	if (!field_ok(key, value) || hop_by_hop(key, len) || listed(h->connection.data, key, len) ||
	    name_is(key, len, "host") || name_is(key, len, "content-length") ||
	    name_is(key, len, "expect") || name_is(key, len, "x-api-key") ||
	    name_is(key, len, "authorization"))
		return MHD_YES;
	/* "Name:" would make curl drop a header of its own; "Name;" sends it
	 * empty. */
	if (value == NULL || value[0] == '\0')
		line = xasprintf("%s;", key);
	else
		line = xasprintf("%s: %s", key, value);
	h->list = slist_add(h->list, line);
	free(line);
	return MHD_YES;
}

/* Wipe the credential's copy and free the list: once curl is done with it. */
static void headers_free(struct transfer *t)
{
	if (t->cred && t->cred->data)
		explicit_bzero(t->cred->data, strlen(t->cred->data));
	t->cred = NULL;
	if (t->easy)
		curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(t->headers);
	t->headers = NULL;
}

/* --- the transfer --------------------------------------------------------- */

static size_t on_read_body(char *out, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	ssize_t r = spool_read(&t->body, t->body_pos, out, size * n);

	if (r < 0)
		return CURL_READFUNC_ABORT;
	t->body_pos += (uint64_t)r;
	return (size_t)r;
}

static int on_seek_body(void *arg, curl_off_t offset, int origin)
{
	struct transfer *t = arg;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > t->body.size)
		return CURL_SEEKFUNC_FAIL;
	t->body_pos = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Header lines of each response head curl reads: interim (1xx) heads are
 * dropped, the final one is kept for the reply; trailers are ignored. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n, l = len, nlen;
	const char *colon, *v, *ve;

	if (t->head_done)
		return len;
	while (l > 0 && (p[l - 1] == '\n' || p[l - 1] == '\r'))
		l--;
	if (l == 0) {
		if (t->status >= 200)
			t->head_done = true;
		return len;
	}
	if (l >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', l);
		t->status = 0;
		if (sp && (size_t)(sp - p) + 4 <= l)
			for (int i = 1; i <= 3 && sp[i] >= '0' && sp[i] <= '9'; i++)
				t->status = t->status * 10 + (sp[i] - '0');
		buf_reset(&t->head);
		t->content_length = -1;
		t->chunked = false;
		t->keep_line = false;
		return len;
	}
	if (t->head.len + l + 2 > RESP_HEAD_MAX) {
		t->head_too_large = true;
		return 0;
	}
	if (p[0] == ' ' || p[0] == '\t') {
		/* obs-fold: continues the previous value */
		if (t->keep_line && t->head.len > 0) {
			t->head.len--; /* its NUL */
			buf_adds(&t->head, " ");
			v = p;
			while (v < p + l && (*v == ' ' || *v == '\t'))
				v++;
			buf_add(&t->head, v, (size_t)(p + l - v));
			buf_add(&t->head, "", 1);
		}
		return len;
	}
	t->keep_line = false;
	colon = memchr(p, ':', l);
	if (colon == NULL || colon == p)
		return len;
	nlen = (size_t)(colon - p);
	v = colon + 1;
	ve = p + l;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	if (name_is(p, nlen, "content-length")) {
		char tmp[32];
		char *end;
		unsigned long long cl;
		if ((size_t)(ve - v) < sizeof(tmp) && ve > v) {
			memcpy(tmp, v, (size_t)(ve - v));
			tmp[ve - v] = '\0';
			errno = 0;
			cl = strtoull(tmp, &end, 10);
			if (errno == 0 && *end == '\0' && tmp[0] != '-' && cl <= INT64_MAX)
				t->content_length = (int64_t)cl;
		}
		return len;
	}
	if (name_is(p, nlen, "transfer-encoding")) {
		t->chunked = true; /* then curl ignores a Content-Length */
		return len;
	}
	buf_add(&t->head, p, nlen);
	buf_add(&t->head, "", 1);
	buf_add(&t->head, v, (size_t)(ve - v));
	buf_add(&t->head, "", 1);
	t->keep_line = true;
	return len;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n;

	if (t->data.len - t->data_off + len > RESP_HELD_MAX) {
		t->held_too_much = true;
		return 0;
	}
	buf_add(&t->data, p, len);
	return len;
}

static void transfer_finish(struct transfer *t, CURLcode result)
{
	if (t->done)
		return;
	t->done = true;
	t->result = result;
	if (t->in_multi) {
		curl_multi_remove_handle(t->conn->multi, t->easy);
		t->in_multi = false;
	}
	headers_free(t);
	spool_release(&t->body);
}

static void transfer_free(void *arg)
{
	struct transfer *t = arg;

	if (t == NULL)
		return;
	if (t->in_multi)
		curl_multi_remove_handle(t->conn->multi, t->easy);
	headers_free(t);
	if (t->easy)
		curl_easy_cleanup(t->easy);
	spool_release(&t->body);
	buf_release(&t->head);
	buf_release(&t->data);
	bconn_unref(t->conn);
	free(t);
}

static bool peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Let curl do what it can now, without waiting. */
static void transfer_step(struct transfer *t)
{
	CURLM *m = t->conn->multi;
	CURLMsg *msg;
	CURLMcode mc;
	int running, left;

	mc = curl_multi_perform(m, &running);
	if (mc != CURLM_OK) {
		snprintf(t->errbuf, sizeof(t->errbuf), "%s", curl_multi_strerror(mc));
		transfer_finish(t, CURLE_FAILED_INIT);
	}
	while ((msg = curl_multi_info_read(m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == t->easy)
			transfer_finish(t, msg->data.result);
}

static bool head_ready(const struct transfer *t)
{
	return t->head_done;
}

static bool data_ready(const struct transfer *t)
{
	return t->data.len > t->data_off;
}

/* Drive the transfer until ready(t) or its end.  Returns 0, or -1 when the
 * peer went away or the broker is stopping: then it is to be abandoned. */
static int transfer_pump(struct transfer *t, bool (*ready)(const struct transfer *))
{
	for (;;) {
		CURLMcode mc;

		transfer_step(t);
		if (t->done || ready(t))
			return 0;
		if (__atomic_load_n(&t->conn->b->stopping, __ATOMIC_RELAXED) ||
		    peer_gone(t->conn->fd))
			return -1;
		mc = curl_multi_poll(t->conn->multi, NULL, 0, WAIT_SLICE_MS, NULL);
		if (mc != CURLM_OK) {
			snprintf(t->errbuf, sizeof(t->errbuf), "%s", curl_multi_strerror(mc));
			transfer_finish(t, CURLE_FAILED_INIT);
		}
	}
}

static const char *transfer_error(const struct transfer *t)
{
	if (t->head_too_large)
		return "its response headers are too large";
	if (t->held_too_much)
		return "it sent more than the broker can hold";
	return t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
}

static void count_failure(struct transfer *t)
{
	if (t->failure_counted)
		return;
	t->failure_counted = true;
	egress_count(&egress_counters.broker_failures);
}

/* The body callback of a forwarded response. */
static ssize_t read_response(void *cls, uint64_t pos, char *out, size_t max)
{
	struct transfer *t = cls;

	for (;;) {
		size_t have = t->data.len - t->data_off;

		if (have > 0) {
			size_t n = have < max ? have : max;
			memcpy(out, t->data.data + t->data_off, n);
			t->data_off += n;
			if (t->data_off == t->data.len) {
				buf_reset(&t->data);
				t->data_off = 0;
				/* The last byte of a known length: let curl see
				 * its end, so its connection can be reused. */
				if (!t->done && t->content_length >= 0 && !t->chunked &&
				    pos + n >= (uint64_t)t->content_length)
					transfer_step(t);
			}
			return (ssize_t)n;
		}
		if (t->done) {
			if (t->result == CURLE_OK)
				return MHD_CONTENT_READER_END_OF_STREAM;
			count_failure(t);
			egress_sandbox_log(t->conn->sb, 1, "%s: the upstream failed mid-body: %s",
					   t->label, transfer_error(t));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (transfer_pump(t, data_ready) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
}

static bool method_ok(const char *m)
{
	if (m == NULL || *m == '\0')
		return false;
	for (; *m; m++)
		if (!is_tchar(*m))
			return false;
	return true;
}

/* An origin-form request-target: "/", then visible ASCII without '#'. */
static bool target_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == '#')
			return false;
	return true;
}

/* Whether the path (`len` bytes) could mean another one to a server that
 * decodes or normalises it: a ".." segment, also with its dots
 * percent-encoded, a backslash, or an encoded '/' or '\'. */
static bool path_ambiguous(const char *path, size_t len)
{
	const char *p = path, *end = path + len;

	while (p < end) {
		const char *seg_end = memchr(p, '/', (size_t)(end - p));
		unsigned dots = 0;
		bool only_dots = true;

		if (seg_end == NULL)
			seg_end = end;
		for (const char *q = p; q < seg_end;) {
			if (*q == '\\')
				return true;
			if (*q == '%' && seg_end - q >= 3) {
				char hex[3] = { q[1], (char)tolower((unsigned char)q[2]), '\0' };
				if (strcmp(hex, "2f") == 0 || strcmp(hex, "5c") == 0)
					return true;
				if (strcmp(hex, "2e") == 0) {
					dots++;
					q += 3;
					continue;
				}
			}
			if (*q == '.')
				dots++;
			else
				only_dots = false;
			q++;
		}
		if (only_dots && dots == 2)
			return true;
		p = seg_end + 1;
	}
	return false;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Whether the broker of `kind` forwards `method` to this path (`plen`
 * bytes) and query (NULL: none): what its kind of client needs, and no
 * more, since the credential goes with it. */
static bool path_allowed(enum egress_port_kind kind, const char *method, const char *path,
			 size_t plen, const char *query)
{
	if (kind == EGRESS_PORT_GITHUB) {
		/* git's smart HTTP: the ref advertisement, then the pack. */
		if (ends_with(path, plen, "/info/refs"))
			return (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
			       query != NULL &&
			       (strcmp(query, "service=git-upload-pack") == 0 ||
				strcmp(query, "service=git-receive-pack") == 0);
		if (ends_with(path, plen, "/git-upload-pack") ||
		    ends_with(path, plen, "/git-receive-pack"))
			return strcmp(method, "POST") == 0 && query == NULL;
		return false;
	}
	/* Claude Code's "HEAD /" warm-up, then the API. */
	return (plen == 1 && path[0] == '/') || (plen >= 4 && memcmp(path, "/v1/", 4) == 0);
}

/* `base` without its trailing slashes, then the request-target. */
static char *join_url(const char *base, const char *target)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return xasprintf("%.*s%s", (int)n, base, target);
}

/* Set up the curl handle for `req`; the body moves into the transfer. */
static int transfer_setup(struct transfer *t, struct MHD_Connection *mc, const char *method,
			  struct breq *req)
{
	struct broker *b = t->conn->b;
	struct req_headers h = { BUF_INIT, false, NULL };
	struct curl_slist *last;
	cleanup_free char *url = NULL;
	bool upload;
	CURL *e;

	t->easy = e = curl_easy_init();
	if (e == NULL)
		return -1;
	t->body = req->body;
	spool_init(&req->body);

	MHD_get_connection_values(mc, MHD_HEADER_KIND, scan_header, &h);
	MHD_get_connection_values(mc, MHD_HEADER_KIND, copy_header, &h);
	buf_release(&h.connection);
	/* Not curl's own: the request's, or none. */
	h.list = slist_add(h.list, "Expect:");
	if (!h.has_accept)
		h.list = slist_add(h.list, "Accept:");
	h.list = slist_add(h.list, t->target->header);
	for (last = h.list; last->next; last = last->next)
		;
	t->headers = h.list;
	t->cred = last;

	url = join_url(t->target->upstream, req->target);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, b->connect_timeout_ms);
	/* An upstream silent that long is given up, as an idle tunnel is. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, b->idle_timeout_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (b->upstream_ca)
		curl_easy_setopt(e, CURLOPT_CAINFO, b->upstream_ca);
	/* The bytes as the upstream encoded them. */
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);

	upload = t->body.size > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		 strcmp(method, "PATCH") == 0;
	if (strcmp(method, "HEAD") == 0) {
		/* Its answer has no body: curl must know (a body sent with a
		 * HEAD is dropped). */
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (upload) {
		/* UPLOAD sends the body with its Content-Length and, unlike
		 * POST, adds no Content-Type of its own. */
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->body.size);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read_body);
		curl_easy_setopt(e, CURLOPT_READDATA, t);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek_body);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
		if (strcmp(method, "PUT") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	if (curl_multi_add_handle(t->conn->multi, e) != CURLM_OK)
		return -1;
	t->in_multi = true;
	return 0;
}

/* The next "name\0value\0" pair in a head, or NULL at its end. */
static const char *head_next(const struct buf *head, const char *p, const char **value)
{
	if (head->data == NULL)
		return NULL;
	p = p ? *value + strlen(*value) + 1 : head->data;
	if (p >= head->data + head->len)
		return NULL;
	*value = p + strlen(p) + 1;
	return p;
}

/* Build the reply from the upstream's final head; it takes `t`. */
static enum MHD_Result reply_upstream(struct MHD_Connection *mc, struct transfer *t)
{
	uint64_t size = MHD_SIZE_UNKNOWN;
	struct MHD_Response *r;
	const char *p = NULL, *v = NULL;
	struct buf conn_list = BUF_INIT;
	enum MHD_Result ret;

	/* A known length goes on as Content-Length, also for a HEAD or a
	 * 304 (MHD sends no body for those). */
	if (t->content_length >= 0 && !t->chunked && t->status != 204)
		size = (uint64_t)t->content_length;
	r = MHD_create_response_from_callback(size, RESP_BLOCK, read_response, t, transfer_free);
	if (r == NULL) {
		transfer_free(t);
		return MHD_NO;
	}
	while ((p = head_next(&t->head, p, &v)) != NULL)
		if (strcasecmp(p, "connection") == 0) {
			buf_adds(&conn_list, v);
			buf_adds(&conn_list, ",");
		}
	while ((p = head_next(&t->head, p, &v)) != NULL) {
		size_t n = strlen(p);
		/* MHD refuses an empty value; it would carry nothing anyway. */
		if (hop_by_hop(p, n) || listed(conn_list.data, p, n) || v[0] == '\0')
			continue;
		MHD_add_response_header(r, p, v);
	}
	buf_release(&conn_list);
	ret = MHD_queue_response(mc, (unsigned)t->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result forward(struct bconn *c, struct breq *req, struct MHD_Connection *mc,
			       const char *method)
{
	const struct egress_broker_target *tg = egress_sandbox_target(c->sb, c->kind);
	struct transfer *t;
	cleanup_free char *reason = NULL;
	cleanup_free char *msg = NULL;
	const char *q;
	int plen;

	t = xzalloc(sizeof(*t));
	t->conn = c;
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	t->target = tg;
	t->content_length = -1;
	spool_init(&t->body);
	q = strchr(req->target, '?');
	plen = (int)(q ? (size_t)(q - req->target) : strlen(req->target));
	snprintf(t->label, sizeof(t->label), "%s %.*s%s", method,
		 plen > LOG_PATH_MAX ? LOG_PATH_MAX : plen, req->target,
		 plen > LOG_PATH_MAX ? "..." : "");

	reason = xasprintf("brokered by connector '%s'", tg->connector);
	egress_sandbox_record(c->sb, true, c->hostport, "allowed", reason);

	if (transfer_setup(t, mc, method, req) < 0) {
		egress_sandbox_log(c->sb, 0, "%s: cannot set up the upstream request", t->label);
		transfer_free(t);
		return MHD_NO;
	}
	if (transfer_pump(t, head_ready) < 0) {
		egress_sandbox_log(c->sb, 1, "%s: abandoned: %s", t->label,
				   __atomic_load_n(&c->b->stopping, __ATOMIC_RELAXED)
					   ? "the broker is stopping"
					   : "the client went away");
		transfer_free(t);
		return MHD_NO;
	}
	if (!t->head_done) {
		count_failure(t);
		msg = xasprintf("the %s broker could not get an answer from %s, the upstream of "
				"connector '%s': %s",
				kind_name(c->kind), c->hostport, tg->connector, transfer_error(t));
		egress_sandbox_log(c->sb, 1, "%s -> 502: %s", t->label, transfer_error(t));
		transfer_free(t);
		return reply_error(mc, MHD_HTTP_BAD_GATEWAY, "bad_gateway", msg);
	}
	egress_sandbox_log(c->sb, 1, "%s -> %ld", t->label, t->status);
	return reply_upstream(mc, t);
}

/* The first call for a request: refuse what is not forwarded before its
 * body is read (MHD then closes the connection after the reply). */
static enum MHD_Result begin(struct bconn *c, struct breq *req, struct MHD_Connection *mc,
			     const char *method)
{
	const struct egress_broker_target *tg = egress_sandbox_target(c->sb, c->kind);
	const char *cl, *query;
	cleanup_free char *msg = NULL;
	size_t plen;
	bool bad_field = false;

	egress_count(&egress_counters.broker_requests);
	if (!method_ok(method))
		return reply_error(mc, MHD_HTTP_BAD_REQUEST, "bad_request",
				   "the request method is not a valid token");
	MHD_get_connection_values(mc, MHD_HEADER_KIND, check_field, &bad_field);
	if (bad_field)
		return reply_error(mc, MHD_HTTP_BAD_REQUEST, "bad_request",
				   "a request header's name is not a token (no spaces, no "
				   "separators) or its value holds a control character");
	if (strcasecmp(method, "CONNECT") == 0 || strcasecmp(method, "TRACE") == 0 ||
	    strcasecmp(method, "TRACK") == 0) {
		msg = xasprintf("the %s broker does not forward %s requests%s", kind_name(c->kind),
				method,
				strcasecmp(method, "CONNECT") == 0
					? ": it is not a proxy (the proxy is 127.0.0.1:3128)"
					: "");
		return reply_error(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", msg);
	}
	if (!target_ok(req->target)) {
		msg = xasprintf("the %s broker takes a path (\"/v1/...\"), not a URL: point the "
				"client's base URL at http://127.0.0.1:%u",
				kind_name(c->kind), egress_port_number(c->kind));
		return reply_error(mc, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
	}
	query = strchr(req->target, '?');
	plen = query ? (size_t)(query - req->target) : strlen(req->target);
	if (query)
		query++;
	if (path_ambiguous(req->target, plen))
		return reply_error(mc, MHD_HTTP_BAD_REQUEST, "bad_request",
				   "the request path holds a '..' segment, a backslash or an "
				   "encoded '/' or '\\'");
	if (tg == NULL) {
		msg = xasprintf("no connector is brokered on port %u in this execution",
				egress_port_number(c->kind));
		return reply_error(mc, MHD_HTTP_BAD_GATEWAY, "bad_gateway", msg);
	}
	if (c->hostport == NULL || tg->header == NULL || tg->header[0] == '\0' ||
	    strpbrk(tg->header, "\r\n") != NULL || strchr(tg->header, ':') == NULL) {
		msg = xasprintf("connector '%s' has no usable upstream URL or credential",
				tg->connector);
		return reply_error(mc, MHD_HTTP_BAD_GATEWAY, "bad_gateway", msg);
	}
	if (!path_allowed(c->kind, method, req->target, plen, query)) {
		int shown = plen > LOG_PATH_MAX ? LOG_PATH_MAX : (int)plen;
		msg = xasprintf("the %s broker forwards %s only, not '%.*s%s'", kind_name(c->kind),
				c->kind == EGRESS_PORT_GITHUB
					? "git smart-HTTP requests"
					: "Anthropic API requests (\"/v1/...\")",
				shown, req->target, plen > LOG_PATH_MAX ? "..." : "");
		egress_sandbox_record(c->sb, false, c->hostport, "broker_path", msg);
		egress_sandbox_log(c->sb, 1, "%s %.*s%s -> 403", method, shown, req->target,
				   plen > LOG_PATH_MAX ? "..." : "");
		return reply_error(mc, MHD_HTTP_FORBIDDEN, "forbidden", msg);
	}
	cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > BODY_MAX) {
		msg = xasprintf("the request body is over the broker's limit of %llu bytes",
				(unsigned long long)BODY_MAX);
		return reply_error(mc, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", msg);
	}
	/* Refused before it is sent when its length says it cannot fit;
	 * receive() holds to the budgets in any case. */
	if (cl && !budget_room(c->b, c->sb, strtoull(cl, NULL, 10)))
		return reply_over_budget(c, mc);
	return MHD_YES;
}

/* Spool a piece of the body; once it is refused, read on (up to
 * BODY_DISCARD_MAX past BODY_MAX) only to be able to answer. */
static enum MHD_Result receive(struct bconn *c, struct breq *req, const char *data, size_t len)
{
	req->received += len;
	if (req->too_large || req->spool_failed || req->over_budget)
		return req->received > BODY_MAX + BODY_DISCARD_MAX ? MHD_NO : MHD_YES;
	if (req->body.size + len > BODY_MAX) {
		req->too_large = true;
		spool_release(&req->body);
		return MHD_YES;
	}
	if (spool_add(&req->body, c->b, c->sb, data, len) < 0) {
		if (errno == EDQUOT) {
			req->over_budget = true;
		} else {
			egress_sandbox_log(c->sb, 0, "cannot hold a request body: %s",
					   strerror(errno));
			req->spool_failed = true;
		}
		spool_release(&req->body);
	}
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct breq *req = *con_cls;
	const union MHD_ConnectionInfo *ci;
	struct bconn *c;
	cleanup_free char *msg = NULL;

	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	c = ci ? ci->socket_context : NULL;
	if (req == NULL || c == NULL)
		return MHD_NO; /* cannot happen: on_uri() and STARTED made both */
	if (!req->begun) {
		req->begun = true;
		return begin(c, req, mc, method);
	}
	if (*upload_size > 0) {
		enum MHD_Result r = receive(c, req, upload, *upload_size);
		*upload_size = 0;
		return r;
	}
	if (req->too_large) {
		msg = xasprintf("the request body is over the broker's limit of %llu bytes",
				(unsigned long long)BODY_MAX);
		return reply_error(mc, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", msg);
	}
	if (req->over_budget)
		return reply_over_budget(c, mc);
	if (req->spool_failed)
		return reply_error(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
				   "the broker cannot hold the request body now");
	return forward(c, req, mc, method);
}

/* --- libcurl's memory ------------------------------------------------------ */

/* libcurl builds each request (the credential header with it) in buffers
 * it frees without clearing, and every sandbox's init starts as a copy of
 * this process's memory.  So all of libcurl's memory is cleared when it is
 * freed; realloc moves through a cleared free as well. */
static void wiping_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

static void *wiping_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wiping_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old);
	wiping_free(p);
	return q;
}

static void *plain_malloc(size_t n)
{
	return malloc(n);
}

static char *plain_strdup(const char *s)
{
	return strdup(s);
}

static void *plain_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

/* --- the interface -------------------------------------------------------- */

struct broker *broker_new(const struct egress_options *opts, struct cr_error *err)
{
	struct broker *b = xzalloc(sizeof(*b));
	uint32_t idle_ms = opts && opts->idle_timeout_ms ? opts->idle_timeout_ms : 300000;
	unsigned timeout_s, flags;

	/* The first global init in the process decides the allocator. */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, plain_malloc, wiping_free, wiping_realloc,
				 plain_strdup, plain_calloc) != CURLE_OK) {
		free(b);
		cr_error_set(err, 0, "cannot initialise libcurl");
		return NULL;
	}
	b->upstream_ca = opts && opts->upstream_ca ? xstrdup(opts->upstream_ca) : NULL;
	b->connect_timeout_ms =
		opts && opts->connect_timeout_ms ? (long)opts->connect_timeout_ms : 10000;
	b->idle_timeout_s = (long)((idle_ms + 999) / 1000);
	b->log = opts ? opts->log : NULL;
	b->log_data = opts ? opts->log_data : NULL;
	pthread_mutex_init(&b->lock, NULL);
	timeout_s = (unsigned)b->idle_timeout_s;
	/* Thread per connection: handlers block on the upstream.  poll(),
	 * not select(): an fd may be over FD_SETSIZE. */
	flags = MHD_USE_NO_LISTEN_SOCKET | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	b->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, b,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, b,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, b,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, b,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, b,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY,
		MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
		/* 1: a URI with a space or an HTTP/1.1 request without Host
		 * is refused.  0.9.75 refuses a space before a header's colon
		 * only at -1 (its test is the wrong way round), so begin()
		 * refuses those itself. */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_END);
	if (b->mhd == NULL) {
		cr_error_set(err, errno, "cannot start the broker's HTTP engine");
		pthread_mutex_destroy(&b->lock);
		free(b->upstream_ca);
		free(b);
		curl_global_cleanup();
		return NULL;
	}
	return b;
}

int broker_add(struct broker *b, int fd, struct egress_sandbox *sb, enum egress_port_kind kind,
	       struct cr_error *err)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct pending *p, *stale;
	struct stat st;
	int e;

	if (kind != EGRESS_PORT_ANTHROPIC && kind != EGRESS_PORT_GITHUB) {
		close(fd);
		egress_sandbox_conn_end(sb);
		return cr_error_set(err, 0, "port kind %d has no broker", (int)kind);
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 || fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		egress_sandbox_conn_end(sb);
		return cr_error_set(err, e, "broker on port %u: cannot read a connection's peer",
				    egress_port_number(kind));
	}
	p = xzalloc(sizeof(*p));
	p->fd = fd;
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	p->sb = egress_sandbox_ref(sb);
	p->kind = kind;
	/* An entry for the same fd, and any whose fd is no longer its
	 * socket, is one MHD dropped without a word; its sandbox reference
	 * is let go on MHD's thread (at this connection's STARTED), not in
	 * the caller's locks. */
	pthread_mutex_lock(&b->lock);
	stale = pending_take_fd(b, fd);
	if (stale) {
		stale->next = b->stale;
		b->stale = stale;
	}
	pending_sweep_locked(b);
	p->next = b->pending;
	b->pending = p;
	pthread_mutex_unlock(&b->lock);

	if (MHD_add_connection(b->mhd, fd, (struct sockaddr *)&ss, sl) != MHD_YES) {
		bool mine;
		/* MHD has closed the fd; no STARTED came.  The caller's
		 * reference keeps sb alive past pending_free(). */
		e = errno;
		pthread_mutex_lock(&b->lock);
		mine = pending_take_entry(b, p);
		pthread_mutex_unlock(&b->lock);
		if (mine)
			pending_free(p);
		return cr_error_set(err, e, "broker on port %u: cannot serve a connection",
				    egress_port_number(kind));
	}
	return 0;
}

void broker_free(struct broker *b)
{
	struct pending *p;

	if (b == NULL)
		return;
	/* Threads waiting on an upstream see this within WAIT_SLICE_MS; MHD
	 * shuts every socket down, joins the threads and sends CLOSED for
	 * each connection, which drops its sandbox. */
	__atomic_store_n(&b->stopping, true, __ATOMIC_RELAXED);
	MHD_stop_daemon(b->mhd);
	while ((p = b->pending) != NULL) {
		b->pending = p->next;
		pending_free(p);
	}
	while ((p = b->stale) != NULL) {
		b->stale = p->next;
		pending_free(p);
	}
	/* Every spool was released with its request. */
	while (b->budgets) {
		struct budget *next = b->budgets->next;
		free(b->budgets);
		b->budgets = next;
	}
	pthread_mutex_destroy(&b->lock);
	free(b->upstream_ca);
	free(b);
	curl_global_cleanup();
}
