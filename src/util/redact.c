/* redact.c - see redact.h.
 *
 * The set is an Aho-Corasick automaton.  Each node of the trie of all
 * patterns knows its failure link, the longest pattern that is a suffix of
 * its string (out_len, out_label) and ext_depth: the depth of the deepest
 * node on its failure chain, itself included, that has children, i.e. the
 * longest suffix of the input so far that a future match may still start
 * with.  After position `pos`, no match that is yet to come starts before
 * the horizon `pos - ext_depth`: bytes before it are settled.
 *
 * Only the longest match ending at each position matters: it covers all
 * shorter ones ending there, and the greedy rule, which prefers the match
 * that starts first or reaches furthest, never picks one of them instead
 * (ties go to the longest).  Matches arrive in order of their ends, and
 * the redactor keeps the greedy chain of redact.h as a list of links
 * (start, end, label): a new match [s, t) that overlaps the chain replaces
 * every link after the first one it overlaps (it reaches further than all
 * of them, so the greedy rule picks it there), or the whole run when it
 * starts at or before the run's start (then it is the longest at the
 * leftmost position).  A link is final once no future match can replace
 * it: the run's first link when its start is before the horizon, a later
 * link when the previous link ends at or before the horizon.  Final links
 * are written out at once; so are the bytes before the horizon that no
 * match covers.  What is left is within the horizon, fewer than max_len
 * bytes: held input in a ring buffer, and at most one link per byte.
 */
#include "util/redact.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NO_LABEL UINT32_MAX

struct pattern {
	size_t off; /* in set->bytes */
	size_t len;
	uint32_t label;
};

struct node {
	uint32_t fail;
	uint32_t edge_off; /* children: edge_byte/edge_to[edge_off, +edge_cnt), by byte */
	uint32_t edge_cnt;
	uint32_t out_len; /* longest pattern that is a suffix of this node, 0 if none */
	uint32_t out_label;
	uint32_t ext_depth;
};

struct redact_set {
	/* What was added: the patterns, back to back in `bytes`. */
	struct buf bytes;
	struct pattern *pats;
	size_t npats, pats_cap;
	/* Replacement texts "[REDACTED:<label>]", indexed by label. */
	char **repl;
	size_t *repl_len;
	size_t nlabels, labels_cap;
	size_t max_len;
	/* The automaton, a cache of the patterns built on first use: under
	 * `lock`, since redactors of one set may start in several threads. */
	pthread_mutex_t lock;
	bool built;
	atomic_uint users;  /* live redactors and redact_buffer() calls */
	struct node *nodes; /* node 0 is the root */
	uint32_t nnodes;
	unsigned char *edge_byte;
	uint32_t *edge_to;
	uint32_t root_next[256]; /* the root's children, dense: 0 for none */
};

/* Percent-encoders whose output differs for some value.  Besides these
 * characters, ASCII letters and digits are kept as they are. */
static const struct url_style {
	const char *keep;
	bool space_plus; /* ' ' becomes '+' (application/x-www-form-urlencoded) */
} url_styles[] = {
    /* RFC 3986: Python quote(s, safe=''), PHP rawurlencode */
    {"-._~", false},
    /* Python quote() with its default safe='/' */
    {"-._~/", false},
    /* JavaScript encodeURIComponent */
    {"-._~!*'()", false},
    /* JavaScript encodeURI */
    {"-._~!*'();/?:@&=+$,#", false},
    /* Go url.PathEscape */
    {"-._~$&+,:;=@", false},
    /* Python quote_plus, Go url.QueryEscape */
    {"-._~", true},
    /* WHATWG URLSearchParams, Java URLEncoder */
    {"-._*", true},
    /* PHP urlencode */
    {"-._", true},
};

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Changing a set under a redactor would pull the automaton from under it:
 * a bug in the caller, caught here rather than as a use after free. */
static void set_check_unused(struct redact_set *set, const char *what)
{
	unsigned users = atomic_load(&set->users);
	if (users) {
		fprintf(stderr, "corral: %s on a set %u redactors use\n", what, users);
		abort();
	}
}

struct redact_set *redact_set_new(void)
{
	struct redact_set *set = xzalloc(sizeof(*set));

	pthread_mutex_init(&set->lock, NULL);
	atomic_init(&set->users, 0);
	return set;
}

void redact_set_free(struct redact_set *set)
{
	if (set == NULL)
		return;
	set_check_unused(set, "redact_set_free");
	pthread_mutex_destroy(&set->lock);
	for (size_t i = 0; i < set->nlabels; i++)
		free(set->repl[i]);
	free(set->repl);
	free(set->repl_len);
	free(set->pats);
	/* The patterns are secrets: wipe them (and the trie's bytes) so
	 * that freed memory does not carry them into later sandboxes' init,
	 * which starts as a copy of this process. */
	if (set->bytes.data)
		explicit_bzero(set->bytes.data, set->bytes.cap);
	buf_release(&set->bytes);
	free(set->nodes);
	if (set->edge_byte)
		explicit_bzero(set->edge_byte, set->nnodes);
	free(set->edge_byte);
	free(set->edge_to);
	free(set);
}

size_t redact_set_count(const struct redact_set *set)
{
	return set->npats;
}

size_t redact_set_max_len(const struct redact_set *set)
{
	return set->max_len;
}

static uint32_t set_label(struct redact_set *set, const char *label)
{
	char *repl = xasprintf("[REDACTED:%s]", label);

	for (size_t i = 0; i < set->nlabels; i++) {
		if (strcmp(set->repl[i], repl) == 0) {
			free(repl);
			return (uint32_t)i;
		}
	}
	if (set->nlabels == set->labels_cap) {
		set->labels_cap = set->labels_cap ? 2 * set->labels_cap : 4;
		set->repl = xrealloc(set->repl, set->labels_cap * sizeof(*set->repl));
		set->repl_len = xrealloc(set->repl_len, set->labels_cap * sizeof(*set->repl_len));
	}
	set->repl[set->nlabels] = repl;
	set->repl_len[set->nlabels] = strlen(repl);
	return (uint32_t)set->nlabels++;
}

/* Add one pattern unless the value added it already (patterns [first,
 * npats) are the value's); duplicates across values are left to the trie,
 * where the first label wins. */
static void set_add_pattern(struct redact_set *set, size_t first, const char *p, size_t len,
			    uint32_t label)
{
	for (size_t i = first; i < set->npats; i++)
		if (set->pats[i].len == len &&
		    memcmp(set->bytes.data + set->pats[i].off, p, len) == 0)
			return;
	if (set->npats == set->pats_cap) {
		set->pats_cap = set->pats_cap ? 2 * set->pats_cap : 32;
		set->pats = xrealloc(set->pats, set->pats_cap * sizeof(*set->pats));
	}
	set->pats[set->npats++] = (struct pattern){set->bytes.len, len, label};
	buf_add(&set->bytes, p, len);
	if (len > set->max_len)
		set->max_len = len;
}

static void percent_encode(const unsigned char *v, size_t len, const struct url_style *style,
			   const char *hex, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = v[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c != '\0' && strchr(style->keep, c))) {
			buf_add(out, &c, 1);
		} else if (c == ' ' && style->space_plus) {
			buf_add(out, "+", 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_add(out, e, 3);
		}
	}
}

/* Standard base64 of `len` bytes, with '=' padding. */
static void base64_encode(const unsigned char *v, size_t len, const char *alphabet, struct buf *out)
{
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t w = (uint32_t)v[i] << 16 | (uint32_t)v[i + 1] << 8 | v[i + 2];
		char q[4] = {alphabet[w >> 18], alphabet[(w >> 12) & 63], alphabet[(w >> 6) & 63],
			     alphabet[w & 63]};
		buf_add(out, q, 4);
	}
	if (len - i == 1) {
		uint32_t w = (uint32_t)v[i] << 16;
		char q[4] = {alphabet[w >> 18], alphabet[(w >> 12) & 63], '=', '='};
		buf_add(out, q, 4);
	} else if (len - i == 2) {
		uint32_t w = (uint32_t)v[i] << 16 | (uint32_t)v[i + 1] << 8;
		char q[4] = {alphabet[w >> 18], alphabet[(w >> 12) & 63], alphabet[(w >> 6) & 63],
			     '='};
		buf_add(out, q, 4);
	}
}

/* The trie under construction: children as lists sorted by byte (the
 * root's in set->root_next), the first label that ends at each node. */
struct trie {
	uint32_t *first_child, *next_sibling, *term_label, *depth;
	unsigned char *byte;
	uint32_t n;
};

static uint32_t trie_child(const struct redact_set *set, const struct trie *t, uint32_t u,
			   unsigned char b)
{
	if (u == 0)
		return set->root_next[b];
	for (uint32_t v = t->first_child[u]; v; v = t->next_sibling[v]) {
		if (t->byte[v] == b)
			return v;
		if (t->byte[v] > b)
			break;
	}
	return 0;
}

static void trie_insert(struct redact_set *set, struct trie *t, const unsigned char *p, size_t len,
			uint32_t label)
{
	uint32_t u = 0;

	for (size_t i = 0; i < len; i++) {
		uint32_t v = trie_child(set, t, u, p[i]);
		if (v == 0) {
			v = t->n++;
			t->first_child[v] = t->next_sibling[v] = 0;
			t->term_label[v] = NO_LABEL;
			t->byte[v] = p[i];
			t->depth[v] = t->depth[u] + 1;
			if (u == 0) {
				set->root_next[p[i]] = v;
			} else {
				uint32_t *link = &t->first_child[u];
				while (*link && t->byte[*link] < p[i])
					link = &t->next_sibling[*link];
				t->next_sibling[v] = *link;
				*link = v;
			}
		}
		u = v;
	}
	if (t->term_label[u] == NO_LABEL)
		t->term_label[u] = label;
}

/* Rebuild the automaton from set->pats. */
static void set_build(struct redact_set *set)
{
	struct trie t;
	size_t total = 1;
	uint32_t *queue, head = 0, tail = 0, nedges = 0;

	for (size_t i = 0; i < set->npats; i++)
		total += set->pats[i].len;
	if (total >= UINT32_MAX) {
		fprintf(stderr, "corral: redaction patterns too large (%zu bytes)\n", total);
		abort();
	}
	t.first_child = xmalloc(total * sizeof(uint32_t));
	t.next_sibling = xmalloc(total * sizeof(uint32_t));
	t.term_label = xmalloc(total * sizeof(uint32_t));
	t.depth = xmalloc(total * sizeof(uint32_t));
	t.byte = xmalloc(total);
	t.n = 1;
	t.first_child[0] = t.next_sibling[0] = 0;
	t.term_label[0] = NO_LABEL;
	t.depth[0] = 0;
	memset(set->root_next, 0, sizeof(set->root_next));
	for (size_t i = 0; i < set->npats; i++)
		trie_insert(set, &t, (const unsigned char *)set->bytes.data + set->pats[i].off,
			    set->pats[i].len, set->pats[i].label);

	free(set->nodes);
	free(set->edge_byte);
	free(set->edge_to);
	set->nnodes = t.n;
	set->nodes = xzalloc(t.n * sizeof(*set->nodes));
	set->edge_byte = xmalloc(t.n);
	set->edge_to = xmalloc(t.n * sizeof(uint32_t));
	queue = xmalloc(t.n * sizeof(uint32_t));

	/* Breadth first, so that a node's failure target (shallower) is done
	 * before it. */
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t u = queue[head++];
		struct node *nu = &set->nodes[u];

		nu->edge_off = nedges;
		if (u == 0) {
			for (unsigned b = 0; b < 256; b++) {
				if (set->root_next[b] == 0)
					continue;
				set->edge_byte[nedges] = (unsigned char)b;
				set->edge_to[nedges++] = set->root_next[b];
			}
		} else {
			for (uint32_t v = t.first_child[u]; v; v = t.next_sibling[v]) {
				set->edge_byte[nedges] = t.byte[v];
				set->edge_to[nedges++] = v;
			}
		}
		nu->edge_cnt = nedges - nu->edge_off;

		if (u != 0) {
			const struct node *nf = &set->nodes[nu->fail];
			if (t.term_label[u] != NO_LABEL) {
				nu->out_len = t.depth[u];
				nu->out_label = t.term_label[u];
			} else {
				nu->out_len = nf->out_len;
				nu->out_label = nf->out_label;
			}
			nu->ext_depth = nu->edge_cnt ? t.depth[u] : nf->ext_depth;
		}

		for (uint32_t e = nu->edge_off; e < nu->edge_off + nu->edge_cnt; e++) {
			uint32_t v = set->edge_to[e], f = nu->fail, w;
			unsigned char b = set->edge_byte[e];

			if (u == 0) {
				w = 0;
			} else {
				while (f != 0 && trie_child(set, &t, f, b) == 0)
					f = set->nodes[f].fail;
				w = trie_child(set, &t, f, b);
			}
			set->nodes[v].fail = w;
			queue[tail++] = v;
		}
	}

	free(queue);
	free(t.first_child);
	free(t.next_sibling);
	free(t.term_label);
	free(t.depth);
	free(t.byte);
}

int redact_set_add(struct redact_set *set, const void *value, size_t len, const char *label)
{
	const unsigned char *v = value;
	size_t first = set->npats;
	struct buf enc = BUF_INIT;
	uint32_t id;

	if (len < REDACT_MIN_LEN)
		return 0;
	set_check_unused(set, "redact_set_add");
	id = set_label(set, label);
	set_add_pattern(set, first, value, len, id);

	for (size_t s = 0; s < ARRAY_SIZE(url_styles); s++) {
		for (int lower = 0; lower < 2; lower++) {
			buf_reset(&enc);
			percent_encode(v, len, &url_styles[s],
				       lower ? "0123456789abcdef" : "0123456789ABCDEF", &enc);
			set_add_pattern(set, first, enc.data, enc.len, id);
		}
	}

	/* Base64 of the value preceded by `a` other bytes (zeros here): output
	 * character i carries input bits [6i, 6i + 6), so the characters made
	 * of the value's bits alone are those from ceil(8a / 6) up to
	 * floor(8(a + len) / 6).  If the blob ends with the value, the last,
	 * partial character and the padding are the value's too. */
	for (size_t a = 0; a < 3; a++) {
		unsigned char *shifted = xzalloc(a + len);
		size_t from = (8 * a + 5) / 6;
		size_t core_end = 8 * (a + len) / 6;
		size_t data_end = (8 * (a + len) + 5) / 6;

		memcpy(shifted + a, v, len);
		for (int url = 0; url < 2; url++) {
			buf_reset(&enc);
			base64_encode(shifted, a + len, url ? b64_url : b64_std, &enc);
			set_add_pattern(set, first, enc.data + from, core_end - from, id);
			set_add_pattern(set, first, enc.data + from, data_end - from, id);
			set_add_pattern(set, first, enc.data + from, enc.len - from, id);
		}
		free(shifted);
	}
	buf_release(&enc);
	set->built = false;
	return 1;
}

/* Build the automaton if needed and count a user.  The set is const to
 * its users; the automaton is a cache it keeps. */
static const struct redact_set *set_use(const struct redact_set *cset)
{
	struct redact_set *set = (struct redact_set *)cset;

	pthread_mutex_lock(&set->lock);
	if (!set->built) {
		set_build(set);
		set->built = true;
	}
	atomic_fetch_add(&set->users, 1);
	pthread_mutex_unlock(&set->lock);
	return set;
}

static void set_unuse(const struct redact_set *cset)
{
	atomic_fetch_sub(&((struct redact_set *)cset)->users, 1);
}

static uint32_t set_next(const struct redact_set *set, uint32_t s, unsigned char b)
{
	for (;;) {
		const struct node *n;
		uint32_t lo, hi;

		if (s == 0)
			return set->root_next[b];
		n = &set->nodes[s];
		lo = n->edge_off;
		hi = n->edge_off + n->edge_cnt;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (set->edge_byte[mid] < b)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < n->edge_off + n->edge_cnt && set->edge_byte[lo] == b)
			return set->edge_to[lo];
		s = n->fail;
	}
}

enum link_flags {
	LINK_RUN_START = 1 << 0, /* first link of a run of overlapping matches */
	LINK_EMITTED = 1 << 1,	 /* written out; kept while later links may follow it */
};

struct link {
	uint64_t start, end; /* stream positions, end exclusive */
	uint32_t label;
	uint32_t flags;
};

struct redactor {
	const struct redact_set *set;
	uint32_t state;
	uint64_t pos;	     /* bytes fed */
	uint64_t hold_start; /* input before this is written out or replaced */
	/* Input [hold_start, pos) between calls, at ring[position & ring_mask]. */
	unsigned char *ring;
	size_t ring_mask;
	/* Links in order, links[lhead, lhead + lcount).  When the end of the
	 * array is reached it is compacted, or doubled if at least half full:
	 * at most max_len + 1 links are live, usually a few. */
	struct link *links;
	size_t lhead, lcount, lcap;
};

/* The input being fed: data[0] is at stream position `pos`; older bytes
 * are in the ring. */
struct chunk {
	const unsigned char *data;
	uint64_t pos;
};

struct redactor *redactor_new(const struct redact_set *set)
{
	struct redactor *r = xzalloc(sizeof(*r));
	size_t cap = 1;

	while (cap < set->max_len)
		cap *= 2;
	r->set = set_use(set);
	r->ring = xmalloc(cap);
	r->ring_mask = cap - 1;
	r->lcap = 8;
	r->links = xmalloc(r->lcap * sizeof(*r->links));
	return r;
}

void redactor_free(struct redactor *r)
{
	if (r == NULL)
		return;
	set_unuse(r->set);
	free(r->ring);
	free(r->links);
	free(r);
}

size_t redactor_held(const struct redactor *r)
{
	return (size_t)(r->pos - r->hold_start);
}

/* Write input [hold_start, upto) as it is. */
static void emit_raw(struct redactor *r, const struct chunk *ch, uint64_t upto, struct buf *out)
{
	uint64_t a = r->hold_start;

	if (upto <= a)
		return;
	while (a < upto && a < ch->pos) {
		size_t idx = (size_t)(a & r->ring_mask);
		uint64_t n = (upto < ch->pos ? upto : ch->pos) - a;
		if (n > r->ring_mask + 1 - idx)
			n = r->ring_mask + 1 - idx;
		buf_add(out, r->ring + idx, (size_t)n);
		a += n;
	}
	if (a < upto)
		buf_add(out, ch->data + (a - ch->pos), (size_t)(upto - a));
	r->hold_start = upto;
}

static void emit_link(struct redactor *r, const struct link *l, struct buf *out)
{
	buf_add(out, r->set->repl[l->label], r->set->repl_len[l->label]);
	if (l->end > r->hold_start)
		r->hold_start = l->end;
}

/* The longest match ending at the current position is [start, pos). */
static void add_match(struct redactor *r, uint64_t start, uint32_t label)
{
	struct link *l;
	size_t j = r->lcount;

	if (r->lhead + r->lcount == r->lcap) {
		if (r->lcount < r->lcap / 2) {
			memmove(r->links, r->links + r->lhead, r->lcount * sizeof(*l));
			r->lhead = 0;
		} else {
			r->lcap *= 2;
			r->links = xrealloc(r->links, r->lcap * sizeof(*l));
		}
	}
	l = r->links + r->lhead;

	/* The first link that ends after `start`: the match overlaps it and
	 * everything after it, and reaches further than all of them. */
	while (j > 0 && l[j - 1].end > start)
		j--;
	if (j == r->lcount) {
		l[j].flags = LINK_RUN_START;
	} else if ((l[j].flags & (LINK_RUN_START | LINK_EMITTED)) == LINK_RUN_START &&
		   start <= l[j].start) {
		l[j].flags = LINK_RUN_START;
	} else {
		j++;
		l[j].flags = 0;
	}
	l[j].start = start;
	l[j].end = r->pos;
	l[j].label = label;
	r->lcount = j + 1;
}

/* Write out what is settled before the horizon `c`. */
static void settle(struct redactor *r, const struct chunk *ch, uint64_t c, struct buf *out)
{
	while (r->lcount) {
		struct link *l = r->links + r->lhead;

		if (l->flags & LINK_EMITTED) {
			/* The run continues past this link while a match may
			 * still start before its end. */
			if (l->end > c)
				return;
			if (r->lcount > 1 && !(l[1].flags & LINK_RUN_START)) {
				if (l[1].label != l->label)
					emit_link(r, &l[1], out);
				else if (l[1].end > r->hold_start)
					r->hold_start = l[1].end;
				l[1].flags |= LINK_EMITTED;
			}
		} else {
			emit_raw(r, ch, l->start < c ? l->start : c, out);
			if (l->start >= c)
				return;
			emit_link(r, l, out);
			l->flags |= LINK_EMITTED;
			continue;
		}
		r->lhead++;
		r->lcount--;
	}
	r->lhead = 0;
	emit_raw(r, ch, c, out);
}

void redactor_feed(struct redactor *r, const void *data, size_t len, struct buf *out)
{
	const struct redact_set *set = r->set;
	const unsigned char *p = data;
	struct chunk ch = {p, r->pos};
	uint64_t from;

	for (size_t i = 0; i < len; i++) {
		const struct node *n;

		r->state = set_next(set, r->state, p[i]);
		r->pos++;
		n = &set->nodes[r->state];
		if (n->out_len)
			add_match(r, r->pos - n->out_len, n->out_label);
		/* With no link pending, the raw bytes wait for the next
		 * settle(): nothing can come before them. */
		if (r->lcount)
			settle(r, &ch, r->pos - n->ext_depth, out);
	}
	settle(r, &ch, r->pos - set->nodes[r->state].ext_depth, out);

	/* Keep what is held back for the next call. */
	from = r->hold_start > ch.pos ? r->hold_start : ch.pos;
	for (uint64_t a = from; a < r->pos; a++)
		r->ring[a & r->ring_mask] = p[a - ch.pos];
}

void redactor_finish(struct redactor *r, struct buf *out)
{
	struct chunk ch = {NULL, r->pos};

	settle(r, &ch, r->pos, out);
	r->state = 0;
	r->pos = r->hold_start = 0;
	r->lhead = r->lcount = 0;
}

void redact_buffer(const struct redact_set *set, const void *data, size_t len, struct buf *out)
{
	struct redactor *r = redactor_new(set);

	redactor_feed(r, data, len, out);
	redactor_finish(r, out);
	redactor_free(r);
}
