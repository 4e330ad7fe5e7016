/* utf8.h - make arbitrary bytes safe for a JSON string.
 *
 * Program output is bytes; JSON strings are Unicode.  utf8_sanitize()
 * copies valid UTF-8 unchanged and replaces every byte that does not start
 * or continue a valid sequence (overlongs, surrogates, values above
 * U+10FFFF, truncated sequences, NUL) with U+FFFD.
 */
#ifndef CORRAL_UTIL_UTF8_H
#define CORRAL_UTIL_UTF8_H

#include <stddef.h>

/* Returns a newly allocated NUL-terminated string; *out_len gets its
 * length.  Never fails (aborts on out of memory). */
char *utf8_sanitize(const char *data, size_t len, size_t *out_len);

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
size_t utf8_seq_len(const unsigned char *s, size_t avail);

#endif
