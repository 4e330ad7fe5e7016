/* policy.h - an environment's egress policy and the decisions it makes
 * (DESIGN.md 5).
 *
 * Pure logic: no sockets, no DNS.  The proxy asks twice per connection:
 * egress_check_name() with the host and port a sandbox asked for (a
 * CONNECT line, an absolute-form URL) before it resolves anything, and
 * egress_check_address() with each address the name resolved to, before
 * it connects.  Every verdict, allowed or not, carries a short machine
 * code and a sentence naming the host, the port and the rule that decided,
 * ready for the proxy's 403 body and the execution's network report.
 *
 * Modes:
 *   none       (the default) no egress at all: every check is refused
 *              with no_egress, whatever the host and port.
 *   allowlist  only hosts the entries name, and then only public
 *              addresses (below), unless an entry names the IP literally.
 *   open       any host, but still only public addresses: `open` means
 *              "the internet", not the host's loopback services, the
 *              private network it sits in or the cloud metadata service.
 *              Entries (IP literals only) open single non-public
 *              addresses the same way as in an allowlist.
 *
 * Entries (at most EGRESS_ENTRY_MAX bytes each; duplicates are accepted):
 *   example.com         that host exactly, any port
 *   *.example.com       any name below example.com, any port (not
 *                       example.com itself: list both for both)
 *   example.com:443     that host on port 443 only; also *.example.com:443
 *   10.0.0.5            that IPv4 address, any port; also 10.0.0.5:5432
 *   [2001:db8::1]:443   that IPv6 address on port 443; bare 2001:db8::1 and
 *                       [2001:db8::1] mean any port (a bare IPv6 address
 *                       cannot carry a port: "::1:443" is an address)
 * Names are ASCII (IDNA is not done: write the xn-- form), compared
 * without regard to case and with one trailing dot ignored; labels are
 * letters, digits, '-' and '_', 1 to 63 bytes, names at most 253.  '*' is
 * accepted only as the whole first label.  A name whose last label is
 * numeric ("127.1", "0x7f000001", "010.0.0.1") must be an IPv4 address in
 * plain dotted decimal without leading zeros: resolvers read those other
 * spellings as addresses (inet_aton), and they would slip past the
 * literal-address rules.  An IPv4-mapped IPv6 entry ([::ffff:10.0.0.1]) is
 * the IPv4 address.  In mode `open` only IP literals may be listed (every
 * name is allowed already); mode `none` takes no entries.
 *
 * Addresses refused after resolution (codes in parentheses), unless an
 * entry names the address literally, with a matching port if it gives one:
 *   IPv4  0.0.0.0 (unspecified), 0.0.0.0/8 (reserved), 10.0.0.0/8,
 *         172.16.0.0/12, 192.168.0.0/16 (private_address),
 *         100.64.0.0/10 carrier-grade NAT, which holds some clouds'
 *         metadata services such as 100.100.100.200 (private_address),
 *         127.0.0.0/8 (loopback), 169.254.0.0/16 with the metadata address
 *         169.254.169.254 (link_local), 224.0.0.0/4 (multicast),
 *         255.255.255.255 (broadcast), 198.18.0.0/15 benchmarking,
 *         192.0.0.0/24 protocol assignments, 192.0.2.0/24, 198.51.100.0/24,
 *         203.0.113.0/24 documentation, 240.0.0.0/4 (reserved).
 *   IPv6  :: (unspecified), ::1 (loopback), fc00::/7 unique local, which
 *         holds AWS's fd00:ec2::254, fec0::/10 site-local and
 *         64:ff9b:1::/48 local-use NAT64 (private_address), fe80::/10
 *         (link_local), ff00::/8 (multicast), 100::/64 discard,
 *         2001:2::/48 benchmarking, 2001:db8::/32 and 3fff::/20
 *         documentation and everything outside 2000::/3 (reserved).
 *         IPv4 addresses embedded in IPv6 are judged as IPv4 and refused
 *         with the IPv4 code: IPv4-mapped ::ffff:0:0/96 (public ones are
 *         allowed: that is how a dual-stack socket reaches IPv4), NAT64
 *         64:ff9b::/96 (likewise), 6to4 2002::/16 (likewise), and the
 *         deprecated IPv4-compatible ::/96, SIIT ::ffff:0:0:0/96 and Teredo
 *         2001::/32 (server and client address), which are refused as
 *         reserved even when what they embed is public.
 * The literal exception is by address: with "10.0.0.5" and "*.corp.example"
 * listed, a name under corp.example that resolves to 10.0.0.5 is allowed,
 * which gives nothing the literal entry did not give already.  It does not
 * extend to other spellings (64:ff9b::a00:5 is not 10.0.0.5).
 *
 * Codes: allowed, no_egress, not_allowlisted, invalid_host, invalid_port,
 * invalid_address, unspecified, loopback, private_address, link_local,
 * multicast, broadcast, reserved.
 *
 * A parsed policy is read-only: any number of threads may check against it
 * at once.
 */
#ifndef CORRAL_PROXY_POLICY_H
#define CORRAL_PROXY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/error.h"

/* Longest entry accepted, in bytes. */
#define EGRESS_ENTRY_MAX 300

enum egress_mode {
	EGRESS_NONE = 0,
	EGRESS_ALLOWLIST,
	EGRESS_OPEN,
};

enum egress_rule_kind {
	EGRESS_RULE_HOST,     /* name is the host */
	EGRESS_RULE_WILDCARD, /* name is the domain after "*." */
	EGRESS_RULE_IPV4,     /* addr[0..3] */
	EGRESS_RULE_IPV6,     /* addr[0..15], never IPv4-mapped */
};

/* One entry, normalized: names lowercase without a trailing dot. */
struct egress_rule {
	enum egress_rule_kind kind;
	char *name;		/* HOST and WILDCARD; NULL otherwise */
	unsigned char addr[16]; /* IPV4 and IPV6, network byte order */
	uint16_t port;		/* 0: any port */
};

struct egress_policy {
	enum egress_mode mode;
	struct egress_rule *rules;
	size_t nrules;
};

#define EGRESS_POLICY_INIT { EGRESS_NONE, NULL, 0 }

/* Parse a mode ("none", "allowlist" or "open"; NULL is "none") and its
 * `n` entries into *out.  On success returns 0 and *out (whatever it held
 * is overwritten, not released) owns the rules; on failure returns -1,
 * sets *out to EGRESS_POLICY_INIT and fills err with a sentence naming the
 * entry, e.g. "egress entry 'a..b': empty label". */
int egress_policy_parse(const char *mode, const char *const *entries, size_t n,
			struct egress_policy *out, struct cr_error *err);

/* Parse the text egress_policy_to_string() makes: the mode, then for a
 * policy with entries ':' and the entries separated by ','; blanks around
 * entries are ignored ("allowlist: example.com, *.example.org:443").
 * Same contract as egress_policy_parse(). */
int egress_policy_parse_string(const char *text, struct egress_policy *out, struct cr_error *err);

/* The policy as text for display and storage: "none", "open",
 * "allowlist", "allowlist: example.com, *.example.org:443, [::1]:8080".
 * Entries are written normalized (lowercase, no trailing dot, IPv6 in
 * brackets); egress_policy_parse_string() of the text gives the same
 * policy back.  The caller frees. */
char *egress_policy_to_string(const struct egress_policy *policy);

/* One rule as an entry ("*.example.com:443", "[::1]"); the caller frees. */
char *egress_rule_to_string(const struct egress_rule *rule);

/* "none", "allowlist" or "open". */
const char *egress_mode_name(enum egress_mode mode);

/* Free the rules and reset *policy to EGRESS_POLICY_INIT. */
void egress_policy_release(struct egress_policy *policy);

/* What a check decided.  Everything is inside the struct: nothing to free. */
struct egress_verdict {
	bool allowed;
	const char *code; /* one of the codes above; a static string */
	/* The rule that decided, as a phrase: "matches '*.example.com'",
	 * "not in the allowlist", "10.0.0.5 is a private address
	 * (10.0.0.0/8)". */
	char rule[384];
	/* The whole sentence, e.g. "egress to 'evil.example:443' refused: not
	 * in the allowlist".  The host is quoted as given, lowercased, with
	 * bytes other than printable ASCII written \xNN and cut short when
	 * very long. */
	char reason[768];
};

/* Decide on `host` (a name, an IPv4 address, an IPv6 address with or
 * without brackets) and `port` before resolving anything.  An invalid host
 * (see the entry syntax above; wildcards are not hosts) is refused with
 * invalid_host, a port outside 1..65535 with invalid_port.  When the host
 * is an IP literal, the address rules are applied here too: nothing is
 * left to resolve.  Returns v->allowed. */
bool egress_check_name(const struct egress_policy *policy, const char *host, int port,
		       struct egress_verdict *v);

/* Decide on connecting to `addr` (AF_INET or AF_INET6; any other family
 * is refused with invalid_address), which `host` resolved to, on `port`
 * (the port the sandbox asked for; addr's own port is ignored).  Repeats
 * egress_check_name() first, so this verdict is the whole decision for
 * that address.  Returns v->allowed. */
bool egress_check_address(const struct egress_policy *policy, const char *host, int port,
			  const struct sockaddr *addr, struct egress_verdict *v);

/* Whether an entry names `addr` (AF_INET or AF_INET6; an IPv4-mapped
 * address as its IPv4 address) literally, with `port` if it gives one.
 * The proxy refuses the host's own addresses unless this says so. */
bool egress_policy_lists_address(const struct egress_policy *policy, const struct sockaddr *addr,
				 int port);

#endif
