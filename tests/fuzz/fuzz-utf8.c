/* fuzz-utf8.c - utf8_sanitize() on arbitrary bytes.
 *
 * The output must be valid UTF-8 by utf8_seq_len()'s own rules, carry no
 * NUL, keep every valid sequence of the input byte for byte and put
 * exactly one U+FFFD in place of each other byte.  utf8_seq_len() is in
 * turn checked against a decoder written the long way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* RFC 3629 by decoding the code point; NUL refused. */
static size_t ref_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c < 0x80)
		return c ? 1 : 0;
	if ((c & 0xe0) == 0xc0)
		n = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		n = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t out_len = (size_t)-1;
	char *out = utf8_sanitize((const char *)data, size, &out_len);
	const unsigned char *o = (const unsigned char *)out;
	size_t i = 0, j = 0;

	if (out == NULL || out_len > 3 * size || out[out_len] != '\0' || strlen(out) != out_len)
		abort();
	/* Valid, by both definitions. */
	while (j < out_len) {
		size_t n = utf8_seq_len(o + j, out_len - j);
		if (n == 0 || n != ref_seq_len(o + j, out_len - j))
			abort();
		j += n;
	}
	/* Every valid input sequence copied, every other byte one U+FFFD. */
	j = 0;
	while (i < size) {
		size_t n = utf8_seq_len(data + i, size - i);
		if (n != ref_seq_len(data + i, size - i))
			abort();
		if (n) {
			if (j + n > out_len || memcmp(o + j, data + i, n) != 0)
				abort();
			i += n;
			j += n;
		} else {
			if (j + 3 > out_len || memcmp(o + j, "\xef\xbf\xbd", 3) != 0)
				abort();
			i++;
			j += 3;
		}
	}
	if (j != out_len)
		abort();
	/* Sanitizing is idempotent. */
	size_t again_len;
	char *again = utf8_sanitize(out, out_len, &again_len);
	if (again_len != out_len || memcmp(again, out, out_len) != 0)
		abort();
	free(again);
	free(out);
	return 0;
}
