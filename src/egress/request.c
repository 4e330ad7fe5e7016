/* request.c - the egress proxy's reading of a request head (request.h). */
#define _GNU_SOURCE
#include "egress/request.h"
#include "util/util.h"

#include <http_parser.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct parse_state {
	struct proxy_request *rq;
	uint64_t content_length;
	bool has_content_length;
	bool chunked;
	const char *url;
	size_t url_len;
	bool too_many;
	bool complete;
};

/* The head is parsed in one call, so each field arrives whole; pieces
 * would be adjacent in the buffer anyway, and are joined. */
static int on_url(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;
	if (st->url == NULL)
		st->url = at;
	st->url_len = (size_t)(at + len - st->url);
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;
	struct proxy_request *rq = st->rq;
	struct proxy_header *last = rq->nh ? &rq->h[rq->nh - 1] : NULL;

	if (last && last->value == NULL && last->name + last->nlen == at) {
		last->nlen += len;
		return 0;
	}
	if (rq->nh == PROXY_MAX_HEADERS) {
		st->too_many = true;
		return 1;
	}
	rq->h[rq->nh++] = (struct proxy_header){ at, NULL, len, 0 };
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	struct parse_state *st = p->data;
	struct proxy_header *last;

	if (st->rq->nh == 0)
		return 1;
	last = &st->rq->h[st->rq->nh - 1];
	if (last->value == NULL)
		last->value = at;
	last->vlen = (size_t)(at + len - last->value);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse_state *st = p->data;
	st->complete = true;
	st->has_content_length = (p->flags & F_CONTENTLENGTH) != 0;
	st->content_length = st->has_content_length ? p->content_length : 0;
	st->chunked = p->uses_transfer_encoding || (p->flags & F_CHUNKED);
	/* Stop here: what follows (a body, a TLS hello) is the peer's to
	 * send on, not ours to parse. */
	return 0;
}

/* RFC 7230 3.2.6 tchar. */
static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int refuse(struct proxy_refusal *why, int status, const char *phrase, const char *code,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(struct proxy_refusal *why, int status, const char *phrase, const char *code,
		  const char *fmt, ...)
{
	va_list ap;

	why->status = status;
	why->phrase = phrase;
	why->code = code;
	va_start(ap, fmt);
	vsnprintf(why->sentence, sizeof(why->sentence), fmt, ap);
	va_end(ap);
	return -1;
}

size_t proxy_head_length(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	return end ? (size_t)(end + 4 - buf) : 0;
}

int proxy_request_parse(const char *buf, size_t len, struct proxy_request *rq,
			struct proxy_refusal *why)
{
	static http_parser_settings cb = {
		.on_url = on_url,
		.on_header_field = on_field,
		.on_header_value = on_value,
		.on_headers_complete = on_headers_complete,
	};
	struct parse_state st = { .rq = rq };
	struct http_parser_url u;
	http_parser p;
	size_t done;
	char q[CR_SHOW_SIZE];
	uint16_t off, flen;

	memset(rq, 0, sizeof(*rq));
	/* Lines end in CRLF only: http_parser also ends a head at a bare
	 * "\n\n", which would leave body bytes inside what we took for the
	 * head. */
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			return refuse(why, 400, "Bad Request", "bad_request",
				      "the request's lines must end in CRLF");
	if (len > PROXY_HEAD_MAX)
		return refuse(why, 431, "Request Header Fields Too Large", "head_too_large",
			      "the request head is larger than %d bytes", PROXY_HEAD_MAX);
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &st;
	done = http_parser_execute(&p, &cb, buf, len);
	if (st.too_many)
		return refuse(why, 431, "Request Header Fields Too Large", "head_too_large",
			      "the request has more than %d header fields", PROXY_MAX_HEADERS);
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || !st.complete || (done != len && !p.upgrade))
		return refuse(why, 400, "Bad Request", "bad_request",
			      "the request is not valid HTTP/1.x (%s)",
			      http_errno_description(HTTP_PARSER_ERRNO(&p)));

	/* http_parser is lenient (bare LF line ends, values folded over
	 * lines); what we send on must be plain, so every field is checked
	 * again: a name of token characters, a value without control
	 * characters but tab.  A folded value would carry its line break
	 * into the head sent on: refused, as RFC 7230 3.2.4 lets a proxy. */
	for (size_t i = 0; i < rq->nh; i++) {
		const struct proxy_header *h = &rq->h[i];
		bool ok = h->nlen > 0;
		for (size_t k = 0; ok && k < h->nlen; k++)
			ok = is_tchar((unsigned char)h->name[k]);
		for (size_t k = 0; ok && h->value && k < h->vlen; k++) {
			unsigned char c = (unsigned char)h->value[k];
			ok = c == '\t' || (c >= 0x20 && c != 0x7f);
		}
		if (!ok)
			return refuse(why, 400, "Bad Request", "bad_request",
				      "header field %zu is malformed or folded over several lines", i + 1);
	}
	if (p.http_major != 1)
		return refuse(why, 505, "HTTP Version Not Supported", "bad_request",
			      "only HTTP/1.0 and HTTP/1.1 are proxied");
	rq->tunnel = p.method == HTTP_CONNECT;
	rq->method = http_method_str(p.method);
	rq->http_major = p.http_major;
	rq->http_minor = p.http_minor;
	cr_show(st.url, st.url ? st.url_len : 0, false, q);
	http_parser_url_init(&u);
	if (st.url == NULL || http_parser_parse_url(st.url, st.url_len, rq->tunnel, &u) != 0 ||
	    !(u.field_set & (1 << UF_HOST))) {
		if (rq->tunnel)
			return refuse(why, 400, "Bad Request", "bad_request",
				      "CONNECT needs host:port, not '%s'", q);
		return refuse(why, 400, "Bad Request", "bad_request",
			      "this is a proxy: send an absolute URL (http://host/path) or CONNECT "
			      "host:port, not '%s'", q);
	}
	if (!rq->tunnel) {
		off = u.field_data[UF_SCHEMA].off;
		flen = u.field_data[UF_SCHEMA].len;
		if (!(u.field_set & (1 << UF_SCHEMA)) || flen != 4 ||
		    strncasecmp(st.url + off, "http", 4) != 0)
			return refuse(why, 400, "Bad Request", "bad_request",
				      "only http:// URLs are proxied in absolute form; use CONNECT "
				      "for https ('%s')", q);
	}
	off = u.field_data[UF_HOST].off;
	flen = u.field_data[UF_HOST].len;
	if (flen == 0 || flen >= sizeof(rq->host))
		return refuse(why, 400, "Bad Request", "invalid_host",
			      "the host in '%s' is empty or too long", q);
	memcpy(rq->host, st.url + off, flen);
	rq->host[flen] = '\0';
	if (memchr(rq->host, '\0', flen))
		return refuse(why, 400, "Bad Request", "invalid_host", "the host holds a NUL byte");
	rq->port = (u.field_set & (1 << UF_PORT)) ? u.port : 80;
	if (rq->port < 1 || rq->port > 65535)
		return refuse(why, 400, "Bad Request", "invalid_port", "port %d in '%s' is not 1 to 65535",
			      rq->port, q);
	if (strchr(rq->host, ':'))
		snprintf(rq->display, sizeof(rq->display), "[%s]:%d", rq->host, rq->port);
	else
		snprintf(rq->display, sizeof(rq->display), "%s:%d", rq->host, rq->port);

	if (!rq->tunnel) {
		if (st.chunked)
			return refuse(why, 411, "Length Required", "bad_request",
				      "a request body must come with a Content-Length: Transfer-Encoding "
				      "is not proxied in absolute form (use CONNECT)");
		rq->body_len = st.content_length;
		rq->has_body_len = st.has_content_length;
		if (u.field_set & (1 << UF_PATH)) {
			rq->path = st.url + u.field_data[UF_PATH].off;
			rq->path_len = (u.field_set & (1 << UF_QUERY))
					       ? (size_t)(u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len -
							  u.field_data[UF_PATH].off)
					       : u.field_data[UF_PATH].len;
		} else if (u.field_set & (1 << UF_QUERY)) {
			/* "http://h?q": the query is sent on as "/?q"; the
			 * path is written as "/" + query below. */
			rq->path = st.url + u.field_data[UF_QUERY].off - 1;
			rq->path_len = (size_t)u.field_data[UF_QUERY].len + 1;
			rq->query_only = true;
		} else {
			rq->path = "/";
			rq->path_len = 1;
		}
	}
	return 0;
}

static bool header_is(const struct proxy_header *h, const char *name)
{
	return h->nlen == strlen(name) && strncasecmp(h->name, name, h->nlen) == 0;
}

/* Whether a Connection field of rq names field h (RFC 9110 7.6.1: the
 * fields it names are for this hop only). */
static bool named_by_connection(const struct proxy_request *rq, const struct proxy_header *h)
{
	for (size_t i = 0; i < rq->nh; i++) {
		const char *v = rq->h[i].value, *end;
		if (!header_is(&rq->h[i], "connection") || v == NULL)
			continue;
		end = v + rq->h[i].vlen;
		while (v < end) {
			const char *tok;
			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			tok = v;
			while (v < end && *v != ',' && *v != ' ' && *v != '\t')
				v++;
			if ((size_t)(v - tok) == h->nlen && strncasecmp(tok, h->name, h->nlen) == 0)
				return true;
		}
	}
	return false;
}

char *proxy_request_origin_head(const struct proxy_request *rq, size_t *len)
{
	/* Hop-by-hop fields, and every Proxy-* field: they were for us. */
	static const char *const hop[] = { "connection", "keep-alive", "te", "trailer",
					   "upgrade" };
	/* Every field came from a head of at most PROXY_HEAD_MAX bytes; the
	 * request line and the added fields fit in the rest. */
	size_t cap = PROXY_HEAD_MAX + 1024;
	char *out = xmalloc(cap);
	size_t n = 0;

	n += (size_t)snprintf(out, cap, "%s %s%.*s HTTP/1.%d\r\n", rq->method,
			      rq->query_only ? "/" : "", (int)rq->path_len, rq->path,
			      rq->http_minor >= 1 ? 1 : 0);
	for (size_t i = 0; i < rq->nh; i++) {
		const struct proxy_header *h = &rq->h[i];
		/* Content-Length is written below from what was parsed, so a
		 * Connection field naming it cannot unframe the body. */
		bool drop = (h->nlen >= 6 && strncasecmp(h->name, "proxy-", 6) == 0) ||
			    header_is(h, "host") || header_is(h, "content-length") ||
			    named_by_connection(rq, h);

		for (size_t k = 0; k < ARRAY_SIZE(hop) && !drop; k++)
			drop = header_is(h, hop[k]);
		if (drop)
			continue;
		memcpy(out + n, h->name, h->nlen);
		n += h->nlen;
		out[n++] = ':';
		out[n++] = ' ';
		if (h->value) {
			memcpy(out + n, h->value, h->vlen);
			n += h->vlen;
		}
		out[n++] = '\r';
		out[n++] = '\n';
	}
	if (rq->port == 80)
		n += (size_t)snprintf(out + n, cap - n, strchr(rq->host, ':') ? "Host: [%s]\r\n" :
					"Host: %s\r\n", rq->host);
	else
		n += (size_t)snprintf(out + n, cap - n, "Host: %s\r\n", rq->display);
	if (rq->has_body_len)
		n += (size_t)snprintf(out + n, cap - n, "Content-Length: %llu\r\n",
				      (unsigned long long)rq->body_len);
	n += (size_t)snprintf(out + n, cap - n, "Connection: close\r\n\r\n");
	*len = n;
	return out;
}
