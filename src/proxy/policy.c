/* policy.c - egress policy: parsing entries and deciding on hosts and
 * addresses (see policy.h for the rules). */
#include "proxy/policy.h"
#include "util/buf.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63

/* A host as parsed from an entry or a check: a name, a wildcard's domain
 * or an address (IPv4-mapped IPv6 turned into IPv4). */
struct host {
	enum egress_rule_kind kind;
	char name[NAME_MAX_LEN + 1];
	unsigned char addr[16];
};

/* ---- Syntax ----------------------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Plain dotted decimal, four parts 0-255 without leading zeros.  Returns
 * true and fills a[0..3]. */
static bool parse_ipv4(const char *s, size_t len, unsigned char a[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start = i;
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < len && is_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return false;
		a[part] = (unsigned char)v;
	}
	return i == len;
}

static bool is_v4_mapped(const unsigned char a[16])
{
	static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, prefix, 12) == 0;
}

/* An IPv6 address without brackets or zone; an IPv4-mapped one becomes
 * IPv4.  Returns true and fills h. */
static bool parse_ipv6(const char *s, size_t len, struct host *h)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char a[16];

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET6, tmp, a) != 1)
		return false;
	if (is_v4_mapped(a)) {
		h->kind = EGRESS_RULE_IPV4;
		memset(h->addr, 0, sizeof(h->addr));
		memcpy(h->addr, a + 12, 4);
	} else {
		h->kind = EGRESS_RULE_IPV6;
		memcpy(h->addr, a, 16);
	}
	return true;
}

/* Does the label look like a number to a resolver (decimal, or 0x and
 * hex digits)? */
static bool numeric_label(const char *s, size_t len)
{
	size_t i = 0;

	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < len; i++)
			if (!is_hex(s[i]))
				return false;
		return true;
	}
	for (i = 0; i < len; i++)
		if (!is_digit(s[i]))
			return false;
	return len > 0;
}

/* Parse a host: a name, "*.domain" when `wildcard`, dotted-decimal IPv4,
 * or IPv6 with or without brackets.  Returns NULL and fills h, or a phrase
 * saying what is wrong (in `why` or static). */
static const char *parse_host(const char *s, size_t len, bool wildcard, struct host *h, char *why,
			      size_t whylen)
{
	size_t start = 0, i;

	if (len == 0)
		return "empty host name";
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return "non-ASCII name (IDNA is not done: write the name in its xn-- form)";
	if (s[0] == '[') {
		if (len < 2 || s[len - 1] != ']' || !parse_ipv6(s + 1, len - 2, h))
			return "not a valid IPv6 address in brackets";
		return NULL;
	}
	if (memchr(s, ':', len)) {
		if (!parse_ipv6(s, len, h))
			return "not a valid IPv6 address";
		return NULL;
	}

	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len > NAME_MAX_LEN)
		return "name longer than 253 bytes";
	h->kind = EGRESS_RULE_HOST;
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		if (!wildcard)
			return "a wildcard is not a host";
		h->kind = EGRESS_RULE_WILDCARD;
		start = 2;
	}

	for (i = start; i <= len; i++) {
		size_t lstart = i;
		while (i < len && s[i] != '.') {
			char c = s[i];
			if (c == '*')
				return wildcard ? "'*' is allowed only as the whole first label "
						  "('*.example.com')"
						: "a wildcard is not a host";
			if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' ||
			      c == '_')) {
				char shown[8];
				cr_show(&c, 1, false, shown);
				snprintf(why, whylen, "unexpected character '%s'", shown);
				return why;
			}
			i++;
		}
		if (i == lstart)
			return "empty label";
		if (i - lstart > LABEL_MAX_LEN)
			return "label longer than 63 bytes";
		if (i == len && numeric_label(s + lstart, i - lstart)) {
			/* The last label is a number: resolvers read the whole
			 * name as an IPv4 address, so it must be one, spelled
			 * plainly. */
			if (h->kind == EGRESS_RULE_WILDCARD)
				return "a wildcard needs a domain name, not an address";
			if (!parse_ipv4(s, len, h->addr))
				return "a name ending in a number must be an IPv4 address in plain "
				       "dotted decimal (four parts 0-255, no leading zeros)";
			memset(h->addr + 4, 0, 12);
			h->kind = EGRESS_RULE_IPV4;
			return NULL;
		}
	}
	for (i = start; i < len; i++)
		h->name[i - start] = lower(s[i]);
	h->name[len - start] = '\0';
	return NULL;
}

/* 1-65535 in decimal.  Returns the port, or 0. */
static uint16_t parse_port(const char *s, size_t len)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 65535 ? (uint16_t)v : 0;
}

/* Parse one entry into `rule`.  Returns NULL or what is wrong. */
static const char *parse_entry(const char *e, struct egress_rule *rule, char *why, size_t whylen)
{
	size_t len = strnlen(e, EGRESS_ENTRY_MAX + 1);
	const char *colon, *port = NULL;
	size_t hostlen = len;
	struct host h;
	const char *bad;

	if (len == 0)
		return "empty entry";
	if (len > EGRESS_ENTRY_MAX)
		return "longer than 300 bytes";
	colon = memchr(e, ':', len);
	if (e[0] == '[') {
		const char *rb = memchr(e, ']', len);
		if (rb == NULL)
			return "'[' without ']'";
		hostlen = (size_t)(rb - e) + 1;
		if (hostlen < len) {
			if (e[hostlen] != ':')
				return "unexpected text after ']'";
			port = e + hostlen + 1;
		}
	} else if (colon && memchr(colon + 1, ':', len - (size_t)(colon - e) - 1) == NULL) {
		/* One colon: host:port.  More: a bare IPv6 address. */
		hostlen = (size_t)(colon - e);
		port = colon + 1;
	}

	bad = parse_host(e, hostlen, true, &h, why, whylen);
	if (bad)
		return bad;
	memset(rule, 0, sizeof(*rule));
	rule->kind = h.kind;
	if (h.kind == EGRESS_RULE_HOST || h.kind == EGRESS_RULE_WILDCARD)
		rule->name = xstrdup(h.name);
	else
		memcpy(rule->addr, h.addr, 16);
	if (port) {
		rule->port = parse_port(port, len - (size_t)(port - e));
		if (rule->port == 0) {
			free(rule->name);
			rule->name = NULL;
			return "the port must be a number from 1 to 65535";
		}
	}
	return NULL;
}

/* ---- Policies --------------------------------------------------------- */

const char *egress_mode_name(enum egress_mode mode)
{
	switch (mode) {
	case EGRESS_ALLOWLIST:
		return "allowlist";
	case EGRESS_OPEN:
		return "open";
	case EGRESS_NONE:
		break;
	}
	return "none";
}

void egress_policy_release(struct egress_policy *policy)
{
	for (size_t i = 0; i < policy->nrules; i++)
		free(policy->rules[i].name);
	free(policy->rules);
	*policy = (struct egress_policy)EGRESS_POLICY_INIT;
}

int egress_policy_parse(const char *mode, const char *const *entries, size_t n,
			struct egress_policy *out, struct cr_error *err)
{
	struct egress_policy p = EGRESS_POLICY_INIT;

	*out = (struct egress_policy)EGRESS_POLICY_INIT;
	if (mode == NULL || strcmp(mode, "none") == 0) {
		p.mode = EGRESS_NONE;
	} else if (strcmp(mode, "allowlist") == 0) {
		p.mode = EGRESS_ALLOWLIST;
	} else if (strcmp(mode, "open") == 0) {
		p.mode = EGRESS_OPEN;
	} else {
		char shown[CR_SHOW_SIZE];
		cr_show(mode, strlen(mode), false, shown);
		return cr_error_set(
		    err, 0, "unknown egress mode '%s' (expected 'none', 'allowlist' or 'open')",
		    shown);
	}
	if (p.mode == EGRESS_NONE && n > 0)
		return cr_error_set(err, 0, "egress mode 'none' takes no entries");

	if (n > 0)
		p.rules = xmalloc(n * sizeof(*p.rules));
	for (size_t i = 0; i < n; i++) {
		struct egress_rule *r = &p.rules[i];
		char why[64];
		const char *bad = parse_entry(entries[i], r, why, sizeof(why));
		if (bad == NULL && p.mode == EGRESS_OPEN &&
		    (r->kind == EGRESS_RULE_HOST || r->kind == EGRESS_RULE_WILDCARD)) {
			free(r->name);
			bad = "mode 'open' allows every name already: only IP addresses can be "
			      "listed";
		}
		if (bad) {
			char shown[CR_SHOW_SIZE];
			cr_show(entries[i], strnlen(entries[i], EGRESS_ENTRY_MAX + 1), false, shown);
			cr_error_set(err, 0, "egress entry '%s': %s", shown, bad);
			egress_policy_release(&p);
			return -1;
		}
		p.nrules++;
	}
	*out = p;
	return 0;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int egress_policy_parse_string(const char *text, struct egress_policy *out, struct cr_error *err)
{
	const char *colon = strchr(text, ':');
	const char *end = colon ? colon : text + strlen(text);
	cleanup_free char *mode = NULL;
	char **entries = NULL;
	size_t n = 0;
	int r;

	while (text < end && blank(*text))
		text++;
	while (end > text && blank(end[-1]))
		end--;
	mode = xstrndup(text, (size_t)(end - text));

	if (colon) {
		const char *p = colon + 1;
		while (blank(*p))
			p++;
		/* "allowlist:" with nothing after it lists nothing. */
		while (*p) {
			const char *comma = strchr(p, ',');
			const char *s = p, *e = comma ? comma : p + strlen(p);
			while (s < e && blank(*s))
				s++;
			while (e > s && blank(e[-1]))
				e--;
			entries = xrealloc(entries, (n + 1) * sizeof(*entries));
			entries[n++] = xstrndup(s, (size_t)(e - s));
			if (comma == NULL)
				break;
			p = comma + 1;
			if (*p == '\0') {
				/* A trailing comma leaves an empty entry. */
				entries = xrealloc(entries, (n + 1) * sizeof(*entries));
				entries[n++] = xstrdup("");
			}
		}
	}
	r = egress_policy_parse(mode, (const char *const *)entries, n, out, err);
	for (size_t i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return r;
}

char *egress_rule_to_string(const struct egress_rule *rule)
{
	char addr[INET6_ADDRSTRLEN], port[8] = "";

	if (rule->port)
		snprintf(port, sizeof(port), ":%u", (unsigned)rule->port);
	switch (rule->kind) {
	case EGRESS_RULE_HOST:
		return xasprintf("%s%s", rule->name, port);
	case EGRESS_RULE_WILDCARD:
		return xasprintf("*.%s%s", rule->name, port);
	case EGRESS_RULE_IPV4:
		inet_ntop(AF_INET, rule->addr, addr, sizeof(addr));
		return xasprintf("%s%s", addr, port);
	case EGRESS_RULE_IPV6:
		break;
	}
	inet_ntop(AF_INET6, rule->addr, addr, sizeof(addr));
	return xasprintf("[%s]%s", addr, port);
}

char *egress_policy_to_string(const struct egress_policy *policy)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, egress_mode_name(policy->mode));
	for (size_t i = 0; i < policy->nrules; i++) {
		cleanup_free char *s = egress_rule_to_string(&policy->rules[i]);
		buf_adds(&b, i == 0 ? ": " : ", ");
		buf_adds(&b, s);
	}
	return buf_detach(&b, NULL);
}

/* ---- Addresses -------------------------------------------------------- */

struct range {
	unsigned char net[16];
	unsigned bits;
	const char *code; /* NULL: judge the IPv4 address embedded */
	const char *what; /* "a private address (10.0.0.0/8)" */
	int embed;	  /* offset of an embedded IPv4 address, or -1 */
	bool reserved;	  /* refused even when what it embeds is public */
	bool teredo;	  /* embeds a client (inverted, at 12) and a server (at 4) */
};

/* An IPv4 range: address, prefix length, code, description. */
#define R4(a, b, c, d, len, code_, what_)                                                          \
	{                                                                                          \
		.net = {a, b, c, d}, .bits = len, .code = code_, .what = what_, .embed = -1        \
	}

/* Most specific first: the first match decides. */
static const struct range ranges4[] = {
    R4(0, 0, 0, 0, 32, "unspecified", "the unspecified address (0.0.0.0)"),
    R4(0, 0, 0, 0, 8, "reserved", "reserved for this network (0.0.0.0/8)"),
    R4(10, 0, 0, 0, 8, "private_address", "a private address (10.0.0.0/8)"),
    R4(100, 64, 0, 0, 10, "private_address", "a carrier-grade NAT address (100.64.0.0/10)"),
    R4(127, 0, 0, 0, 8, "loopback", "a loopback address (127.0.0.0/8)"),
    R4(169, 254, 169, 254, 32, "link_local",
       "the cloud metadata address (link-local, 169.254.0.0/16)"),
    R4(169, 254, 0, 0, 16, "link_local", "a link-local address (169.254.0.0/16)"),
    R4(172, 16, 0, 0, 12, "private_address", "a private address (172.16.0.0/12)"),
    R4(192, 0, 0, 0, 24, "reserved", "reserved for protocol assignments (192.0.0.0/24)"),
    R4(192, 0, 2, 0, 24, "reserved", "reserved for documentation (192.0.2.0/24)"),
    R4(192, 168, 0, 0, 16, "private_address", "a private address (192.168.0.0/16)"),
    R4(198, 18, 0, 0, 15, "reserved", "reserved for benchmarking (198.18.0.0/15)"),
    R4(198, 51, 100, 0, 24, "reserved", "reserved for documentation (198.51.100.0/24)"),
    R4(203, 0, 113, 0, 24, "reserved", "reserved for documentation (203.0.113.0/24)"),
    R4(224, 0, 0, 0, 4, "multicast", "a multicast address (224.0.0.0/4)"),
    R4(255, 255, 255, 255, 32, "broadcast", "the broadcast address (255.255.255.255)"),
    R4(240, 0, 0, 0, 4, "reserved", "reserved (240.0.0.0/4)"),
};

/* An IPv6 range refused for itself. */
#define R6(len, code_, what_, ...)                                                                 \
	{                                                                                          \
		.net = {__VA_ARGS__}, .bits = len, .code = code_, .what = what_, .embed = -1       \
	}

/* Most specific first.  Ranges with .embed judge the IPv4 address inside;
 * .what NULL is public. */
static const struct range ranges6[] = {
    R6(128, "unspecified", "the unspecified address (::)", 0),
    R6(128, "loopback", "the loopback address (::1)", [15] = 1),
    {.net = {[10] = 0xff, [11] = 0xff}, .bits = 96, .what = "", .embed = 12},
    {.net = {0},
     .bits = 96,
     .code = "reserved",
     .what = "a deprecated IPv4-compatible address (::/96)",
     .embed = 12,
     .reserved = true},
    {.net = {[8] = 0xff, [9] = 0xff},
     .bits = 96,
     .code = "reserved",
     .what = "an IPv4-translated address (::ffff:0:0:0/96)",
     .embed = 12,
     .reserved = true},
    {.net = {0, 0x64, 0xff, 0x9b}, .bits = 96, .what = "", .embed = 12},
    R6(48, "private_address", "a local-use NAT64 address (64:ff9b:1::/48)", 0, 0x64, 0xff, 0x9b, 0,
       1),
    R6(64, "reserved", "reserved for discarding (100::/64)", 1, 0),
    {.net = {0x20, 0x01, 0, 0},
     .bits = 32,
     .code = "reserved",
     .what = "a Teredo address (2001::/32)",
     .embed = 12,
     .reserved = true,
     .teredo = true},
    R6(48, "reserved", "reserved for benchmarking (2001:2::/48)", 0x20, 0x01, 0, 2),
    R6(32, "reserved", "reserved for documentation (2001:db8::/32)", 0x20, 0x01, 0x0d, 0xb8),
    {.net = {0x20, 0x02}, .bits = 16, .what = "", .embed = 2},
    R6(20, "reserved", "reserved for documentation (3fff::/20)", 0x3f, 0xff),
    R6(7, "private_address", "a unique local address (fc00::/7)", 0xfc),
    R6(10, "link_local", "a link-local address (fe80::/10)", 0xfe, 0x80),
    R6(10, "private_address", "a site-local address (fec0::/10)", 0xfe, 0xc0),
    R6(8, "multicast", "a multicast address (ff00::/8)", 0xff),
    R6(3, NULL, NULL, 0x20), /* global unicast: public */
    R6(0, "reserved", "outside the global unicast space (2000::/3)", 0),
};

static bool in_range(const unsigned char *a, const struct range *r)
{
	unsigned full = r->bits / 8, rest = r->bits % 8;

	if (memcmp(a, r->net, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ r->net[full]) & (0xff00 >> rest) & 0xff) == 0;
}

/* What is wrong with an address, if anything. */
struct addr_class {
	const char *code;		/* NULL: a public address */
	const char *what;		/* describes the address, or the embedded one */
	char embedded[INET_ADDRSTRLEN]; /* "" unless the verdict is about it */
};

static const struct range *find_range(const struct range *table, size_t n, const unsigned char *a)
{
	for (size_t i = 0; i < n; i++)
		if (in_range(a, &table[i]))
			return &table[i];
	return NULL;
}

static void classify(int family, const unsigned char *a, struct addr_class *c)
{
	const struct range *r, *r4;
	unsigned char v4[4];

	c->code = NULL;
	c->what = NULL;
	c->embedded[0] = '\0';
	if (family == AF_INET) {
		r = find_range(ranges4, ARRAY_SIZE(ranges4), a);
		if (r) {
			c->code = r->code;
			c->what = r->what;
		}
		return;
	}
	r = find_range(ranges6, ARRAY_SIZE(ranges6), a);
	if (r == NULL || r->what == NULL)
		return;
	if (r->embed >= 0) {
		memcpy(v4, a + r->embed, 4);
		if (r->teredo) {
			for (int i = 0; i < 4; i++)
				v4[i] = (unsigned char)~v4[i];
			r4 = find_range(ranges4, ARRAY_SIZE(ranges4), v4);
			if (r4 == NULL) {
				memcpy(v4, a + 4, 4);
				r4 = find_range(ranges4, ARRAY_SIZE(ranges4), v4);
			}
		} else {
			r4 = find_range(ranges4, ARRAY_SIZE(ranges4), v4);
		}
		if (r4) {
			c->code = r4->code;
			c->what = r4->what;
			inet_ntop(AF_INET, v4, c->embedded, sizeof(c->embedded));
			return;
		}
		if (!r->reserved)
			return;
	}
	c->code = r->code;
	c->what = r->what;
}

/* An entry naming the address literally, for this port. */
static const struct egress_rule *find_literal(const struct egress_policy *policy, int family,
					      const unsigned char *a, int port)
{
	enum egress_rule_kind kind = family == AF_INET ? EGRESS_RULE_IPV4 : EGRESS_RULE_IPV6;

	for (size_t i = 0; i < policy->nrules; i++) {
		const struct egress_rule *r = &policy->rules[i];
		if (r->kind == kind && memcmp(r->addr, a, family == AF_INET ? 4 : 16) == 0 &&
		    (r->port == 0 || r->port == port))
			return r;
	}
	return NULL;
}

/* ---- Verdicts --------------------------------------------------------- */

static bool decide(struct egress_verdict *v, bool allowed, const char *code, const char *hostport,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static bool decide(struct egress_verdict *v, bool allowed, const char *code, const char *hostport,
		   const char *fmt, ...)
{
	va_list ap;

	v->allowed = allowed;
	v->code = code;
	va_start(ap, fmt);
	vsnprintf(v->rule, sizeof(v->rule), fmt, ap);
	va_end(ap);
	snprintf(v->reason, sizeof(v->reason), "egress to '%s' %s: %s", hostport,
		 allowed ? "allowed" : "refused", v->rule);
	return allowed;
}

static bool decide_matches(struct egress_verdict *v, const char *hostport,
			   const struct egress_rule *rule)
{
	cleanup_free char *s = egress_rule_to_string(rule);
	return decide(v, true, "allowed", hostport, "matches '%s'", s);
}

/* "host:port" for messages; IPv6 in brackets. */
static void show_hostport(const char *host, int port, char *out, size_t outlen)
{
	char shown[CR_SHOW_SIZE];
	size_t len = strnlen(host, CR_SHOW_MAX + 1);
	bool bracket = host[0] != '[' && memchr(host, ':', len) != NULL;

	cr_show(host, len, true, shown);
	snprintf(out, outlen, "%s%s%s:%d", bracket ? "[" : "", shown, bracket ? "]" : "", port);
}

/* Refuse an address the rules refuse; `resolved` when it came from DNS
 * rather than from the host itself. */
static bool refuse_address(struct egress_verdict *v, const char *hostport, int family,
			   const unsigned char *a, const struct addr_class *c, bool resolved)
{
	char text[INET6_ADDRSTRLEN];

	inet_ntop(family, a, text, sizeof(text));
	if (c->embedded[0] && resolved)
		return decide(v, false, c->code, hostport, "it resolves to %s, which embeds %s, %s",
			      text, c->embedded, c->what);
	if (c->embedded[0])
		return decide(v, false, c->code, hostport, "%s embeds %s, %s", text, c->embedded,
			      c->what);
	if (resolved)
		return decide(v, false, c->code, hostport, "it resolves to %s, %s", text, c->what);
	return decide(v, false, c->code, hostport, "%s is %s", text, c->what);
}

/* egress_check_name(), also giving the parsed host when allowed. */
static bool check_name(const struct egress_policy *policy, const char *host, int port,
		       struct egress_verdict *v, struct host *hp)
{
	char hostport[CR_SHOW_SIZE + 16], why[64];
	const struct egress_rule *lit, *port_miss = NULL;
	struct host h;
	const char *bad;
	size_t len;

	show_hostport(host, port, hostport, sizeof(hostport));
	if (policy->mode == EGRESS_NONE)
		return decide(v, false, "no_egress", hostport,
			      "this environment has no network access (egress policy 'none')");
	if (port < 1 || port > 65535)
		return decide(v, false, "invalid_port", hostport,
			      "the port is not a number from 1 to 65535");
	len = strnlen(host, NAME_MAX_LEN + 2);
	bad = len > NAME_MAX_LEN + 1 ? "name longer than 253 bytes"
				     : parse_host(host, len, false, &h, why, sizeof(why));
	if (bad)
		return decide(v, false, "invalid_host", hostport, "%s", bad);
	*hp = h;

	if (h.kind == EGRESS_RULE_IPV4 || h.kind == EGRESS_RULE_IPV6) {
		int family = h.kind == EGRESS_RULE_IPV4 ? AF_INET : AF_INET6;
		struct addr_class c;

		lit = find_literal(policy, family, h.addr, port);
		if (lit)
			return decide_matches(v, hostport, lit);
		if (policy->mode == EGRESS_ALLOWLIST)
			return decide(v, false, "not_allowlisted", hostport,
				      "not in the allowlist");
		classify(family, h.addr, &c);
		if (c.code)
			return refuse_address(v, hostport, family, h.addr, &c, false);
		return decide(v, true, "allowed", hostport,
			      "egress policy 'open' allows any public address");
	}

	if (policy->mode == EGRESS_OPEN)
		return decide(v, true, "allowed", hostport,
			      "egress policy 'open' allows any public address");
	for (size_t i = 0; i < policy->nrules; i++) {
		const struct egress_rule *r = &policy->rules[i];
		size_t hl = strlen(h.name), rl;
		bool match;

		if (r->kind == EGRESS_RULE_HOST) {
			match = strcmp(r->name, h.name) == 0;
		} else if (r->kind == EGRESS_RULE_WILDCARD) {
			rl = strlen(r->name);
			match = hl > rl + 1 && h.name[hl - rl - 1] == '.' &&
				memcmp(h.name + hl - rl, r->name, rl) == 0;
		} else {
			continue;
		}
		if (match && (r->port == 0 || r->port == port))
			return decide_matches(v, hostport, r);
		if (match && port_miss == NULL)
			port_miss = r;
	}
	if (port_miss) {
		cleanup_free char *s = egress_rule_to_string(port_miss);
		return decide(v, false, "not_allowlisted", hostport,
			      "not in the allowlist for port %d (it lists '%s')", port, s);
	}
	return decide(v, false, "not_allowlisted", hostport, "not in the allowlist");
}

bool egress_check_name(const struct egress_policy *policy, const char *host, int port,
		       struct egress_verdict *v)
{
	struct host h;
	return check_name(policy, host, port, v, &h);
}

bool egress_check_address(const struct egress_policy *policy, const char *host, int port,
			  const struct sockaddr *addr, struct egress_verdict *v)
{
	char hostport[CR_SHOW_SIZE + 16];
	const struct egress_rule *lit;
	unsigned char a[16];
	struct addr_class c;
	struct host h;
	int family;

	if (!check_name(policy, host, port, v, &h))
		return false;
	show_hostport(host, port, hostport, sizeof(hostport));
	if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
		return decide(v, false, "invalid_address", hostport,
			      "it resolves to an address that is neither IPv4 nor IPv6");
	if (addr->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)addr)->sin_addr, 4);
	} else {
		family = AF_INET6;
		memcpy(a, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
	}

	classify(family, a, &c);
	if (c.code == NULL)
		return true;
	/* Entries hold IPv4-mapped addresses as IPv4. */
	lit = family == AF_INET6 && is_v4_mapped(a) ? find_literal(policy, AF_INET, a + 12, port)
						    : find_literal(policy, family, a, port);
	if (lit)
		return decide_matches(v, hostport, lit);
	return refuse_address(v, hostport, family, a, &c, h.kind == EGRESS_RULE_HOST);
}

bool egress_policy_lists_address(const struct egress_policy *policy, const struct sockaddr *addr,
				 int port)
{
	const unsigned char *a;

	if (addr == NULL)
		return false;
	if (addr->sa_family == AF_INET)
		return find_literal(policy, AF_INET,
				    (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr,
				    port) != NULL;
	if (addr->sa_family != AF_INET6)
		return false;
	a = (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
	return is_v4_mapped(a) ? find_literal(policy, AF_INET, a + 12, port) != NULL
			       : find_literal(policy, AF_INET6, a, port) != NULL;
}
