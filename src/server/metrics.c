/* metrics.c - see metrics.h. */
#include "server/metrics.h"
#include "egress/egress.h"

#include <pthread.h>
#include <string.h>

static const char *const statuses[] = {
	"success", "failed", "timeout", "oom", "blocked", "cancelled",
};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]))

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
				  60, 300, 900, 3600 };
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const unsigned http_codes[] = { 200, 202, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503 };
#define N_CODES (sizeof(http_codes) / sizeof(http_codes[0]))

static struct {
	pthread_mutex_t lock;
	uint64_t by_status[N_STATUS];
	uint64_t bucket[N_BUCKETS];
	uint64_t count;
	double sum;
	int64_t running;
	int64_t queue;
	int64_t credits;
	uint64_t http[N_CODES];
	uint64_t http_other;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER };

void metrics_execution_started(void)
{
	pthread_mutex_lock(&m.lock);
	m.running++;
	pthread_mutex_unlock(&m.lock);
}

void metrics_execution_finished(const char *status, uint64_t ms, int64_t credits)
{
	double s = (double)ms / 1000.0;

	pthread_mutex_lock(&m.lock);
	m.running--;
	for (size_t i = 0; i < N_STATUS; i++)
		if (strcmp(status, statuses[i]) == 0)
			m.by_status[i]++;
	for (size_t i = 0; i < N_BUCKETS; i++)
		if (s <= buckets[i])
			m.bucket[i]++;
	m.count++;
	m.sum += s;
	m.credits += credits;
	pthread_mutex_unlock(&m.lock);
}

void metrics_queue_add(int delta)
{
	pthread_mutex_lock(&m.lock);
	m.queue += delta;
	pthread_mutex_unlock(&m.lock);
}

void metrics_http_response(unsigned status)
{
	size_t i;

	pthread_mutex_lock(&m.lock);
	for (i = 0; i < N_CODES; i++)
		if (http_codes[i] == status)
			break;
	if (i < N_CODES)
		m.http[i]++;
	else
		m.http_other++;
	pthread_mutex_unlock(&m.lock);
}

void metrics_render(struct buf *out)
{
	pthread_mutex_lock(&m.lock);
	buf_adds(out, "# HELP corral_executions_total Executions that ended, by status.\n"
		      "# TYPE corral_executions_total counter\n");
	for (size_t i = 0; i < N_STATUS; i++)
		buf_addf(out, "corral_executions_total{status=\"%s\"} %llu\n", statuses[i],
			 (unsigned long long)m.by_status[i]);
	buf_adds(out, "# HELP corral_execution_duration_seconds Wall time of ended executions.\n"
		      "# TYPE corral_execution_duration_seconds histogram\n");
	for (size_t i = 0; i < N_BUCKETS; i++)
		buf_addf(out, "corral_execution_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
			 (unsigned long long)m.bucket[i]);
	buf_addf(out, "corral_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		 (unsigned long long)m.count);
	buf_addf(out, "corral_execution_duration_seconds_sum %.6f\n", m.sum);
	buf_addf(out, "corral_execution_duration_seconds_count %llu\n", (unsigned long long)m.count);
	buf_addf(out, "# HELP corral_executions_running Executions running now.\n"
		      "# TYPE corral_executions_running gauge\ncorral_executions_running %lld\n",
		 (long long)m.running);
	buf_addf(out, "# HELP corral_queue_length Executions accepted and not yet started.\n"
		      "# TYPE corral_queue_length gauge\ncorral_queue_length %lld\n",
		 (long long)m.queue);
	buf_addf(out, "# HELP corral_credits_used_total Credits charged since start.\n"
		      "# TYPE corral_credits_used_total counter\ncorral_credits_used_total %lld\n",
		 (long long)m.credits);
	buf_adds(out, "# HELP corral_http_requests_total Responses sent, by status code.\n"
		      "# TYPE corral_http_requests_total counter\n");
	for (size_t i = 0; i < N_CODES; i++)
		buf_addf(out, "corral_http_requests_total{code=\"%u\"} %llu\n", http_codes[i],
			 (unsigned long long)m.http[i]);
	buf_addf(out, "corral_http_requests_total{code=\"other\"} %llu\n",
		 (unsigned long long)m.http_other);
	pthread_mutex_unlock(&m.lock);
	{
		struct egress_counters e;
		egress_counters_get(&e);
		buf_addf(out,
			 "# HELP corral_egress_connections_total Proxied connections, by the policy's verdict.\n"
			 "# TYPE corral_egress_connections_total counter\n"
			 "corral_egress_connections_total{verdict=\"allowed\"} %llu\n"
			 "corral_egress_connections_total{verdict=\"denied\"} %llu\n"
			 "# HELP corral_broker_requests_total Requests forwarded by credential brokers.\n"
			 "# TYPE corral_broker_requests_total counter\n"
			 "corral_broker_requests_total %llu\n"
			 "# HELP corral_broker_failures_total Brokered requests that got no upstream answer.\n"
			 "# TYPE corral_broker_failures_total counter\n"
			 "corral_broker_failures_total %llu\n",
			 (unsigned long long)e.proxy_allowed, (unsigned long long)e.proxy_denied,
			 (unsigned long long)e.broker_requests, (unsigned long long)e.broker_failures);
	}
}
