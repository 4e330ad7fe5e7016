/* utf8.c - see utf8.h. */
#include "util/utf8.h"
#include "util/buf.h"

size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* UTF-16 surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xf4 && s[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

char *utf8_sanitize(const char *data, size_t len, size_t *out_len)
{
	struct buf b = BUF_INIT;
	const unsigned char *p = (const unsigned char *)data;
	size_t i = 0;

	buf_grow(&b, len);
	while (i < len) {
		size_t run = i;
		size_t n;
		/* Copy the longest valid run in one go. */
		while (run < len && (n = utf8_seq_len(p + run, len - run)) != 0)
			run += n;
		if (run > i)
			buf_add(&b, p + i, run - i);
		i = run;
		if (i < len) {
			buf_add(&b, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	return buf_detach(&b, out_len);
}
