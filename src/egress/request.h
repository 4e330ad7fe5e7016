/* request.h - the egress proxy's reading of a request head.
 *
 * Pure functions over bytes a sandbox sent, kept apart from the sockets so
 * they can be unit tested and fuzzed (tests/fuzz/fuzz-proxy-request.c).
 * http_parser (Debian's libhttp-parser) does the HTTP; this decides what
 * the proxy makes of it:
 *
 *   CONNECT host:port HTTP/1.x          a tunnel to host:port
 *   METHOD http://host[:port]/path ...  one request, sent on in origin form
 *   anything else                       a refusal: status, code, sentence
 *
 * A head is at most PROXY_HEAD_MAX bytes with at most PROXY_MAX_HEADERS
 * fields, and ends with the blank line (CRLF CRLF).
 */
#ifndef CORRAL_EGRESS_REQUEST_H
#define CORRAL_EGRESS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROXY_HEAD_MAX 16384
#define PROXY_MAX_HEADERS 100

struct proxy_header {
	const char *name, *value;   /* into the head's bytes; value may be NULL */
	size_t nlen, vlen;
};

struct proxy_request {
	bool tunnel;                 /* CONNECT */
	char host[256];              /* without brackets for IPv6 */
	int port;                    /* 1..65535 */
	char display[300];           /* "host:port", "[v6]:port" */
	/* Absolute form only: the method, the path with its query (never the
	 * fragment), the version, the header fields (pointers into the head). */
	const char *method;
	const char *path;
	size_t path_len;
	int http_major, http_minor;
	struct proxy_header h[PROXY_MAX_HEADERS];
	size_t nh;
	uint64_t body_len;           /* absolute form: Content-Length, or 0 */
	bool has_body_len;           /* the request had a Content-Length */
	bool query_only;             /* "http://h?q": path is "?q", sent as "/?q" */
};

/* Why a head was refused: the HTTP status and phrase, a code for the
 * report (bad_request, head_too_large, invalid_host) and a sentence. */
struct proxy_refusal {
	int status;
	const char *phrase;
	const char *code;
	char sentence[512];
};

/* Where the head ends in buf[0..len): the length through the blank line,
 * or 0 when it has not ended yet. */
size_t proxy_head_length(const char *buf, size_t len);

/* Parse the head buf[0..len) (len as proxy_head_length() gave it).  0, or
 * -1 with *why filled.  rq points into buf, which must outlive it. */
int proxy_request_parse(const char *buf, size_t len, struct proxy_request *rq,
			struct proxy_refusal *why);

/* The head to send the origin for an absolute-form request: origin-form
 * request line (HTTP/1.0 or 1.1), the fields without hop-by-hop, Proxy-*,
 * Host and Content-Length ones, a Host field made from the URL (RFC 9112
 * 3.2.2: the URL wins), the parsed Content-Length if there was one, then
 * "Connection: close" and the blank line.  Exactly body_len bytes of body
 * follow it, and nothing else: a second request on the connection is not
 * read (an absolute-form request with a chunked body is refused, so the
 * body's end is known).  Returns a buffer (caller frees) of *len bytes. */
char *proxy_request_origin_head(const struct proxy_request *rq, size_t *len);

#endif
