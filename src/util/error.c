/* error.c - see error.h. */
#include "util/error.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cr_error_set(struct cr_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (err == NULL || err->msg != NULL)
		return -1;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (errnum != 0) {
		char *full = xasprintf("%s: %s", msg, strerror(errnum));
		free(msg);
		msg = full;
	}
	err->msg = msg;
	err->errnum = errnum;
	return -1;
}

int cr_error_setn(struct cr_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->msg != NULL)
		return -1;
	va_start(ap, fmt);
	err->msg = xvasprintf(fmt, ap);
	va_end(ap);
	err->errnum = errnum;
	return -1;
}

int cr_error_wrap(struct cr_error *err, const char *fmt, ...)
{
	va_list ap;
	char *ctx, *full;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	ctx = xvasprintf(fmt, ap);
	va_end(ap);
	if (err->msg == NULL) {
		err->msg = ctx;
		return -1;
	}
	full = xasprintf("%s: %s", ctx, err->msg);
	free(ctx);
	free(err->msg);
	err->msg = full;
	return -1;
}

void cr_error_move(struct cr_error *to, struct cr_error *from)
{
	free(to->msg);
	*to = *from;
	from->msg = NULL;
	from->errnum = 0;
}

void cr_error_release(struct cr_error *err)
{
	free(err->msg);
	err->msg = NULL;
	err->errnum = 0;
}
