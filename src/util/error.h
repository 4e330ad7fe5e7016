/* error.h - errors that carry an errno and a sentence up the call chain.
 *
 * A function that can fail returns < 0 (or NULL) and fills a
 * `struct cr_error`.  Callers add context on the way up with
 * cr_error_wrap(), so the final message reads from the outside in:
 * "start sandbox: mount thread home: cannot open '/x': No such file".
 *
 * A cr_error owns its message; release it with cr_error_release().  An
 * error that is already set is never overwritten by cr_error_set(): the
 * first, most specific failure wins.
 */
#ifndef CORRAL_UTIL_ERROR_H
#define CORRAL_UTIL_ERROR_H

#include <stdarg.h>
#include <stddef.h>

struct cr_error {
	int errnum;    /* errno of the failure, 0 when none applies */
	char *msg;     /* NULL when no error is set */
};

#define CR_ERROR_INIT { 0, NULL }

/* Set an error; appends ": strerror(errnum)" when errnum != 0.  Returns -1
 * so that `return cr_error_set(err, errno, "...")` reads naturally. */
int cr_error_set(struct cr_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cr_error_set() but without the strerror() suffix: errnum is a
 * code for the caller to branch on (ENOENT -> 404, ...), the sentence is
 * complete as it is.  Returns -1. */
int cr_error_setn(struct cr_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an already set error with "<context>: ".  Returns -1. */
int cr_error_wrap(struct cr_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Move the error out of `from` into `to` (which must be unset). */
void cr_error_move(struct cr_error *to, struct cr_error *from);

static inline int cr_error_isset(const struct cr_error *err)
{
	return err->msg != NULL;
}

void cr_error_release(struct cr_error *err);

#endif
