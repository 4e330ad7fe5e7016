/* util.c - see util.h. */
#define _GNU_SOURCE
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "corral: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *xzalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *r = realloc(p, n ? n : 1);
	if (r == NULL)
		oom(n);
	return r;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s);
	if (r == NULL)
		oom(strlen(s) + 1);
	return r;
}

char *xstrndup(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (r == NULL)
		oom(n + 1);
	return r;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *r;
	if (vasprintf(&r, fmt, ap) < 0)
		oom(strlen(fmt));
	return r;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *r;
	va_start(ap, fmt);
	r = xvasprintf(fmt, ap);
	va_end(ap);
	return r;
}

void close_keep_errno(int fd)
{
	int saved = errno;
	if (fd >= 0)
		close(fd);
	errno = saved;
}

ssize_t read_noeintr(int fd, void *buf, size_t len)
{
	ssize_t r;
	do
		r = read(fd, buf, len);
	while (r < 0 && errno == EINTR);
	return r;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int write_file_at_raw(int dirfd, const char *path, int flags, mode_t mode, const void *buf, size_t len)
{
	int fd, r;

	fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY | flags, mode);
	if (fd < 0)
		return -1;
	r = write_all(fd, buf, len);
	if (r < 0) {
		close_keep_errno(fd);
		return -1;
	}
	if (close(fd) < 0 && errno != EINTR)
		return -1;
	return 0;
}

int write_file_raw(const char *path, int flags, mode_t mode, const void *buf, size_t len)
{
	return write_file_at_raw(AT_FDCWD, path, flags, mode, buf, len);
}

int write_file(const char *path, const char *content, struct cr_error *err)
{
	if (write_file_raw(path, O_TRUNC, 0, content, strlen(content)) < 0)
		return cr_error_set(err, errno, "cannot write '%s' to '%s'", content, path);
	return 0;
}

char *read_file(const char *path, size_t *len_out, struct cr_error *err)
{
	cleanup_close int fd = -1;
	size_t len = 0, cap = 4096;
	char *buf;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cr_error_set(err, errno, "cannot open '%s'", path);
		return NULL;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t r;
		if (cap - len < 2) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = read_noeintr(fd, buf + len, cap - len - 1);
		if (r < 0) {
			cr_error_set(err, errno, "cannot read '%s'", path);
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void cr_show(const char *s, size_t len, bool lower, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len && i < CR_SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
			out[o++] = lower && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (len > CR_SHOW_MAX) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}
