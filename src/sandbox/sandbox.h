/* sandbox.h - start sandboxed executions and supervise them from one loop.
 *
 * This is the library every corral front end stands on (`corral run`, the
 * HTTP server).  The model is asynchronous:
 *
 *   struct sandbox_runtime *rt = sandbox_runtime_new(&opts, &err);
 *   struct sandbox_exec *ex = sandbox_start(rt, &cfg, &callbacks, data, &err);
 *   while (sandbox_runtime_active(rt) > 0)
 *           sandbox_runtime_dispatch(rt, -1);    // callbacks fire in here
 *   ... sandbox_exec_result(ex) ...
 *   sandbox_exec_free(ex);
 *
 * One runtime owns an epoll instance; every execution registers its pidfd,
 * its two output pipes, a timerfd for the deadline and the socket its
 * setup code reports on.  No thread per sandbox.  sandbox_runtime_fd()
 * exposes the epoll fd so a server can nest the runtime in its own loop.
 *
 * Threads: a runtime is not thread-safe; call it from one thread, and keep
 * that thread alive while executions run (the sandbox's parent-death
 * signal is tied to the thread that cloned it).
 */
#ifndef CORRAL_SANDBOX_SANDBOX_H
#define CORRAL_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox/cgroup.h"
#include "sandbox/config.h"
#include "util/buf.h"
#include "util/error.h"

enum sandbox_status {
	SANDBOX_RUNNING = 0,
	SANDBOX_SUCCESS,     /* exit 0 */
	SANDBOX_FAILED,      /* non-zero exit, death by signal, or a setup error */
	SANDBOX_TIMEOUT,     /* killed at the deadline */
	SANDBOX_OOM,         /* killed by the memory limit */
	SANDBOX_CANCELLED,   /* killed by sandbox_exec_cancel() */
};

const char *sandbox_status_name(enum sandbox_status st);

enum sandbox_stream {
	SANDBOX_STDOUT = 0,
	SANDBOX_STDERR = 1,
};

struct sandbox_result {
	enum sandbox_status status;
	int exit_code;               /* -1 when the program did not exit */
	int signal;                  /* 0 unless it died by a signal */
	struct buf output[2];        /* up to the output limit, per stream */
	bool truncated[2];
	uint64_t duration_ms;        /* wall time from start to the last reap */
	uint64_t cpu_ms;             /* user + system of the whole tree */
	uint64_t peak_memory;        /* bytes, from the cgroup; 0 if unknown */
	char *error;                 /* NULL, or one sentence */
};

struct sandbox_exec;

/* Callbacks run inside sandbox_runtime_dispatch().  on_output must not
 * free any execution; on_exit may free its own execution (and only that
 * one: others may still be pending in the same dispatch). */
struct sandbox_callbacks {
	/* Output as it arrives (before the limit cuts it); may be NULL. */
	void (*on_output)(struct sandbox_exec *ex, enum sandbox_stream s, const char *data,
			  size_t len, void *userdata);
	/* The sockets of cfg->listen_ports, in that order, now listening
	 * inside the sandbox; the callee owns them.  Called once, possibly
	 * after the program has started: a connection made before the callee
	 * serves the socket waits in its backlog.  May be NULL (then they are
	 * closed, and a connection is refused). */
	void (*on_listen)(struct sandbox_exec *ex, const int *fds, size_t n, void *userdata);
	/* The execution has ended and its result is final; may be NULL. */
	void (*on_exit)(struct sandbox_exec *ex, void *userdata);
};

struct sandbox_runtime_options {
	const char *cgroup_root;        /* default "/sys/fs/cgroup" */
	enum cgroup_version cgroup_version;  /* CGROUP_NONE: detect */
	/* main()'s argv: the sandbox's init starts as a copy of this process
	 * and wipes these strings so that its /proc/1/cmdline shows nothing
	 * of the supervisor's command line.  May be NULL. */
	char **process_argv;
};

struct sandbox_runtime;

/* Check the host (root, user namespaces, cgroups, seccomp), build the
 * seccomp programs and open the event loop.  Fails with a sentence that
 * says what the host lacks. */
struct sandbox_runtime *sandbox_runtime_new(const struct sandbox_runtime_options *opts,
					    struct cr_error *err);
/* Kill every live execution, wait for it, and free the runtime.
 * Executions not yet freed by their owner stay valid. */
void sandbox_runtime_free(struct sandbox_runtime *rt);

int sandbox_runtime_fd(const struct sandbox_runtime *rt);
enum cgroup_version sandbox_runtime_cgroup_version(const struct sandbox_runtime *rt);

/* Handle ready events, waiting up to timeout_ms (-1: forever, 0: poll).
 * Returns the number of events handled, or -1 with err set. */
int sandbox_runtime_dispatch(struct sandbox_runtime *rt, int timeout_ms, struct cr_error *err);

/* Executions started and not yet ended. */
size_t sandbox_runtime_active(const struct sandbox_runtime *rt);

/* Start `cfg` (copied; the caller keeps it).  Returns NULL with err set
 * when it could not start: a bad config, a missing interpreter, or a host
 * failure.  Once started, every later failure (even of the sandbox's own
 * setup) is reported through the result. */
struct sandbox_exec *sandbox_start(struct sandbox_runtime *rt, const struct sandbox_config *cfg,
				   const struct sandbox_callbacks *cb, void *userdata,
				   struct cr_error *err);

/* Cancel every running execution of the runtime (a server's drain). */
void sandbox_runtime_cancel_all(struct sandbox_runtime *rt);

/* Kill a running execution; it ends as SANDBOX_CANCELLED. */
void sandbox_exec_cancel(struct sandbox_exec *ex);

bool sandbox_exec_done(const struct sandbox_exec *ex);
const struct sandbox_result *sandbox_exec_result(const struct sandbox_exec *ex);
/* Host pid of the sandbox's init (for tests and diagnostics). */
int sandbox_exec_pid(const struct sandbox_exec *ex);

/* Free an execution.  A running one is killed and reaped first. */
void sandbox_exec_free(struct sandbox_exec *ex);

/* Find the interpreter for `lang` in the image rooted at `image` (NULL:
 * the host); fills *path (a static buffer) with a sandbox path such as
 * "/usr/bin/python3". */
int sandbox_find_interpreter(const char *image, enum sandbox_language lang, const char **path,
			     struct cr_error *err);

#endif
