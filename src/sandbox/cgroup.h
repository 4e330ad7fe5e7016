/* cgroup.h - per-execution cgroups on cgroup v1 or v2, behind one interface.
 *
 * corral puts every execution in a cgroup of its own, created below the
 * cgroup that corral itself runs in (read from /proc/self/cgroup), so that
 * an operator's systemd unit or container limits still bound the total:
 *
 *   v2: <mount>/<self>/corral/<name>          (one unified hierarchy)
 *   v1: <mount>/<ctrl>/<self[ctrl]>/corral/<name>  for memory, pids, cpu
 *
 * On a pure v2 host the sandbox is cloned straight into its cgroup with
 * CLONE_INTO_CGROUP; on v1 the parent writes the stopped child's pid into
 * each hierarchy before the child does anything.  Which one applies is
 * detected once by cgroup_manager_init(): v2 when /sys/fs/cgroup is a
 * cgroup2 mount, else v1 when the memory, pids and cpu controllers are
 * mounted as v1 hierarchies (the hybrid layout, where an empty cgroup2
 * sits beside them at /sys/fs/cgroup/unified).
 */
#ifndef CORRAL_SANDBOX_CGROUP_H
#define CORRAL_SANDBOX_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum cgroup_version {
	CGROUP_NONE = 0,
	CGROUP_V1 = 1,
	CGROUP_V2 = 2,
};

enum cgroup_v1_ctrl {
	CG1_MEMORY,
	CG1_PIDS,
	CG1_CPU,
	CG1_COUNT,
};

struct cgroup_manager {
	enum cgroup_version version;
	char *base[CG1_COUNT];       /* v2 uses base[0] only: ".../corral" */
	unsigned long seq;           /* for unique names */
	bool v1_memsw;               /* memory.memsw.* exists (swap accounting) */
};

struct cgroup_limits {
	uint64_t memory_bytes;       /* 0: none */
	uint32_t pids;               /* 0: none */
	uint32_t cpu_milli;          /* 0: none */
};

struct sandbox_cgroup {
	enum cgroup_version version;
	char *path[CG1_COUNT];       /* v2 uses path[0] only */
	int dirfd;                   /* v2: O_PATH fd for CLONE_INTO_CGROUP, else -1 */
	int task_fd[CG1_COUNT];      /* v1: each hierarchy's "tasks", open for writing */
};

struct cgroup_stats {
	uint64_t oom_kills;
	uint64_t peak_memory;        /* bytes; 0 when the kernel cannot say */
};

/* Detect the cgroup layout and prepare the "corral" parent cgroup(s).
 * `root` is normally "/sys/fs/cgroup"; `force` is CGROUP_NONE to detect or
 * a version to insist on.  Fails with a sentence when neither works. */
int cgroup_manager_init(struct cgroup_manager *m, const char *root, enum cgroup_version force,
			struct cr_error *err);
void cgroup_manager_release(struct cgroup_manager *m);

/* Remove execution cgroups ("<pid>-<n>") left by corral processes that
 * no longer exist, killing anything still inside.  Returns how many. */
int cgroup_manager_reap_stale(struct cgroup_manager *m);

/* Create an execution's cgroup with `limits` applied. */
int cgroup_create(struct cgroup_manager *m, const struct cgroup_limits *limits,
		  struct sandbox_cgroup *cg, struct cr_error *err);

/* Move `pid` into the cgroup (v1; on v2 only when not cloned into it). */
int cgroup_enter(struct sandbox_cgroup *cg, pid_t pid, struct cr_error *err);

/* v1: how a sandbox enters its cgroups by itself.  cgroup_create() opens
 * each hierarchy's "tasks" file for writing; the child, single-threaded,
 * writes "0" to each (cgroup_join_self), which moves the calling thread.
 * The kernel checks the opener's credentials (ours) and, for a thread
 * moving itself, skips the global threadgroup lock whose RCU grace period
 * makes a write of another pid take up to 15 ms.  Async-signal-safe. */
int cgroup_join_self(const int task_fd[CG1_COUNT]);

/* Read OOM kills and peak memory.  Missing files leave fields at 0. */
void cgroup_read_stats(const struct sandbox_cgroup *cg, struct cgroup_stats *st);

/* SIGKILL everything in the cgroup (cgroup.kill on v2 >= 5.14). */
void cgroup_kill(const struct sandbox_cgroup *cg);

/* True when no process is left in the cgroup. */
bool cgroup_is_empty(const struct sandbox_cgroup *cg);

/* Remove the cgroup directories and free the paths.  A cgroup that still
 * holds processes is killed first; returns -1 if rmdir keeps failing. */
int cgroup_destroy(struct sandbox_cgroup *cg, struct cr_error *err);

/* Pure helper, exposed for tests: find the path of `controller` in the text
 * of /proc/<pid>/cgroup ("" selects the v2 "0::" line).  Returns a newly
 * allocated path, or NULL when the controller is not listed. */
char *cgroup_parse_self(const char *proc_cgroup, const char *controller);

/* Pure helper, exposed for tests: join a mount point and a cgroup path,
 * refusing ".." components.  Caller frees; NULL on a bad path. */
char *cgroup_join(const char *mount, const char *path, const char *leaf);

#endif
