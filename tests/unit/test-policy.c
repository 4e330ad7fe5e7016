/* test-policy.c - proxy/policy.h: egress entries, names and addresses.
 *
 * Tables: entries that parse (with their normalized form) and entries that
 * do not (with the error); names against an allowlist before resolution;
 * addresses after resolution, at both edges of every refused range, in
 * IPv4, IPv4-mapped, NAT64, 6to4 and Teredo spellings; the literal-address
 * exception with and without ports; the modes none and open; the text form
 * round trip; and the sentences a refusal carries. */
#include "proxy/policy.h"
#include "util/util.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- Parsing ---------------------------------------------------------- */

struct parse_case {
	const char *mode;
	const char *entry;
	const char *normalized; /* NULL: refused */
	const char *error;      /* a part of the message when refused */
};

static char long_label[70], long_name[300], name_253[260], name_254[260], entry_301[310];

static const struct parse_case parse_cases[] = {
	{ "allowlist", "example.com", "example.com", NULL },
	{ "allowlist", "Example.COM", "example.com", NULL },
	{ "allowlist", "example.com.", "example.com", NULL },
	{ "allowlist", "api.example.com:443", "api.example.com:443", NULL },
	{ "allowlist", "*.example.com", "*.example.com", NULL },
	{ "allowlist", "*.Example.com.:8443", "*.example.com:8443", NULL },
	{ "allowlist", "*.com", "*.com", NULL },
	{ "allowlist", "localhost", "localhost", NULL },
	{ "allowlist", "my_host-1.example.com", "my_host-1.example.com", NULL },
	{ "allowlist", "123.example.com", "123.example.com", NULL },
	{ "allowlist", "xn--bcher-kva.example", "xn--bcher-kva.example", NULL },
	{ "allowlist", "10.0.0.5", "10.0.0.5", NULL },
	{ "allowlist", "10.0.0.5:5432", "10.0.0.5:5432", NULL },
	{ "allowlist", "0.0.0.0", "0.0.0.0", NULL },
	{ "allowlist", "255.255.255.255:1", "255.255.255.255:1", NULL },
	{ "allowlist", "::1", "[::1]", NULL },
	{ "allowlist", "[::1]", "[::1]", NULL },
	{ "allowlist", "[::1]:443", "[::1]:443", NULL },
	{ "allowlist", "2001:DB8:0:0::1", "[2001:db8::1]", NULL },
	{ "allowlist", "[2001:db8::1]:65535", "[2001:db8::1]:65535", NULL },
	{ "allowlist", "[::ffff:10.0.0.1]:80", "10.0.0.1:80", NULL },
	{ "allowlist", "::ffff:7f00:1", "127.0.0.1", NULL },
	{ "allowlist", "example.com:00443", "example.com:443", NULL },
	{ "open", "10.0.0.5", "10.0.0.5", NULL },
	{ "open", "[fd00:ec2::254]:80", "[fd00:ec2::254]:80", NULL },

	{ "allowlist", "", NULL, "egress entry '': empty entry" },
	{ "allowlist", ".", NULL, "egress entry '.': empty label" },
	{ "allowlist", "a..b", NULL, "egress entry 'a..b': empty label" },
	{ "allowlist", ".example.com", NULL, "empty label" },
	{ "allowlist", "example.com..", NULL, "empty label" },
	{ "allowlist", "*", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "*.", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "*example.com", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "a.*.example.com", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "*.*.example.com", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "ex*mple.com", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "example.*", NULL, "'*' is allowed only as the whole first label" },
	{ "allowlist", "*.10.0.0.1", NULL, "a wildcard needs a domain name, not an address" },
	{ "allowlist", "b\xc3\xbc" "cher.example", NULL,
	  "egress entry 'b\\xc3\\xbccher.example': non-ASCII name (IDNA is not done: write the "
	  "name in its xn-- form)" },
	{ "allowlist", "exa mple.com", NULL, "unexpected character ' '" },
	{ "allowlist", " example.com", NULL, "unexpected character ' '" },
	{ "allowlist", "example.com/", NULL, "unexpected character '/'" },
	{ "allowlist", "user@example.com", NULL, "unexpected character '@'" },
	{ "allowlist", "exa'mple.com", NULL, "egress entry 'exa\\x27mple.com': unexpected "
					     "character '\\x27'" },
	{ "allowlist", "example.com\n", NULL, "unexpected character '\\x0a'" },
	{ "allowlist", long_label, NULL, "label longer than 63 bytes" },
	{ "allowlist", long_name, NULL, "name longer than 253 bytes" },
	{ "allowlist", name_254, NULL, "name longer than 253 bytes" },
	{ "allowlist", entry_301, NULL, "longer than 300 bytes" },
	{ "allowlist", "example.com:0", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:65536", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:443x", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:-1", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:+443", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "example.com:100000", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", ":443", NULL, "empty host name" },
	{ "allowlist", "127.1", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "010.0.0.1", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "1.2.3.256", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "1.2.3.4.5", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "2130706433", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "0x7f000001", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "example.0x1f", NULL, "a name ending in a number must be an IPv4 address" },
	{ "allowlist", "[::1", NULL, "'[' without ']'" },
	{ "allowlist", "[::1]443", NULL, "unexpected text after ']'" },
	{ "allowlist", "[::1]:", NULL, "the port must be a number from 1 to 65535" },
	{ "allowlist", "[10.0.0.1]", NULL, "not a valid IPv6 address in brackets" },
	{ "allowlist", "[example.com]", NULL, "not a valid IPv6 address in brackets" },
	{ "allowlist", "[]", NULL, "not a valid IPv6 address in brackets" },
	{ "allowlist", "fe80::1%eth0", NULL, "not a valid IPv6 address" },
	{ "allowlist", "1:2:3", NULL, "not a valid IPv6 address" },
	{ "allowlist", "[*.example.com]", NULL, "not a valid IPv6 address in brackets" },
	{ "open", "example.com", NULL,
	  "egress entry 'example.com': mode 'open' allows every name already: only IP "
	  "addresses can be listed" },
	{ "open", "*.example.com", NULL, "mode 'open' allows every name already" },
	{ "none", "example.com", NULL, "egress mode 'none' takes no entries" },
	{ NULL, "example.com", NULL, "egress mode 'none' takes no entries" },
	{ "Allowlist", "example.com", NULL,
	  "unknown egress mode 'Allowlist' (expected 'none', 'allowlist' or 'open')" },
	{ "", "example.com", NULL, "unknown egress mode ''" },
};

static void make_long_names(void)
{
	/* 64 bytes in one label. */
	memset(long_label, 'a', 64);
	memcpy(long_label + 64, ".com", 5);
	/* 4 labels of 63 with dots: 255 bytes. */
	for (int i = 0; i < 4; i++) {
		memset(long_name + i * 64, 'b', 63);
		long_name[i * 64 + 63] = '.';
	}
	long_name[255] = '\0';
	/* 253 bytes: 3 labels of 63, then one of 61. */
	memcpy(name_253, long_name, 192);
	memset(name_253 + 192, 'c', 61);
	name_253[253] = '\0';
	memcpy(name_254, name_253, 253);
	memcpy(name_254 + 253, "d", 2);
	memset(entry_301, 'e', 301);
	entry_301[301] = '\0';
}

static void test_parse_table(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct egress_policy p = EGRESS_POLICY_INIT;
		struct cr_error err = CR_ERROR_INIT;
		const char *entries[1] = { c->entry };
		int r = egress_policy_parse(c->mode, entries, 1, &p, &err);

		if (c->normalized) {
			CHECK(r == 0);
			if (r < 0) {
				fprintf(stderr, "  entry '%s': %s\n", c->entry, err.msg);
			} else {
				cleanup_free char *s = egress_rule_to_string(&p.rules[0]);
				CHECK(p.nrules == 1);
				CHECK_STR(s, c->normalized);
			}
		} else {
			CHECK(r < 0);
			CHECK(p.mode == EGRESS_NONE && p.rules == NULL && p.nrules == 0);
			if (r == 0 || err.msg == NULL || strstr(err.msg, c->error) == NULL)
				fprintf(stderr, "  entry case %zu: got '%s', want '%s'\n", i,
					err.msg ? err.msg : "(none)", c->error);
			CHECK(err.msg && strstr(err.msg, c->error));
		}
		cr_error_release(&err);
		egress_policy_release(&p);
	}
}

static void test_parse_limits(void)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;
	char label63[80], wild[300], e300[310];
	const char *entries[3];

	/* 253 bytes is the longest name; with a trailing dot, 254 bytes. */
	entries[0] = name_253;
	CHECK(egress_policy_parse("allowlist", entries, 1, &p, &err) == 0);
	CHECK(p.nrules == 1 && strlen(p.rules[0].name) == 253);
	egress_policy_release(&p);
	snprintf(wild, sizeof(wild), "%s.", name_253);
	entries[0] = wild;
	CHECK(egress_policy_parse("allowlist", entries, 1, &p, &err) == 0);
	egress_policy_release(&p);

	memset(label63, 'x', 63);
	memcpy(label63 + 63, ".io", 4);
	entries[0] = label63;
	CHECK(egress_policy_parse("allowlist", entries, 1, &p, &err) == 0);
	egress_policy_release(&p);

	/* 300 bytes is accepted as an entry (and then refused as a name). */
	memset(e300, 'e', 300);
	e300[300] = '\0';
	entries[0] = e300;
	CHECK(egress_policy_parse("allowlist", entries, 1, &p, &err) < 0);
	CHECK(err.msg && strstr(err.msg, "longer than 300") == NULL);
	CHECK(err.msg && strstr(err.msg, "name longer than 253 bytes") != NULL);
	/* Long entries are shown cut short. */
	CHECK(err.msg && strstr(err.msg, "eee...': ") != NULL);
	cr_error_release(&err);

	/* Duplicates are fine; the modes without entries. */
	entries[0] = "example.com";
	entries[1] = "EXAMPLE.com.";
	entries[2] = "example.com";
	CHECK(egress_policy_parse("allowlist", entries, 3, &p, &err) == 0);
	CHECK(p.mode == EGRESS_ALLOWLIST && p.nrules == 3);
	egress_policy_release(&p);
	CHECK(p.mode == EGRESS_NONE && p.rules == NULL && p.nrules == 0);
	CHECK(egress_policy_parse(NULL, NULL, 0, &p, &err) == 0 && p.mode == EGRESS_NONE);
	CHECK(egress_policy_parse("none", NULL, 0, &p, &err) == 0 && p.mode == EGRESS_NONE);
	CHECK(egress_policy_parse("open", NULL, 0, &p, &err) == 0 && p.mode == EGRESS_OPEN);
	CHECK(egress_policy_parse("allowlist", NULL, 0, &p, &err) == 0 &&
	      p.mode == EGRESS_ALLOWLIST && p.nrules == 0);
	egress_policy_release(&p);

	/* The first bad entry is named; nothing is kept. */
	entries[0] = "example.com";
	entries[1] = "bad..name";
	entries[2] = "also bad";
	CHECK(egress_policy_parse("allowlist", entries, 3, &p, &err) < 0);
	CHECK_STR(err.msg, "egress entry 'bad..name': empty label");
	CHECK(p.rules == NULL && p.nrules == 0);
	cr_error_release(&err);
}

/* ---- Text form -------------------------------------------------------- */

static void round_trip(const char *text, const char *want)
{
	struct egress_policy p = EGRESS_POLICY_INIT, q = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *s = NULL, *t = NULL;

	if (egress_policy_parse_string(text, &p, &err) < 0) {
		fprintf(stderr, "  '%s': %s\n", text, err.msg);
		CHECK(0);
		cr_error_release(&err);
		return;
	}
	s = egress_policy_to_string(&p);
	CHECK_STR(s, want);
	CHECK(egress_policy_parse_string(s, &q, &err) == 0);
	t = egress_policy_to_string(&q);
	CHECK_STR(t, s);
	CHECK(p.mode == q.mode && p.nrules == q.nrules);
	egress_policy_release(&p);
	egress_policy_release(&q);
}

static void parse_string_fails(const char *text, const char *error)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;

	CHECK(egress_policy_parse_string(text, &p, &err) < 0);
	if (err.msg == NULL || strstr(err.msg, error) == NULL)
		fprintf(stderr, "  '%s': got '%s', want '%s'\n", text, err.msg ? err.msg : "",
			error);
	CHECK(err.msg && strstr(err.msg, error));
	cr_error_release(&err);
}

static void test_text_form(void)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	const char *entries[] = { "Example.com.", "*.example.org:443", "10.0.0.5:5432",
				  "::1", "[2001:DB8::1]:8080" };
	struct cr_error err = CR_ERROR_INIT;
	cleanup_free char *s = NULL;

	CHECK(egress_policy_parse("allowlist", entries, ARRAY_SIZE(entries), &p, &err) == 0);
	s = egress_policy_to_string(&p);
	CHECK_STR(s, "allowlist: example.com, *.example.org:443, 10.0.0.5:5432, [::1], "
		     "[2001:db8::1]:8080");
	egress_policy_release(&p);

	round_trip("none", "none");
	round_trip("  open  ", "open");
	round_trip("open: 10.0.0.5, [::1]:22", "open: 10.0.0.5, [::1]:22");
	round_trip("allowlist", "allowlist");
	round_trip("allowlist:", "allowlist");
	round_trip("allowlist:   ", "allowlist");
	round_trip("allowlist:a.example,B.example:80,*.c.example",
		   "allowlist: a.example, b.example:80, *.c.example");
	round_trip("allowlist:\t[::ffff:127.0.0.1]:443 ,\n2001:db8::2 ",
		   "allowlist: 127.0.0.1:443, [2001:db8::2]");
	round_trip("none:", "none");

	parse_string_fails("", "unknown egress mode ''");
	parse_string_fails("allowlist: a.example,", "egress entry '': empty entry");
	parse_string_fails("allowlist: a.example, ", "egress entry '': empty entry");
	parse_string_fails("allowlist: a.example,,b.example", "egress entry '': empty entry");
	parse_string_fails("allowlist: a.example b.example", "unexpected character ' '");
	parse_string_fails("none: a.example", "egress mode 'none' takes no entries");
	parse_string_fails("closed", "unknown egress mode 'closed'");

	CHECK_STR(egress_mode_name(EGRESS_NONE), "none");
	CHECK_STR(egress_mode_name(EGRESS_ALLOWLIST), "allowlist");
	CHECK_STR(egress_mode_name(EGRESS_OPEN), "open");
}

/* ---- Names ------------------------------------------------------------ */

static struct egress_policy make(const char *text)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	struct cr_error err = CR_ERROR_INIT;

	if (egress_policy_parse_string(text, &p, &err) < 0) {
		fprintf(stderr, "policy '%s': %s\n", text, err.msg);
		abort();
	}
	return p;
}

struct name_case {
	const char *host;
	int port;
	const char *code;
	const char *rule; /* the verdict's rule, exactly */
};

static const struct name_case name_cases[] = {
	{ "example.com", 443, "allowed", "matches 'example.com'" },
	{ "EXAMPLE.Com", 80, "allowed", "matches 'example.com'" },
	{ "example.com.", 443, "allowed", "matches 'example.com'" },
	{ "www.example.com", 443, "not_allowlisted", "not in the allowlist" },
	{ "example.com.evil", 443, "not_allowlisted", "not in the allowlist" },
	{ "evilexample.com", 443, "not_allowlisted", "not in the allowlist" },
	{ "api.example.org", 443, "allowed", "matches '*.example.org'" },
	{ "A.B.Example.ORG.", 443, "allowed", "matches '*.example.org'" },
	{ "example.org", 443, "not_allowlisted", "not in the allowlist" },
	{ "xexample.org", 443, "not_allowlisted", "not in the allowlist" },
	{ "git.internal.test", 22, "allowed", "matches 'git.internal.test:22'" },
	{ "git.internal.test", 443, "not_allowlisted",
	  "not in the allowlist for port 443 (it lists 'git.internal.test:22')" },
	{ "x.tls.test", 443, "allowed", "matches '*.tls.test:443'" },
	{ "x.tls.test", 80, "not_allowlisted",
	  "not in the allowlist for port 80 (it lists '*.tls.test:443')" },
	{ "10.0.0.5", 5432, "allowed", "matches '10.0.0.5:5432'" },
	{ "10.0.0.5", 5433, "not_allowlisted", "not in the allowlist" },
	{ "10.0.0.6", 5432, "not_allowlisted", "not in the allowlist" },
	{ "93.184.216.34", 443, "allowed", "matches '93.184.216.34'" },
	{ "::1", 8080, "allowed", "matches '[::1]:8080'" },
	{ "[::1]", 8080, "allowed", "matches '[::1]:8080'" },
	{ "[0:0::1]", 8080, "allowed", "matches '[::1]:8080'" },
	{ "[::ffff:127.0.0.1]", 8080, "not_allowlisted", "not in the allowlist" },
	{ "::ffff:93.184.216.34", 443, "allowed", "matches '93.184.216.34'" },
	{ "127.0.0.1", 8080, "not_allowlisted", "not in the allowlist" },
	/* Spellings a resolver would read as addresses are not names. */
	{ "127.1", 443, "invalid_host",
	  "a name ending in a number must be an IPv4 address in plain dotted decimal (four "
	  "parts 0-255, no leading zeros)" },
	{ "0x7f.0.0.1", 443, "invalid_host",
	  "a name ending in a number must be an IPv4 address in plain dotted decimal (four "
	  "parts 0-255, no leading zeros)" },
	{ "010.000.000.005", 5432, "invalid_host",
	  "a name ending in a number must be an IPv4 address in plain dotted decimal (four "
	  "parts 0-255, no leading zeros)" },
	{ "", 443, "invalid_host", "empty host name" },
	{ ".", 443, "invalid_host", "empty label" },
	{ "example..com", 443, "invalid_host", "empty label" },
	{ "*.example.org", 443, "invalid_host", "a wildcard is not a host" },
	{ "a.*.example.org", 443, "invalid_host", "a wildcard is not a host" },
	{ "example.com:443", 443, "invalid_host", "not a valid IPv6 address" },
	{ "exa mple.com", 443, "invalid_host", "unexpected character ' '" },
	{ "b\xc3\xbc" "cher.example", 443, "invalid_host",
	  "non-ASCII name (IDNA is not done: write the name in its xn-- form)" },
	{ "example.com", 0, "invalid_port", "the port is not a number from 1 to 65535" },
	{ "example.com", 65536, "invalid_port", "the port is not a number from 1 to 65535" },
	{ "example.com", -1, "invalid_port", "the port is not a number from 1 to 65535" },
	{ "example.com", 65535, "allowed", "matches 'example.com'" },
	{ "example.com", 1, "allowed", "matches 'example.com'" },
};

static void test_names(void)
{
	struct egress_policy p = make("allowlist: example.com, *.example.org, "
				      "git.internal.test:22, *.tls.test:443, 10.0.0.5:5432, "
				      "93.184.216.34, [::1]:8080");
	struct egress_verdict v;

	for (size_t i = 0; i < ARRAY_SIZE(name_cases); i++) {
		const struct name_case *c = &name_cases[i];
		bool ok = egress_check_name(&p, c->host, c->port, &v);
		CHECK(ok == v.allowed);
		CHECK(ok == (strcmp(c->code, "allowed") == 0));
		CHECK_STR(v.code, c->code);
		CHECK_STR(v.rule, c->rule);
		if (strcmp(v.code, c->code) != 0 || strcmp(v.rule, c->rule) != 0)
			fprintf(stderr, "  name case %zu: %s\n", i, v.reason);
	}

	/* The sentences. */
	egress_check_name(&p, "Evil.Example", 443, &v);
	CHECK_STR(v.reason, "egress to 'evil.example:443' refused: not in the allowlist");
	egress_check_name(&p, "api.example.org", 443, &v);
	CHECK_STR(v.reason, "egress to 'api.example.org:443' allowed: matches '*.example.org'");
	egress_check_name(&p, "::1", 8080, &v);
	CHECK_STR(v.reason, "egress to '[::1]:8080' allowed: matches '[::1]:8080'");
	egress_check_name(&p, "bad'host\n", 443, &v);
	CHECK_STR(v.reason, "egress to 'bad\\x27host\\x0a:443' refused: unexpected character "
			    "'\\x27'");
	egress_policy_release(&p);

	/* An empty allowlist refuses everything. */
	p = make("allowlist");
	CHECK(!egress_check_name(&p, "example.com", 443, &v));
	CHECK_STR(v.code, "not_allowlisted");
	egress_policy_release(&p);
}

static void test_none_and_open(void)
{
	struct egress_policy none = EGRESS_POLICY_INIT, open = make("open");
	struct egress_policy open_lit = make("open: 10.0.0.5, [fd00::1]:443");
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct egress_verdict v;

	/* Mode none: nothing, whatever the host, even an invalid one. */
	CHECK(!egress_check_name(&none, "example.com", 443, &v));
	CHECK_STR(v.code, "no_egress");
	CHECK_STR(v.reason, "egress to 'example.com:443' refused: this environment has no "
			    "network access (egress policy 'none')");
	CHECK(!egress_check_name(&none, "", 0, &v));
	CHECK_STR(v.code, "no_egress");
	inet_pton(AF_INET, "93.184.216.34", &sin.sin_addr);
	CHECK(!egress_check_address(&none, "example.com", 443, (struct sockaddr *)&sin, &v));
	CHECK_STR(v.code, "no_egress");

	/* Mode open: any name, any public address, nothing private. */
	CHECK(egress_check_name(&open, "anything.example", 443, &v));
	CHECK_STR(v.code, "allowed");
	CHECK_STR(v.rule, "egress policy 'open' allows any public address");
	CHECK(egress_check_name(&open, "93.184.216.34", 80, &v));
	CHECK(egress_check_address(&open, "anything.example", 443, (struct sockaddr *)&sin,
				   &v));
	CHECK(!egress_check_name(&open, "bad..name", 443, &v));
	CHECK_STR(v.code, "invalid_host");
	CHECK(!egress_check_name(&open, "127.0.0.1", 443, &v));
	CHECK_STR(v.code, "loopback");
	CHECK_STR(v.reason, "egress to '127.0.0.1:443' refused: 127.0.0.1 is a loopback address "
			    "(127.0.0.0/8)");
	CHECK(!egress_check_name(&open, "169.254.169.254", 80, &v));
	CHECK_STR(v.code, "link_local");
	CHECK_STR(v.rule, "169.254.169.254 is the cloud metadata address (link-local, "
			  "169.254.0.0/16)");
	CHECK(!egress_check_name(&open, "[fd00:ec2::254]", 80, &v));
	CHECK_STR(v.code, "private_address");
	inet_pton(AF_INET, "10.0.0.5", &sin.sin_addr);
	CHECK(!egress_check_address(&open, "db.example", 5432, (struct sockaddr *)&sin, &v));
	CHECK_STR(v.code, "private_address");
	CHECK_STR(v.reason, "egress to 'db.example:5432' refused: it resolves to 10.0.0.5, a "
			    "private address (10.0.0.0/8)");

	/* Mode open with literal exceptions. */
	CHECK(egress_check_name(&open_lit, "10.0.0.5", 5432, &v));
	CHECK_STR(v.rule, "matches '10.0.0.5'");
	CHECK(egress_check_address(&open_lit, "db.example", 5432, (struct sockaddr *)&sin, &v));
	CHECK_STR(v.rule, "matches '10.0.0.5'");
	CHECK(!egress_check_name(&open_lit, "10.0.0.6", 5432, &v));
	CHECK_STR(v.code, "private_address");
	CHECK(egress_check_name(&open_lit, "fd00::1", 443, &v));
	CHECK(!egress_check_name(&open_lit, "fd00::1", 80, &v));
	CHECK_STR(v.code, "private_address");
	CHECK(egress_check_name(&open_lit, "example.com", 80, &v));

	egress_policy_release(&open);
	egress_policy_release(&open_lit);
}

/* ---- Addresses -------------------------------------------------------- */

struct addr_case {
	const char *addr;
	const char *code; /* "allowed" for a public address */
};

static const struct addr_case addr_cases[] = {
	/* IPv4: each range at both ends and just outside. */
	{ "0.0.0.0", "unspecified" },
	{ "0.0.0.1", "reserved" },
	{ "0.255.255.255", "reserved" },
	{ "1.0.0.0", "allowed" },
	{ "1.1.1.1", "allowed" },
	{ "9.255.255.255", "allowed" },
	{ "10.0.0.0", "private_address" },
	{ "10.0.0.1", "private_address" },
	{ "10.255.255.255", "private_address" },
	{ "11.0.0.0", "allowed" },
	{ "100.63.255.255", "allowed" },
	{ "100.64.0.0", "private_address" },
	{ "100.100.100.200", "private_address" },
	{ "100.127.255.255", "private_address" },
	{ "100.128.0.0", "allowed" },
	{ "126.255.255.255", "allowed" },
	{ "127.0.0.0", "loopback" },
	{ "127.0.0.1", "loopback" },
	{ "127.255.255.255", "loopback" },
	{ "128.0.0.0", "allowed" },
	{ "169.253.255.255", "allowed" },
	{ "169.254.0.0", "link_local" },
	{ "169.254.169.254", "link_local" },
	{ "169.254.255.255", "link_local" },
	{ "169.255.0.0", "allowed" },
	{ "172.15.255.255", "allowed" },
	{ "172.16.0.0", "private_address" },
	{ "172.31.255.255", "private_address" },
	{ "172.32.0.0", "allowed" },
	{ "191.255.255.255", "allowed" },
	{ "192.0.0.0", "reserved" },
	{ "192.0.0.255", "reserved" },
	{ "192.0.1.0", "allowed" },
	{ "192.0.2.0", "reserved" },
	{ "192.0.2.255", "reserved" },
	{ "192.0.3.0", "allowed" },
	{ "192.167.255.255", "allowed" },
	{ "192.168.0.0", "private_address" },
	{ "192.168.1.1", "private_address" },
	{ "192.168.255.255", "private_address" },
	{ "192.169.0.0", "allowed" },
	{ "198.17.255.255", "allowed" },
	{ "198.18.0.0", "reserved" },
	{ "198.19.255.255", "reserved" },
	{ "198.20.0.0", "allowed" },
	{ "198.51.99.255", "allowed" },
	{ "198.51.100.0", "reserved" },
	{ "198.51.100.255", "reserved" },
	{ "198.51.101.0", "allowed" },
	{ "203.0.112.255", "allowed" },
	{ "203.0.113.0", "reserved" },
	{ "203.0.113.255", "reserved" },
	{ "203.0.114.0", "allowed" },
	{ "223.255.255.255", "allowed" },
	{ "224.0.0.0", "multicast" },
	{ "239.255.255.255", "multicast" },
	{ "240.0.0.0", "reserved" },
	{ "255.255.255.254", "reserved" },
	{ "255.255.255.255", "broadcast" },

	/* IPv6. */
	{ "::", "unspecified" },
	{ "::1", "loopback" },
	{ "::2", "reserved" },
	{ "::ffff:127.0.0.1", "loopback" },
	{ "::ffff:10.0.0.1", "private_address" },
	{ "::ffff:172.16.0.1", "private_address" },
	{ "::ffff:172.32.0.1", "allowed" },
	{ "::ffff:169.254.169.254", "link_local" },
	{ "::ffff:0.0.0.0", "unspecified" },
	{ "::ffff:100.64.0.1", "private_address" },
	{ "::ffff:198.18.0.1", "reserved" },
	{ "::ffff:224.0.0.1", "multicast" },
	{ "::ffff:255.255.255.255", "broadcast" },
	{ "::ffff:93.184.216.34", "allowed" },
	{ "::127.0.0.1", "loopback" },
	{ "::93.184.216.34", "reserved" },
	{ "::ffff:0:127.0.0.1", "loopback" },
	{ "::ffff:0:93.184.216.34", "reserved" },
	{ "64:ff9b::7f00:1", "loopback" },
	{ "64:ff9b::10.1.2.3", "private_address" },
	{ "64:ff9b::169.254.169.254", "link_local" },
	{ "64:ff9b::93.184.216.34", "allowed" },
	{ "64:ff9b:1::1", "private_address" },
	{ "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "private_address" },
	{ "64:ff9b:2::1", "reserved" },
	{ "100::1", "reserved" },
	{ "100::ffff:ffff:ffff:ffff", "reserved" },
	{ "100:0:0:1::", "reserved" },
	{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "2000::", "allowed" },
	/* Teredo: the client's address is stored inverted, so all zeros is
	 * 255.255.255.255. */
	{ "2001::", "broadcast" },
	/* Teredo: server 65.54.227.120, client 10.0.0.1 (stored inverted). */
	{ "2001:0:4136:e378:8000:63bf:f5ff:fffe", "private_address" },
	/* Teredo: server 127.0.0.1, client public. */
	{ "2001:0:7f00:1:8000:63bf:a247:2ddd", "loopback" },
	{ "2001:0:4136:e378:8000:63bf:a247:2ddd", "reserved" },
	{ "2001:1::1", "allowed" },
	{ "2001:2::", "reserved" },
	{ "2001:2:0:ffff::", "reserved" },
	{ "2001:2:1::", "allowed" },
	{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "allowed" },
	{ "2001:db8::", "reserved" },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "2001:db9::", "allowed" },
	{ "2002:7f00:1::", "loopback" },
	{ "2002:a00:1::1", "private_address" },
	{ "2002:a9fe:a9fe::", "link_local" },
	{ "2002:5db8:d822::1", "allowed" },
	{ "2606:4700:4700::1111", "allowed" },
	{ "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "allowed" },
	{ "3fff::", "reserved" },
	{ "3fff:fff::", "reserved" },
	{ "3fff:1000::", "allowed" },
	{ "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "allowed" },
	{ "4000::", "reserved" },
	{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "fc00::", "private_address" },
	{ "fd00:ec2::254", "private_address" },
	{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private_address" },
	{ "fe00::", "reserved" },
	{ "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved" },
	{ "fe80::", "link_local" },
	{ "fe80::1", "link_local" },
	{ "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link_local" },
	{ "fec0::", "private_address" },
	{ "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private_address" },
	{ "ff00::", "multicast" },
	{ "ff02::1", "multicast" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast" },
};

/* addr as a sockaddr of its own family. */
static socklen_t to_sockaddr(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			abort();
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
		abort();
	return sizeof(*s4);
}

static void test_addresses(void)
{
	struct egress_policy allow = make("allowlist: *.example.com");
	struct egress_policy open = make("open");
	struct egress_verdict v;

	for (size_t i = 0; i < ARRAY_SIZE(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct sockaddr_storage ss;
		bool want = strcmp(c->code, "allowed") == 0;

		to_sockaddr(c->addr, &ss);
		CHECK(egress_check_address(&allow, "www.example.com", 443, (struct sockaddr *)&ss,
					   &v) == want);
		CHECK_STR(v.code, c->code);
		if (strcmp(v.code, c->code) != 0)
			fprintf(stderr, "  address %s: %s\n", c->addr, v.reason);
		if (!want)
			CHECK(strstr(v.rule, "it resolves to ") == v.rule);
		else
			CHECK_STR(v.rule, "matches '*.example.com'");

		/* In mode open the same, by name and by the literal itself. */
		CHECK(egress_check_address(&open, "x.test", 443, (struct sockaddr *)&ss, &v) ==
		      want);
		CHECK_STR(v.code, c->code);
		CHECK(egress_check_name(&open, c->addr, 443, &v) == want);
		CHECK_STR(v.code, c->code);
		if (!want)
			CHECK(strstr(v.rule, "resolves") == NULL);
	}

	/* A name not in the allowlist is refused before its address counts. */
	{
		struct sockaddr_storage ss;
		to_sockaddr("93.184.216.34", &ss);
		CHECK(!egress_check_address(&allow, "evil.test", 443, (struct sockaddr *)&ss, &v));
		CHECK_STR(v.code, "not_allowlisted");
	}
	egress_policy_release(&allow);
	egress_policy_release(&open);
}

static void test_address_sentences(void)
{
	struct egress_policy p = make("allowlist: *.example.com, localhost");
	struct sockaddr_storage ss;
	struct egress_verdict v;

	to_sockaddr("169.254.169.254", &ss);
	CHECK(!egress_check_address(&p, "meta.example.com", 80, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.reason, "egress to 'meta.example.com:80' refused: it resolves to "
			    "169.254.169.254, the cloud metadata address (link-local, "
			    "169.254.0.0/16)");
	to_sockaddr("::ffff:10.0.0.1", &ss);
	CHECK(!egress_check_address(&p, "db.example.com", 5432, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.reason, "egress to 'db.example.com:5432' refused: it resolves to "
			    "::ffff:10.0.0.1, which embeds 10.0.0.1, a private address "
			    "(10.0.0.0/8)");
	to_sockaddr("64:ff9b::7f00:1", &ss);
	CHECK(!egress_check_address(&p, "x.example.com", 443, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.rule, "it resolves to 64:ff9b::7f00:1, which embeds 127.0.0.1, a loopback "
			  "address (127.0.0.0/8)");
	/* A listed name that resolves to loopback. */
	to_sockaddr("127.0.0.1", &ss);
	CHECK(egress_check_name(&p, "localhost", 8080, &v));
	CHECK(!egress_check_address(&p, "localhost", 8080, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.code, "loopback");
	CHECK_STR(v.reason, "egress to 'localhost:8080' refused: it resolves to 127.0.0.1, a "
			    "loopback address (127.0.0.0/8)");
	to_sockaddr("::1", &ss);
	CHECK(!egress_check_address(&p, "localhost", 8080, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.rule, "it resolves to ::1, the loopback address (::1)");
	egress_policy_release(&p);

	/* Neither IPv4 nor IPv6. */
	p = make("open");
	{
		struct sockaddr sa = { .sa_family = AF_UNIX };
		CHECK(!egress_check_address(&p, "x.test", 443, &sa, &v));
		CHECK_STR(v.code, "invalid_address");
		CHECK(!egress_check_address(&p, "x.test", 443, NULL, &v));
		CHECK_STR(v.code, "invalid_address");
	}
	egress_policy_release(&p);
}

/* The literal exception: an entry naming the address opens it, with its
 * port when it has one; by address, not by other spellings. */
static void test_literal_exception(void)
{
	struct egress_policy p = make("allowlist: *.corp.test, 10.0.0.5, 127.0.0.1:8080, "
				      "[fd00::5]:443, 169.254.169.254:80, localhost");
	struct sockaddr_storage ss;
	struct egress_verdict v;

	to_sockaddr("10.0.0.5", &ss);
	CHECK(egress_check_name(&p, "10.0.0.5", 22, &v));
	CHECK(egress_check_address(&p, "10.0.0.5", 22, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.rule, "matches '10.0.0.5'");
	CHECK(egress_check_address(&p, "db.corp.test", 5432, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.rule, "matches '10.0.0.5'");
	/* The IPv4-mapped form of a listed address is that address. */
	to_sockaddr("::ffff:10.0.0.5", &ss);
	CHECK(egress_check_address(&p, "db.corp.test", 5432, (struct sockaddr *)&ss, &v));
	CHECK(egress_check_name(&p, "::ffff:10.0.0.5", 5432, &v));
	/* Other spellings are not. */
	to_sockaddr("64:ff9b::a00:5", &ss);
	CHECK(!egress_check_address(&p, "db.corp.test", 5432, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.code, "private_address");
	to_sockaddr("10.0.0.6", &ss);
	CHECK(!egress_check_address(&p, "db.corp.test", 5432, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.code, "private_address");

	/* With a port, only that port. */
	to_sockaddr("127.0.0.1", &ss);
	CHECK(egress_check_name(&p, "127.0.0.1", 8080, &v));
	CHECK(egress_check_address(&p, "127.0.0.1", 8080, (struct sockaddr *)&ss, &v));
	CHECK(egress_check_address(&p, "localhost", 8080, (struct sockaddr *)&ss, &v));
	CHECK(!egress_check_name(&p, "127.0.0.1", 8081, &v));
	CHECK_STR(v.code, "not_allowlisted");
	CHECK(!egress_check_address(&p, "localhost", 8081, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.code, "loopback");
	CHECK(!egress_check_name(&p, "127.0.0.2", 8080, &v));

	to_sockaddr("fd00::5", &ss);
	CHECK(egress_check_address(&p, "[fd00::5]", 443, (struct sockaddr *)&ss, &v));
	CHECK(egress_check_address(&p, "v6.corp.test", 443, (struct sockaddr *)&ss, &v));
	CHECK(!egress_check_address(&p, "v6.corp.test", 80, (struct sockaddr *)&ss, &v));
	CHECK_STR(v.code, "private_address");

	to_sockaddr("169.254.169.254", &ss);
	CHECK(egress_check_address(&p, "169.254.169.254", 80, (struct sockaddr *)&ss, &v));
	CHECK(!egress_check_address(&p, "169.254.169.254", 443, (struct sockaddr *)&ss, &v));

	/* egress_policy_lists_address: the literal entries alone. */
	to_sockaddr("10.0.0.5", &ss);
	CHECK(egress_policy_lists_address(&p, (struct sockaddr *)&ss, 1));
	to_sockaddr("::ffff:10.0.0.5", &ss);
	CHECK(egress_policy_lists_address(&p, (struct sockaddr *)&ss, 1));
	to_sockaddr("127.0.0.1", &ss);
	CHECK(egress_policy_lists_address(&p, (struct sockaddr *)&ss, 8080));
	CHECK(!egress_policy_lists_address(&p, (struct sockaddr *)&ss, 8081));
	to_sockaddr("fd00::5", &ss);
	CHECK(egress_policy_lists_address(&p, (struct sockaddr *)&ss, 443));
	CHECK(!egress_policy_lists_address(&p, (struct sockaddr *)&ss, 80));
	to_sockaddr("8.8.8.8", &ss);
	CHECK(!egress_policy_lists_address(&p, (struct sockaddr *)&ss, 443));
	CHECK(!egress_policy_lists_address(&p, NULL, 443));
	egress_policy_release(&p);
}

int main(void)
{
	make_long_names();
	test_parse_table();
	test_parse_limits();
	test_text_form();
	test_names();
	test_none_and_open();
	test_addresses();
	test_address_sentences();
	test_literal_exception();
	return unit_report("test-policy");
}
