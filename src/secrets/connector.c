/* connector.c - connectors: checking what an operator gives, sealing the
 * secret, and building what an execution receives (see connector.h).
 *
 * One internal shape, `struct conn`, is filled from an operator's request
 * (connector_add), from a stored row plus a new secret (connector_rotate)
 * or from a stored row plus its opened secret (the injection builder), and
 * then goes through the same checks and the same inject_one(): the names a
 * connector is stored with (for the store's clash checks) are the names
 * inject_one() produces, so they cannot disagree.
 *
 * No message here quotes a secret or a line of secret input: a connector
 * name, a variable name or a setting is quoted, a secret never is.
 */
#define _GNU_SOURCE
#include "secrets/connector.h"
#include "secrets/seal.h"
#include "egress/egress.h"
#include "sandbox/config.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum ctype { T_NONE = -1, T_ANTHROPIC, T_GITHUB, T_POSTGRES, T_AWS, T_ENV };

static const char *const type_names[] = { "anthropic", "github", "postgres", "aws", "env" };

#define GITHUB_DEFAULT_BASE "https://github.com/"
#define PG_DEFAULT_PORT 5432
#define MAX_URL 2048

static int type_of(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(type_names); i++)
		if (strcmp(s, type_names[i]) == 0)
			return (int)i;
	return T_NONE;
}

bool connector_type_known(const char *type)
{
	return type_of(type) != T_NONE;
}

#define fail cr_error_setn

static void free_wiped(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

static char *xstrdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* --- secrets and specs ------------------------------------------------ */

static void secrets_add(struct connector_secret **v, size_t *n, const char *name,
			const char *value, size_t len)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[*n].name = xstrdup(name);
	(*v)[*n].value = xstrndup(value, len);
	(*n)++;
}

void connector_secrets_free(struct connector_secret *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free_wiped(v[i].value);
	}
	free(v);
}

void connector_spec_add_var(struct connector_spec *spec, const char *name)
{
	spec->vars = xrealloc(spec->vars, (spec->nvars + 1) * sizeof(char *));
	spec->vars[spec->nvars++] = xstrdup(name);
}

void connector_spec_add_secret(struct connector_spec *spec, const char *name, const char *value)
{
	secrets_add(&spec->secrets, &spec->nsecrets, name, value, strlen(value));
}

void connector_spec_release(struct connector_spec *spec)
{
	free(spec->name);
	free(spec->type);
	free(spec->mode);
	free(spec->base_url);
	free(spec->api_host);
	free(spec->host);
	free(spec->port);
	free(spec->user);
	free(spec->database);
	free(spec->region);
	free(spec->access_key_id);
	for (size_t i = 0; i < spec->nvars; i++)
		free(spec->vars[i]);
	free(spec->vars);
	if (spec->input) {
		sodium_memzero(spec->input, spec->input_len);
		free(spec->input);
	}
	connector_secrets_free(spec->secrets, spec->nsecrets);
	memset(spec, 0, sizeof(*spec));
}

/* --- the internal shape ----------------------------------------------- */

struct conn {
	int type;
	const char *name;            /* borrowed */
	const char *mode;            /* borrowed */
	char *base_url;              /* anthropic (may be NULL), github (ends in '/') */
	char *api_host;              /* github, may be NULL */
	bool pg_url;                 /* postgres: the secret is a URL, not a password */
	char *host, *user, *database;    /* postgres */
	unsigned port;               /* postgres; 0: not given (5432) */
	char *access_key_id, *region;    /* aws */
	struct connector_secret *sec;
	size_t nsec;
};

static void conn_release(struct conn *c)
{
	free(c->base_url);
	free(c->api_host);
	free(c->host);
	free(c->user);
	free(c->database);
	free(c->access_key_id);
	free(c->region);
	connector_secrets_free(c->sec, c->nsec);
	memset(c, 0, sizeof(*c));
}

static const char *secret_of(const struct conn *c, const char *name)
{
	for (size_t i = 0; i < c->nsec; i++)
		if (strcmp(c->sec[i].name, name) == 0)
			return c->sec[i].value;
	return NULL;
}

/* --- checks of settings ----------------------------------------------- */

static bool var_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128 || !isascii((unsigned char)s[0]) ||
	    !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isascii((unsigned char)s[i]) || !(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* A host name, an IPv4 address or an IPv6 address (without brackets). */
static bool host_ok(const char *h)
{
	size_t len = strlen(h);

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!isascii(c) || !(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_'))
			return false;
	}
	return true;
}

static int check_port(const char *text, unsigned *port, struct cr_error *err)
{
	unsigned long v = 0;

	if (text == NULL || *text == '\0' || strlen(text) > 5)
		return fail(err, EINVAL, "the port must be a number from 1 to 65535");
	for (const char *p = text; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return fail(err, EINVAL, "the port must be a number from 1 to 65535");
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return fail(err, EINVAL, "the port must be a number from 1 to 65535");
	*port = (unsigned)v;
	return 0;
}

/* The host of an http(s) URL already checked by check_url() (caller frees). */
static char *url_host(const char *url)
{
	const char *auth = url + (strncmp(url, "https://", 8) == 0 ? 8 : 7);
	size_t len = strcspn(auth, "/?#");

	if (auth[0] == '[') {
		const char *close = memchr(auth, ']', len);
		return xstrndup(auth + 1, close ? (size_t)(close - auth - 1) : len - 1);
	}
	const char *colon = memchr(auth, ':', len);
	return xstrndup(auth, colon ? (size_t)(colon - auth) : len);
}

/* An http(s) URL with a host and no user information, query, fragment,
 * whitespace, quote or backslash (it goes into a gitconfig as it is). */
static int check_url(const char *what, const char *url, struct cr_error *err)
{
	size_t len = strlen(url), hlen;
	const char *auth, *end;

	if (len == 0 || len > MAX_URL)
		return fail(err, EINVAL, "%s must be 1 to %d characters", what, MAX_URL);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c == 0x7f || c == '"' || c == '\\')
			return fail(err, EINVAL,
				    "%s holds a space, a quote, a backslash or a control character", what);
	}
	if (strncmp(url, "https://", 8) == 0)
		auth = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		auth = url + 7;
	else
		return fail(err, EINVAL, "%s must start with https:// or http://", what);
	end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(end - auth)))
		return fail(err, EINVAL,
			    "%s must not hold a user name or password: a connector's secret is read "
			    "from stdin or a file, never from a setting",
			    what);
	if (strpbrk(url, "?#"))
		return fail(err, EINVAL, "%s must not have a query or a fragment", what);
	cleanup_free char *host = url_host(url);
	hlen = strlen(host);
	if (hlen == 0 || !host_ok(host))
		return fail(err, EINVAL, "%s has no valid host", what);
	if (auth[0] != '[' && strchr(host, ':'))
		return fail(err, EINVAL, "%s has no valid host", what);
	if (auth[0] == '[') {
		const char *close = memchr(auth, ']', (size_t)(end - auth));
		if (close == NULL || (close[1] != ':' && close + 1 != end))
			return fail(err, EINVAL, "%s has no valid host", what);
	}
	{
		/* An explicit port must be a number. */
		const char *p = auth[0] == '[' ? memchr(auth, ']', (size_t)(end - auth)) + 1 : auth + hlen;
		if (p < end && *p == ':') {
			cleanup_free char *port = xstrndup(p + 1, (size_t)(end - p - 1));
			unsigned v;
			if (check_port(port, &v, err) < 0)
				return cr_error_wrap(err, "%s", what);
		}
	}
	return 0;
}

/* --- percent-encoding --------------------------------------------------- */

static char *pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s);
	char *out = xmalloc(3 * len + 1), *p = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX escapes of s[0..len); NULL for a bad escape or a NUL byte. */
static char *pct_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *p = out;

	for (size_t i = 0; i < len; i++) {
		int a, b;
		if (s[i] != '%') {
			*p++ = s[i];
			continue;
		}
		a = i + 2 < len ? hexval(s[i + 1]) : -1;
		b = i + 2 < len ? hexval(s[i + 2]) : -1;
		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			sodium_memzero(out, (size_t)(p - out));
			free(out);
			return NULL;
		}
		*p++ = (char)(a << 4 | b);
		i += 2;
	}
	*p = '\0';
	return out;
}

/* --- postgres URLs ------------------------------------------------------ */

struct pg_parts {
	char *user, *password, *host, *database;
	unsigned port;               /* 0: none in the URL */
};

static void pg_parts_release(struct pg_parts *p)
{
	free(p->user);
	free_wiped(p->password);
	free(p->host);
	free(p->database);
	memset(p, 0, sizeof(*p));
}

/* Split postgres://user:password@host:port/database?params.  Messages
 * never quote the URL: it holds the password. */
static int pg_parse(const char *url, struct pg_parts *out, struct cr_error *err)
{
	const char *p, *auth_end, *at = NULL, *hp, *port = NULL;
	size_t len = strlen(url);

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "postgresql://", 13) == 0)
		p = url + 13;
	else if (strncmp(url, "postgres://", 11) == 0)
		p = url + 11;
	else
		return fail(err, EINVAL, "the postgres URL must start with postgres:// or postgresql://");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
			return fail(err, EINVAL, "the postgres URL holds a space or a control character");
	auth_end = p + strcspn(p, "/?#");
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		out->user = pct_decode(p, (size_t)((colon ? colon : at) - p));
		if (colon)
			out->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
		if (out->user == NULL || (colon && out->password == NULL))
			goto bad_escape;
		hp = at + 1;
	} else {
		hp = p;
	}
	if (memchr(hp, ',', (size_t)(auth_end - hp))) {
		pg_parts_release(out);
		return fail(err, EINVAL,
			    "the postgres URL names several hosts: give one host, or use the "
			    "settings host, port, user and database");
	}
	if (*hp == '[') {
		const char *close = memchr(hp, ']', (size_t)(auth_end - hp));
		if (close == NULL || (close + 1 != auth_end && close[1] != ':')) {
			pg_parts_release(out);
			return fail(err, EINVAL, "the postgres URL has a malformed IPv6 host");
		}
		out->host = xstrndup(hp + 1, (size_t)(close - hp - 1));
		if (close + 1 != auth_end)
			port = close + 2;
	} else {
		const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
		out->host = pct_decode(hp, (size_t)((colon ? colon : auth_end) - hp));
		if (out->host == NULL)
			goto bad_escape;
		if (colon)
			port = colon + 1;
	}
	if (port) {
		cleanup_free char *text = xstrndup(port, (size_t)(auth_end - port));
		if (check_port(text, &out->port, err) < 0) {
			pg_parts_release(out);
			return cr_error_wrap(err, "the postgres URL");
		}
	}
	if (*auth_end == '/') {
		size_t dlen = strcspn(auth_end + 1, "?#");
		out->database = pct_decode(auth_end + 1, dlen);
		if (out->database == NULL)
			goto bad_escape;
	}
	/* Empty parts are absent ones. */
	if (out->user && !*out->user)
		free(steal_pointer(&out->user));
	if (out->password && !*out->password)
		free(steal_pointer(&out->password));
	if (out->host && !*out->host)
		free(steal_pointer(&out->host));
	if (out->database && !*out->database)
		free(steal_pointer(&out->database));
	return 0;
bad_escape:
	pg_parts_release(out);
	return fail(err, EINVAL, "the postgres URL holds a malformed %%-escape");
}

/* postgresql://user:password@host:port/database, each part encoded. */
static char *pg_build_url(const struct conn *c, const char *password)
{
	cleanup_free char *user = pct_encode(c->user);
	char *pass = pct_encode(password);
	cleanup_free char *host = NULL;
	cleanup_free char *db = c->database ? pct_encode(c->database) : NULL;
	char *url;

	if (c->host[0] == '/')
		host = pct_encode(c->host);
	else if (strchr(c->host, ':'))
		host = xasprintf("[%s]", c->host);
	else
		host = xstrdup(c->host);
	url = xasprintf("postgresql://%s:%s@%s:%u%s%s", user, pass, host,
			c->port ? c->port : PG_DEFAULT_PORT, db ? "/" : "", db ? db : "");
	free_wiped(pass);
	return url;
}

/* --- secret input ------------------------------------------------------- */

/* NAME=VALUE lines into pairs (see connector.h). */
static int parse_lines(const char *in, size_t len, struct connector_secret **v, size_t *n,
		       struct cr_error *err)
{
	size_t pos = 0;
	int line = 0;

	while (pos < len) {
		const char *start = in + pos, *eq;
		const char *nl = memchr(start, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - start) : len - pos, k = 0;

		pos += l + (nl ? 1 : 0);
		line++;
		if (l > 0 && start[l - 1] == '\r')
			l--;
		while (k < l && (start[k] == ' ' || start[k] == '\t'))
			k++;
		if (k == l || start[k] == '#')
			continue;
		eq = memchr(start, '=', l);
		if (eq == NULL)
			return fail(err, EINVAL,
				    "line %d of the secret input is not NAME=VALUE (the line is not "
				    "shown: it may hold a secret)",
				    line);
		if (!var_name_ok(start, (size_t)(eq - start)))
			return fail(err, EINVAL,
				    "line %d of the secret input: the part before '=' is not a variable "
				    "name (letters, digits and '_', not starting with a digit)",
				    line);
		cleanup_free char *name = xstrndup(start, (size_t)(eq - start));
		for (size_t i = 0; i < *n; i++)
			if (strcmp((*v)[i].name, name) == 0)
				return fail(err, EINVAL,
					    "line %d of the secret input gives a name twice (the name is not shown: it comes from the secret input)",
					    line);
		secrets_add(v, n, name, eq + 1, (size_t)(start + l - eq - 1));
	}
	return 0;
}

static bool in_list(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Move named pairs into c (aws, env); consumes `pairs`. */
static int take_pairs(struct conn *c, struct connector_secret *pairs, size_t n,
		      char *const *vars, size_t nvars, struct cr_error *err)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		const char *name = pairs[i].name;
		if (!var_name_ok(name, strlen(name))) {
			r = fail(err, EINVAL, "secret names must be variable names (letters, digits "
					      "and '_', not starting with a digit)");
		} else if (c->type == T_AWS) {
			if (strcmp(name, "AWS_ACCESS_KEY_ID") == 0) {
				if (c->access_key_id && strcmp(c->access_key_id, pairs[i].value) != 0)
					r = fail(err, EINVAL,
						 "the access key id is given twice, differently (as a "
						 "setting and as AWS_ACCESS_KEY_ID)");
				else if (c->access_key_id == NULL)
					c->access_key_id = xstrdup(pairs[i].value);
				continue;
			}
			if (strcmp(name, "AWS_SECRET_ACCESS_KEY") != 0 &&
			    strcmp(name, "AWS_SESSION_TOKEN") != 0)
				r = fail(err, EINVAL,
					 "the secret input names a variable that is not AWS_ACCESS_KEY_ID, "
					 "AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN (not shown: it may be "
					 "part of a secret)");
		} else if (c->type == T_ENV) {
			if (nvars > 0 && !in_list(vars, nvars, name))
				r = fail(err, EINVAL,
					 "the secret input gives a name that is not a --var name (not shown: "
					 "it may be part of a secret)");
		} else {
			r = fail(err, EINVAL,
				 "a %s connector takes one secret as text, not NAME=VALUE pairs",
				 type_names[c->type]);
		}
		if (r == 0 && secret_of(c, name))
			r = fail(err, EINVAL, "%s is given twice", name);
		if (r == 0) {
			c->sec = xrealloc(c->sec, (c->nsec + 1) * sizeof(*c->sec));
			c->sec[c->nsec].name = steal_pointer(&pairs[i].name);
			c->sec[c->nsec].value = steal_pointer(&pairs[i].value);
			c->nsec++;
		}
	}
	for (size_t i = 0; r == 0 && c->type == T_ENV && i < nvars; i++)
		if (!secret_of(c, vars[i]))
			r = fail(err, EINVAL, "the secret input lacks %s, named with --var", vars[i]);
	connector_secrets_free(pairs, n);
	return r;
}

/* The secret of `spec` (input text or pairs) into c. */
static int read_secret(struct conn *c, const struct connector_spec *spec, struct cr_error *err)
{
	static const char *const single[] = { [T_ANTHROPIC] = "api_key", [T_GITHUB] = "token" };
	struct connector_secret *pairs = NULL;
	size_t npairs = 0;
	const char *in = spec->input;
	size_t len = spec->input_len;

	for (size_t i = 0; i < spec->nvars; i++) {
		if (!var_name_ok(spec->vars[i], strlen(spec->vars[i])))
			return fail(err, EINVAL,
				    "--var takes a variable name (letters, digits and '_', not starting "
				    "with a digit) and only that: the value is read from stdin");
		for (size_t j = 0; j < i; j++)
			if (strcmp(spec->vars[i], spec->vars[j]) == 0)
				return fail(err, EINVAL, "variable %s is named twice", spec->vars[i]);
	}
	if (spec->nvars > CONNECTOR_MAX_VARS)
		return fail(err, EINVAL, "an env connector holds at most %d variables",
			    CONNECTOR_MAX_VARS);
	if (in && spec->nsecrets)
		return fail(err, EINVAL, "give the secret once: as text or as pairs, not both");
	if (in == NULL && spec->nsecrets == 0)
		return fail(err, EINVAL, "the secret is missing");
	if (in == NULL) {
		for (size_t i = 0; i < spec->nsecrets; i++)
			secrets_add(&pairs, &npairs, spec->secrets[i].name, spec->secrets[i].value,
				    strlen(spec->secrets[i].value));
		return take_pairs(c, pairs, npairs, spec->vars, spec->nvars, err);
	}
	if (len > CONNECTOR_MAX_INPUT)
		return fail(err, EINVAL, "the secret input is larger than %u bytes",
			    CONNECTOR_MAX_INPUT);
	if (memchr(in, '\0', len))
		return fail(err, EINVAL, "the secret input holds a NUL byte");
	switch (c->type) {
	case T_ANTHROPIC:
	case T_GITHUB:
	case T_POSTGRES:
		while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r'))
			len--;
		if (len == 0)
			return fail(err, EINVAL, "the secret is empty");
		secrets_add(&c->sec, &c->nsec,
			    c->type == T_POSTGRES ? (c->pg_url ? "url" : "password") : single[c->type],
			    in, len);
		return 0;
	case T_ENV:
		if (spec->nvars == 1) {
			if (len > 0 && in[len - 1] == '\n')
				len--;
			if (len > 0 && in[len - 1] == '\r')
				len--;
			if (len == 0)
				return fail(err, EINVAL, "the value of %s is empty", spec->vars[0]);
			secrets_add(&c->sec, &c->nsec, spec->vars[0], in, len);
			return 0;
		}
		/* fall through */
	default:
		if (parse_lines(in, len, &pairs, &npairs, err) < 0) {
			connector_secrets_free(pairs, npairs);
			return -1;
		}
		return take_pairs(c, pairs, npairs, spec->vars, spec->nvars, err);
	}
}

/* --- checks of a whole connector ---------------------------------------- */

enum value_kind { V_TOKEN, V_PASSWORD, V_ANY };

static int check_value(const char *what, const char *v, enum value_kind kind,
		       struct cr_error *err)
{
	size_t len = strlen(v);

	if (len == 0)
		return fail(err, EINVAL, "%s is empty", what);
	if (len < CONNECTOR_MIN_SECRET)
		return fail(err, EINVAL,
			    "%s is shorter than %d characters: corral would scrub it out of every "
			    "output it happens to appear in",
			    what, CONNECTOR_MIN_SECRET);
	if (len > CONNECTOR_MAX_SECRET)
		return fail(err, EINVAL, "%s is longer than %d bytes", what, CONNECTOR_MAX_SECRET);
	for (size_t i = 0; kind != V_ANY && i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < ' ' || c == 0x7f || (kind == V_TOKEN && c == ' '))
			return fail(err, EINVAL, "%s holds %s", what,
				    kind == V_TOKEN ? "whitespace or a control character"
						    : "a control character");
	}
	return 0;
}

/* Only the secrets `names` (NULL-terminated) may be present. */
static int only_secrets(const struct conn *c, const char *const *names, struct cr_error *err)
{
	for (size_t i = 0; i < c->nsec; i++) {
		bool ok = false;
		for (const char *const *p = names; *p; p++)
			ok |= strcmp(c->sec[i].name, *p) == 0;
		if (!ok)
			return fail(err, EINVAL, "a %s connector holds no secret named %s",
				    type_names[c->type], c->sec[i].name);
	}
	return 0;
}

static int check_region(const char *r, struct cr_error *err)
{
	size_t len = strlen(r);

	if (len == 0 || len > 32)
		return fail(err, EINVAL, "the region must be 1 to 32 characters");
	for (size_t i = 0; i < len; i++)
		if (!isascii((unsigned char)r[i]) ||
		    !(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-'))
			return fail(err, EINVAL, "the region may hold only a-z, 0-9 and '-' (e.g. us-east-1)");
	return 0;
}

static int check_pg_word(const char *what, const char *s, struct cr_error *err)
{
	size_t len = strlen(s);

	if (len == 0 || len > 128)
		return fail(err, EINVAL, "the postgres %s must be 1 to 128 characters", what);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return fail(err, EINVAL, "the postgres %s holds a control character", what);
	return 0;
}

static int check_pg_host(const char *h, struct cr_error *err)
{
	if (h[0] == '/') {
		/* A Unix socket directory. */
		for (const char *p = h; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return fail(err, EINVAL, "the postgres host holds a space or a control character");
		return strlen(h) > 1024 ? fail(err, EINVAL, "the postgres host is too long") : 0;
	}
	if (!host_ok(h))
		return fail(err, EINVAL,
			    "the postgres host must be a host name, an IP address or a socket "
			    "directory");
	return 0;
}

/* A broker adds the real credential to what it forwards upstream, so it
 * forwards over TLS only; inject mode leaves that to the program. */
static int check_broker_url(const struct conn *c, struct cr_error *err)
{
	if (c->mode && strcmp(c->mode, "broker") == 0 && c->base_url &&
	    strncmp(c->base_url, "https://", 8) != 0)
		return fail(err, EINVAL,
			    "a broker sends the credential only over https: give an https:// base "
			    "URL, or use mode 'inject'");
	return 0;
}

/* Everything about c but the clash with other connectors; for postgres
 * with a URL, also fills host, port, user and database from it. */
static int check_conn(struct conn *c, struct cr_error *err)
{
	switch (c->type) {
	case T_ANTHROPIC:
		if (only_secrets(c, (const char *const[]){ "api_key", NULL }, err) < 0)
			return -1;
		if (!secret_of(c, "api_key"))
			return fail(err, EINVAL, "the API key is missing");
		if (check_value("the API key", secret_of(c, "api_key"), V_TOKEN, err) < 0)
			return -1;
		if (c->base_url && check_url("the base URL", c->base_url, err) < 0)
			return -1;
		return check_broker_url(c, err);
	case T_GITHUB:
		if (only_secrets(c, (const char *const[]){ "token", NULL }, err) < 0)
			return -1;
		if (!secret_of(c, "token"))
			return fail(err, EINVAL, "the token is missing");
		if (check_value("the token", secret_of(c, "token"), V_TOKEN, err) < 0)
			return -1;
		if (c->base_url == NULL)
			c->base_url = xstrdup(GITHUB_DEFAULT_BASE);
		if (check_url("the base URL", c->base_url, err) < 0 || check_broker_url(c, err) < 0)
			return -1;
		if (c->base_url[strlen(c->base_url) - 1] != '/') {
			char *b = xasprintf("%s/", c->base_url);
			free(c->base_url);
			c->base_url = b;
		}
		if (c->api_host && !host_ok(c->api_host))
			return fail(err, EINVAL, "the API host must be a host name such as api.github.com");
		return 0;
	case T_POSTGRES:
		if (c->pg_url) {
			struct pg_parts p;
			const char *url = secret_of(c, "url");
			if (only_secrets(c, (const char *const[]){ "url", NULL }, err) < 0)
				return -1;
			if (!url)
				return fail(err, EINVAL, "the postgres URL is missing");
			if (check_value("the postgres URL", url, V_TOKEN, err) < 0 ||
			    pg_parse(url, &p, err) < 0)
				return -1;
			/* The password is injected on its own (PGPASSWORD), so it is
			 * scrubbed on its own: it must be long enough to scrub. */
			if (p.password == NULL ||
			    check_value("the password in the postgres URL", p.password, V_PASSWORD, err) < 0) {
				if (p.password == NULL)
					fail(err, EINVAL, "the postgres URL has no password (give it as USER:PASSWORD@HOST)");
				pg_parts_release(&p);
				return -1;
			}
			free(c->host);
			free(c->user);
			free(c->database);
			c->host = steal_pointer(&p.host);
			c->user = steal_pointer(&p.user);
			c->database = steal_pointer(&p.database);
			c->port = p.port;
			pg_parts_release(&p);
			if (c->host && check_pg_host(c->host, err) < 0)
				return -1;
			return 0;
		}
		if (only_secrets(c, (const char *const[]){ "password", NULL }, err) < 0)
			return -1;
		if (!secret_of(c, "password"))
			return fail(err, EINVAL, "the postgres password is missing");
		if (check_value("the postgres password", secret_of(c, "password"), V_PASSWORD, err) < 0)
			return -1;
		if (c->host == NULL || c->user == NULL)
			return fail(err, EINVAL,
				    "a postgres connector with a host needs a user too (and takes the "
				    "password as its secret)");
		if (check_pg_host(c->host, err) < 0 || check_pg_word("user", c->user, err) < 0 ||
		    (c->database && check_pg_word("database", c->database, err) < 0))
			return -1;
		return 0;
	case T_AWS:
		if (only_secrets(c,
				 (const char *const[]){ "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", NULL },
				 err) < 0)
			return -1;
		if (c->access_key_id == NULL)
			return fail(err, EINVAL,
				    "the access key id is missing: give it as a setting or as an "
				    "AWS_ACCESS_KEY_ID line of the secret input");
		{
			size_t len = strlen(c->access_key_id);
			bool ok = len >= 16 && len <= 128;
			for (size_t i = 0; ok && i < len; i++)
				ok = isascii((unsigned char)c->access_key_id[i]) &&
				     (isupper((unsigned char)c->access_key_id[i]) ||
				      isdigit((unsigned char)c->access_key_id[i]));
			if (!ok)
				return fail(err, EINVAL,
					    "the access key id must be 16 to 128 characters of A-Z and "
					    "0-9 (such as AKIA...)");
		}
		if (!secret_of(c, "AWS_SECRET_ACCESS_KEY"))
			return fail(err, EINVAL, "AWS_SECRET_ACCESS_KEY is missing from the secret input");
		if (check_value("AWS_SECRET_ACCESS_KEY", secret_of(c, "AWS_SECRET_ACCESS_KEY"),
				V_TOKEN, err) < 0)
			return -1;
		if (secret_of(c, "AWS_SESSION_TOKEN") &&
		    check_value("AWS_SESSION_TOKEN", secret_of(c, "AWS_SESSION_TOKEN"), V_TOKEN,
				err) < 0)
			return -1;
		if (c->region && check_region(c->region, err) < 0)
			return -1;
		return 0;
	case T_ENV:
		if (c->nsec == 0)
			return fail(err, EINVAL, "an env connector needs at least one variable");
		if (c->nsec > CONNECTOR_MAX_VARS)
			return fail(err, EINVAL, "an env connector holds at most %d variables",
				    CONNECTOR_MAX_VARS);
		for (size_t i = 0; i < c->nsec; i++) {
			cleanup_free char *what = xasprintf("the value of %s", c->sec[i].name);
			cleanup_free char *probe = xasprintf("%s=", c->sec[i].name);
			if (sandbox_check_env_assignment(probe, err) < 0) {
				err->errnum = EINVAL;
				return -1;
			}
			if (check_value(what, c->sec[i].value, V_ANY, err) < 0)
				return -1;
		}
		return 0;
	}
	return fail(err, EINVAL, "unknown connector type");
}

/* --- what a connector injects ------------------------------------------- */

static void inj_env(struct connector_injection *inj, const char *name, const char *value)
{
	inj->env = xrealloc(inj->env, (inj->nenv + 2) * sizeof(char *));
	inj->env[inj->nenv++] = xasprintf("%s=%s", name, value);
	inj->env[inj->nenv] = NULL;
}

static void inj_scrub(struct connector_injection *inj, const char *value, const char *label)
{
	inj->scrub = xrealloc(inj->scrub, (inj->nscrub + 1) * sizeof(*inj->scrub));
	inj->scrub[inj->nscrub].value = xstrdup(value);
	inj->scrub[inj->nscrub].label = xstrdup(label);
	inj->nscrub++;
}

static void inj_file(struct connector_injection *inj, const char *path_in_etc, char *content,
		     const char *connector)
{
	inj->files = xrealloc(inj->files, (inj->nfiles + 1) * sizeof(*inj->files));
	inj->files[inj->nfiles].path_in_etc = path_in_etc;
	inj->files[inj->nfiles].content = content;
	inj->files[inj->nfiles].connector = xstrdup(connector);
	inj->nfiles++;
}

/* The system gitconfig of a github connector: URLs of github.com and of
 * the connector's base URL (when it is another host: GitHub Enterprise, a
 * mirror) go to `to`.  The base URL is the sandbox's GitHub, so a clone of
 * https://github.com/org/repo works unchanged against it. */
static char *gitconfig_rewrite(const struct conn *c, const char *to, const char *how)
{
	static const char github[] = "https://github.com/";
	bool other = strcasecmp(c->base_url, github) != 0;

	return xasprintf("# Written by corral for connector '%s': git reaches %s\n"
			 "# %s.\n"
			 "[url \"%s\"]\n"
			 "\tinsteadOf = %s\n"
			 "%s%s%s",
			 c->name, c->base_url, how, to, c->base_url, other ? "\tinsteadOf = " : "",
			 other ? github : "", other ? "\n" : "");
}

static void inject_github(const struct conn *c, struct connector_injection *inj)
{
	const char *token = secret_of(c, "token");
	char *enc = pct_encode(token);
	const char *rest = strstr(c->base_url, "://") + 3;
	char *auth_url = xasprintf("%.*sx-access-token:%s@%s", (int)(rest - c->base_url),
				   c->base_url, enc, rest);
	cleanup_free char *host = url_host(c->base_url);

	inj_env(inj, "GH_TOKEN", token);
	inj_env(inj, "GITHUB_TOKEN", token);
	if (strcasecmp(host, "github.com") != 0) {
		inj_env(inj, "GH_HOST", host);
		inj_env(inj, "GH_ENTERPRISE_TOKEN", token);
	}
	/* A system-level configuration: a user's own ~/.gitconfig still
	 * applies beside it.  check_url() keeps quotes, backslashes and
	 * newlines out of the base URL; the token is percent-encoded. */
	inj_file(inj, "gitconfig", gitconfig_rewrite(c, auth_url, "with the connector's token"),
		 c->name);
	inj_scrub(inj, token, c->name);
	if (strcmp(enc, token) != 0)
		inj_scrub(inj, enc, c->name);
	inj_scrub(inj, auth_url, c->name);
	free_wiped(enc);
	free_wiped(auth_url);
}

static int inject_postgres(const struct conn *c, struct connector_injection *inj,
			   struct cr_error *err)
{
	struct pg_parts p = { 0 };
	char *url;
	const char *password, *host, *user, *db;
	char port[16];

	if (c->pg_url) {
		if (pg_parse(secret_of(c, "url"), &p, err) < 0)
			return -1;
		url = xstrdup(secret_of(c, "url"));
		password = p.password;
		host = p.host;
		user = p.user;
		db = p.database;
		snprintf(port, sizeof(port), "%u", p.port ? p.port : PG_DEFAULT_PORT);
	} else {
		password = secret_of(c, "password");
		url = pg_build_url(c, password);
		host = c->host;
		user = c->user;
		db = c->database;
		snprintf(port, sizeof(port), "%u", c->port ? c->port : PG_DEFAULT_PORT);
	}
	inj_env(inj, "DATABASE_URL", url);
	if (host)
		inj_env(inj, "PGHOST", host);
	inj_env(inj, "PGPORT", port);
	if (user)
		inj_env(inj, "PGUSER", user);
	if (password)
		inj_env(inj, "PGPASSWORD", password);
	if (db)
		inj_env(inj, "PGDATABASE", db);
	inj_scrub(inj, url, c->name);
	if (password) {
		char *enc = pct_encode(password);
		inj_scrub(inj, password, c->name);
		if (strcmp(enc, password) != 0)
			inj_scrub(inj, enc, c->name);
		free_wiped(enc);
	}
	free_wiped(url);
	pg_parts_release(&p);
	return 0;
}

static void inj_broker(struct connector_injection *inj, enum connector_broker_kind kind,
		       const struct conn *c, const char *upstream, char *header)
{
	inj->brokers = xrealloc(inj->brokers, (inj->nbrokers + 1) * sizeof(*inj->brokers));
	inj->brokers[inj->nbrokers].kind = kind;
	inj->brokers[inj->nbrokers].connector = xstrdup(c->name);
	inj->brokers[inj->nbrokers].upstream = xstrdup(upstream);
	inj->brokers[inj->nbrokers].header = header;
	inj->nbrokers++;
}

/* Broker mode: a placeholder and a loopback endpoint for the sandbox, the
 * real credential for the daemon. */
static void broker_one(const struct conn *c, struct connector_injection *inj)
{
	if (c->type == T_ANTHROPIC) {
		const char *key = secret_of(c, "api_key");
		char base[64];
		snprintf(base, sizeof(base), "http://127.0.0.1:%u", EGRESS_ANTHROPIC_PORT);
		inj_env(inj, "ANTHROPIC_API_KEY", EGRESS_PLACEHOLDER_KEY);
		inj_env(inj, "ANTHROPIC_BASE_URL", base);
		/* Not scrubbed: the scrubber's patterns live in the daemon's
		 * heap, which every sandbox's init starts as a copy of; the
		 * key is never anywhere a sandbox could print it from. */
		inj_broker(inj, CONNECTOR_BROKER_ANTHROPIC, c,
			   c->base_url ? c->base_url : "https://api.anthropic.com",
			   xasprintf("x-api-key: %s", key));
	} else {
		const char *token = secret_of(c, "token");
		char *userpass = xasprintf("x-access-token:%s", token);
		size_t n = strlen(userpass);
		size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(cap);

		sodium_bin2base64(b64, cap, (const unsigned char *)userpass, n,
				  sodium_base64_VARIANT_ORIGINAL);
		char local[64];

		snprintf(local, sizeof(local), "http://127.0.0.1:%u/", EGRESS_GITHUB_PORT);
		inj_file(inj, "gitconfig",
			 gitconfig_rewrite(c, local, "through corral's broker, which holds the token"),
			 c->name);
		inj_broker(inj, CONNECTOR_BROKER_GITHUB, c, c->base_url,
			   xasprintf("Authorization: Basic %s", b64));
		free_wiped(userpass);
		free_wiped(b64);
	}
}

/* Append what connector c injects to inj. */
static int inject_one(const struct conn *c, struct connector_injection *inj,
		      struct cr_error *err)
{
	if (c->mode && strcmp(c->mode, "broker") == 0 &&
	    (c->type == T_ANTHROPIC || c->type == T_GITHUB)) {
		broker_one(c, inj);
		return 0;
	}
	switch (c->type) {
	case T_ANTHROPIC:
		inj_env(inj, "ANTHROPIC_API_KEY", secret_of(c, "api_key"));
		if (c->base_url)
			inj_env(inj, "ANTHROPIC_BASE_URL", c->base_url);
		inj_scrub(inj, secret_of(c, "api_key"), c->name);
		return 0;
	case T_GITHUB:
		inject_github(c, inj);
		return 0;
	case T_POSTGRES:
		return inject_postgres(c, inj, err);
	case T_AWS: {
		const char *key = secret_of(c, "AWS_SECRET_ACCESS_KEY");
		const char *token = secret_of(c, "AWS_SESSION_TOKEN");
		inj_env(inj, "AWS_ACCESS_KEY_ID", c->access_key_id);
		inj_env(inj, "AWS_SECRET_ACCESS_KEY", key);
		if (token)
			inj_env(inj, "AWS_SESSION_TOKEN", token);
		if (c->region) {
			inj_env(inj, "AWS_REGION", c->region);
			inj_env(inj, "AWS_DEFAULT_REGION", c->region);
		}
		inj_scrub(inj, key, c->name);
		if (token)
			inj_scrub(inj, token, c->name);
		return 0;
	}
	case T_ENV:
		for (size_t i = 0; i < c->nsec; i++) {
			inj_env(inj, c->sec[i].name, c->sec[i].value);
			inj_scrub(inj, c->sec[i].value, c->name);
		}
		return 0;
	}
	return fail(err, EINVAL, "unknown connector type");
}

void connector_injection_release(struct connector_injection *inj)
{
	if (inj == NULL)
		return;
	for (size_t i = 0; i < inj->nenv; i++)
		free_wiped(inj->env[i]);
	free(inj->env);
	for (size_t i = 0; i < inj->nfiles; i++) {
		free_wiped(inj->files[i].content);
		free(inj->files[i].connector);
	}
	free(inj->files);
	for (size_t i = 0; i < inj->nscrub; i++) {
		free_wiped(inj->scrub[i].value);
		free(inj->scrub[i].label);
	}
	free(inj->scrub);
	for (size_t i = 0; i < inj->nbrokers; i++) {
		free(inj->brokers[i].connector);
		free(inj->brokers[i].upstream);
		free_wiped(inj->brokers[i].header);
	}
	free(inj->brokers);
	free(inj->connector_ids);
	memset(inj, 0, sizeof(*inj));
}

/* The name of an environment entry or "/etc/<file>" (caller frees). */
static char *entry_name(const char *entry)
{
	return xstrndup(entry, strcspn(entry, "="));
}

/* What c injects, by name: variables, then files as /etc/<path>; every
 * entry checked as the sandbox will check it. */
static int names_of(const struct conn *c, char ***names, size_t *n, struct cr_error *err)
{
	struct connector_injection t = { 0 };
	char **v;

	*names = NULL;
	*n = 0;
	if (inject_one(c, &t, err) < 0) {
		connector_injection_release(&t);
		return -1;
	}
	for (size_t i = 0; i < t.nenv; i++)
		if (sandbox_check_env_assignment(t.env[i], err) < 0) {
			/* The sandbox's sentence names the variable, never the value. */
			err->errnum = EINVAL;
			connector_injection_release(&t);
			return -1;
		}
	v = xmalloc((t.nenv + t.nfiles + 1) * sizeof(char *));
	for (size_t i = 0; i < t.nenv; i++)
		v[i] = entry_name(t.env[i]);
	for (size_t i = 0; i < t.nfiles; i++)
		v[t.nenv + i] = xasprintf("/etc/%s", t.files[i].path_in_etc);
	*n = t.nenv + t.nfiles;
	*names = v;
	connector_injection_release(&t);
	return 0;
}

/* --- settings ------------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static char *settings_text(const struct conn *c)
{
	json_t *o = json_object();
	char *s;

	switch (c->type) {
	case T_ANTHROPIC:
		json_object_set_new(o, "base_url", str_or_null(c->base_url));
		break;
	case T_GITHUB:
		json_object_set_new(o, "base_url", str_or_null(c->base_url));
		json_object_set_new(o, "api_host", str_or_null(c->api_host));
		break;
	case T_POSTGRES:
		json_object_set_new(o, "source", json_string(c->pg_url ? "url" : "settings"));
		json_object_set_new(o, "host", str_or_null(c->host));
		json_object_set_new(o, "port", json_integer(c->port ? c->port : PG_DEFAULT_PORT));
		json_object_set_new(o, "user", str_or_null(c->user));
		json_object_set_new(o, "database", str_or_null(c->database));
		break;
	case T_AWS:
		json_object_set_new(o, "access_key_id", str_or_null(c->access_key_id));
		json_object_set_new(o, "region", str_or_null(c->region));
		break;
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s ? s : xstrdup("{}");
}

static char *setting(json_t *o, const char *key)
{
	return xstrdup_or_null(json_string_value(json_object_get(o, key)));
}

/* c from a stored row's type, name, mode and settings (no secret yet). */
static int conn_from_row(struct conn *c, const struct store_connector *row, struct cr_error *err)
{
	json_error_t jerr;
	json_t *o;

	memset(c, 0, sizeof(*c));
	c->type = type_of(row->type);
	c->name = row->name;
	c->mode = row->mode;
	if (c->type == T_NONE)
		return fail(err, EINVAL, "connector '%s' has the unknown type '%s'", row->name,
			    row->type);
	o = json_loads(row->settings ? row->settings : "", 0, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		return fail(err, EIO, "connector '%s' has malformed settings", row->name);
	}
	c->base_url = setting(o, "base_url");
	c->api_host = setting(o, "api_host");
	c->pg_url = c->type == T_POSTGRES && json_is_string(json_object_get(o, "source")) &&
		    strcmp(json_string_value(json_object_get(o, "source")), "url") == 0;
	c->host = setting(o, "host");
	c->user = setting(o, "user");
	c->database = setting(o, "database");
	if (json_is_integer(json_object_get(o, "port")))
		c->port = (unsigned)json_integer_value(json_object_get(o, "port"));
	c->access_key_id = setting(o, "access_key_id");
	c->region = setting(o, "region");
	json_decref(o);
	return 0;
}

/* --- add and rotate ---------------------------------------------------- */

/* Check c, seal its secret and store it (a new connector, or a rotation). */
static int finish(struct store_state *s, struct conn *c, bool rotate, struct cr_error *err)
{
	struct store_connector row = { 0 };
	unsigned char key[32];
	int r;

	if (check_conn(c, err) < 0)
		return -1;
	if (names_of(c, &row.names, &row.nnames, err) < 0)
		return -1;
	store_state_subkey(s, STORE_SUBKEY_CONNECTORS, key);
	row.name = xstrdup(c->name);
	row.type = xstrdup(type_names[c->type]);
	row.mode = xstrdup(c->mode);
	row.settings = settings_text(c);
	row.fingerprint = seal_fingerprint(key, c->sec, c->nsec);
	seal_secrets(key, row.type, row.name, c->sec, c->nsec, &row.sealed, &row.sealed_len);
	sodium_memzero(key, sizeof(key));
	r = rotate ? store_connector_rotate(s->store, &row, err)
		   : store_connector_create(s->store, &row, err);
	store_connector_release(&row);
	return r;
}

struct field {
	const char *name;
	size_t off;
	unsigned types;
};

#define TBIT(t) (1u << (t))

static const struct field spec_fields[] = {
	{ "base_url", offsetof(struct connector_spec, base_url), TBIT(T_ANTHROPIC) | TBIT(T_GITHUB) },
	{ "api_host", offsetof(struct connector_spec, api_host), TBIT(T_GITHUB) },
	{ "host", offsetof(struct connector_spec, host), TBIT(T_POSTGRES) },
	{ "port", offsetof(struct connector_spec, port), TBIT(T_POSTGRES) },
	{ "user", offsetof(struct connector_spec, user), TBIT(T_POSTGRES) },
	{ "database", offsetof(struct connector_spec, database), TBIT(T_POSTGRES) },
	{ "region", offsetof(struct connector_spec, region), TBIT(T_AWS) },
	{ "access_key_id", offsetof(struct connector_spec, access_key_id), TBIT(T_AWS) },
};

static const char *spec_field(const struct connector_spec *spec, const struct field *f)
{
	return *(char *const *)((const char *)spec + f->off);
}

static int check_type(const char *type, struct cr_error *err)
{
	bool plain = type != NULL;

	if (type == NULL || *type == '\0')
		return fail(err, EINVAL,
			    "the connector type is missing: give anthropic, github, postgres, aws "
			    "or env");
	if (type_of(type) != T_NONE)
		return 0;
	/* Quote what was given only when it cannot be a pasted secret. */
	for (const char *p = type; *p; p++)
		plain &= islower((unsigned char)*p) && isascii((unsigned char)*p);
	if (plain && strlen(type) <= 16)
		return fail(err, EINVAL,
			    "unknown connector type '%s': use anthropic, github, postgres, aws or env",
			    type);
	return fail(err, EINVAL,
		    "unknown connector type (not shown): use anthropic, github, postgres, aws or env");
}

/* c from an operator's request for a new connector, secret included. */
static int conn_from_spec(struct conn *c, const struct connector_spec *spec,
			  struct cr_error *err)
{
	const char *mode = spec->mode ? spec->mode : "inject";

	memset(c, 0, sizeof(*c));
	if (store_check_connector_name(spec->name, err) < 0 || check_type(spec->type, err) < 0)
		return -1;
	c->type = type_of(spec->type);
	c->name = spec->name;
	if (strcmp(mode, "inject") != 0 && strcmp(mode, "broker") != 0)
		return fail(err, EINVAL, "mode '%.32s' is not inject or broker", mode);
	if (strcmp(mode, "broker") == 0 && c->type != T_ANTHROPIC && c->type != T_GITHUB)
		return fail(err, EINVAL, "mode 'broker' is only for anthropic and github connectors");
	c->mode = mode;
	for (size_t i = 0; i < ARRAY_SIZE(spec_fields); i++)
		if (spec_field(spec, &spec_fields[i]) && !(spec_fields[i].types & TBIT(c->type)))
			return fail(err, EINVAL, "a %s connector has no setting '%s'",
				    type_names[c->type], spec_fields[i].name);
	if (spec->nvars && c->type != T_ENV)
		return fail(err, EINVAL, "only an env connector takes variable names (--var)");
	if (c->type == T_POSTGRES && !spec->host && (spec->port || spec->user || spec->database))
		return fail(err, EINVAL,
			    "the postgres settings port, user and database go with host; without "
			    "host the secret is a postgres:// URL that holds them");
	if (spec->port && check_port(spec->port, &c->port, err) < 0)
		return -1;
	c->base_url = xstrdup_or_null(spec->base_url);
	c->api_host = xstrdup_or_null(spec->api_host);
	c->host = xstrdup_or_null(spec->host);
	c->user = xstrdup_or_null(spec->user);
	c->database = xstrdup_or_null(spec->database);
	c->region = xstrdup_or_null(spec->region);
	c->access_key_id = xstrdup_or_null(spec->access_key_id);
	c->pg_url = c->type == T_POSTGRES && spec->host == NULL;
	return read_secret(c, spec, err);
}

int connector_spec_check(const struct connector_spec *spec, struct cr_error *err)
{
	struct conn c;
	char **names = NULL;
	size_t n = 0;
	int r = -1;

	if (conn_from_spec(&c, spec, err) == 0 && check_conn(&c, err) == 0 &&
	    names_of(&c, &names, &n, err) == 0)
		r = 0;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	conn_release(&c);
	return r;
}

int connector_add(struct store_state *s, const struct connector_spec *spec,
		  struct store_connector *out, struct cr_error *err)
{
	struct conn c;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (conn_from_spec(&c, spec, err) == 0 && finish(s, &c, false, err) == 0)
		r = store_connector_get(s->store, spec->name, out, err);
	conn_release(&c);
	return r;
}

int connector_rotate(struct store_state *s, const struct connector_spec *spec,
		     struct store_connector *out, struct cr_error *err)
{
	struct store_connector old = { 0 };
	struct conn c = { 0 };
	char *old_key_id = NULL;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (store_check_connector_name(spec->name, err) < 0)
		return -1;
	if (store_connector_get(s->store, spec->name, &old, err) < 0)
		return -1;
	if (spec->type && strcmp(spec->type, old.type) != 0) {
		fail(err, EINVAL, "connector '%s' is a %s connector", old.name, old.type);
		goto out;
	}
	if (spec->mode) {
		fail(err, EINVAL, "rotate replaces only the secret: the mode cannot change (delete "
				  "the connector and add it again)");
		goto out;
	}
	if (conn_from_row(&c, &old, err) < 0)
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(spec_fields); i++) {
		const struct field *f = &spec_fields[i];
		if (spec_field(spec, f) == NULL || (c.type == T_AWS && strcmp(f->name, "access_key_id") == 0))
			continue;
		fail(err, EINVAL,
		     "rotate replaces only the secret: '%s' cannot change (delete the connector and "
		     "add it again)",
		     f->name);
		goto out;
	}
	if (spec->nvars && c.type != T_ENV) {
		fail(err, EINVAL, "only an env connector takes variable names (--var)");
		goto out;
	}
	if (c.pg_url) {
		/* Taken again from the new URL. */
		free(steal_pointer(&c.host));
		free(steal_pointer(&c.user));
		free(steal_pointer(&c.database));
		c.port = 0;
	}
	old_key_id = steal_pointer(&c.access_key_id);
	c.access_key_id = xstrdup_or_null(spec->access_key_id);
	if (read_secret(&c, spec, err) < 0)
		goto out;
	if (c.type == T_AWS && c.access_key_id == NULL)
		c.access_key_id = steal_pointer(&old_key_id);
	if (finish(s, &c, true, err) == 0)
		r = store_connector_get(s->store, spec->name, out, err);
out:
	free(old_key_id);
	conn_release(&c);
	store_connector_release(&old);
	return r;
}

/* --- JSON shapes ----------------------------------------------------------- */

json_t *connector_json(const struct store_connector *c)
{
	json_t *o = json_object(), *a, *settings;
	json_error_t jerr;

	json_object_set_new(o, "id", json_integer(c->id));
	json_object_set_new(o, "name", str_or_null(c->name));
	json_object_set_new(o, "type", str_or_null(c->type));
	json_object_set_new(o, "mode", str_or_null(c->mode));
	settings = c->settings ? json_loads(c->settings, 0, &jerr) : NULL;
	if (!json_is_object(settings)) {
		json_decref(settings);
		settings = json_object();
	}
	json_object_set_new(o, "settings", settings);
	a = json_array();
	for (size_t i = 0; i < c->nnames; i++)
		json_array_append_new(a, json_string(c->names[i]));
	json_object_set_new(o, "injects", a);
	json_object_set_new(o, "fingerprint", str_or_null(c->fingerprint));
	json_object_set_new(o, "created_at", str_or_null(c->created_at));
	json_object_set_new(o, "rotated_at", str_or_null(c->rotated_at));
	a = json_array();
	for (size_t i = 0; i < c->nenvs; i++)
		json_array_append_new(a, json_string(c->envs[i]));
	json_object_set_new(o, "environments", a);
	return o;
}

json_t *connector_use_json(const struct store_connector_use *u)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(u->id));
	json_object_set_new(o, "trace_id", str_or_null(u->trace_id));
	json_object_set_new(o, "connector", str_or_null(u->connector_name));
	json_object_set_new(o, "environment", str_or_null(u->env_name));
	json_object_set_new(o, "used_at", str_or_null(u->used_at));
	return o;
}

/* --- the injection builder ---------------------------------------------- */

static int scrub_cmp(const void *a, const void *b)
{
	const struct connector_scrub *x = a, *y = b;
	size_t lx = strlen(x->value), ly = strlen(y->value);

	if (lx != ly)
		return lx > ly ? -1 : 1;
	return strcmp(x->value, y->value);
}

/* Longest first, each value once (the first connector's label wins, and
 * the sort is by value only, so "first" is the lower connector name). */
static void scrub_finish(struct connector_injection *inj)
{
	size_t w = 0;

	if (inj->nscrub == 0)
		return;
	qsort(inj->scrub, inj->nscrub, sizeof(*inj->scrub), scrub_cmp);
	for (size_t i = 0; i < inj->nscrub; i++) {
		if (w > 0 && strcmp(inj->scrub[w - 1].value, inj->scrub[i].value) == 0) {
			free_wiped(inj->scrub[i].value);
			free(inj->scrub[i].label);
			continue;
		}
		inj->scrub[w++] = inj->scrub[i];
	}
	inj->nscrub = w;
}

/* Move t's entries to the end of inj (t is left empty). */
static void merge(struct connector_injection *inj, struct connector_injection *t)
{
	for (size_t i = 0; i < t->nenv; i++) {
		inj->env = xrealloc(inj->env, (inj->nenv + 2) * sizeof(char *));
		inj->env[inj->nenv++] = t->env[i];
		inj->env[inj->nenv] = NULL;
	}
	inj->files = xrealloc(inj->files, (inj->nfiles + t->nfiles + 1) * sizeof(*inj->files));
	if (t->nfiles)
		memcpy(inj->files + inj->nfiles, t->files, t->nfiles * sizeof(*t->files));
	inj->nfiles += t->nfiles;
	inj->scrub = xrealloc(inj->scrub, (inj->nscrub + t->nscrub + 1) * sizeof(*inj->scrub));
	if (t->nscrub)
		memcpy(inj->scrub + inj->nscrub, t->scrub, t->nscrub * sizeof(*t->scrub));
	inj->nscrub += t->nscrub;
	inj->brokers = xrealloc(inj->brokers, (inj->nbrokers + t->nbrokers + 1) * sizeof(*inj->brokers));
	if (t->nbrokers)
		memcpy(inj->brokers + inj->nbrokers, t->brokers, t->nbrokers * sizeof(*t->brokers));
	inj->nbrokers += t->nbrokers;
	free(t->env);
	free(t->files);
	free(t->scrub);
	free(t->brokers);
	free(t->connector_ids);
	memset(t, 0, sizeof(*t));
}

/* Refuse t (what connector `self` injects) when it sets a name or writes a
 * file that inj (the connectors before it) already does. */
static int clash(const struct connector_injection *inj, const struct store_connector *rows,
		 size_t nrows, const struct connector_injection *t, const char *self,
		 struct cr_error *err)
{
	for (size_t i = 0; i < t->nenv; i++) {
		cleanup_free char *name = entry_name(t->env[i]);
		for (size_t j = 0; j < inj->nenv; j++) {
			cleanup_free char *other = entry_name(inj->env[j]);
			if (strcmp(name, other) != 0)
				continue;
			const char *who = "another connector";
			for (size_t k = 0; k < nrows; k++)
				for (size_t m = 0; m < rows[k].nnames; m++)
					if (strcmp(rows[k].name, self) != 0 &&
					    strcmp(rows[k].names[m], name) == 0)
						who = rows[k].name;
			return fail(err, ENOTUNIQ,
				    "connectors '%s' and '%s' both set %s; detach one of them", who,
				    self, name);
		}
	}
	for (size_t i = 0; i < t->nfiles; i++)
		for (size_t j = 0; j < inj->nfiles; j++)
			if (strcmp(t->files[i].path_in_etc, inj->files[j].path_in_etc) == 0)
				return fail(err, ENOTUNIQ,
					    "connectors '%s' and '%s' both write /etc/%s; detach one "
					    "of them",
					    inj->files[j].connector, self, t->files[i].path_in_etc);
	return 0;
}

int connector_injection_for_env(struct store_state *s, int64_t env_id,
				struct connector_injection *out, struct cr_error *err)
{
	struct store_connector *rows = NULL;
	size_t nrows = 0;
	unsigned char key[32];
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (store_connector_list_for_env(s->store, env_id, &rows, &nrows, err) < 0)
		return -1;
	store_state_subkey(s, STORE_SUBKEY_CONNECTORS, key);
	out->env = xzalloc(sizeof(char *));
	out->connector_ids = xmalloc((nrows ? nrows : 1) * sizeof(int64_t));
	for (size_t i = 0; i < nrows && r == 0; i++) {
		struct connector_injection t = { 0 };
		struct conn c;

		if (strcmp(rows[i].mode, "inject") != 0 && strcmp(rows[i].mode, "broker") != 0) {
			r = fail(err, EOPNOTSUPP,
				 "connector '%s' uses mode '%s', which this version of corral cannot "
				 "serve: detach it",
				 rows[i].name, rows[i].mode);
			break;
		}
		if (conn_from_row(&c, &rows[i], err) < 0) {
			r = -1;
			break;
		}
		if (unseal_secrets(key, rows[i].type, rows[i].name, rows[i].sealed,
				   rows[i].sealed_len, &c.sec, &c.nsec, err) < 0 ||
		    check_conn(&c, err) < 0 || inject_one(&c, &t, err) < 0 ||
		    clash(out, rows, nrows, &t, rows[i].name, err) < 0) {
			r = -1;
		} else {
			for (size_t j = 0; j < t.nenv && r == 0; j++)
				if (sandbox_check_env_assignment(t.env[j], err) < 0)
					r = -1;
		}
		if (r == 0) {
			merge(out, &t);
			out->connector_ids[out->nconnectors++] = rows[i].id;
		} else if (err->msg) {
			cr_error_wrap(err, "connector '%s'", rows[i].name);
		}
		connector_injection_release(&t);
		conn_release(&c);
	}
	sodium_memzero(key, sizeof(key));
	store_connector_list_free(rows, nrows);
	if (r < 0) {
		connector_injection_release(out);
		return -1;
	}
	scrub_finish(out);
	return 0;
}

int connector_record_use(struct store *st, const char *trace_id, int64_t connector_id,
			 struct cr_error *err)
{
	return store_connector_use_record(st, trace_id, connector_id, err);
}
