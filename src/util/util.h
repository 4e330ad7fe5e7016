/* util.h - allocation that cannot fail, cleanup helpers, small file I/O.
 *
 * Running out of memory aborts: every x* allocator either returns memory
 * or prints a message and calls abort().  Cleanup attributes free what a
 * scope owns on every return path; hand ownership on with steal_pointer()
 * or steal_fd().
 */
#ifndef CORRAL_UTIL_UTIL_H
#define CORRAL_UTIL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "util/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static inline void cleanup_freep(void *p)
{
	void **pp = (void **)p;
	free(*pp);
}

static inline void cleanup_closep(int *fd);

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* Return *pp and set it to NULL: the caller takes ownership. */
static inline void *steal_pointer(void *pp)
{
	void **p = (void **)pp;
	void *r = *p;
	*p = NULL;
	return r;
}

static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* close() that keeps errno and ignores fd < 0. */
void close_keep_errno(int fd);

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close_keep_errno(*fd);
}

/* read()/write() retrying EINTR; write_all loops until everything is
 * written.  Both return -1 with errno set on failure. */
ssize_t read_noeintr(int fd, void *buf, size_t len);
int write_all(int fd, const void *buf, size_t len);

/* Write `len` bytes to `path` (O_WRONLY|O_CLOEXEC, plus `flags`; mode for
 * O_CREAT).  Returns 0, or -1 with errno set.  Async-signal-safe: used
 * between clone and exec. */
int write_file_raw(const char *path, int flags, mode_t mode, const void *buf, size_t len);

/* Same, relative to directory fd `dirfd`. */
int write_file_at_raw(int dirfd, const char *path, int flags, mode_t mode, const void *buf, size_t len);

/* write_file_raw() of a string, filling err with a message naming path. */
int write_file(const char *path, const char *content, struct cr_error *err);

/* Read a whole (small) file into a NUL-terminated buffer the caller frees.
 * Returns NULL and fills err on failure; *len_out gets the length. */
char *read_file(const char *path, size_t *len_out, struct cr_error *err);

/* Longest part of untrusted text cr_show() copies. */
#define CR_SHOW_MAX 260
#define CR_SHOW_SIZE (CR_SHOW_MAX * 4 + 4)

/* Copy `len` bytes of `s` into `out` for quoting in a message: letters
 * lowercased when `lower`, printable ASCII other than quote and backslash
 * kept, everything else as \xNN, cut with "..." after CR_SHOW_MAX bytes.
 * `out` must hold CR_SHOW_SIZE bytes. */
void cr_show(const char *s, size_t len, bool lower, char *out);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
