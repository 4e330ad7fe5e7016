/* metrics.h - counters for GET /metrics (Prometheus text format 0.0.4).
 *
 * All functions are thread-safe: the HTTP thread and the sandbox thread
 * both record.  Names: corral_executions_total{status}, the
 * corral_execution_duration_seconds histogram, corral_executions_running,
 * corral_queue_length, corral_credits_used_total,
 * corral_http_requests_total{code}.
 */
#ifndef CORRAL_SERVER_METRICS_H
#define CORRAL_SERVER_METRICS_H

#include <stdint.h>

#include "util/buf.h"

void metrics_execution_started(void);
/* An execution that was started has ended with `status` after `ms`. */
void metrics_execution_finished(const char *status, uint64_t ms, int64_t credits);
void metrics_queue_add(int delta);
void metrics_http_response(unsigned status);
/* Append the whole exposition to `out`. */
void metrics_render(struct buf *out);

#endif
