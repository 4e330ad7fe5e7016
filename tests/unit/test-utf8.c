/* test-utf8.c - util/utf8.h against an independent decoder.
 *
 * Program output goes into JSON strings, so utf8_sanitize() must keep
 * valid UTF-8 byte for byte and turn everything else (overlongs,
 * surrogates, values above U+10FFFF, truncated sequences, stray
 * continuation bytes, NUL) into U+FFFD, one per offending byte. */
#include "util/utf8.h"
#include "unit.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

/* Reference: decode one code point the long way and apply the rules of
 * RFC 3629 plus "no NUL".  Returns the sequence length or 0. */
static size_t ref_seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c < 0x80) {
		n = 1;
		cp = c;
		min = 1;   /* NUL is refused like an invalid byte */
	} else if ((c & 0xe0) == 0xc0) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
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

/* Reference sanitizer built on ref_seq_len. */
static char *ref_sanitize(const unsigned char *p, size_t len, size_t *out_len)
{
	char *out = malloc(len * 3 + 1);
	size_t o = 0, i = 0;

	while (i < len) {
		size_t n = ref_seq_len(p + i, len - i);
		if (n) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
		} else {
			memcpy(out + o, FFFD, 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

static int all_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = ref_seq_len(p + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* Sanitize `in` (len bytes) and compare with `want` (want_len bytes). */
static int sanitize_is(const char *in, size_t len, const char *want, size_t want_len)
{
	size_t out_len = 12345;
	char *out = utf8_sanitize(in, len, &out_len);
	int ok = out != NULL && out_len == want_len && memcmp(out, want, want_len) == 0 &&
		 out[out_len] == '\0' && strlen(out) == out_len && all_valid(out, out_len);
	if (!ok) {
		fprintf(stderr, "  sanitize of %zu bytes:", len);
		for (size_t i = 0; i < len; i++)
			fprintf(stderr, " %02x", (unsigned char)in[i]);
		fprintf(stderr, " -> %zu bytes (want %zu)\n", out ? out_len : 0, want_len);
	}
	free(out);
	return ok;
}

#define SAME(lit) sanitize_is(lit, sizeof(lit) - 1, lit, sizeof(lit) - 1)
#define GIVES(in, want) sanitize_is(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_valid_unchanged(void)
{
	CHECK(SAME(""));
	CHECK(SAME("hello, world\n"));
	CHECK(SAME("\x01\x7f\t\r\n"));
	CHECK(SAME("\xc2\x80"));              /* U+0080 */
	CHECK(SAME("caf\xc3\xa9"));           /* é */
	CHECK(SAME("\xdf\xbf"));              /* U+07FF */
	CHECK(SAME("\xe0\xa0\x80"));          /* U+0800 */
	CHECK(SAME("\xe2\x82\xac"));          /* € */
	CHECK(SAME("\xed\x9f\xbf"));          /* U+D7FF, last before surrogates */
	CHECK(SAME("\xee\x80\x80"));          /* U+E000, first after */
	CHECK(SAME(FFFD));                    /* U+FFFD itself */
	CHECK(SAME("\xef\xbf\xbf"));          /* U+FFFF */
	CHECK(SAME("\xf0\x90\x80\x80"));      /* U+10000 */
	CHECK(SAME("\xf0\x9f\x98\x80"));      /* 😀 */
	CHECK(SAME("\xf4\x8f\xbf\xbf"));      /* U+10FFFF */
	CHECK(SAME("a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9f\x98\x80" "d"));
	CHECK(SAME("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"));   /* 日本語 */

}

/* Empty input still gives a NUL-terminated "": callers use the result as a
 * C string.  Fresh heap memory is made non-zero (M_PERTURB) so that an
 * unterminated buffer cannot pass by luck. */
static void test_empty_terminated(void)
{
	size_t n = 99;
	char *s;

	mallopt(M_PERTURB, 0x55);
	s = utf8_sanitize(NULL, 0, &n);
	CHECK(s != NULL && n == 0);
	CHECK(s != NULL && s[0] == '\0');
	free(s);
	s = utf8_sanitize("abc", 0, &n);
	CHECK(s != NULL && n == 0);
	CHECK(s != NULL && s[0] == '\0');
	free(s);
	mallopt(M_PERTURB, 0);
}

static void test_invalid_replaced(void)
{
	/* Overlong encodings: every byte is replaced. */
	CHECK(GIVES("\xc0\x80", FFFD FFFD));
	CHECK(GIVES("\xc0\xaf", FFFD FFFD));
	CHECK(GIVES("\xc1\xbf", FFFD FFFD));
	CHECK(GIVES("\xe0\x80\x80", FFFD FFFD FFFD));
	CHECK(GIVES("\xe0\x9f\xbf", FFFD FFFD FFFD));
	CHECK(GIVES("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD));
	CHECK(GIVES("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD));
	/* UTF-16 surrogates. */
	CHECK(GIVES("\xed\xa0\x80", FFFD FFFD FFFD));
	CHECK(GIVES("\xed\xbf\xbf", FFFD FFFD FFFD));
	CHECK(GIVES("\xed\xa0\xbd\xed\xb8\x80", FFFD FFFD FFFD FFFD FFFD FFFD));   /* CESU-8 */
	/* Above U+10FFFF and bytes that never start anything. */
	CHECK(GIVES("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD));
	CHECK(GIVES("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD));
	CHECK(GIVES("\xf7\xbf\xbf\xbf", FFFD FFFD FFFD FFFD));
	CHECK(GIVES("\xf8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD));
	CHECK(GIVES("\xfe\xff", FFFD FFFD));
	CHECK(GIVES("\xff", FFFD));
	/* Truncated at the end. */
	CHECK(GIVES("\xc3", FFFD));
	CHECK(GIVES("a\xe2\x82", "a" FFFD FFFD));
	CHECK(GIVES("a\xe2", "a" FFFD));
	CHECK(GIVES("\xf0\x9f\x98", FFFD FFFD FFFD));
	CHECK(GIVES("ok\xf0\x9f", "ok" FFFD FFFD));
	/* Truncated in the middle: the next character survives. */
	CHECK(GIVES("\xe2\x82" "a", FFFD FFFD "a"));
	CHECK(GIVES("\xc3" "\xc3\xa9", FFFD "\xc3\xa9"));
	CHECK(GIVES("\xf0\x9f\x98" "\xf0\x9f\x98\x80", FFFD FFFD FFFD "\xf0\x9f\x98\x80"));
	CHECK(GIVES("\xe2\x82\xe2\x82\xac", FFFD FFFD "\xe2\x82\xac"));
	/* Lone continuation bytes. */
	CHECK(GIVES("\x80", FFFD));
	CHECK(GIVES("\xbf", FFFD));
	CHECK(GIVES("a\x80\x80" "b", "a" FFFD FFFD "b"));
	CHECK(GIVES("\xc3\xa9\xa9", "\xc3\xa9" FFFD));
	/* Latin-1 text. */
	CHECK(GIVES("caf\xe9!", "caf" FFFD "!"));
}

static void test_nul(void)
{
	static const char in[] = { 'a', 0, 'b', 0, 0 };
	CHECK(sanitize_is(in, 5, "a" FFFD "b" FFFD FFFD, 1 + 3 + 1 + 3 + 3));
	CHECK(sanitize_is("", 1, FFFD, 3));   /* one NUL byte */
}

static void test_seq_len(void)
{
	unsigned char s[4];

	/* Every one- and two-byte input, against the reference. */
	for (unsigned a = 0; a < 256; a++) {
		s[0] = (unsigned char)a;
		CHECK(utf8_seq_len(s, 1) == ref_seq_len(s, 1));
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (unsigned char)b;
			if (utf8_seq_len(s, 2) != ref_seq_len(s, 2)) {
				CHECK(!"seq_len of two bytes");
				fprintf(stderr, "  %02x %02x\n", a, b);
			}
		}
	}
	/* Every three-byte input, and four-byte inputs with the last two
	 * bytes drawn from the edges of each class. */
	static const unsigned char edge[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
					      0xa0, 0xbf, 0xc0, 0xf4, 0xff };
	unsigned bad = 0;
	for (unsigned a = 0; a < 256; a++) {
		s[0] = (unsigned char)a;
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (unsigned char)b;
			for (unsigned c = 0; c < 256; c++) {
				s[2] = (unsigned char)c;
				if (utf8_seq_len(s, 3) != ref_seq_len(s, 3) && bad++ < 5)
					fprintf(stderr, "  3: %02x %02x %02x\n", a, b, c);
				for (size_t k = 0; a >= 0xf0 && k < sizeof(edge); k++) {
					s[3] = edge[k];
					if (utf8_seq_len(s, 4) != ref_seq_len(s, 4) && bad++ < 5)
						fprintf(stderr, "  4: %02x %02x %02x %02x\n", a, b, c,
							s[3]);
				}
			}
		}
	}
	CHECK(bad == 0);

	/* `avail` is respected: a valid sequence cut short is invalid. */
	CHECK(utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 4) == 4);
	CHECK(utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 3) == 0);
	CHECK(utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 2) == 0);
	CHECK(utf8_seq_len((const unsigned char *)"\xc3\xa9", 1) == 0);
	CHECK(utf8_seq_len((const unsigned char *)"", 1) == 0);
}

/* Random bytes biased towards UTF-8 structure. */
static uint32_t rng_state = 0x2545f491;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_random_against_reference(void)
{
	static const unsigned char pick[] = { 0x00, 'a', 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0,
					      0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	unsigned char in[64];
	unsigned bad = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = rng() % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			uint32_t r = rng();
			in[i] = r & 0x100 ? pick[(r >> 12) % sizeof(pick)] : (unsigned char)r;
		}
		size_t got_len, want_len;
		char *got = utf8_sanitize((const char *)in, len, &got_len);
		char *want = ref_sanitize(in, len, &want_len);
		if ((got_len != want_len || memcmp(got, want, want_len) != 0 ||
		     got[got_len] != '\0' || !all_valid(got, got_len)) && bad++ < 3) {
			fprintf(stderr, "  random input of %zu bytes differs:", len);
			for (size_t i = 0; i < len; i++)
				fprintf(stderr, " %02x", in[i]);
			fprintf(stderr, "\n");
		}
		free(got);
		free(want);
	}
	CHECK(bad == 0);
}

static void test_large(void)
{
	/* Large input with a bad byte every so often: no quadratic path, and
	 * the length is what the reference says. */
	size_t len = 1 << 20;
	unsigned char *in = malloc(len);
	for (size_t i = 0; i < len; i++)
		in[i] = i % 1000 == 999 ? 0xff : (unsigned char)('a' + i % 26);
	size_t got_len, want_len;
	char *got = utf8_sanitize((const char *)in, len, &got_len);
	char *want = ref_sanitize(in, len, &want_len);
	CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
	CHECK(got_len == len + 2 * (len / 1000));
	free(got);
	free(want);
	free(in);
}

int main(void)
{
	test_valid_unchanged();
	test_empty_terminated();
	test_invalid_replaced();
	test_nul();
	test_seq_len();
	test_random_against_reference();
	test_large();
	return unit_report("test-utf8");
}
