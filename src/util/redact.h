/* redact.h - replace secret values in a stream of output.
 *
 * Connectors inject secrets into a sandbox; whatever the sandbox prints
 * goes back to the caller, into the store, to streams and to logs.  Before
 * it does, every occurrence of an injected value, and of the forms a
 * program is likely to print it in, is replaced by `[REDACTED:<label>]`.
 *
 * A `struct redact_set` holds the patterns of one execution: for each value
 * added, the value itself and its derived forms (see redact_set_add()).  A
 * `struct redactor` applies a set to one output stream (stdout, stderr)
 * that arrives in chunks of any size: a value split across two reads of the
 * pipe is still caught, because the redactor holds back the few bytes that
 * may still turn out to start a match.
 *
 * What is replaced.  Let an occurrence be a place in the stream where some
 * pattern appears; occurrences may overlap or nest.  Every byte covered by
 * some occurrence is replaced, no byte that is not is touched, and the
 * replacement texts follow the greedy rule "the longest match at a position
 * wins": a maximal run of overlapping occurrences starting at P becomes the
 * label of the longest occurrence starting at P; if occurrences that start
 * inside it reach further, the one reaching furthest adds its label, and so
 * on to the end of the run (a label is not repeated back to back).  So
 * "abcdefgh" with A = "abcdef" and B = "defgh" gives "[REDACTED:A][REDACTED:B]"
 * and no byte of either survives; "tokentoken" with "tokentok" gives
 * "[REDACTED:x]en".  When two labels add the same pattern, the first wins.
 *
 * The result depends only on the bytes, never on how they were split into
 * chunks: feeding any split of a stream produces exactly redact_buffer() of
 * the whole.
 *
 * Cost.  The set is an Aho-Corasick automaton over all patterns, O(total
 * pattern length) in memory and build time: measured, 160 to 400 bytes per
 * byte of value (a 40-byte token about 10 KiB, a 3 KiB PEM key about
 * 1.2 MiB), and 20 to 40 ns per byte to build.  A redactor takes
 * O(longest pattern) memory (a pattern is at most three times as long as
 * its value: "%XX" for each byte) and amortized constant time per input
 * byte whatever the number of patterns (each step is a binary search among
 * at most 256 edges): about 350 MiB/s fed in chunks of 1 to 64 bytes.
 *
 * Latency.  Bytes that may be the start of a value are held back until
 * later bytes rule the match out or redactor_finish() is called: a program
 * that prints "ghp_" and sleeps shows it only when it goes on.  Deliver
 * what redactor_feed() returns as it comes, and call redactor_finish()
 * only at the end of the stream: finishing at a pause would let a value
 * printed in two pieces, one before the pause, through.
 *
 * Not covered (NEEDSWORK): hex, JSON or shell escaping of a value, base64
 * wrapped across lines, double URL encoding, a value printed with bytes in
 * between.  Only exact bytes of the forms below are found.
 */
#ifndef CORRAL_UTIL_REDACT_H
#define CORRAL_UTIL_REDACT_H

#include <stddef.h>

#include "util/buf.h"

/* Values shorter than this are ignored: replacing every "a" or "1234"
 * would destroy the output without protecting anything. */
#define REDACT_MIN_LEN 4

struct redact_set;
struct redactor;

/* An empty set; never NULL (aborts on out of memory).  A set with no
 * patterns lets everything through.  Free with redact_set_free(). */
struct redact_set *redact_set_new(void);

/* Add `value` (`len` bytes, any bytes including NUL) under `label` (a
 * connector's name; copied, not NULL).  Adds, each once:
 *  - the value itself;
 *  - its percent-encodings by the encoders programs use, with upper- and
 *    lowercase hex: RFC 3986 (Python quote(safe=''), PHP rawurlencode),
 *    Python quote() (keeps '/'), encodeURIComponent (keeps !*'()),
 *    encodeURI, Go url.PathEscape, and the form encodings that turn a
 *    space into '+' (Python quote_plus and Go QueryEscape, WHATWG
 *    URLSearchParams and Java URLEncoder, PHP urlencode);
 *  - its base64, standard and URL-safe alphabets: for each of the three
 *    alignments the value can have inside a larger base64 blob (its offset
 *    modulo 3), the characters that depend on the value's bytes alone, and
 *    the same run continued to the end of a blob that ends with the value,
 *    with and without '=' padding.  So "user:<token>" encoded for an HTTP
 *    Basic header is caught, save the two or three characters that mix
 *    bits of the token with bits of its neighbours.
 * Returns 1 when the value was added, 0 when it is ignored because it is
 * shorter than REDACT_MIN_LEN.  The automaton is built once, on first use
 * (redactor_new(), redact_buffer()): add every value first.  Adding to a
 * set that a redactor uses is a bug and aborts.
 */
int redact_set_add(struct redact_set *set, const void *value, size_t len, const char *label);

/* Number of patterns (one that two values share counts twice), and the
 * length of the longest (0 when none).  A redactor holds back fewer than
 * redact_set_max_len() bytes. */
size_t redact_set_count(const struct redact_set *set);
size_t redact_set_max_len(const struct redact_set *set);

/* Frees the set; NULL is allowed.  Aborts if a redactor still uses it. */
void redact_set_free(struct redact_set *set);

/* A redactor for one stream; `set` must outlive it.  Never NULL (aborts on
 * out of memory).  Redactors of one set may be created and run in
 * different threads; one redactor is used by one thread at a time. */
struct redactor *redactor_new(const struct redact_set *set);

/* Take the next `len` bytes of the stream (`data` may be NULL when `len`
 * is 0) and append to `out` everything that can no longer be part of a
 * match, redacted.  Holds back at most redact_set_max_len() - 1 bytes of
 * input. */
void redactor_feed(struct redactor *r, const void *data, size_t len, struct buf *out);

/* End of stream: append the rest to `out`.  The redactor is then as new
 * and can take another stream. */
void redactor_finish(struct redactor *r, struct buf *out);

/* Bytes of input fed but not yet accounted for in the output. */
size_t redactor_held(const struct redactor *r);

void redactor_free(struct redactor *r);

/* Redact `len` bytes in one go and append the result to `out`. */
void redact_buffer(const struct redact_set *set, const void *data, size_t len, struct buf *out);

#endif
