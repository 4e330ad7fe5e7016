/* fuzz-policy.c - egress policies (proxy/policy.h) from arbitrary text.
 *
 * The input's first line is the mode, each further line an entry.  A
 * policy that parses must survive egress_policy_to_string() and
 * egress_policy_parse_string() unchanged; one that does not must leave an
 * empty policy and a message.  The whole input is also tried as the text
 * form.  Then each line is checked as a host, and the last bytes of the
 * input as an IPv4 and an IPv6 address, and the verdicts must hold
 * together:
 *  - every verdict has a code and a sentence; allowed exactly when the code
 *    is "allowed"; nothing is allowed in mode none;
 *  - case and one trailing dot never change a verdict on a name;
 *  - an address is allowed only when its name is, and when mode open
 *    without entries refuses it, only because an entry names it;
 *  - an IPv4 address is judged alike in its IPv4-mapped, NAT64 and 6to4
 *    spellings by mode open without entries. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/policy.h"

#define MAX_LINES 64

static struct egress_policy open_empty = { EGRESS_OPEN, NULL, 0 };

static void check_verdict(const struct egress_policy *p, const struct egress_verdict *v)
{
	if (v->code == NULL || v->allowed != (strcmp(v->code, "allowed") == 0))
		abort();
	if (strncmp(v->reason, "egress to '", 11) != 0 || v->rule[0] == '\0')
		abort();
	if (memchr(v->reason, '\0', sizeof(v->reason)) == NULL ||
	    memchr(v->rule, '\0', sizeof(v->rule)) == NULL)
		abort();
	if (p->mode == EGRESS_NONE && (v->allowed || strcmp(v->code, "no_egress") != 0))
		abort();
}

static bool same_rules(const struct egress_policy *a, const struct egress_policy *b)
{
	if (a->mode != b->mode || a->nrules != b->nrules)
		return false;
	for (size_t i = 0; i < a->nrules; i++) {
		const struct egress_rule *x = &a->rules[i], *y = &b->rules[i];
		if (x->kind != y->kind || x->port != y->port)
			return false;
		if ((x->name == NULL) != (y->name == NULL))
			return false;
		if (x->name ? strcmp(x->name, y->name) != 0 : memcmp(x->addr, y->addr, 16) != 0)
			return false;
	}
	return true;
}

static void round_trip(const struct egress_policy *p)
{
	struct egress_policy q = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;
	char *s = egress_policy_to_string(p), *t;

	if (egress_policy_parse_string(s, &q, &err) < 0)
		abort();
	t = egress_policy_to_string(&q);
	if (strcmp(s, t) != 0 || !same_rules(p, &q))
		abort();
	free(s);
	free(t);
	egress_policy_release(&q);
}

static void check_parse(const char *mode, const char *const *entries, size_t n,
			struct egress_policy *p)
{
	struct cr_error err = CR_ERROR_INIT;

	if (egress_policy_parse(mode, entries, n, p, &err) < 0) {
		if (err.msg == NULL || p->rules || p->nrules || p->mode != EGRESS_NONE)
			abort();
		cr_error_release(&err);
		return;
	}
	if (err.msg)
		abort();
	round_trip(p);
}

/* Is the address named by an IP entry (with a fitting port)? */
static bool listed(const struct egress_policy *p, int family, const unsigned char *a, int port)
{
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (family == AF_INET6 && memcmp(a, mapped, 12) == 0) {
		family = AF_INET;
		a += 12;
	}
	for (size_t i = 0; i < p->nrules; i++) {
		const struct egress_rule *r = &p->rules[i];
		if (((family == AF_INET && r->kind == EGRESS_RULE_IPV4 &&
		      memcmp(r->addr, a, 4) == 0) ||
		     (family == AF_INET6 && r->kind == EGRESS_RULE_IPV6 &&
		      memcmp(r->addr, a, 16) == 0)) &&
		    (r->port == 0 || r->port == port))
			return true;
	}
	return false;
}

static void check_host(const struct egress_policy *p, const char *host, int port,
		       const struct sockaddr_in *sin, const struct sockaddr_in6 *sin6)
{
	struct egress_verdict v, w, o;
	size_t len = strlen(host);
	bool by_name;

	by_name = egress_check_name(p, host, port, &v);
	check_verdict(p, &v);

	/* Case and a trailing dot change nothing. */
	if (len < 300) {
		char alt[302];
		for (size_t i = 0; i <= len; i++)
			alt[i] = host[i] >= 'a' && host[i] <= 'z' ? (char)(host[i] - 32) : host[i];
		egress_check_name(p, alt, port, &w);
		if (w.allowed != v.allowed || strcmp(w.code, v.code) != 0 ||
		    strcmp(w.rule, v.rule) != 0)
			abort();
		if (len > 0 && host[len - 1] != '.' && !memchr(host, ':', len) &&
		    strcmp(v.code, "invalid_host") != 0) {
			memcpy(alt, host, len);
			memcpy(alt + len, ".", 2);
			egress_check_name(p, alt, port, &w);
			if (w.allowed != v.allowed || strcmp(w.code, v.code) != 0 ||
			    strcmp(w.rule, v.rule) != 0)
				abort();
		}
	}

	for (int i = 0; i < 2; i++) {
		const struct sockaddr *sa = i ? (const struct sockaddr *)sin6
					      : (const struct sockaddr *)sin;
		int family = i ? AF_INET6 : AF_INET;
		const unsigned char *a = i ? sin6->sin6_addr.s6_addr
					   : (const unsigned char *)&sin->sin_addr;
		bool ok = egress_check_address(p, host, port, sa, &w);

		check_verdict(p, &w);
		if (ok && !by_name)
			abort();
		if (!by_name && strcmp(w.code, v.code) != 0)
			abort();
		/* Where the address itself is refused, only a literal entry
		 * lets it through. */
		if (ok && !egress_check_address(&open_empty, "x.test", port, sa, &o) &&
		    !listed(p, family, a, port))
			abort();
	}
}

/* An IPv4 address is judged alike in each IPv6 spelling that carries it
 * to IPv4. */
static void check_spellings(const struct sockaddr_in *sin)
{
	static const unsigned char prefixes[3][16] = {
		{ [10] = 0xff, [11] = 0xff },
		{ 0, 0x64, 0xff, 0x9b },
		{ 0x20, 0x02 },
	};
	static const int offsets[3] = { 12, 12, 2 };
	struct egress_verdict v4, v6;

	egress_check_address(&open_empty, "x.test", 443, (const struct sockaddr *)sin, &v4);
	for (int i = 0; i < 3; i++) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
		memcpy(s6.sin6_addr.s6_addr, prefixes[i], 16);
		memcpy(s6.sin6_addr.s6_addr + offsets[i], &sin->sin_addr, 4);
		egress_check_address(&open_empty, "x.test", 443, (const struct sockaddr *)&s6,
				     &v6);
		if (v6.allowed != v4.allowed || strcmp(v6.code, v4.code) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *lines[MAX_LINES];
	struct egress_policy p = EGRESS_POLICY_INIT, q = EGRESS_POLICY_INIT;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct cr_error err = CR_ERROR_INIT;
	size_t n = 0;
	char *s;
	int port;

	memcpy(buf, data, size);
	buf[size] = '\0';
	/* The address: the input's last 16 bytes (padded), the port from
	 * two more. */
	for (size_t i = 0; i < 16 && i < size; i++)
		sin6.sin6_addr.s6_addr[15 - i] = data[size - 1 - i];
	memcpy(&sin.sin_addr, sin6.sin6_addr.s6_addr + 12, 4);
	port = size >= 18 ? (data[size - 17] << 8 | data[size - 18]) : 443;

	/* The whole input as the text form, up to a NUL. */
	if (egress_policy_parse_string(buf, &q, &err) == 0)
		round_trip(&q);
	else if (q.rules || q.nrules || err.msg == NULL)
		abort();
	cr_error_release(&err);

	s = buf;
	while (n < MAX_LINES) {
		char *nl = strchr(s, '\n');
		lines[n++] = s;
		if (nl == NULL)
			break;
		*nl = '\0';
		s = nl + 1;
	}
	check_parse(lines[0], (const char *const *)lines + 1, n - 1, &p);

	for (size_t i = 1; i < n; i++) {
		check_host(&p, lines[i], port, &sin, &sin6);
		check_host(&q, lines[i], port, &sin, &sin6);
		check_host(&open_empty, lines[i], port, &sin, &sin6);
	}
	check_host(&p, "x.test", 443, &sin, &sin6);
	check_spellings(&sin);

	egress_policy_release(&p);
	egress_policy_release(&q);
	free(buf);
	return 0;
}
