/* child.h - the code that runs inside a new sandbox, between clone and exec.
 *
 * Everything here runs in the cloned child, which may come from a
 * multi-threaded parent: it must not allocate, take locks, or call
 * anything that is not async-signal-safe.  The parent therefore prepares a
 * complete `struct sandbox_plan` (every string, path and option) before
 * cloning, and the child only issues system calls.
 *
 * The child reports to the parent over the `sync_fd` SOCK_SEQPACKET
 * socket, one `struct child_msg` per message: CHILD_MSG_ERROR when a
 * step fails (then it exits), CHILD_MSG_EXIT with the wait status of the
 * sandboxed program when it ends.
 */
#ifndef CORRAL_SANDBOX_CHILD_H
#define CORRAL_SANDBOX_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"

/* Bytes the parent sends: ids are mapped; (v1) here are the cgroups'
 * "tasks" files, as SCM_RIGHTS. */
#define SYNC_GO 'g'
#define SYNC_CGROUP 'c'

enum child_msg_kind {
	CHILD_MSG_ERROR = 1,
	CHILD_MSG_EXIT = 2,
	CHILD_MSG_LISTEN = 3,   /* SCM_RIGHTS: the listening sockets, in order */
};

struct child_msg {
	int kind;
	int errnum;      /* ERROR: errno of the failing call, 0 if none */
	int status;      /* EXIT: wait status of the program */
	char text[384];  /* ERROR: what failed, without strerror */
};

struct plan_file {
	const char *name;        /* relative to the new /etc */
	const char *content;     /* file content, or NULL for a symlink */
	size_t len;              /* bytes of content (it may be binary) */
	const char *target;      /* symlink target */
};

#define PLAN_MAX_ETC 32
#define PLAN_MAX_ARGS 8

struct sandbox_plan {
	/* What to exec: argv[0] is a path, or a bare name searched in path_dirs. */
	char *const *argv;
	char *const *envp;
	const char *const *path_dirs;   /* NULL-terminated */

	const char *home;               /* "/home/<user>" */
	const char *code_path;          /* file to write code into, or NULL */
	const char *code;
	size_t code_len;

	/* The image: read-only detached mounts (open_tree clones made by the
	 * parent, so the child needs no access to their host paths) and
	 * symlinks, placed at "/<name>" of the new root. */
	struct plan_entry {
		const char *name;       /* "usr", "bin", ... */
		int tree_fd;            /* >= 0: attach this mount */
		const char *target;     /* else: a symlink to this */
	} image[8];
	size_t n_image;
	struct plan_file etc[PLAN_MAX_ETC];
	size_t n_etc;
	const char *const *etc_binds;   /* host /etc entries bound read-only */

	const char *root_opts;          /* tmpfs option strings */
	const char *tmp_opts;
	const char *home_opts;          /* tmpfs home, when home_tree_fd < 0 */
	const char *dev_opts;
	const char *shm_opts;
	int home_tree_fd;               /* open_tree() clone of the thread dir */

	struct rlimit rl_fsize, rl_nofile;
	const struct sandbox_filter *filter;

	int stdout_fd, stderr_fd;       /* write ends */
	int sync_fd;
	bool join_cgroups;              /* v1: receive "tasks" fds and join them */
	uint16_t listen_ports[4];       /* listen on 127.0.0.1:port, send the fds */
	size_t n_listen;
	const char *hostname;
	char *const *wipe_args;         /* the supervisor's argv, wiped in the copy */
};

/* The child's entry point after clone; never returns. */
void sandbox_child_main(const struct sandbox_plan *plan) __attribute__((noreturn));

#endif
