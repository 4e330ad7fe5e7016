/* api.c - the Baponi-compatible API: routing, authentication, validation,
 * executions, usage, health, metrics and the admin endpoints.
 *
 * Every refusal is the flat {"error": code, "message": sentence} of
 * DESIGN.md section 3; no user mistake becomes a 500.
 */
#define _GNU_SOURCE
#include "server/api.h"
#include "server/metrics.h"
#include "cli.h"
#include "secrets/connector.h"
#include "util/redact.h"
#include "util/utf8.h"
#include "util/util.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* --- replies ------------------------------------------------------------ */

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, char *body,
				 size_t len, const char *type, const char *retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	metrics_http_response(status);
	return ret;
}

/* Send `body` (consumed) as JSON. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body,
				 const char *retry_after)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (s == NULL)
		return MHD_NO;
	return send_text(conn, status, s, strlen(s), "application/json", retry_after);
}

static json_t *error_json(const char *code, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static json_t *error_json(const char *code, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);
	size_t n;
	char *clean = utf8_sanitize(msg, strlen(msg), &n);
	json_t *o = json_pack("{s:s, s:s#}", "error", code, "message", clean, n);
	free(msg);
	free(clean);
	return o;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
				  const char *retry_after, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
				  const char *retry_after, const char *fmt, ...)
{
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	o = error_json(code, fmt, ap);
	va_end(ap);
	return send_json(conn, status, o, retry_after);
}

static json_t *json_str_or_null(const char *s)
{
	return s ? cli_json_text(s, strlen(s)) : json_null();
}

/* --- helpers ------------------------------------------------------------ */

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Seconds until the first second of next month (UTC): Retry-After of
 * quota_exceeded. */
static long seconds_to_next_month(void)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mon += 1;
	return (long)(timegm(&tm) - now);
}

struct auth {
	struct store_key key;
	struct store_plan plan;
	struct store_env env;
};

static void auth_release(struct auth *a)
{
	store_key_release(&a->key);
	store_plan_release(&a->plan);
	store_env_release(&a->env);
}

/* Authenticate the bearer key.  Returns 0, or sends a 401 and returns -1. */
static int authenticate(struct server *srv, struct MHD_Connection *conn, struct auth *a,
			enum MHD_Result *ret)
{
	const char *h = header(conn, "Authorization");
	struct cr_error err = CR_ERROR_INIT;

	memset(a, 0, sizeof(*a));
	if (h == NULL) {
		*ret = send_error(conn, 401, "unauthorized", NULL,
				  "missing Authorization header: send 'Authorization: Bearer <API key>'");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
		*ret = send_error(conn, 401, "unauthorized", NULL,
				  "the Authorization header must be 'Bearer <API key>'");
		return -1;
	}
	if (store_key_authenticate(srv->state.store, h + 7, &a->key, &err) < 0) {
		if (err.errnum == EKEYREVOKED)
			*ret = send_error(conn, 401, "unauthorized", NULL, "this API key was revoked");
		else if (err.errnum == ENOENT || err.errnum == EINVAL)
			*ret = send_error(conn, 401, "unauthorized", NULL, "invalid API key");
		else
			*ret = send_error(conn, 500, "internal_error", NULL, "cannot check the API key: %s",
					  err.msg);
		cr_error_release(&err);
		auth_release(a);
		return -1;
	}
	if (store_plan_get(srv->state.store, a->key.plan, &a->plan, &err) < 0 ||
	    store_env_get_by_id(srv->state.store, a->key.env_id, &a->env, &err) < 0) {
		*ret = send_error(conn, 500, "internal_error", NULL, "%s", err.msg);
		cr_error_release(&err);
		auth_release(a);
		return -1;
	}
	return 0;
}

/* --- thread and key bookkeeping (under srv->lock) ----------------------- */

static bool thread_busy_locked(struct server *srv, int64_t env_id, const char *thread_id)
{
	for (struct busy_thread *b = srv->busy; b; b = b->next)
		if (b->env_id == env_id && strcmp(b->thread_id, thread_id) == 0)
			return true;
	return false;
}

static void thread_release(struct server *srv, int64_t env_id, const char *thread_id)
{
	pthread_mutex_lock(&srv->lock);
	for (struct busy_thread **p = &srv->busy; *p; p = &(*p)->next) {
		if ((*p)->env_id == env_id && strcmp((*p)->thread_id, thread_id) == 0) {
			struct busy_thread *b = *p;
			*p = b->next;
			free(b->thread_id);
			free(b);
			break;
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

static struct running_key *key_slot_locked(struct server *srv, int64_t key_id)
{
	for (struct running_key *k = srv->keys; k; k = k->next)
		if (k->key_id == key_id)
			return k;
	return NULL;
}

static void key_release(struct server *srv, int64_t key_id)
{
	pthread_mutex_lock(&srv->lock);
	for (struct running_key **p = &srv->keys; *p; p = &(*p)->next) {
		if ((*p)->key_id == key_id) {
			if (--(*p)->count == 0) {
				struct running_key *k = *p;
				*p = k->next;
				free(k);
			}
			break;
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

/* --- POST /v1/sandbox/execute ------------------------------------------- */

static void job_free(struct job *job)
{
	if (job == NULL)
		return;
	sandbox_config_release(&job->cfg);
	if (job->egress)
		egress_sandbox_close(job->egress, NULL);
	for (size_t i = 0; i < job->nbrokers; i++) {
		free(job->brokers[i].connector);
		free(job->brokers[i].upstream);
		if (job->brokers[i].header) {
			sodium_memzero(job->brokers[i].header, strlen(job->brokers[i].header));
			free(job->brokers[i].header);
		}
	}
	free(job->brokers);
	redact_set_free(job->redact);
	free(job->connector_ids);
	free(job->thread_id);
	free(job->thread_home);
	free(job->language);
	free(job->reply);
	free(job);
}

/* Validate the body into `job->cfg` and friends.  Returns 0, or sends the
 * refusal and returns -1. */
static int parse_execute(struct MHD_Connection *conn, struct request *req, const struct auth *a,
			 struct job *job, enum MHD_Result *ret)
{
	json_error_t jerr;
	json_t *body, *v;
	const char *lang = "python";
	/* The default is 30 s, or the plan's cap when that is lower. */
	double timeout_s = a->plan.max_timeout_s < 30 ? a->plan.max_timeout_s : 30;
	struct cr_error err = CR_ERROR_INIT;
	int rc = -1;

	body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
	if (body == NULL) {
		*ret = send_error(conn, 400, "validation_error", NULL,
				  "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
				  jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(body)) {
		*ret = send_error(conn, 400, "validation_error", NULL, "the body must be a JSON object");
		goto out;
	}

	v = json_object_get(body, "code");
	if (v == NULL || json_is_null(v)) {
		*ret = send_error(conn, 400, "validation_error", NULL, "'code' is required");
		goto out;
	}
	if (!json_is_string(v)) {
		*ret = send_error(conn, 400, "validation_error", NULL, "'code' must be a string");
		goto out;
	}
	if (json_string_length(v) == 0) {
		*ret = send_error(conn, 400, "validation_error", NULL, "'code' is empty");
		goto out;
	}
	if (json_string_length(v) > API_MAX_CODE) {
		*ret = send_error(conn, 413, "payload_too_large", NULL,
				  "'code' is %zu bytes, more than the limit of %u (1 MiB)",
				  json_string_length(v), API_MAX_CODE);
		goto out;
	}
	job->cfg.code = xstrndup(json_string_value(v), json_string_length(v));
	job->cfg.code_len = json_string_length(v);

	v = json_object_get(body, "language");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			*ret = send_error(conn, 400, "validation_error", NULL, "'language' must be a string");
			goto out;
		}
		lang = json_string_value(v);
	}
	if (sandbox_parse_language(lang, &job->cfg.language, &err) < 0) {
		*ret = send_error(conn, 400, "validation_error", NULL, "%s", err.msg);
		goto out;
	}
	job->language = xstrdup(lang);

	v = json_object_get(body, "timeout");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v)) {
			*ret = send_error(conn, 400, "validation_error", NULL,
					  "'timeout' must be a number of seconds");
			goto out;
		}
		timeout_s = json_number_value(v);
	}
	if (!(timeout_s > 0) || !isfinite(timeout_s)) {
		*ret = send_error(conn, 400, "validation_error", NULL,
				  "'timeout' must be more than 0 seconds");
		goto out;
	}
	if (timeout_s > a->plan.max_timeout_s) {
		*ret = send_error(conn, 400, "validation_error", NULL,
				  "'timeout' of %g s is above the %d s cap of the '%s' plan", timeout_s,
				  a->plan.max_timeout_s, a->plan.name);
		goto out;
	}
	job->cfg.timeout_ms = (uint32_t)ceil(timeout_s * 1000.0);
	if (job->cfg.timeout_ms == 0)
		job->cfg.timeout_ms = 1;

	v = json_object_get(body, "thread_id");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			*ret = send_error(conn, 400, "validation_error", NULL, "'thread_id' must be a string");
			goto out;
		}
		if (store_check_thread_id(json_string_value(v), &err) < 0) {
			*ret = send_error(conn, 400, "validation_error", NULL, "%s", err.msg);
			goto out;
		}
		job->thread_id = xstrdup(json_string_value(v));
	}

	v = json_object_get(body, "env_vars");
	if (v && !json_is_null(v)) {
		const char *name;
		json_t *val;
		size_t n = 0;
		if (!json_is_object(v)) {
			*ret = send_error(conn, 400, "validation_error", NULL,
					  "'env_vars' must be an object of strings");
			goto out;
		}
		job->cfg.env = xzalloc(sizeof(char *) * (json_object_size(v) + 1));
		json_object_foreach(v, name, val) {
			char *assignment;
			if (!json_is_string(val)) {
				*ret = send_error(conn, 400, "validation_error", NULL,
						  "'env_vars.%s' must be a string", name);
				goto out;
			}
			assignment = xasprintf("%s=%s", name, json_string_value(val));
			job->cfg.env[n++] = assignment;
			if (strlen(name) != strcspn(name, "=") ||
			    strlen(json_string_value(val)) != json_string_length(val) ||
			    sandbox_check_env_assignment(assignment, &err) < 0) {
				if (!cr_error_isset(&err))
					cr_error_set(&err, 0, "environment variable '%s' is not valid", name);
				*ret = send_error(conn, 400, "validation_error", NULL, "'env_vars': %s", err.msg);
				goto out;
			}
		}
	}
	rc = 0;
out:
	cr_error_release(&err);
	json_decref(body);
	return rc;
}

/* Add the environment's connectors to the job (DESIGN.md 5, inject
 * mode): their variables after the request's, which may not name any of
 * them; their files in the sandbox's /etc; their secrets to the scrubber.
 * Returns 0, or sends the refusal and returns -1. */
static int inject_connectors(struct server *srv, struct MHD_Connection *conn,
			     const struct auth *a, struct job *job, enum MHD_Result *ret)
{
	struct connector_injection inj;
	struct cr_error err = CR_ERROR_INIT;
	size_t nreq = 0;
	int rc = -1;

	memset(&inj, 0, sizeof(inj));
	if (connector_injection_for_env(&srv->state, a->env.id, &inj, &err) < 0) {
		srv_log(srv, 0, "environment '%s': connectors: %s", a->env.name, err.msg);
		*ret = send_error(conn, 500, "internal_error", NULL,
				  "the environment's connectors cannot be used: %s", err.msg);
		cr_error_release(&err);
		return -1;
	}
	if (inj.nenv == 0 && inj.nfiles == 0 && inj.nbrokers == 0) {
		connector_injection_release(&inj);
		return 0;
	}
	for (char **e = job->cfg.env; e && *e; e++)
		nreq++;
	for (size_t i = 0; i < nreq; i++) {
		const char *r = job->cfg.env[i];
		size_t n = strcspn(r, "=");
		for (size_t k = 0; k < inj.nenv; k++) {
			if (strncmp(inj.env[k], r, n) == 0 && inj.env[k][n] == '=') {
				*ret = send_error(conn, 400, "validation_error", NULL,
						  "'env_vars': '%.*s' is set by a connector of this environment and cannot be overridden",
						  (int)n, r);
				goto out;
			}
		}
	}
	job->cfg.env = xrealloc(job->cfg.env, sizeof(char *) * (nreq + inj.nenv + 1));
	for (size_t k = 0; k < inj.nenv; k++)
		job->cfg.env[nreq + k] = xstrdup(inj.env[k]);
	job->cfg.env[nreq + inj.nenv] = NULL;
	if (inj.nfiles) {
		job->cfg.etc_files = xzalloc(sizeof(*job->cfg.etc_files) * inj.nfiles);
		for (size_t k = 0; k < inj.nfiles; k++) {
			job->cfg.etc_files[k].name = xstrdup(inj.files[k].path_in_etc);
			job->cfg.etc_files[k].content = xstrdup(inj.files[k].content);
		}
		job->cfg.n_etc_files = inj.nfiles;
	}
	job->redact = redact_set_new();
	for (size_t k = 0; k < inj.nscrub; k++) {
		/* A secret too short to scrub must not be injected unscrubbed. */
		if (redact_set_add(job->redact, inj.scrub[k].value, strlen(inj.scrub[k].value),
				   inj.scrub[k].label) != 1) {
			*ret = send_error(conn, 500, "internal_error", NULL,
					  "connector '%s' holds a value too short to scrub from output; rotate it",
					  inj.scrub[k].label);
			goto out;
		}
	}
	job->cfg.redact = job->redact;
	job->brokers = inj.brokers;
	job->nbrokers = inj.nbrokers;
	inj.brokers = NULL;
	inj.nbrokers = 0;
	job->connector_ids = xzalloc(sizeof(int64_t) * (inj.nconnectors + 1));
	memcpy(job->connector_ids, inj.connector_ids, sizeof(int64_t) * inj.nconnectors);
	job->nconnectors = inj.nconnectors;
	rc = 0;
out:
	connector_injection_release(&inj);
	return rc;
}

/* The variables that point programs at the proxy. */
static const char *const proxy_vars[] = { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
					  "https_proxy", "NO_PROXY", "no_proxy" };

static void env_append(struct sandbox_config *cfg, const char *assignment)
{
	size_t n = 0;
	while (cfg->env && cfg->env[n])
		n++;
	cfg->env = xrealloc(cfg->env, sizeof(char *) * (n + 2));
	cfg->env[n] = xstrdup(assignment);
	cfg->env[n + 1] = NULL;
}

/* The execution's network (DESIGN.md 5): with a policy other than `none`,
 * the proxy on 127.0.0.1:3128 and the variables that name it; for each
 * connector in broker mode, its endpoint.  0, or -1 after a refusal. */
static int setup_egress(struct server *srv, struct MHD_Connection *conn, const struct auth *a,
			struct job *job, enum MHD_Result *ret)
{
	struct egress_policy policy = EGRESS_POLICY_INIT;
	struct egress_broker_target targets[EGRESS_PORT_COUNT];
	struct cr_error err = CR_ERROR_INIT;
	bool proxy;

	if (egress_policy_parse_string(a->env.network, &policy, &err) < 0) {
		srv_log(srv, 0, "environment '%s': network: %s", a->env.name, err.msg);
		*ret = send_error(conn, 500, "internal_error", NULL,
				  "the environment's network policy cannot be used: %s", err.msg);
		cr_error_release(&err);
		return -1;
	}
	proxy = policy.mode != EGRESS_NONE;
	if (!proxy && job->nbrokers == 0) {
		egress_policy_release(&policy);
		return 0;
	}
	if (proxy) {
		for (char **e = job->cfg.env; e && *e; e++) {
			size_t n = strcspn(*e, "=");
			for (size_t k = 0; k < ARRAY_SIZE(proxy_vars); k++) {
				if (strlen(proxy_vars[k]) == n && strncmp(*e, proxy_vars[k], n) == 0) {
					*ret = send_error(conn, 400, "validation_error", NULL,
							  "'env_vars': '%s' is set by corral to its egress proxy in environment '%s' (network %s) and cannot be overridden",
							  proxy_vars[k], a->env.name,
							  egress_mode_name(policy.mode));
					egress_policy_release(&policy);
					return -1;
				}
			}
		}
	}
	memset(targets, 0, sizeof(targets));
	job->cfg.n_listen = 0;
	if (proxy) {
		job->listen_kinds[job->cfg.n_listen] = EGRESS_PORT_PROXY;
		job->cfg.listen_ports[job->cfg.n_listen++] = EGRESS_PROXY_PORT;
		for (size_t k = 0; k < ARRAY_SIZE(proxy_vars); k++) {
			char *asg = strcasecmp(proxy_vars[k], "no_proxy") == 0
					    ? xasprintf("%s=localhost,127.0.0.1", proxy_vars[k])
					    : xasprintf("%s=http://127.0.0.1:%u", proxy_vars[k],
							EGRESS_PROXY_PORT);
			env_append(&job->cfg, asg);
			free(asg);
		}
	}
	for (size_t i = 0; i < job->nbrokers; i++) {
		struct connector_broker *b = &job->brokers[i];
		enum egress_port_kind kind = b->kind == CONNECTOR_BROKER_ANTHROPIC
						     ? EGRESS_PORT_ANTHROPIC : EGRESS_PORT_GITHUB;
		/* Two of a kind cannot be attached to one environment (their
		 * variables or gitconfigs clash); should it happen, the first
		 * (by name) serves. */
		if (targets[kind].upstream)
			continue;
		targets[kind].connector = b->connector;
		targets[kind].upstream = b->upstream;
		targets[kind].header = b->header;
		b->connector = b->upstream = b->header = NULL;
		job->listen_kinds[job->cfg.n_listen] = kind;
		job->cfg.listen_ports[job->cfg.n_listen++] = egress_port_number(kind);
	}
	job->egress = egress_sandbox_new(srv->egress, job->trace_id, &policy, targets);
	return 0;
}

void api_job_listening(struct server *srv, struct job *job, const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct cr_error err = CR_ERROR_INIT;
		if (job->egress == NULL || i >= job->cfg.n_listen) {
			close(fds[i]);
			continue;
		}
		if (egress_sandbox_listen(job->egress, job->listen_kinds[i], fds[i], &err) < 0) {
			srv_log(srv, 0, "%s: %s", job->trace_id, err.msg);
			cr_error_release(&err);
		}
	}
}

/* The report, in the result and the audit. */
static json_t *network_json(struct server *srv, struct job *job)
{
	struct egress_report r;
	json_t *o = json_object(), *allowed = json_array(), *denied = json_array();
	struct cr_error err = CR_ERROR_INIT;

	json_object_set_new(o, "allowed", allowed);
	json_object_set_new(o, "denied", denied);
	if (job->egress == NULL)
		return o;
	egress_sandbox_close(job->egress, &r);
	job->egress = NULL;
	for (size_t i = 0; i < r.nallowed; i++)
		json_array_append_new(allowed, json_string(r.allowed[i]));
	for (size_t i = 0; i < r.ndenied; i++) {
		json_array_append_new(denied, json_string(r.denied[i].target));
		if (store_egress_denial_record(srv->state.store, job->trace_id, r.denied[i].target,
					       r.denied[i].code, r.denied[i].reason, &err) < 0) {
			srv_log(srv, 0, "%s: audit: %s", job->trace_id, err.msg);
			cr_error_release(&err);
		}
	}
	egress_report_release(&r);
	return o;
}

/* Give back what execute() reserved for a job that will not run: its
 * thread, its key's slot, its place among open and suspended jobs. */
static void unreserve(struct server *srv, struct job *job)
{
	if (job->thread_id)
		thread_release(srv, job->env_id, job->thread_id);
	key_release(srv, job->key_id);
	pthread_mutex_lock(&srv->lock);
	srv->open_jobs--;
	srv->suspended--;
	pthread_mutex_unlock(&srv->lock);
}

static enum MHD_Result execute(struct server *srv, struct MHD_Connection *conn, struct request *req)
{
	struct auth a;
	enum MHD_Result ret;
	struct job *job;
	struct cr_error err = CR_ERROR_INIT;
	struct store_exec rec;
	const char *accept, *prefer;
	int64_t credits = 0;
	unsigned char rnd[16];

	if (__atomic_load_n(&srv->draining, __ATOMIC_SEQ_CST))
		return send_error(conn, 503, "unavailable", "5",
				  "the server is shutting down and takes no new executions");
	if (authenticate(srv, conn, &a, &ret) < 0)
		return ret;
	if (req->too_large) {
		ret = send_error(conn, 413, "payload_too_large", NULL,
				 "the request body is larger than %u bytes", API_MAX_BODY);
		goto out_auth;
	}
	accept = header(conn, "Accept");
	prefer = header(conn, "Prefer");
	if (accept && strstr(accept, "application/x-ndjson")) {
		ret = send_error(conn, 400, "validation_error", NULL,
				 "streaming delivery (Accept: application/x-ndjson) is not available on this server yet; use inline delivery");
		goto out_auth;
	}
	if (prefer && strstr(prefer, "respond-async")) {
		ret = send_error(conn, 400, "validation_error", NULL,
				 "async delivery (Prefer: respond-async) is not available on this server yet; use inline delivery");
		goto out_auth;
	}

	job = xzalloc(sizeof(*job));
	job->srv = srv;
	job->conn = conn;
	sandbox_config_init(&job->cfg);
	if (parse_execute(conn, req, &a, job, &ret) < 0) {
		job_free(job);
		goto out_auth;
	}

	if (inject_connectors(srv, conn, &a, job, &ret) < 0)
		goto out_job;

	/* Quota, concurrency and the thread, in that order. */
	if (a.plan.monthly_credits >= 0) {
		if (store_usage_credits(srv->state.store, a.key.id, NULL, &credits, &err) < 0) {
			ret = send_error(conn, 500, "internal_error", NULL, "%s", err.msg);
			goto out_job;
		}
		if (credits >= a.plan.monthly_credits) {
			char ra[32];
			snprintf(ra, sizeof(ra), "%ld", seconds_to_next_month());
			ret = send_error(conn, 429, "quota_exceeded", ra,
					 "this key has used all %lld credits of the '%s' plan this month",
					 (long long)a.plan.monthly_credits, a.plan.name);
			goto out_job;
		}
	}
	pthread_mutex_lock(&srv->lock);
	{
		struct running_key *k = key_slot_locked(srv, a.key.id);
		/* Checked again under the lock the main loop decides to exit
		 * under, so no execution slips in after the drain has begun. */
		if (srv->draining) {
			pthread_mutex_unlock(&srv->lock);
			ret = send_error(conn, 503, "unavailable", "5",
					 "the server is shutting down and takes no new executions");
			goto out_job;
		}
		if (a.plan.max_concurrent > 0 && k && k->count >= (unsigned)a.plan.max_concurrent) {
			pthread_mutex_unlock(&srv->lock);
			ret = send_error(conn, 429, "rate_limited", "1",
					 "this key already runs %u executions, the most the '%s' plan allows at once",
					 k->count, a.plan.name);
			goto out_job;
		}
		if (job->thread_id && thread_busy_locked(srv, a.env.id, job->thread_id)) {
			pthread_mutex_unlock(&srv->lock);
			ret = send_error(conn, 409, "conflict", NULL,
					 "thread '%s' is busy with another execution", job->thread_id);
			goto out_job;
		}
		if (k == NULL) {
			k = xzalloc(sizeof(*k));
			k->key_id = a.key.id;
			k->next = srv->keys;
			srv->keys = k;
		}
		k->count++;
		if (job->thread_id) {
			struct busy_thread *b = xzalloc(sizeof(*b));
			b->env_id = a.env.id;
			b->thread_id = xstrdup(job->thread_id);
			b->next = srv->busy;
			srv->busy = b;
			job->busy_registered = true;
		}
		srv->open_jobs++;
		srv->suspended++;
	}
	pthread_mutex_unlock(&srv->lock);

	job->key_id = a.key.id;
	job->env_id = a.env.id;
	job->cfg.memory_bytes = (uint64_t)a.env.memory_mib << 20;
	job->cfg.pids = (uint32_t)a.env.pids;
	job->cfg.cpu_milli = (uint32_t)a.env.cpu_milli;
	job->cfg.tmp_size = (uint64_t)a.env.tmp_mib << 20;
	job->cfg.allow_nested = a.env.allow_nested;
	if (job->thread_id) {
		job->thread_home = store_state_thread_home(&srv->state, a.env.id, job->thread_id, &err);
		job->cfg.thread_dir = job->thread_home ? xstrdup(job->thread_home) : NULL;
	}
	randombytes_buf(rnd, sizeof(rnd));
	memcpy(job->trace_id, "trc_", 4);
	sodium_bin2hex(job->trace_id + 4, sizeof(job->trace_id) - 4, rnd, sizeof(rnd));
	if (setup_egress(srv, conn, &a, job, &ret) < 0) {
		unreserve(srv, job);
		goto out_job;
	}

	memset(&rec, 0, sizeof(rec));
	rec.trace_id = job->trace_id;
	rec.key_id = job->key_id;
	rec.env_id = job->env_id;
	rec.thread_id = job->thread_id;
	rec.language = job->language;
	rec.delivery_mode = "inline";
	rec.timeout_ms = job->cfg.timeout_ms;
	if (store_exec_insert(srv->state.store, &rec, &err) < 0) {
		free(rec.created_at);
		free(rec.status);
		srv_log(srv, 0, "cannot record execution: %s", err.msg);
		if (err.errnum == EAGAIN)
			ret = send_error(conn, 503, "unavailable", "1",
					 "the store is busy; try again: %s", err.msg);
		else
			ret = send_error(conn, 500, "internal_error", NULL,
					 "cannot record the execution: %s", err.msg);
		unreserve(srv, job);
		goto out_job;
	}
	/* The store filled these in; the rest of rec is borrowed. */
	free(rec.created_at);
	free(rec.status);
	for (size_t k = 0; k < job->nconnectors; k++) {
		if (connector_record_use(srv->state.store, job->trace_id, job->connector_ids[k], &err) < 0) {
			srv_log(srv, 0, "%s: audit: %s", job->trace_id, err.msg);
			cr_error_release(&err);
		}
	}

	job->start_ns = now_ns();
	req->job = job;
	MHD_suspend_connection(conn);
	server_submit(srv, job);
	ret = MHD_YES;
	goto out_auth;

out_job:
	job_free(job);
out_auth:
	cr_error_release(&err);
	auth_release(&a);
	return ret;
}

/* Size of a thread's home on disk (blocks, not apparent sizes). */
/* The walk runs on the sandbox thread, so it is bounded: past
 * DU_MAX_ENTRIES the size is left as last recorded (-1) rather than
 * stalling every other execution behind a home of a million files.
 * NEEDSWORK: a per-thread file system or quota would give it for free. */
#define DU_MAX_ENTRIES 20000
static int64_t du_total;
static long du_entries;
static int du_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	du_total += (int64_t)st->st_blocks * 512;
	return ++du_entries > DU_MAX_ENTRIES ? 1 : 0;
}

static int64_t home_bytes(const char *dir)
{
	int r;

	du_total = 0;
	du_entries = 0;
	if (dir == NULL)
		return -1;
	r = nftw(dir, du_add, 16, FTW_PHYS | FTW_MOUNT);
	return r == 0 ? du_total : -1;
}

static void job_done(struct server *srv, struct job *job)
{
	if (job->busy_registered)
		thread_release(srv, job->env_id, job->thread_id);
	key_release(srv, job->key_id);
	job->done = true;
}

void api_job_finished(struct server *srv, struct job *job, const struct sandbox_result *res)
{
	struct store_exec rec;
	struct cr_error err = CR_ERROR_INIT;
	const char *status = sandbox_status_name(res->status);
	int64_t credits = (int64_t)((res->duration_ms + 999) / 1000);
	json_t *o, *net = network_json(srv, job);

	if (credits < 1)
		credits = 1;
	if (srv->killing && res->status == SANDBOX_CANCELLED)
		credits = 0; /* our shutdown, not the caller's doing */
	memset(&rec, 0, sizeof(rec));
	rec.trace_id = job->trace_id;
	rec.status = (char *)status;
	rec.exit_code = res->exit_code;
	rec.signal = res->signal;
	/* The record keeps at most API_MAX_STORED_OUTPUT per stream; the
	 * inline reply carries everything up to the output limit. */
	rec.stdout_text = utf8_sanitize(res->output[0].data,
					res->output[0].len < API_MAX_STORED_OUTPUT ? res->output[0].len : API_MAX_STORED_OUTPUT, NULL);
	rec.stderr_text = utf8_sanitize(res->output[1].data,
					res->output[1].len < API_MAX_STORED_OUTPUT ? res->output[1].len : API_MAX_STORED_OUTPUT, NULL);
	rec.error = res->error;
	rec.duration_ms = (int64_t)res->duration_ms;
	rec.cpu_ms = (int64_t)res->cpu_ms;
	rec.peak_memory = (int64_t)res->peak_memory;
	rec.credits = credits;
	rec.network = json_dumps(net, JSON_COMPACT);
	if (store_exec_finish(srv->state.store, &rec, &err) < 0) {
		srv_log(srv, 0, "%s: cannot record the result: %s", job->trace_id, err.msg);
		cr_error_release(&err);
	}
	if (job->thread_id &&
	    store_thread_touch(srv->state.store, job->env_id, job->thread_id,
			       home_bytes(job->thread_home), &err) < 0) {
		srv_log(srv, 0, "%s: cannot record thread '%s': %s", job->trace_id, job->thread_id,
			err.msg);
		cr_error_release(&err);
	}
	metrics_execution_finished(status, res->duration_ms, credits);
	srv_log(srv, 2, "%s: %s exit %d in %llu ms", job->trace_id, status, res->exit_code,
		(unsigned long long)res->duration_ms);

	o = json_object();
	json_object_set_new(o, "success", json_boolean(res->status == SANDBOX_SUCCESS));
	json_object_set_new(o, "stdout", cli_json_text(res->output[0].data, res->output[0].len));
	json_object_set_new(o, "stderr", cli_json_text(res->output[1].data, res->output[1].len));
	json_object_set_new(o, "exit_code", res->exit_code >= 0 ? json_integer(res->exit_code) : json_null());
	json_object_set_new(o, "error", json_str_or_null(res->error));
	json_object_set_new(o, "trace_id", json_string(job->trace_id));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)res->duration_ms));
	json_object_set_new(o, "credits_used", json_integer(credits));
	json_object_set_new(o, "truncated", json_boolean(res->truncated[0] || res->truncated[1]));
	json_object_set_new(o, "network", net);
	job->reply = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	job->http_status = 200;
	free(rec.stdout_text);
	free(rec.stderr_text);
	free(rec.completed_at);
	free(rec.network);
	job_done(srv, job);
}

/* Record a job that never ran as ended with `status` and `why`, and
 * reply `http` with the error `code` (and the trace id when `traced`). */
static void end_unstarted(struct server *srv, struct job *job, const char *status, unsigned http,
			  const char *code, const char *why, bool traced)
{
	struct store_exec rec;
	struct cr_error err = CR_ERROR_INIT;
	json_t *o;

	memset(&rec, 0, sizeof(rec));
	rec.trace_id = job->trace_id;
	rec.status = (char *)status;
	rec.exit_code = -1;
	rec.error = (char *)why;
	if (store_exec_finish(srv->state.store, &rec, &err) < 0)
		cr_error_release(&err);
	free(rec.completed_at);
	o = json_pack("{s:s, s:s}", "error", code, "message", why);
	if (traced)
		json_object_set_new(o, "trace_id", json_string(job->trace_id));
	job->reply = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	job->http_status = http;
	job_done(srv, job);
}

void api_job_failed_to_start(struct server *srv, struct job *job, const char *why)
{
	end_unstarted(srv, job, "failed", 500, "internal_error", why, true);
}

void api_cancel_all(struct server *srv)
{
	sandbox_runtime_cancel_all(srv->rt);
}

void api_job_refused(struct server *srv, struct job *job)
{
	end_unstarted(srv, job, "cancelled", 503, "unavailable",
		      "the server shut down before this execution started", false);
}

bool api_thread_busy(struct server *srv, int64_t env_id, const char *thread_id)
{
	bool busy = false;

	pthread_mutex_lock(&srv->lock);
	if (thread_id) {
		busy = thread_busy_locked(srv, env_id, thread_id);
	} else {
		for (struct busy_thread *b = srv->busy; b; b = b->next)
			busy |= b->env_id == env_id;
	}
	pthread_mutex_unlock(&srv->lock);
	return busy;
}

/* --- GET /v1/executions/{id}, GET /v1/usage --------------------------- */

static enum MHD_Result get_execution(struct server *srv, struct MHD_Connection *conn,
				     const char *trace_id)
{
	struct auth a;
	enum MHD_Result ret;
	struct store_exec e;
	struct cr_error err = CR_ERROR_INIT;
	json_t *o;
	bool running;

	if (authenticate(srv, conn, &a, &ret) < 0)
		return ret;
	memset(&e, 0, sizeof(e));
	if (store_exec_get(srv->state.store, trace_id, &e, &err) < 0 || e.env_id != a.env.id) {
		if (cr_error_isset(&err) && err.errnum != ENOENT) {
			ret = send_error(conn, 500, "internal_error", NULL, "%s", err.msg);
		} else {
			ret = send_error(conn, 404, "not_found", NULL, "no execution '%s' in this environment",
					 trace_id);
		}
		goto out;
	}
	running = strcmp(e.status, "running") == 0;
	o = json_object();
	json_object_set_new(o, "trace_id", json_string(e.trace_id));
	json_object_set_new(o, "status", json_string(e.status));
	json_object_set_new(o, "exit_code", !running && e.exit_code >= 0 ? json_integer(e.exit_code) : json_null());
	json_object_set_new(o, "stdout", running ? json_null() : json_str_or_null(e.stdout_text));
	json_object_set_new(o, "stderr", running ? json_null() : json_str_or_null(e.stderr_text));
	json_object_set_new(o, "error", json_str_or_null(e.error));
	json_object_set_new(o, "duration_ms", running ? json_null() : json_integer(e.duration_ms));
	json_object_set_new(o, "delivery_mode", json_str_or_null(e.delivery_mode));
	json_object_set_new(o, "created_at", json_str_or_null(e.created_at));
	json_object_set_new(o, "completed_at", json_str_or_null(e.completed_at));
	{
		json_t *net = e.network ? json_loads(e.network, 0, NULL) : NULL;
		json_object_set_new(o, "network", net ? net : json_null());
	}
	json_object_set_new(o, "credits_used", json_integer(e.credits));
	ret = send_json(conn, 200, o, NULL);
out:
	store_exec_release(&e);
	cr_error_release(&err);
	auth_release(&a);
	return ret;
}

static enum MHD_Result get_usage(struct server *srv, struct MHD_Connection *conn)
{
	struct auth a;
	enum MHD_Result ret;
	struct cr_error err = CR_ERROR_INIT;
	struct store_usage *u = NULL;
	size_t n = 0;
	int64_t credits = 0, executions = 0;
	char *now = store_now_iso();
	char month[8];
	json_t *o;

	store_month_of(now, month);
	free(now);
	if (authenticate(srv, conn, &a, &ret) < 0)
		return ret;
	if (store_usage_list(srv->state.store, a.env.name, month, &u, &n, &err) < 0) {
		ret = send_error(conn, 500, "internal_error", NULL, "%s", err.msg);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (u[i].key_id == a.key.id) {
			credits = u[i].credits;
			executions = u[i].executions;
		}
	}
	o = json_object();
	json_object_set_new(o, "plan", json_string(a.plan.name));
	json_object_set_new(o, "month", json_string(month));
	json_object_set_new(o, "credits_used", json_integer(credits));
	json_object_set_new(o, "monthly_credits",
			    a.plan.monthly_credits >= 0 ? json_integer(a.plan.monthly_credits) : json_null());
	json_object_set_new(o, "credits_remaining",
			    a.plan.monthly_credits >= 0
				    ? json_integer(a.plan.monthly_credits > credits ? a.plan.monthly_credits - credits : 0)
				    : json_null());
	json_object_set_new(o, "executions", json_integer(executions));
	ret = send_json(conn, 200, o, NULL);
out:
	store_usage_list_free(u, n);
	cr_error_release(&err);
	auth_release(&a);
	return ret;
}

/* --- routing ------------------------------------------------------------ */

enum MHD_Result api_begin(struct server *srv, struct MHD_Connection *conn, struct request *req,
			  const char *url, const char *method)
{
	const char *cl = header(conn, "Content-Length");
	const char *auth = header(conn, "Authorization");
	uint64_t len = cl ? strtoull(cl, NULL, 10) : 0;

	(void)method;
	/* No body is buffered for a request without credentials: it is
	 * refused on its headers, before anything is read. */
	if ((strncmp(url, "/v1/", 4) == 0 || strncmp(url, "/admin/v1/", 10) == 0) &&
	    (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0'))
		return send_error(conn, 401, "unauthorized", NULL,
				  "missing or malformed Authorization header: send 'Authorization: Bearer <key>'");
	/* An oversized body is read and dropped, then refused with 413:
	 * answering before the client has sent it would reach most clients
	 * as a broken pipe instead of the error.  Past API_DISCARD_MAX the
	 * connection is simply closed. */
	if (len > API_MAX_BODY)
		req->too_large = true;
	if (len > API_DISCARD_MAX)
		return MHD_NO;
	(void)srv;
	return MHD_YES;
}

enum MHD_Result api_admin(struct server *srv, struct MHD_Connection *conn, struct request *req,
			  const char *url, const char *method);

enum MHD_Result api_handle(struct server *srv, struct MHD_Connection *conn, struct request *req,
			   const char *url, const char *method)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

	if (req->job) {
		/* Resumed: the sandbox thread has finished with the job. */
		struct job *job = req->job;
		char *reply = steal_pointer(&job->reply);
		if (reply == NULL)
			return send_error(conn, 500, "internal_error", NULL, "the execution left no result");
		return send_text(conn, job->http_status, reply, strlen(reply), "application/json", NULL);
	}

	if (strcmp(url, "/healthz") == 0 && get) {
		if (__atomic_load_n(&srv->draining, __ATOMIC_SEQ_CST))
			return send_error(conn, 503, "unavailable", NULL, "the server is shutting down");
		return send_json(conn, 200, json_pack("{s:s}", "status", "ok"), NULL);
	}
	if (strcmp(url, "/metrics") == 0 && get) {
		struct buf b = BUF_INIT;
		size_t len;
		char *s;
		metrics_render(&b);
		s = buf_detach(&b, &len);
		return send_text(conn, 200, s, len, "text/plain; version=0.0.4", NULL);
	}
	if (strcmp(url, "/v1/sandbox/execute") == 0) {
		if (!post)
			return send_error(conn, 404, "not_found", NULL,
					  "no such endpoint: %s %s (use POST)", method, url);
		return execute(srv, conn, req);
	}
	if (strncmp(url, "/v1/executions/", 15) == 0 && get && url[15] && !strchr(url + 15, '/'))
		return get_execution(srv, conn, url + 15);
	if (strcmp(url, "/v1/usage") == 0 && get)
		return get_usage(srv, conn);
	if (strncmp(url, "/admin/v1/", 10) == 0)
		return api_admin(srv, conn, req, url + 10, method);
	return send_error(conn, 404, "not_found", NULL, "no such endpoint: %s %s", method, url);
}

void api_request_free(struct server *srv, struct request *req)
{
	pthread_mutex_lock(&srv->lock);
	srv->buffered -= req->body.len;
	pthread_mutex_unlock(&srv->lock);
	if (req->job) {
		/* The reply was sent, or the client went away: either way this
		 * execution no longer holds up a drain. */
		pthread_mutex_lock(&srv->lock);
		srv->open_jobs--;
		pthread_mutex_unlock(&srv->lock);
	}
	if (req->job && !req->job->done) {
		/* Cannot happen: a suspended connection is only completed after
		 * it was resumed, which happens once the job is done. */
		srv_log(srv, 0, "request freed with its execution in flight");
	} else {
		job_free(req->job);
	}
	buf_release(&req->body);
	free(req);
}
