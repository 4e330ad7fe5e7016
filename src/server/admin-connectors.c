/* admin-connectors.c - /admin/v1/connectors and /admin/v1/audit (see
 * admin-connectors.h).
 *
 * A create or rotate request carries a secret in its body: once parsed,
 * the body and the secret strings in the parsed JSON are wiped, and no
 * reply or message ever contains a secret.
 */
#define _GNU_SOURCE
#include "server/admin-connectors.h"
#include "secrets/connector.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT_LIMIT 100
#define RECENT_USES 10

#define reply http_admin_reply
#define fail http_admin_fail
#define fail_err http_admin_store_fail

/* Wipe the text of every string in `j` (before it is freed). */
static void wipe_strings(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_string(j)) {
		sodium_memzero((char *)json_string_value(j), json_string_length(j));
	} else if (json_is_object(j)) {
		json_object_foreach(j, key, v)
			wipe_strings(v);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			wipe_strings(v);
	}
}

/* The body as a JSON object; the raw body is wiped either way (it may
 * hold a secret).  NULL after replying 400. */
static json_t *secret_body(struct request *req, struct MHD_Connection *conn, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *o = json_loadb(req->body.data ? req->body.data : "{}", req->body.len ? req->body.len : 2,
			       0, &jerr);

	if (req->body.data)
		sodium_memzero(req->body.data, req->body.len);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		*ret = fail(conn, 400, "validation_error", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

static void body_free(json_t *o)
{
	wipe_strings(json_object_get(o, "secret"));
	wipe_strings(json_object_get(o, "secrets"));
	json_decref(o);
}

/* A 400's sentence in err (EINVAL); returns -1. */
__attribute__((format(printf, 2, 3))) static int invalid(struct cr_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err->msg == NULL) {
		va_start(ap, fmt);
		err->msg = xvasprintf(fmt, ap);
		va_end(ap);
	}
	err->errnum = EINVAL;
	return -1;
}

/* A key quoted in a message only when it cannot be a pasted secret. */
static char *shown_key(const char *key)
{
	size_t len = strlen(key);
	bool plain = len > 0 && len <= 32;

	for (size_t i = 0; plain && i < len; i++)
		plain = isascii((unsigned char)key[i]) && (islower((unsigned char)key[i]) || key[i] == '_');
	return plain ? xasprintf("'%s'", key) : xstrdup("(not shown)");
}

static const char *const string_fields[] = { "name",	 "type",     "mode", "base_url",
					     "api_host", "host",     "user", "database",
					     "region",	 "access_key_id" };

static char **spec_slot(struct connector_spec *spec, const char *key)
{
	char **slots[] = { &spec->name,	    &spec->type, &spec->mode, &spec->base_url,
			   &spec->api_host, &spec->host, &spec->user, &spec->database,
			   &spec->region,   &spec->access_key_id };

	for (size_t i = 0; i < ARRAY_SIZE(string_fields); i++)
		if (strcmp(key, string_fields[i]) == 0)
			return slots[i];
	return NULL;
}

/* Fill spec from a create or rotate body; `allowed` is NULL (every field)
 * or the NULL-terminated list of the fields a rotation takes.  0, or -1
 * with err (EINVAL). */
static int spec_from_json(json_t *o, struct connector_spec *spec, const char *const *allowed,
			  struct cr_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		char **slot = spec_slot(spec, key);
		bool known = slot || strcmp(key, "port") == 0 || strcmp(key, "vars") == 0 ||
			     strcmp(key, "secret") == 0 || strcmp(key, "secrets") == 0;
		bool ok = allowed == NULL;
		for (const char *const *a = allowed; a && *a; a++)
			ok |= strcmp(*a, key) == 0;
		if (!known || (!ok && !json_is_null(v))) {
			cleanup_free char *shown = shown_key(key);
			if (!known)
				return invalid(err, "unknown field %s", shown);
			return invalid(err,
				       "rotate replaces only the secret: %s cannot change (delete the "
				       "connector and add it again)",
				       shown);
		}
		if (json_is_null(v))
			continue;
		if (slot) {
			if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
				goto not_string;
			*slot = xstrdup(json_string_value(v));
		} else if (strcmp(key, "port") == 0) {
			if (json_is_integer(v))
				spec->port = xasprintf("%lld", (long long)json_integer_value(v));
			else if (json_is_string(v))
				spec->port = xstrdup(json_string_value(v));
			else
				goto not_string;
		} else if (strcmp(key, "vars") == 0) {
			size_t i;
			json_t *e;
			if (!json_is_array(v))
				goto not_list;
			json_array_foreach(v, i, e)
			{
				if (!json_is_string(e))
					goto not_list;
				connector_spec_add_var(spec, json_string_value(e));
			}
		} else if (strcmp(key, "secret") == 0) {
			if (!json_is_string(v))
				goto not_string;
			spec->input_len = json_string_length(v);
			spec->input = xmalloc(spec->input_len + 1);
			memcpy(spec->input, json_string_value(v), spec->input_len + 1);
		} else {
			const char *name;
			json_t *val;
			if (!json_is_object(v))
				goto not_object;
			json_object_foreach(v, name, val)
			{
				if (!json_is_string(val) ||
				    strlen(json_string_value(val)) != json_string_length(val))
					goto not_object;
				connector_spec_add_secret(spec, name, json_string_value(val));
			}
		}
	}
	return 0;
not_string:
	return invalid(err, "'%s' must be a string", key);
not_list:
	return invalid(err, "'vars' must be a list of variable names");
not_object:
	return invalid(err, "'secrets' must be an object of NAME: VALUE strings");
}

/* POST /admin/v1/connectors (name NULL: create, from the body) and
 * POST /admin/v1/connectors/NAME/rotate (only the secret may change). */
static enum MHD_Result create_or_rotate(struct server *srv, struct MHD_Connection *conn,
					struct request *req, const char *name)
{
	static const char *const rotatable[] = { "secret", "secrets", "vars", "access_key_id",
						 NULL };
	struct cr_error err = CR_ERROR_INIT;
	struct connector_spec spec = { 0 };
	struct store_connector c;
	enum MHD_Result ret;
	json_t *o;
	int r;

	if ((o = secret_body(req, conn, &ret)) == NULL)
		return ret;
	if (name)
		spec.name = xstrdup(name);
	r = spec_from_json(o, &spec, name ? rotatable : NULL, &err);
	if (r == 0)
		r = name ? connector_rotate(&srv->state, &spec, &c, &err)
			 : connector_add(&srv->state, &spec, &c, &err);
	body_free(o);
	connector_spec_release(&spec);
	if (r < 0)
		return fail_err(conn, &err);
	if (name)
		srv_log(srv, 2, "admin: rotated connector '%s'", c.name);
	else
		srv_log(srv, 2, "admin: created connector '%s' (%s)", c.name, c.type);
	ret = reply(conn, name ? 200 : 201, connector_json(&c));
	store_connector_release(&c);
	return ret;
}

static enum MHD_Result attach(struct server *srv, struct MHD_Connection *conn,
			      struct request *req, const char *name, bool on)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector c;
	enum MHD_Result ret;
	json_error_t jerr;
	const char *env;
	json_t *o = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
	int r;

	env = json_is_object(o) ? json_string_value(json_object_get(o, "env")) : NULL;
	if (env == NULL) {
		json_decref(o);
		return fail(conn, 400, "validation_error",
			    "the body must be a JSON object with the environment as \"env\"");
	}
	r = on ? store_connector_attach(st, name, env, &err)
	       : store_connector_detach(st, name, env, &err);
	json_decref(o);
	if (r < 0 || store_connector_get(st, name, &c, &err) < 0)
		return fail_err(conn, &err);
	ret = reply(conn, 200, connector_json(&c));
	store_connector_release(&c);
	return ret;
}

static enum MHD_Result show(struct server *srv, struct MHD_Connection *conn, const char *name)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	struct store_connector_use *u = NULL;
	struct store_connector c;
	size_t n = 0;
	json_t *j, *a;

	if (store_connector_get(st, name, &c, &err) < 0)
		return fail_err(conn, &err);
	if (store_connector_use_list(st, c.id, NULL, RECENT_USES, &u, &n, &err) < 0) {
		store_connector_release(&c);
		return fail_err(conn, &err);
	}
	j = connector_json(&c);
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, connector_use_json(&u[i]));
	json_object_set_new(j, "recent_uses", a);
	store_connector_use_list_free(u, n);
	store_connector_release(&c);
	return reply(conn, 200, j);
}

static enum MHD_Result delete(struct server *srv, struct MHD_Connection *conn, const char *name)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	const char *force = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "force");
	struct store_connector c;
	json_t *a;

	if (force && strcmp(force, "true") != 0 && strcmp(force, "false") != 0)
		return fail(conn, 400, "validation_error", "'force' must be true or false");
	if (store_connector_get(st, name, &c, &err) < 0 ||
	    store_connector_delete(st, name, force && strcmp(force, "true") == 0, &err) < 0) {
		store_connector_release(&c);
		if (err.errnum == EBUSY) {
			cleanup_free char *msg =
				xasprintf("%s; detach it first, or delete it with ?force=true", err.msg);
			cr_error_release(&err);
			return fail(conn, 409, "conflict", msg);
		}
		return fail_err(conn, &err);
	}
	a = json_array();
	for (size_t i = 0; i < c.nenvs; i++)
		json_array_append_new(a, json_string(c.envs[i]));
	store_connector_release(&c);
	srv_log(srv, 2, "admin: deleted connector '%s'", name);
	return reply(conn, 200, json_pack("{s:s, s:b, s:o}", "name", name, "deleted", 1, "detached", a));
}

static enum MHD_Result list(struct server *srv, struct MHD_Connection *conn)
{
	struct cr_error err = CR_ERROR_INIT;
	const char *env = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "env");
	struct store_connector *v = NULL;
	size_t n = 0;
	json_t *a;

	if (store_connector_list(srv->state.store, env, &v, &n, &err) < 0)
		return fail_err(conn, &err);
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, connector_json(&v[i]));
	store_connector_list_free(v, n);
	return reply(conn, 200, json_pack("{s:o}", "connectors", a));
}

static enum MHD_Result audit(struct server *srv, struct MHD_Connection *conn)
{
	struct cr_error err = CR_ERROR_INIT;
	const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "connector");
	const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *trace = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "trace_id");
	struct store_connector_use *u = NULL;
	struct store_egress_denial *d = NULL;
	size_t n = 0, nd = 0;
	long lim = AUDIT_DEFAULT_LIMIT;
	json_t *a, *da;

	if (limit) {
		char *end;
		errno = 0;
		lim = strtol(limit, &end, 10);
		if (errno || *limit == '\0' || *end || lim < 1 || lim > 1000)
			return fail(conn, 400, "validation_error",
				    "'limit' must be a number from 1 to 1000");
	}
	if (store_connector_use_list(srv->state.store, 0, name, (int)lim, &u, &n, &err) < 0)
		return fail_err(conn, &err);
	a = json_array();
	for (size_t i = 0; i < n; i++)
		if (trace == NULL || strcmp(trace, u[i].trace_id) == 0)
			json_array_append_new(a, connector_use_json(&u[i]));
	store_connector_use_list_free(u, n);
	if (store_egress_denial_list(srv->state.store, trace, (int)lim, &d, &nd, &err) < 0) {
		json_decref(a);
		return fail_err(conn, &err);
	}
	da = json_array();
	for (size_t i = 0; i < nd; i++)
		json_array_append_new(da, json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:s}", "id",
						    (json_int_t)d[i].id, "trace_id", d[i].trace_id,
						    "environment", d[i].env_name, "target",
						    d[i].target, "code", d[i].code, "reason",
						    d[i].reason, "denied_at", d[i].denied_at));
	store_egress_denial_list_free(d, nd);
	return reply(conn, 200, json_pack("{s:o, s:o}", "uses", a, "egress_denials", da));
}

enum MHD_Result api_admin_connectors(struct server *srv, struct MHD_Connection *conn,
				     struct request *req, const char *head, const char *rest,
				     const char *method)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	cleanup_free char *name = NULL;
	const char *action = NULL;

	if (strcmp(head, "audit") == 0) {
		if (rest || !get)
			return fail(conn, 404, "not_found", "use GET /admin/v1/audit");
		return audit(srv, conn);
	}
	if (rest == NULL) {
		if (get)
			return list(srv, conn);
		if (post)
			return create_or_rotate(srv, conn, req, NULL);
		return fail(conn, 404, "not_found", "no such method here: use GET or POST");
	}
	action = strchr(rest, '/');
	name = action ? xstrndup(rest, (size_t)(action - rest)) : xstrdup(rest);
	if (action)
		action++;
	if (action == NULL || *action == '\0') {
		if (get)
			return show(srv, conn, name);
		if (strcmp(method, "DELETE") == 0)
			return delete(srv, conn, name);
		return fail(conn, 404, "not_found", "no such method here: use GET or DELETE");
	}
	if (!post)
		return fail(conn, 404, "not_found",
			    "use POST /admin/v1/connectors/{name}/rotate, /attach or /detach");
	if (strcmp(action, "rotate") == 0)
		return create_or_rotate(srv, conn, req, name);
	if (strcmp(action, "attach") == 0 || strcmp(action, "detach") == 0)
		return attach(srv, conn, req, name, strcmp(action, "attach") == 0);
	return fail(conn, 404, "not_found",
		    "use POST /admin/v1/connectors/{name}/rotate, /attach or /detach");
}
