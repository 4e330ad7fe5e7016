/* fuzz-redact.c - util/redact.h on secrets, inputs and chunkings from the
 * fuzzer.
 *
 * Input layout:
 *   byte 0          number of secrets: 1 + (b & 3)
 *   per secret      a length byte (4 + b % 29 bytes follow), then the value
 *   one byte        number of chunk sizes: 1 + b % 16, then that many
 *                   bytes, each a chunk size (b % 64, 0 allowed unless
 *                   all are), cycled
 *   the rest        the stream, a little program: 0xfe k inserts form
 *                   k >> 2 of secret k & 3, 0xff k the same form without
 *                   its last byte (a near miss), 0xfd x the byte x,
 *                   any other byte itself.
 *
 * Checks: feeding the stream in the given chunks gives exactly
 * redact_buffer() of the whole; both equal a reference that tries every
 * form at every position and applies redact.h's rule; and no form of any
 * secret is left in the output (for the forms that cannot be made up
 * from pieces of the replacement text "[REDACTED:Ln]").  The forms are
 * computed here, independently of redact.c. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/redact.h"

#define MAX_SECRETS 4
#define MAX_FORMS 64

/* The reference and the checks are not instrumented for coverage: the
 * fuzzer should explore redact.c, and tracing every comparison here made
 * it ten times slower. */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE
#endif

struct form {
	char *p;
	size_t len;
};

struct secret {
	const char *v;
	size_t len;
	char label[4];
	struct form forms[MAX_FORMS];
	size_t nforms;
};

NO_COVERAGE
static void form_add(struct secret *s, const char *p, size_t len)
{
	if (s->nforms == MAX_FORMS)
		abort();
	s->forms[s->nforms].p = malloc(len + 1);
	memcpy(s->forms[s->nforms].p, p, len);
	s->forms[s->nforms].len = len;
	s->nforms++;
}

static const char *const url_keep[] = {
    "-._~", "-._~/", "-._~!*'()", "-._~!*'();/?:@&=+$,#", "-._~$&+,:;=@", "-._~", "-._*", "-._",
};

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

NO_COVERAGE
static void forms_of(struct secret *s)
{
	static const char hexu[] = "0123456789ABCDEF", hexl[] = "0123456789abcdef";
	const unsigned char *v = (const unsigned char *)s->v;
	char *tmp = malloc(3 * s->len + 8);

	form_add(s, s->v, s->len);
	for (size_t style = 0; style < 8; style++) {
		for (int lower = 0; lower < 2; lower++) {
			size_t o = 0;
			for (size_t i = 0; i < s->len; i++) {
				unsigned char c = v[i];
				bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
					     (c >= 'A' && c <= 'Z');
				if (alnum || (c && strchr(url_keep[style], c))) {
					tmp[o++] = (char)c;
				} else if (c == ' ' && style >= 5) {
					tmp[o++] = '+';
				} else {
					tmp[o++] = '%';
					tmp[o++] = (lower ? hexl : hexu)[c >> 4];
					tmp[o++] = (lower ? hexl : hexu)[c & 15];
				}
			}
			form_add(s, tmp, o);
		}
	}
	/* Base64 after `shift` zero bytes, one output character at a time
	 * from the bit string. */
	for (size_t shift = 0; shift < 3; shift++) {
		for (int url = 0; url < 2; url++) {
			const char *alpha = url ? b64_url : b64_std;
			size_t nbits = 8 * (shift + s->len), o = 0, from = SIZE_MAX, core = 0;
			for (size_t ch = 0; 6 * ch < nbits; ch++) {
				unsigned val = 0;
				for (size_t b = 6 * ch; b < 6 * ch + 6; b++) {
					unsigned bit = 0;
					if (b >= 8 * shift && b < nbits)
						bit = (v[b / 8 - shift] >> (7 - b % 8)) & 1;
					val = val << 1 | bit;
				}
				if (6 * ch >= 8 * shift && from == SIZE_MAX)
					from = ch;
				if (6 * ch + 6 <= nbits)
					core = ch + 1;
				tmp[o++] = alpha[val];
			}
			form_add(s, tmp + from, core - from);
			form_add(s, tmp + from, o - from);
			while (o % 4)
				tmp[o++] = '=';
			form_add(s, tmp + from, o - from);
		}
	}
	free(tmp);
}

/* redact.h's rule the slow way: the longest form ending at each position
 * (the first secret's on a tie), then runs of overlapping matches, each
 * link the longest at the run's start or the one reaching furthest. */
NO_COVERAGE
static void reference(struct secret *secs, size_t nsec, const char *in, size_t n, struct buf *out)
{
	size_t *start = calloc(n + 1, sizeof(size_t)), *sec = calloc(n + 1, sizeof(size_t));
	size_t pos = 0, maxlen = 0;

	for (size_t k = 0; k < nsec; k++)
		for (size_t f = 0; f < secs[k].nforms; f++)
			if (secs[k].forms[f].len > maxlen)
				maxlen = secs[k].forms[f].len;
	/* A match ending at t starts after t - maxlen: that bounds the scans
	 * below, which would otherwise make this quadratic. */
	for (size_t t = 1; t <= n; t++) {
		size_t best = 0;
		for (size_t k = 0; k < nsec; k++) {
			for (size_t f = 0; f < secs[k].nforms; f++) {
				const struct form *fm = &secs[k].forms[f];
				if (fm->len <= best || fm->len > t ||
				    fm->p[fm->len - 1] != in[t - 1])
					continue;
				if (memcmp(in + t - fm->len, fm->p, fm->len) == 0) {
					best = fm->len;
					sec[t] = k;
				}
			}
		}
		start[t] = best ? t - best : SIZE_MAX;
	}
	while (pos < n) {
		size_t s = SIZE_MAX, e = 0, cur, last = SIZE_MAX, lab = 0;
		for (size_t t = pos + 1; t <= n && (s == SIZE_MAX || t <= s + maxlen); t++) {
			if (start[t] != SIZE_MAX && start[t] >= pos &&
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
			size_t next = 0;
			if (lab != last)
				buf_addf(out, "[REDACTED:%s]", secs[lab].label);
			last = lab;
			for (size_t t = cur + 1; t <= n && t < cur + maxlen; t++)
				if (start[t] != SIZE_MAX && start[t] < cur)
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
}

/* Empty buffers have no data; memcmp() must not see NULL. */
NO_COVERAGE
static bool same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

NO_COVERAGE
static bool contains(const struct buf *b, const char *p, size_t len)
{
	return b->len >= len && memmem(b->data, b->len, p, len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secret secs[MAX_SECRETS];
	size_t nsec, at = 0, nchunks, chunks[16];
	struct redact_set *set;
	struct redactor *r;
	struct buf in = BUF_INIT, once = BUF_INIT, streamed = BUF_INIT, ref = BUF_INIT;

	if (size < 1)
		return 0;
	memset(secs, 0, sizeof(secs));
	nsec = 1 + (data[at++] & 3);
	for (size_t k = 0; k < nsec; k++) {
		size_t len;
		if (at >= size)
			return 0;
		len = 4 + data[at++] % 29;
		if (size - at < len)
			return 0;
		secs[k].v = (const char *)data + at;
		secs[k].len = len;
		snprintf(secs[k].label, sizeof(secs[k].label), "L%zu", k);
		at += len;
	}
	if (at >= size)
		return 0;
	nchunks = 1 + data[at++] % 16;
	if (size - at < nchunks)
		return 0;
	for (size_t i = 0; i < nchunks; i++)
		chunks[i] = data[at++] % 64;
	for (size_t i = 0; i < nchunks && chunks[i] == 0; i++)
		if (i == nchunks - 1)
			chunks[0] = 1; /* all zero: the stream would never move */

	for (size_t k = 0; k < nsec; k++)
		forms_of(&secs[k]);
	while (at < size) {
		uint8_t op = data[at++];
		if ((op == 0xfe || op == 0xff) && at < size) {
			uint8_t sel = data[at++];
			struct secret *s = &secs[(sel & 3) % nsec];
			const struct form *f = &s->forms[(sel >> 2) % s->nforms];
			buf_add(&in, f->p, f->len - (op == 0xff));
		} else if (op == 0xfd && at < size) {
			buf_add(&in, &data[at++], 1);
		} else {
			buf_add(&in, &op, 1);
		}
	}

	set = redact_set_new();
	for (size_t k = 0; k < nsec; k++)
		if (redact_set_add(set, secs[k].v, secs[k].len, secs[k].label) != 1)
			abort();
	redact_buffer(set, in.data, in.len, &once);

	r = redactor_new(set);
	for (size_t pos = 0, c = 0; pos < in.len; c++) {
		size_t step = chunks[c % nchunks];
		if (step > in.len - pos)
			step = in.len - pos;
		redactor_feed(r, in.data + pos, step, &streamed);
		if (redactor_held(r) >= redact_set_max_len(set))
			abort();
		pos += step;
	}
	redactor_finish(r, &streamed);
	if (!same(&streamed, &once))
		abort();

	reference(secs, nsec, in.data ? in.data : "", in.len, &ref);
	if (!same(&ref, &once))
		abort();

	/* A form left in the output would lie within a stretch of input
	 * copied as it is, unless it could be made of the text around it:
	 * those with a bracket or inside a replacement text are skipped. */
	for (size_t k = 0; k < nsec; k++) {
		for (size_t f = 0; f < secs[k].nforms; f++) {
			const struct form *fm = &secs[k].forms[f];
			bool skip = memchr(fm->p, '[', fm->len) || memchr(fm->p, ']', fm->len);
			for (size_t j = 0; j < nsec && !skip; j++) {
				char repl[32];
				int n =
				    snprintf(repl, sizeof(repl), "[REDACTED:%s]", secs[j].label);
				skip =
				    fm->len <= (size_t)n && memmem(repl, (size_t)n, fm->p, fm->len);
			}
			if (!skip && contains(&once, fm->p, fm->len))
				abort();
		}
	}

	redactor_free(r);
	redact_set_free(set);
	for (size_t k = 0; k < nsec; k++)
		for (size_t f = 0; f < secs[k].nforms; f++)
			free(secs[k].forms[f].p);
	buf_release(&in);
	buf_release(&once);
	buf_release(&streamed);
	buf_release(&ref);
	return 0;
}
