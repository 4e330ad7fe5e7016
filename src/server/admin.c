/* admin.c - /admin/v1/: environments, keys, threads and usage for the
 * web console and scripts, behind the admin token.  The JSON shapes are
 * the admin CLI's (cli_*_json), so `corral env list --json` and
 * GET /admin/v1/environments agree. */
#define _GNU_SOURCE
#include "server/api.h"
#include "server/admin-connectors.h"
#include "cli.h"
#include "proxy/policy.h"
#include "util/util.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <string.h>

enum MHD_Result http_admin_reply(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(body);
	if (s == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_admin_fail(struct MHD_Connection *conn, unsigned status, const char *code,
			   const char *msg)
{
	return http_admin_reply(conn, status, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

enum MHD_Result http_admin_store_fail(struct MHD_Connection *conn, struct cr_error *err)
{
	const char *msg = err->msg ? err->msg : "failed";
	enum MHD_Result r;

	switch (err->errnum) {
	case ENOENT:
		r = http_admin_fail(conn, 404, "not_found", msg);
		break;
	case EEXIST:
	case EBUSY:
	case EKEYREVOKED:
	case ENOTUNIQ:
		r = http_admin_fail(conn, 409, "conflict", msg);
		break;
	case EINVAL:
		r = http_admin_fail(conn, 400, "validation_error", msg);
		break;
	case EAGAIN:
		r = http_admin_fail(conn, 503, "unavailable", msg);
		break;
	default:
		r = http_admin_fail(conn, 500, "internal_error", msg);
	}
	cr_error_release(err);
	return r;
}

#define reply http_admin_reply
#define fail http_admin_fail
#define store_fail_reply http_admin_store_fail

static json_t *body_object(struct request *req, struct MHD_Connection *conn, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *o = json_loadb(req->body.data ? req->body.data : "{}", req->body.len ? req->body.len : 2,
			       0, &jerr);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		*ret = fail(conn, 400, "validation_error", "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* The 'network' field: a mode alone ("allowlist": no entries) or
 * {"mode": "allowlist", "allow": ["example.com", "*.x.org:443"]}.  Either
 * replaces the whole policy; *out is its text as the store keeps it
 * (caller frees).  A refusal carries the parser's sentence, which names
 * the entry. */
static int network_from_json(json_t *v, char **out, struct cr_error *err)
{
	struct egress_policy p = EGRESS_POLICY_INIT;
	const char **entries = NULL;
	const char *mode, *key;
	json_t *allow = NULL, *x;
	size_t n = 0;
	int r;

	*out = NULL;
	if (json_is_string(v)) {
		mode = json_string_value(v);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, x) {
			if (strcmp(key, "mode") != 0 && strcmp(key, "allow") != 0)
				return cr_error_set(err, 0, "'network' takes only 'mode' and 'allow' "
							    "(found '%s')", key);
		}
		mode = json_string_value(json_object_get(v, "mode"));
		if (mode == NULL)
			return cr_error_set(err, 0, "'network.mode' is required: \"none\", "
						    "\"allowlist\" or \"open\"");
		allow = json_object_get(v, "allow");
		if (allow && !json_is_array(allow) && !json_is_null(allow))
			return cr_error_set(err, 0, "'network.allow' must be an array of strings");
		n = json_is_array(allow) ? json_array_size(allow) : 0;
	} else {
		return cr_error_set(err, 0, "'network' must be a mode (\"none\", \"allowlist\" or "
					    "\"open\") or {\"mode\": ..., \"allow\": [...]}");
	}
	if (n > 0)
		entries = xmalloc(n * sizeof(*entries));
	for (size_t i = 0; i < n; i++) {
		entries[i] = json_string_value(json_array_get(allow, i));
		if (entries[i] == NULL) {
			free(entries);
			return cr_error_set(err, 0, "'network.allow' must be an array of strings");
		}
	}
	r = egress_policy_parse(mode, entries, n, &p, err);
	free(entries);
	if (r < 0)
		return -1;
	*out = egress_policy_to_string(&p);
	egress_policy_release(&p);
	return 0;
}

/* Apply the settable fields of an environment from a JSON object. */
static int env_from_json(json_t *o, struct store_env *e, struct cr_error *err)
{
	static const char *const ints[] = { "memory_mib", "pids", "cpu_milli", "tmp_mib" };
	int64_t *dst[] = { &e->memory_mib, &e->pids, &e->cpu_milli, &e->tmp_mib };
	json_t *v;

	for (size_t i = 0; i < 4; i++) {
		v = json_object_get(o, ints[i]);
		if (v == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			return cr_error_set(err, 0, "'%s' must be a positive integer", ints[i]);
		*dst[i] = json_integer_value(v);
	}
	v = json_object_get(o, "allow_nested");
	if (v) {
		if (!json_is_boolean(v))
			return cr_error_set(err, 0, "'allow_nested' must be true or false");
		e->allow_nested = json_is_true(v);
	}
	v = json_object_get(o, "network");
	if (v) {
		char *network;
		if (network_from_json(v, &network, err) < 0)
			return -1;
		free(e->network);
		e->network = network;
	}
	return 0;
}

static enum MHD_Result environments(struct server *srv, struct MHD_Connection *conn,
				    struct request *req, const char *name, const char *method)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	enum MHD_Result ret;
	struct store_env e;
	json_t *o;

	memset(&e, 0, sizeof(e));
	if (name == NULL && strcmp(method, "GET") == 0) {
		struct store_env *v = NULL;
		size_t n = 0;
		json_t *a;
		if (store_env_list(st, &v, &n, &err) < 0)
			return store_fail_reply(conn, &err);
		a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_env_json(&v[i]));
		store_env_list_free(v, n);
		return reply(conn, 200, json_pack("{s:o}", "environments", a));
	}
	if (name == NULL && strcmp(method, "POST") == 0) {
		json_t *jn;
		if ((o = body_object(req, conn, &ret)) == NULL)
			return ret;
		jn = json_object_get(o, "name");
		store_env_defaults(&e);
		if (!json_is_string(jn)) {
			json_decref(o);
			return fail(conn, 400, "validation_error", "'name' is required and must be a string");
		}
		e.name = xstrdup(json_string_value(jn));
		if (store_check_env_name(e.name, &err) < 0 || env_from_json(o, &e, &err) < 0 ||
		    store_env_create(st, &e, &err) < 0) {
			if (err.errnum == 0)
				err.errnum = EINVAL;
			json_decref(o);
			store_env_release(&e);
			return store_fail_reply(conn, &err);
		}
		json_decref(o);
		ret = reply(conn, 201, cli_env_json(&e));
		store_env_release(&e);
		return ret;
	}
	if (name == NULL)
		return fail(conn, 404, "not_found", "no such method here: use GET or POST");
	if (store_env_get(st, name, &e, &err) < 0)
		return store_fail_reply(conn, &err);
	if (strcmp(method, "GET") == 0) {
		ret = reply(conn, 200, cli_env_json(&e));
	} else if (strcmp(method, "PATCH") == 0) {
		if ((o = body_object(req, conn, &ret)) == NULL) {
			store_env_release(&e);
			return ret;
		}
		if (env_from_json(o, &e, &err) < 0 || store_env_update(st, &e, &err) < 0) {
			if (err.errnum == 0)
				err.errnum = EINVAL;
			ret = store_fail_reply(conn, &err);
		} else {
			ret = reply(conn, 200, cli_env_json(&e));
		}
		json_decref(o);
	} else if (strcmp(method, "DELETE") == 0) {
		const char *force = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "force");
		bool f = force && strcmp(force, "true") == 0;
		if (api_thread_busy(srv, e.id, NULL)) {
			ret = fail(conn, 409, "conflict",
				   "the environment has executions running on its threads; try again when they end");
		} else if (store_env_delete(st, name, f, &err) < 0) {
			ret = store_fail_reply(conn, &err);
		} else {
			(void)store_state_remove_home(&srv->state, e.id, NULL, NULL, &err);
			cr_error_release(&err);
			ret = reply(conn, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
		}
	} else {
		ret = fail(conn, 404, "not_found", "no such method here: use GET, PATCH or DELETE");
	}
	store_env_release(&e);
	return ret;
}

static enum MHD_Result keys(struct server *srv, struct MHD_Connection *conn, struct request *req,
			    const char *rest, const char *method)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	enum MHD_Result ret;

	if (rest == NULL && strcmp(method, "GET") == 0) {
		const char *env = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "env");
		struct store_key *v = NULL;
		size_t n = 0;
		json_t *a;
		if (store_key_list(st, env, &v, &n, &err) < 0)
			return store_fail_reply(conn, &err);
		a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_key_json(&v[i]));
		store_key_list_free(v, n);
		return reply(conn, 200, json_pack("{s:o}", "keys", a));
	}
	if (rest == NULL && strcmp(method, "POST") == 0) {
		json_t *o, *j;
		const char *env, *plan, *label, *region;
		char *secret = NULL;
		struct store_key k;
		if ((o = body_object(req, conn, &ret)) == NULL)
			return ret;
		for (const char *const *f = (const char *const[]){ "env", "plan", "name", "region", NULL };
		     *f; f++) {
			json_t *v = json_object_get(o, *f);
			if (v && !json_is_string(v) && !json_is_null(v)) {
				json_decref(o);
				return fail(conn, 400, "validation_error", "'env', 'plan', 'name' and 'region' must be strings");
			}
		}
		env = json_string_value(json_object_get(o, "env"));
		plan = json_string_value(json_object_get(o, "plan"));
		label = json_string_value(json_object_get(o, "name"));
		region = json_string_value(json_object_get(o, "region"));
		if (env == NULL) {
			json_decref(o);
			return fail(conn, 400, "validation_error", "'env' is required");
		}
		memset(&k, 0, sizeof(k));
		if (store_key_create(st, env, plan ? plan : "free", label, region ? region : "local",
				     &secret, &k, &err) < 0) {
			json_decref(o);
			return store_fail_reply(conn, &err);
		}
		json_decref(o);
		j = cli_key_json(&k);
		json_object_set_new(j, "key", json_string(secret));
		sodium_memzero(secret, strlen(secret));
		free(secret);
		store_key_release(&k);
		return reply(conn, 201, j);
	}
	if (rest && strcmp(method, "POST") == 0) {
		const char *slash = strchr(rest, '/');
		char *id;
		if (slash == NULL || strcmp(slash, "/revoke") != 0)
			return fail(conn, 404, "not_found", "use POST /admin/v1/keys/{id}/revoke");
		id = xstrndup(rest, (size_t)(slash - rest));
		if (store_key_revoke(st, id, &err) < 0) {
			free(id);
			return store_fail_reply(conn, &err);
		}
		ret = reply(conn, 200, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
		free(id);
		return ret;
	}
	return fail(conn, 404, "not_found", "no such method here: use GET or POST");
}

static enum MHD_Result threads(struct server *srv, struct MHD_Connection *conn, const char *rest,
			       const char *method)
{
	struct store *st = srv->state.store;
	struct cr_error err = CR_ERROR_INIT;
	struct store_env e;
	enum MHD_Result ret;
	const char *env = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "env");

	if (env == NULL)
		return fail(conn, 400, "validation_error", "give the environment as ?env=NAME");
	memset(&e, 0, sizeof(e));
	if (store_env_get(st, env, &e, &err) < 0)
		return store_fail_reply(conn, &err);
	if (rest == NULL && strcmp(method, "GET") == 0) {
		struct store_thread *v = NULL;
		size_t n = 0;
		json_t *a;
		if (store_thread_list(st, e.id, &v, &n, &err) < 0) {
			store_env_release(&e);
			return store_fail_reply(conn, &err);
		}
		a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cli_thread_json(&v[i], e.name));
		store_thread_list_free(v, n);
		ret = reply(conn, 200, json_pack("{s:o}", "threads", a));
	} else if (rest && strcmp(method, "GET") == 0) {
		struct store_thread t;
		memset(&t, 0, sizeof(t));
		if (store_thread_get(st, e.id, rest, &t, &err) < 0)
			ret = store_fail_reply(conn, &err);
		else
			ret = reply(conn, 200, cli_thread_json(&t, e.name));
		store_thread_release(&t);
	} else if (rest && strcmp(method, "DELETE") == 0) {
		if (api_thread_busy(srv, e.id, rest))
			ret = fail(conn, 409, "conflict", "the thread is running an execution; try again when it ends");
		else if (store_thread_delete(st, e.id, rest, &err) < 0 ||
		    store_state_remove_home(&srv->state, e.id, rest, NULL, &err) < 0)
			ret = store_fail_reply(conn, &err);
		else
			ret = reply(conn, 200, json_pack("{s:s, s:b}", "thread_id", rest, "deleted", 1));
	} else {
		ret = fail(conn, 404, "not_found", "no such method here: use GET or DELETE");
	}
	store_env_release(&e);
	return ret;
}

static enum MHD_Result usage(struct server *srv, struct MHD_Connection *conn)
{
	struct cr_error err = CR_ERROR_INIT;
	const char *env = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "env");
	const char *month = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "month");
	struct store_usage *u = NULL;
	size_t n = 0;
	json_t *a;

	if (store_usage_list(srv->state.store, env, month, &u, &n, &err) < 0)
		return store_fail_reply(conn, &err);
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, cli_usage_json(&u[i]));
	store_usage_list_free(u, n);
	return reply(conn, 200, json_pack("{s:o}", "usage", a));
}

enum MHD_Result api_admin(struct server *srv, struct MHD_Connection *conn, struct request *req,
			  const char *path, const char *method);

enum MHD_Result api_admin(struct server *srv, struct MHD_Connection *conn, struct request *req,
			  const char *path, const char *method)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	struct cr_error err = CR_ERROR_INIT;
	const char *slash;
	char *head;
	const char *rest;
	enum MHD_Result ret;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 ||
	    store_admin_token_check(srv->state.store, h + 7, &err) < 0) {
		cr_error_release(&err);
		return fail(conn, 401, "unauthorized", "the admin API needs 'Authorization: Bearer <admin token>'");
	}
	if (req->too_large)
		return fail(conn, 413, "payload_too_large", "the request body is too large");
	slash = strchr(path, '/');
	head = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(path);
	rest = slash && slash[1] ? slash + 1 : NULL;
	if (strcmp(head, "environments") == 0)
		ret = environments(srv, conn, req, rest, method);
	else if (strcmp(head, "keys") == 0)
		ret = keys(srv, conn, req, rest, method);
	else if (strcmp(head, "threads") == 0)
		ret = threads(srv, conn, rest, method);
	else if (strcmp(head, "usage") == 0 && strcmp(method, "GET") == 0)
		ret = usage(srv, conn);
	else if (strcmp(head, "connectors") == 0 || strcmp(head, "audit") == 0)
		ret = api_admin_connectors(srv, conn, req, head, rest, method);
	else
		ret = fail(conn, 404, "not_found", "no such admin endpoint");
	free(head);
	return ret;
}
