/* fuzz-proxy-request.c - request heads a sandbox sends the egress proxy
 * (egress/request.h), from arbitrary bytes.
 *
 * The input is cut at its first blank line, as the proxy cuts what it
 * reads.  Whatever the bytes:
 *  - a refusal has a 4xx status (or 505), a phrase, a code and a sentence without
 *    CR or LF (it becomes a response body and a report entry);
 *  - an accepted request names a host without CR, LF, NUL, '/', '@' or
 *    blanks, a port 1..65535 and a display that starts with the host (or
 *    "[host]" for IPv6);
 *  - for absolute form, the head sent on ends with exactly one blank line,
 *    holds no line that does not end in CRLF and none that continues the
 *    one before (no request smuggling through a bare LF or CR or a folded
 *    field), starts with "<method> /" and says
 *    "Connection: close", has exactly one Host field, and no Proxy-* field
 *    survives. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/request.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_origin_head(const struct proxy_request *rq)
{
	size_t n;
	char *h = proxy_request_origin_head(rq, &n);
	const char *end = h + n;

	CHECK(n >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
	CHECK(strncmp(h, rq->method, strlen(rq->method)) == 0);
	CHECK(h[strlen(rq->method)] == ' ' && h[strlen(rq->method) + 1] == '/');
	for (const char *p = h; p < end;) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		CHECK(lf != NULL);
		/* Every line ends in CRLF, and only there is a CR or LF. */
		CHECK(lf > h && lf[-1] == '\r');
		CHECK(memchr(p, '\r', (size_t)(lf - 1 - p)) == NULL);
		if (lf + 1 < end) {
			CHECK(strncasecmp(p, "proxy-", 6) != 0);
			/* Only the last line is empty, and none continues
			 * the one before (obs-fold). */
			CHECK(lf - 1 > p && *p != ' ' && *p != '\t');
		}
		p = lf + 1;
	}
	CHECK(memmem(h, n, "\r\nConnection: close\r\n\r\n", 23) != NULL);
	/* The body is framed by what was parsed: one Content-Length, equal
	 * to body_len, when the request had one; none otherwise. */
	{
		int cls = 0;
		const char *cl = NULL;
		for (const char *p = h; (p = memmem(p, (size_t)(end - p), "\r\n", 2)) != NULL; p += 2)
			if (end - p > 17 && strncasecmp(p + 2, "content-length:", 15) == 0) {
				cls++;
				cl = p + 17;
			}
		CHECK(cls == (rq->has_body_len ? 1 : 0));
		if (cl)
			CHECK(strtoull(cl, NULL, 10) == rq->body_len);
		for (const char *p = h; (p = memmem(p, (size_t)(end - p), "\r\n", 2)) != NULL; p += 2)
			CHECK(!(end - p > 20 && strncasecmp(p + 2, "transfer-encoding:", 18) == 0));
	}
	/* Exactly one Host field, the URL's. */
	{
		int hosts = 0;
		for (const char *p = h; (p = memmem(p, (size_t)(end - p), "\r\n", 2)) != NULL; p += 2)
			hosts += end - p > 7 && strncasecmp(p + 2, "host:", 5) == 0;
		CHECK(hosts == 1);
	}
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_request rq;
	struct proxy_refusal why;
	size_t len;

	if (size > PROXY_HEAD_MAX + 64)
		return 0;
	len = proxy_head_length((const char *)data, size);
	if (len == 0)
		len = size;
	if (proxy_request_parse((const char *)data, len, &rq, &why) < 0) {
		CHECK((why.status >= 400 && why.status < 500) || why.status == 505);
		CHECK(why.phrase && *why.phrase && why.code && *why.code);
		CHECK(why.sentence[0] != '\0');
		CHECK(strpbrk(why.sentence, "\r\n") == NULL);
		return 0;
	}
	CHECK(rq.host[0] != '\0');
	CHECK(strpbrk(rq.host, "\r\n /@\t") == NULL);
	CHECK(rq.port >= 1 && rq.port <= 65535);
	if (strchr(rq.host, ':'))
		CHECK(rq.display[0] == '[' && strncmp(rq.display + 1, rq.host, strlen(rq.host)) == 0);
	else
		CHECK(strncmp(rq.display, rq.host, strlen(rq.host)) == 0);
	if (!rq.tunnel) {
		CHECK(rq.path && rq.path_len > 0 && (rq.path[0] == '/' || (rq.query_only && rq.path[0] == '?')));
		check_origin_head(&rq);
	}
	return 0;
}
