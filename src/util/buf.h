/* buf.h - a growable byte buffer (after git's strbuf).
 *
 * `data` is always NUL-terminated (when non-NULL) so text can be used as a
 * C string; it may also hold binary bytes, `len` is authoritative.  The
 * buffer owns `data`; buf_release() frees it and resets the buffer,
 * buf_detach() hands it to the caller.
 */
#ifndef CORRAL_UTIL_BUF_H
#define CORRAL_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_release(struct buf *b);
/* Return the data (never NULL: "" for an empty buffer); the caller frees. */
char *buf_detach(struct buf *b, size_t *len);

#endif
