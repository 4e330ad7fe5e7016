/* test-redact.c - util/redact.h: secrets scrubbed from output streams.
 *
 * Fixed vectors (computed with Python's urllib.parse and base64 and with
 * node's encodeURIComponent, written here as literals) pin the forms a
 * value is recognised in.  A reference written the slow way (its own
 * encoders, every pattern tried at every position, the rule of redact.h
 * applied to the list of matches) is compared with the streaming
 * redactor on every input over a small alphabet, cut in every possible
 * way, and on random inputs; the key property is that the way a stream is
 * cut into chunks never changes the result. */
#include "util/redact.h"
#include "util/buf.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- The reference ---------------------------------------------------- */

struct ref_secret {
	const char *value;
	size_t len;
	const char *label;
};

struct ref_pattern {
	char *p;
	size_t len;
	size_t secret;
};

struct ref {
	struct ref_secret secrets[16];
	size_t nsecrets;
	struct ref_pattern *pats;
	size_t npats;
};

static void ref_push(struct ref *ref, size_t secret, const char *p, size_t len)
{
	ref->pats = realloc(ref->pats, (ref->npats + 1) * sizeof(*ref->pats));
	ref->pats[ref->npats].p = malloc(len + 1);
	memcpy(ref->pats[ref->npats].p, p, len);
	ref->pats[ref->npats].len = len;
	ref->pats[ref->npats].secret = secret;
	ref->npats++;
}

/* The encoders of redact.h, each spelled out. */
static bool url_keeps(int style, unsigned char c)
{
	static const char *const extra[] = {
	    "-._~",		    /* quote(s, safe='') */
	    "-._~/",		    /* quote(s) */
	    "-._~!*'()",	    /* encodeURIComponent */
	    "-._~!*'();/?:@&=+$,#", /* encodeURI */
	    "-._~$&+,:;=@",	    /* Go url.PathEscape */
	    "-._~",		    /* quote_plus, with ' ' as '+' from here on */
	    "-._*",		    /* URLSearchParams */
	    "-._",		    /* PHP urlencode */
	};
	if (c >= 0x80 || c == 0)
		return false;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return true;
	if (c >= '0' && c <= '9')
		return true;
	return strchr(extra[style], c) != NULL;
}

#define URL_STYLES 8

static char *url_encode(const char *v, size_t len, int style, bool lower, size_t *out_len)
{
	char *out = malloc(3 * len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (url_keeps(style, c))
			*o++ = (char)c;
		else if (c == ' ' && style >= 5)
			*o++ = '+';
		else
			o += sprintf(o, lower ? "%%%02x" : "%%%02X", c);
	}
	*out_len = (size_t)(o - out);
	return out;
}

/* Base64 one bit at a time: `shift` zero bytes, then the value.  Returns
 * the padded text and, in *core_from, *core_end and *data_end, the
 * characters made only of the value's bits and the end of the unpadded
 * text. */
static char *b64_shifted(const char *v, size_t len, size_t shift, bool url, size_t *core_from,
			 size_t *core_end, size_t *data_end, size_t *out_len)
{
	const char *alpha =
	    url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t nbits = 8 * (shift + len), nchars = (nbits + 5) / 6, o = 0;
	char *out = malloc(nchars + 4);

	*core_from = SIZE_MAX;
	*core_end = 0;
	for (size_t ch = 0; ch < nchars; ch++) {
		unsigned val = 0;
		bool own = true;
		for (size_t b = 6 * ch; b < 6 * ch + 6; b++) {
			unsigned bit = 0;
			if (b < 8 * shift || b >= nbits)
				own = false;
			if (b >= 8 * shift && b < nbits) {
				unsigned char byte = (unsigned char)v[b / 8 - shift];
				bit = (byte >> (7 - b % 8)) & 1;
			}
			val = val << 1 | bit;
		}
		if (own && *core_from == SIZE_MAX)
			*core_from = ch;
		if (own)
			*core_end = ch + 1;
		out[o++] = alpha[val];
	}
	*data_end = o;
	while (o % 4)
		out[o++] = '=';
	*out_len = o;
	return out;
}

static void ref_add(struct ref *ref, const char *v, size_t len, const char *label)
{
	size_t id = ref->nsecrets;

	if (len < REDACT_MIN_LEN)
		return;
	ref->secrets[ref->nsecrets++] = (struct ref_secret){v, len, label};
	ref_push(ref, id, v, len);
	for (int style = 0; style < URL_STYLES; style++) {
		for (int lower = 0; lower < 2; lower++) {
			size_t n;
			char *e = url_encode(v, len, style, lower, &n);
			ref_push(ref, id, e, n);
			free(e);
		}
	}
	for (size_t shift = 0; shift < 3; shift++) {
		for (int url = 0; url < 2; url++) {
			size_t from, core_end, data_end, n;
			char *e = b64_shifted(v, len, shift, url, &from, &core_end, &data_end, &n);
			ref_push(ref, id, e + from, core_end - from);
			ref_push(ref, id, e + from, data_end - from);
			ref_push(ref, id, e + from, n - from);
			free(e);
		}
	}
}

static void ref_release(struct ref *ref)
{
	for (size_t i = 0; i < ref->npats; i++)
		free(ref->pats[i].p);
	free(ref->pats);
	memset(ref, 0, sizeof(*ref));
}

/* redact.h's rule, applied to the list of all matches. */
static void ref_redact(const struct ref *ref, const char *in, size_t n, struct buf *out)
{
	/* The longest match ending at each position, the first secret's on a
	 * tie (a tie is the same pattern). */
	size_t *start = malloc((n + 1) * sizeof(size_t)), *sec = malloc((n + 1) * sizeof(size_t));
	bool *has = calloc(n + 1, 1);
	size_t pos = 0;

	for (size_t t = 1; t <= n; t++) {
		size_t best = 0;
		for (size_t i = 0; i < ref->npats; i++) {
			const struct ref_pattern *p = &ref->pats[i];
			if (p->len > t || p->len <= best)
				continue;
			if (memcmp(in + t - p->len, p->p, p->len) == 0) {
				best = p->len;
				sec[t] = p->secret;
			}
		}
		if (best) {
			has[t] = true;
			start[t] = t - best;
		}
	}
	while (pos < n) {
		/* The leftmost match starting at pos or later, the longest there. */
		size_t s = SIZE_MAX, e = 0, cur, last = SIZE_MAX, lab = 0;
		for (size_t t = pos + 1; t <= n; t++) {
			if (has[t] && start[t] >= pos &&
			    (start[t] < s || (start[t] == s && t > e))) {
				s = start[t];
				e = t;
				lab = sec[t];
			}
		}
		if (s == SIZE_MAX) {
			buf_add(out, in + pos, n - pos);
			break;
		}
		buf_add(out, in + pos, s - pos);
		for (cur = e;;) {
			if (lab != last)
				buf_addf(out, "[REDACTED:%s]", ref->secrets[lab].label);
			last = lab;
			/* Of the matches starting inside, the one reaching furthest. */
			size_t next = 0;
			for (size_t t = cur + 1; t <= n; t++)
				if (has[t] && start[t] < cur)
					next = t;
			if (next == 0)
				break;
			lab = sec[next];
			cur = next;
		}
		pos = cur;
	}
	free(start);
	free(sec);
	free(has);
}

static struct redact_set *set_from_ref(const struct ref *ref)
{
	struct redact_set *set = redact_set_new();
	for (size_t i = 0; i < ref->nsecrets; i++)
		redact_set_add(set, ref->secrets[i].value, ref->secrets[i].len,
			       ref->secrets[i].label);
	return set;
}

/* ---- Helpers ------------------------------------------------------------ */

static char *redact_str(const struct redact_set *set, const char *in)
{
	struct buf out = BUF_INIT;
	redact_buffer(set, in, strlen(in), &out);
	return buf_detach(&out, NULL);
}

/* Feed `in` in chunks that end at the positions in `cuts` (increasing). */
static void feed_cut(struct redactor *r, const char *in, size_t n, const size_t *cuts, size_t ncuts,
		     struct buf *out)
{
	size_t prev = 0;
	for (size_t i = 0; i < ncuts; i++) {
		redactor_feed(r, in + prev, cuts[i] - prev, out);
		prev = cuts[i];
	}
	redactor_feed(r, in + prev, n - prev, out);
	redactor_finish(r, out);
}

static bool same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* ---- Tests -------------------------------------------------------------- */

static void test_plain(void)
{
	struct redact_set *set = redact_set_new();
	char *s;

	CHECK(redact_set_add(set, "s3cr3t-token-value", 18, "github") == 1);
	CHECK(redact_set_add(set, "other-value", 11, "github") == 1);
	s = redact_str(set, "token: s3cr3t-token-value\n");
	CHECK_STR(s, "token: [REDACTED:github]\n");
	free(s);
	s = redact_str(set, "other-value.");
	CHECK_STR(s, "[REDACTED:github].");
	free(s);
	/* At the very start, at the very end, and the whole stream. */
	s = redact_str(set, "s3cr3t-token-value and s3cr3t-token-value");
	CHECK_STR(s, "[REDACTED:github] and [REDACTED:github]");
	free(s);
	s = redact_str(set, "s3cr3t-token-value");
	CHECK_STR(s, "[REDACTED:github]");
	free(s);
	/* Back to back: two matches, two replacements. */
	s = redact_str(set, "s3cr3t-token-values3cr3t-token-value");
	CHECK_STR(s, "[REDACTED:github][REDACTED:github]");
	free(s);
	s = redact_str(set, "");
	CHECK_STR(s, "");
	free(s);
	CHECK(redact_set_max_len(set) >= 18);
	redact_set_free(set);
}

static void test_short_and_empty(void)
{
	struct redact_set *set = redact_set_new();
	char *s;

	/* An empty set lets everything through. */
	s = redact_str(set, "nothing to hide");
	CHECK_STR(s, "nothing to hide");
	free(s);
	CHECK(redact_set_count(set) == 0 && redact_set_max_len(set) == 0);

	CHECK(redact_set_add(set, "", 0, "a") == 0);
	CHECK(redact_set_add(set, "abc", 3, "a") == 0);
	CHECK(redact_set_count(set) == 0);
	s = redact_str(set, "abc abc");
	CHECK_STR(s, "abc abc");
	free(s);

	CHECK(redact_set_add(set, "abcd", 4, "a") == 1);
	s = redact_str(set, "abc abcd abcde");
	CHECK_STR(s, "abc [REDACTED:a] [REDACTED:a]e");
	free(s);
	redact_set_free(set);
	redact_set_free(NULL);
}

/* p@ss w/rd:!*'()~+&=é and the encoders' output for it. */
static void test_url(void)
{
	static const char secret[] = "p@ss w/rd:!*'()~+&=\xc3\xa9";
	static const char *const forms[] = {
	    /* urllib.parse.quote(s, safe='') */
	    "p%40ss%20w%2Frd%3A%21%2A%27%28%29~%2B%26%3D%C3%A9",
	    /* the same, lowercase hex */
	    "p%40ss%20w%2frd%3a%21%2a%27%28%29~%2b%26%3d%c3%a9",
	    /* urllib.parse.quote(s) */
	    "p%40ss%20w/rd%3A%21%2A%27%28%29~%2B%26%3D%C3%A9",
	    /* urllib.parse.quote_plus(s) */
	    "p%40ss+w%2Frd%3A%21%2A%27%28%29~%2B%26%3D%C3%A9",
	    /* encodeURIComponent(s) */
	    "p%40ss%20w%2Frd%3A!*'()~%2B%26%3D%C3%A9",
	    /* encodeURI(s) */
	    "p@ss%20w/rd:!*'()~+&=%C3%A9",
	    /* new URLSearchParams({k: s}).toString() */
	    "p%40ss+w%2Frd%3A%21*%27%28%29%7E%2B%26%3D%C3%A9",
	};
	struct redact_set *set = redact_set_new();

	CHECK(redact_set_add(set, secret, strlen(secret), "db") == 1);
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char in[256], *s;
		snprintf(in, sizeof(in), "postgres://app:%s@db:5432/x", forms[i]);
		s = redact_str(set, in);
		CHECK_STR(s, "postgres://app:[REDACTED:db]@db:5432/x");
		free(s);
	}
	redact_set_free(set);
}

static void test_base64(void)
{
	static const struct {
		const char *in, *out;
	} vectors[] = {
	    /* base64.b64encode(b"ghp_R4nd0mT0k3nValue1234") */
	    {"Z2hwX1I0bmQwbVQwazNuVmFsdWUxMjM0", "[REDACTED:github]"},
	    /* b"user:" + secret: offset 5, padded and not, in a Basic header */
	    {"Authorization: Basic dXNlcjpnaHBfUjRuZDBtVDBrM25WYWx1ZTEyMzQ=\r\n",
	     "Authorization: Basic dXNlcjp[REDACTED:github]\r\n"},
	    {"dXNlcjpnaHBfUjRuZDBtVDBrM25WYWx1ZTEyMzQ", "dXNlcjp[REDACTED:github]"},
	    /* b"x-access-token:" + secret + b"\n": offset 15, not at the end */
	    {"eC1hY2Nlc3MtdG9rZW46Z2hwX1I0bmQwbVQwazNuVmFsdWUxMjM0Cg==",
	     "eC1hY2Nlc3MtdG9rZW46[REDACTED:github]Cg=="},
	    /* b"ab" + secret + b" and more": offset 2.  The character that
	     * mixes the secret's last 4 bits with the top 2 of ' ' (00) is
	     * the one a blob ending with the secret has: it goes too. */
	    {"YWJnaHBfUjRuZDBtVDBrM25WYWx1ZTEyMzQgYW5kIG1vcmU=",
	     "YWJ[REDACTED:github]gYW5kIG1vcmU="},
	    /* b"ab" + secret + b"~~": '~' is 01111110, that one stays */
	    {"YWJnaHBfUjRuZDBtVDBrM25WYWx1ZTEyMzR+fg==", "YWJ[REDACTED:github]R+fg=="},
	    /* b"a" + secret + b"?": offset 1 */
	    {"YWdocF9SNG5kMG1UMGszblZhbHVlMTIzND8=", "YW[REDACTED:github]D8="},
	    /* b"k3y>>>???~~~end", standard and URL-safe */
	    {"azN5Pj4+Pz8/fn5+ZW5k", "[REDACTED:k]"},
	    {"azN5Pj4-Pz8_fn5-ZW5k", "[REDACTED:k]"},
	    /* b"u:" + that + b"!" ('!' is 00100001) and + b"~" */
	    {"dTprM3k+Pj4/Pz9+fn5lbmQh", "dTp[REDACTED:k]h"},
	    {"dTprM3k-Pj4_Pz9-fn5lbmQh", "dTp[REDACTED:k]h"},
	    {"dTprM3k+Pj4/Pz9+fn5lbmR+", "dTp[REDACTED:k]R+"},
	};
	struct redact_set *set = redact_set_new();

	redact_set_add(set, "ghp_R4nd0mT0k3nValue1234", 24, "github");
	redact_set_add(set, "k3y>>>???~~~end", 15, "k");
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char *s = redact_str(set, vectors[i].in);
		CHECK_STR(s, vectors[i].out);
		free(s);
	}
	redact_set_free(set);
}

/* A text with several forms, cut once and twice at every place. */
static void test_every_split(void)
{
	static const char in[] = "a=ghp_R4nd0mT0k3nValue1234;"
				 "b=dXNlcjpnaHBfUjRuZDBtVDBrM25WYWx1ZTEyMzQ=;"
				 "c=p%40ss%20w%2Frd!;d=p@ss w/rd!ghp_R4nd0mT0k3nValue123";
	static const char want[] = "a=[REDACTED:github];b=dXNlcjp[REDACTED:github];"
				   "c=[REDACTED:db]!;d=[REDACTED:db]!ghp_R4nd0mT0k3nValue123";
	struct redact_set *set = redact_set_new();
	struct redactor *r;
	size_t n = strlen(in), bad = 0, maxheld = 0;

	redact_set_add(set, "ghp_R4nd0mT0k3nValue1234", 24, "github");
	redact_set_add(set, "p@ss w/rd", 9, "db");
	r = redactor_new(set);
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			struct buf out = BUF_INIT;
			size_t cuts[2] = {i, j};
			feed_cut(r, in, n, cuts, 2, &out);
			if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0) {
				if (!bad++)
					fprintf(stderr, "split %zu %zu: '%s'\n", i, j, out.data);
			}
			buf_release(&out);
		}
	}
	CHECK(bad == 0);

	/* Byte by byte, nothing more than max_len - 1 is held. */
	{
		struct buf out = BUF_INIT;
		for (size_t i = 0; i < n; i++) {
			redactor_feed(r, in + i, 1, &out);
			if (redactor_held(r) > maxheld)
				maxheld = redactor_held(r);
		}
		redactor_finish(r, &out);
		CHECK_STR(out.data, want);
		CHECK(maxheld > 0 && maxheld < redact_set_max_len(set));
		buf_release(&out);
	}
	redactor_free(r);
	redact_set_free(set);
}

static void test_labels_and_overlap(void)
{
	struct redact_set *set = redact_set_new();
	char *s;

	redact_set_add(set, "abcdef", 6, "A");
	redact_set_add(set, "defghi", 6, "B");
	redact_set_add(set, "secretvalue", 11, "long");
	redact_set_add(set, "secret", 6, "short");
	redact_set_add(set, "xyxyxy", 6, "X");
	redact_set_add(set, "abcdef", 6, "dup"); /* the first label wins */

	s = redact_str(set, "[abcdef] [defghi] [abcdefghi]");
	CHECK_STR(s, "[[REDACTED:A]] [[REDACTED:B]] [[REDACTED:A][REDACTED:B]]");
	free(s);
	/* Nested: the longest at a position wins; the shorter alone still. */
	s = redact_str(set, "secretvalue secretval secretsecret");
	CHECK_STR(s, "[REDACTED:long] [REDACTED:short]val [REDACTED:short][REDACTED:short]");
	free(s);
	/* A value overlapping itself is one replacement, nothing leaks. */
	s = redact_str(set, "xyxyxyxyxyxy!xyxyx");
	CHECK_STR(s, "[REDACTED:X]!xyxyx");
	free(s);
	/* However long the run. */
	{
		struct redactor *r = redactor_new(set);
		struct buf out = BUF_INIT;
		for (int i = 0; i < 5000; i++)
			redactor_feed(r, "xy", 2, &out);
		CHECK(redactor_held(r) < redact_set_max_len(set));
		redactor_feed(r, "!", 1, &out);
		redactor_finish(r, &out);
		CHECK_STR(out.data, "[REDACTED:X]!");
		buf_release(&out);
		redactor_free(r);
	}
	/* A run of three: A, then B reaching furthest. */
	s = redact_str(set, "abcdefghi secretvaluesecret");
	CHECK_STR(s, "[REDACTED:A][REDACTED:B] [REDACTED:long][REDACTED:short]");
	free(s);
	redact_set_free(set);

	/* A later, longer match that starts earlier takes the run over. */
	set = redact_set_new();
	redact_set_add(set, "cdef", 4, "inner");
	redact_set_add(set, "bcdefg", 6, "outer");
	redact_set_add(set, "fghijk", 6, "tail");
	s = redact_str(set, "abcdefghijkl acdefx");
	CHECK_STR(s, "a[REDACTED:outer][REDACTED:tail]l a[REDACTED:inner]x");
	free(s);
	redact_set_free(set);
}

static void test_binary(void)
{
	static const char secret[] = "\0\x01k\xffy\0";
	static const char in[] = "\0\0\0\x01k\xffy\0\0\xff";
	struct redact_set *set = redact_set_new();
	struct buf out = BUF_INIT;
	static const char want[] = "\0\0[REDACTED:bin]\0\xff";

	CHECK(redact_set_add(set, secret, 6, "bin") == 1);
	redact_buffer(set, in, sizeof(in) - 1, &out);
	CHECK(out.len == sizeof(want) - 1 && memcmp(out.data, want, out.len) == 0);
	buf_reset(&out);
	/* Its percent-encoding: %00%01k%FFy%00. */
	redact_buffer(set, "x%00%01k%FFy%00x%00%01k%ffy%00", 30, &out);
	CHECK_STR(out.data, "x[REDACTED:bin]x[REDACTED:bin]");
	buf_release(&out);
	redact_set_free(set);
}

static void test_near_misses(void)
{
	static const char *const misses[] = {
	    "ghp_R4nd0mT0k3nValue123",	      /* one byte short */
	    "hp_R4nd0mT0k3nValue1234",	      /* first byte missing */
	    "ghp_R4nd0mT0k3nValue1235",	      /* last byte different */
	    "ghp_R4nd0mT0k3nVa1ue1234",	      /* one inside */
	    "GHP_R4ND0MT0K3NVALUE1234",	      /* case matters */
	    "ghp_R4nd0mT0k3n Value1234",      /* something in between */
	    "Z2hwX1I0bmQwbVQwazNuVmFsdWUxMj", /* base64 of a prefix */
	    "ghp_R4nd0mT0k3nValue%3134",      /* percent-encoding of a letter */
	    "p%40ss%20w%2Frx",		      /* percent-encoding, last byte off */
	    "p%40ss%20w%2",		      /* percent-encoding cut short */
	    "p%40ss%2520w",		      /* encoded twice */
	};
	struct redact_set *set = redact_set_new();

	redact_set_add(set, "ghp_R4nd0mT0k3nValue1234", 24, "github");
	redact_set_add(set, "p@ss w/rd", 9, "db");
	for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
		char *s = redact_str(set, misses[i]);
		CHECK_STR(s, misses[i]);
		free(s);
	}
	redact_set_free(set);
}

/* Found by the fuzzer: base64 forms of two values of zero bytes, where
 * "AAAgA" (A after one byte, ending the blob) at 0 and 5 and "AAAA" (B)
 * at 4 make one run; a redactor that took a match starting where the
 * last emitted link ends for an overlapping one got it wrong. */
static void test_adjacent_runs(void)
{
	static const char in[] = "AAAgAAAAgA";
	struct ref ref = {0};
	struct redact_set *set;
	struct redactor *r;
	struct buf want = BUF_INIT, got = BUF_INIT;
	size_t n = strlen(in), bad = 0;

	ref_add(&ref, "\0\0\x02\0", 4, "A");
	ref_add(&ref, "\0\0\0\0", 4, "B");
	set = set_from_ref(&ref);
	r = redactor_new(set);
	ref_redact(&ref, in, n, &want);
	CHECK_STR(want.data, "[REDACTED:A][REDACTED:B][REDACTED:A]");
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			size_t cuts[2] = {i, j};
			buf_reset(&got);
			feed_cut(r, in, n, cuts, 2, &got);
			if (!same(&want, &got))
				bad++;
		}
	}
	CHECK(bad == 0);
	buf_release(&want);
	buf_release(&got);
	redactor_free(r);
	redact_set_free(set);
	ref_release(&ref);
}

/* Every input over {a, b, c} up to 8 bytes, against the reference; up to
 * 7 bytes also cut in every one of the 2^(n-1) ways. */
static void test_exhaustive(void)
{
	struct ref ref = {0};
	struct redact_set *set;
	struct redactor *r;
	size_t bad = 0, runs = 0;
	char in[8];

	ref_add(&ref, "abca", 4, "P");
	ref_add(&ref, "bcab", 4, "Q");
	ref_add(&ref, "aaaa", 4, "R");
	ref_add(&ref, "cabcab", 6, "S");
	ref_add(&ref, "bbacb", 5, "T");
	set = set_from_ref(&ref);
	r = redactor_new(set);

	for (size_t n = 0; n <= 8; n++) {
		size_t total = 1;
		for (size_t i = 0; i < n; i++)
			total *= 3;
		for (size_t k = 0; k < total; k++) {
			struct buf want = BUF_INIT, got = BUF_INIT;
			size_t x = k;
			for (size_t i = 0; i < n; i++, x /= 3)
				in[i] = (char)('a' + x % 3);
			ref_redact(&ref, in, n, &want);
			for (size_t mask = 0; mask < (n > 0 && n <= 7 ? (1u << (n - 1)) : 1);
			     mask++) {
				size_t cuts[8], ncuts = 0;
				for (size_t i = 1; i < n; i++)
					if (mask & (1u << (i - 1)))
						cuts[ncuts++] = i;
				buf_reset(&got);
				feed_cut(r, in, n, cuts, ncuts, &got);
				runs++;
				if (!same(&want, &got) && !bad++)
					fprintf(stderr, "'%.*s' mask %zx: want '%s' got '%s'\n",
						(int)n, in, mask, want.data ? want.data : "",
						got.data ? got.data : "");
			}
			buf_release(&want);
			buf_release(&got);
		}
	}
	CHECK(bad == 0);
	CHECK(runs > 100000);
	redactor_free(r);
	redact_set_free(set);
	ref_release(&ref);
}

/* Random secrets over an alphabet rich in characters the encoders treat
 * differently; inputs made of their forms, pieces of them and noise; cut
 * at random. */
static void test_random(void)
{
	static const char alphabet[] = "ab+/= %~*!'&\x00\xff";
	size_t bad = 0, heldbad = 0;

	for (int round = 0; round < 300; round++) {
		struct ref ref = {0};
		char secrets[4][24];
		char labels[4][8];
		struct redact_set *set;
		struct redactor *r;
		size_t nsec = 1 + rnd() % 4;

		for (size_t i = 0; i < nsec; i++) {
			size_t len = 4 + rnd() % 12;
			for (size_t j = 0; j < len; j++)
				secrets[i][j] = alphabet[rnd() % (sizeof(alphabet) - 1)];
			snprintf(labels[i], sizeof(labels[i]), "L%zu", i);
			ref_add(&ref, secrets[i], len, labels[i]);
		}
		set = set_from_ref(&ref);
		r = redactor_new(set);
		for (int k = 0; k < 20; k++) {
			struct buf in = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
			size_t pieces = rnd() % 12;
			for (size_t i = 0; i < pieces; i++) {
				const struct ref_pattern *p = &ref.pats[rnd() % ref.npats];
				size_t from = 0, to = p->len;
				switch (rnd() % 4) {
				case 0:
					from = rnd() % p->len;
					break;
				case 1:
					to = rnd() % p->len;
					break;
				case 2: {
					char noise[6];
					size_t nn = rnd() % sizeof(noise);
					for (size_t j = 0; j < nn; j++)
						noise[j] = alphabet[rnd() % (sizeof(alphabet) - 1)];
					buf_add(&in, noise, nn);
					break;
				}
				}
				buf_add(&in, p->p + from, to - from);
			}
			ref_redact(&ref, in.data ? in.data : "", in.len, &want);
			for (size_t at = 0; at < in.len;) {
				size_t step = rnd() % 9;
				if (step > in.len - at)
					step = in.len - at;
				redactor_feed(r, in.data + at, step, &got);
				if (redactor_held(r) >= redact_set_max_len(set) && redactor_held(r))
					heldbad++;
				at += step;
			}
			redactor_finish(r, &got);
			if (!same(&want, &got) && !bad++)
				fprintf(stderr, "random round %d: mismatch on %zu bytes\n", round,
					in.len);
			buf_release(&in);
			buf_release(&want);
			buf_release(&got);
		}
		redactor_free(r);
		redact_set_free(set);
		ref_release(&ref);
	}
	CHECK(bad == 0);
	CHECK(heldbad == 0);
}

/* 32 MiB of log-like text with secrets in every form, fed in chunks of
 * 1 to 64 bytes, equals the one-shot result and loses no secret. */
static void test_huge(void)
{
	static const char *const forms[] = {
	    "ghp_R4nd0mT0k3nValue1234",
	    "Z2hwX1I0bmQwbVQwazNuVmFsdWUxMjM0",
	    "p%40ss%20w%2Frd",
	    "p@ss w/rd",
	};
	const size_t size = 32u << 20;
	struct redact_set *set = redact_set_new();
	struct redactor *r;
	struct buf in = BUF_INIT, once = BUF_INIT, streamed = BUF_INIT;
	size_t placed = 0, found = 0, at = 0;
	struct timespec t0, t1;
	double secs;

	redact_set_add(set, "ghp_R4nd0mT0k3nValue1234", 24, "github");
	redact_set_add(set, "p@ss w/rd", 9, "db");
	while (in.len < size) {
		buf_addf(&in, "%u line of output with some words ", rnd());
		if (rnd() % 8 == 0) {
			buf_adds(&in, forms[rnd() % 4]);
			placed++;
		}
		buf_adds(&in, "\n");
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = redactor_new(set);
	while (at < in.len) {
		size_t step = 1 + rnd() % 64;
		if (step > in.len - at)
			step = in.len - at;
		redactor_feed(r, in.data + at, step, &streamed);
		at += step;
	}
	redactor_finish(r, &streamed);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "test-redact: %zu MiB in small chunks: %.0f MiB/s\n", size >> 20,
		(double)size / (1 << 20) / secs);

	redact_buffer(set, in.data, in.len, &once);
	CHECK(same(&once, &streamed));
	/* Not a strstr() loop: sanitizers make each call O(length). */
	for (size_t i = 0; i + 10 <= streamed.len; i++)
		if (streamed.data[i] == '[' && memcmp(streamed.data + i, "[REDACTED:", 10) == 0)
			found++;
	CHECK(found == placed);
	CHECK(strstr(streamed.data, "R4nd0m") == NULL && strstr(streamed.data, "p@ss") == NULL &&
	      strstr(streamed.data, "p%40") == NULL && strstr(streamed.data, "Z2hwX1") == NULL);
	redactor_free(r);
	redact_set_free(set);
	buf_release(&in);
	buf_release(&once);
	buf_release(&streamed);
}

/* While a long value may still be under way, matches of short ones pile
 * up: nine pending runs, each of them final only when the long one
 * fails. */
static void test_many_pending(void)
{
	static const char in[] = "0123456789abcdefghijklmnopqrstuvwxy! "
				 "0123456789abcdefghijklmnopqrstuvwxyz";
	static const char want[] = "[REDACTED:s0][REDACTED:s1][REDACTED:s2][REDACTED:s3]"
				   "[REDACTED:s4][REDACTED:s5][REDACTED:s6][REDACTED:s7]wxy! "
				   "[REDACTED:long]";
	static const char shorts[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	static char labels[9][4];
	struct ref ref = {0};
	struct redact_set *set;
	struct redactor *r;
	struct buf out = BUF_INIT;
	size_t n = strlen(in), bad = 0;

	ref_add(&ref, shorts, 36, "long");
	for (int i = 0; i < 9; i++) {
		snprintf(labels[i], sizeof(labels[i]), "s%d", i);
		ref_add(&ref, shorts + 4 * i, 4, labels[i]);
	}
	set = set_from_ref(&ref);
	ref_redact(&ref, in, n, &out);
	CHECK_STR(out.data, want);
	buf_reset(&out);
	r = redactor_new(set);
	for (size_t i = 0; i < n; i++)
		redactor_feed(r, in + i, 1, &out);
	redactor_finish(r, &out);
	CHECK_STR(out.data, want);
	for (size_t i = 0; i <= n; i++) {
		buf_reset(&out);
		feed_cut(r, in, n, &i, 1, &out);
		if (strcmp(out.data, want) != 0)
			bad++;
	}
	CHECK(bad == 0);
	buf_release(&out);
	redactor_free(r);
	redact_set_free(set);
	ref_release(&ref);
}

/* Adding to a set a redactor uses would free the automaton under it:
 * that aborts instead. */
static void test_add_in_use(void)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		struct redact_set *set = redact_set_new();
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		redact_set_add(set, "first-value", 11, "a");
		redactor_new(set);
		redact_set_add(set, "second-value", 12, "b");
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* A redactor is as new after redactor_finish(); one set serves many. */
static void test_reuse(void)
{
	struct redact_set *set = redact_set_new();
	struct redactor *a, *b;
	struct buf out = BUF_INIT, out2 = BUF_INIT;

	redact_set_add(set, "hunter22", 8, "pw");
	a = redactor_new(set);
	b = redactor_new(set);
	redactor_feed(a, "x hunt", 6, &out);
	redactor_feed(b, "hunter2", 7, &out2);
	redactor_finish(a, &out);
	CHECK_STR(out.data, "x hunt");
	redactor_feed(a, "er22 y", 6, &out);
	redactor_finish(a, &out);
	CHECK_STR(out.data, "x hunter22 y");
	redactor_feed(b, "2!", 2, &out2);
	redactor_finish(b, &out2);
	CHECK_STR(out2.data, "[REDACTED:pw]!");
	redactor_free(a);
	redactor_free(b);
	redactor_free(NULL);
	buf_release(&out);
	buf_release(&out2);
	redact_set_free(set);
}

int main(void)
{
	test_plain();
	test_short_and_empty();
	test_url();
	test_base64();
	test_every_split();
	test_labels_and_overlap();
	test_binary();
	test_near_misses();
	test_adjacent_runs();
	test_exhaustive();
	test_random();
	test_many_pending();
	test_huge();
	test_add_in_use();
	test_reuse();
	return unit_report("test-redact");
}
