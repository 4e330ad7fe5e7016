/* runtime.c - start sandboxes and supervise them from one epoll loop.
 * See sandbox.h for the interface and child.c for the sandbox's side. */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"
#include "sandbox/child.h"
#include "sandbox/seccomp.h"
#include "util/redact.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <linux/sched.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

enum watch_kind {
	WATCH_PIDFD,
	WATCH_STDOUT,
	WATCH_STDERR,
	WATCH_TIMER,
	WATCH_SYNC,
	WATCH_COUNT,
};

struct watch {
	struct sandbox_exec *ex;
	enum watch_kind kind;
};

/* A file of the host's /etc copied into every sandbox's generated /etc
 * (content read once), or a symlink reproduced there. */
struct etc_copy {
	char *name;
	char *content;
	size_t len;
	char *target;
};

struct sandbox_runtime {
	int epfd;
	struct cgroup_manager cgroups;
	struct sandbox_filter filter;
	struct sandbox_filter filter_nested;
	struct etc_copy *etc;
	size_t n_etc;
	size_t active;
	char **process_argv;
	struct sandbox_exec *live;       /* doubly linked list of running executions */
	uid_t checked_uid_base;          /* last host id range found free */
};

struct sandbox_exec {
	struct sandbox_runtime *rt;
	struct sandbox_exec *prev, *next;
	struct sandbox_callbacks cb;
	void *userdata;

	pid_t pid;
	int pidfd;
	int out_fd[2];
	int timer_fd;
	int sync_fd;
	int mntns_fd;          /* keeps the mount namespace past init's exit */
	struct watch watch[WATCH_COUNT];
	struct sandbox_cgroup cg;

	uint64_t output_limit;
	struct redactor *redactor[2];    /* NULL without secrets to scrub */
	uint64_t start_ns;
	bool running;          /* started and not yet finalised */
	bool reaped;
	bool timed_out;
	bool cancelled;
	bool got_exit;
	bool got_listen;
	size_t n_listen;       /* sockets the sandbox is to hand over */
	int exit_status;       /* wait status reported by the sandbox's init */
	char *child_error;
	struct rusage rusage;

	struct sandbox_result res;
};

/* --- small helpers ---------------------------------------------------- */

/* CORRAL_TRACE=1 prints each step of an execution with its time since
 * the start, so a slow start can be explained without a profiler. */
static int trace_on = -1;

static void trace(const struct sandbox_exec *ex, const char *step)
{
	if (trace_on < 0) {
		const char *t = getenv("CORRAL_TRACE");
		trace_on = t && *t && strcmp(t, "0") != 0;
	}
	if (trace_on)
		fprintf(stderr, "corral: trace: pid %d +%.3f ms %s\n", ex->pid,
			(double)(now_ns() - ex->start_ns) / 1e6, step);
}

const char *sandbox_status_name(enum sandbox_status st)
{
	switch (st) {
	case SANDBOX_RUNNING: return "running";
	case SANDBOX_SUCCESS: return "success";
	case SANDBOX_FAILED: return "failed";
	case SANDBOX_TIMEOUT: return "timeout";
	case SANDBOX_OOM: return "oom";
	case SANDBOX_CANCELLED: return "cancelled";
	}
	return "unknown";
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Host directories of the default image that hold programs, in the order
 * the sandbox PATH searches them (after the home's own bin dirs). */
static const char *const image_path_dirs[] = {
	"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", NULL,
};

static const char *const top_links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL };

/* Host /etc directories bound read-only: alternatives (Debian's program
 * symlinks), the CA store, loader configuration, Python's site config. */
static const char *const etc_binds[] = { "alternatives", "ssl", NULL };

/* Host /etc files copied into the generated /etc.  Nothing here names a
 * host user or secret. */
static const char *const etc_copies[] = {
	"ld.so.cache", "ld.so.conf", "protocols", "services", "localtime", "timezone",
	"os-release", NULL,
};

int sandbox_find_interpreter(const char *image, enum sandbox_language lang, const char **path,
			     struct cr_error *err)
{
	char host[PATH_MAX];
	static const char *const python[] = { "python3", "python", NULL };
	static const char *const node[] = { "node", "nodejs", NULL };
	static const char *const bash[] = { "bash", NULL };
	static char found[PATH_MAX];
	const char *const *names;

	switch (lang) {
	case SANDBOX_LANG_PYTHON: names = python; break;
	case SANDBOX_LANG_NODE: names = node; break;
	case SANDBOX_LANG_BASH: names = bash; break;
	default:
		return cr_error_set(err, 0, "no interpreter for language '%s'",
				    sandbox_language_name(lang));
	}
	for (const char *const *n = names; *n; n++) {
		for (const char *const *d = image_path_dirs; *d; d++) {
			struct stat st;
			snprintf(found, sizeof(found), "%s/%s", *d, *n);
			snprintf(host, sizeof(host), "%s%s", image ? image : "", found);
			/* stat follows links on the host: good enough for the
			 * host image, whose links point inside itself. */
			if (stat(host, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
				*path = found;
				return 0;
			}
		}
	}
	return cr_error_set(err, 0,
			    "language '%s' needs '%s'%s%s%s in the image%s%s, and it has none",
			    sandbox_language_name(lang), names[0], names[1] ? " or '" : "",
			    names[1] ? names[1] : "", names[1] ? "'" : "", image ? " " : "",
			    image ? image : "");
}

/* A host uid in [base, base + 65536) that belongs to a real user would let
 * an escaped sandbox act as that user: refuse such a range. */
static int check_uid_range(struct sandbox_runtime *rt, uid_t base, struct cr_error *err)
{
	cleanup_free char *passwd = NULL;

	if (rt->checked_uid_base == base)
		return 0;
	passwd = read_file("/etc/passwd", NULL, NULL);
	for (char *line = passwd; line && *line;) {
		char *nl = strchr(line, '\n');
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (nl)
			*nl = '\0';
		if (c2) {
			unsigned long uid = strtoul(c2 + 1, NULL, 10);
			if (uid >= base && uid < (unsigned long)base + SANDBOX_ID_RANGE) {
				*c1 = '\0';
				return cr_error_set(err, 0,
						    "host uid range %u-%u for sandboxes overlaps the host user '%s' (uid %lu); choose another range",
						    base, base + SANDBOX_ID_RANGE - 1, line, uid);
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	rt->checked_uid_base = base;
	return 0;
}

static void load_etc_copies(struct sandbox_runtime *rt)
{
	rt->etc = xzalloc(sizeof(*rt->etc) * ARRAY_SIZE(etc_copies));
	for (const char *const *n = etc_copies; *n; n++) {
		char path[PATH_MAX], target[PATH_MAX];
		struct stat st;
		ssize_t len;
		struct etc_copy *c = &rt->etc[rt->n_etc];

		snprintf(path, sizeof(path), "/etc/%s", *n);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			len = readlink(path, target, sizeof(target) - 1);
			if (len <= 0)
				continue;
			target[len] = '\0';
			c->target = xstrdup(target);
		} else if (S_ISREG(st.st_mode) && st.st_size < (1 << 20)) {
			c->content = read_file(path, &c->len, NULL);
			if (c->content == NULL)
				continue;
		} else {
			continue;
		}
		c->name = xstrdup(*n);
		rt->n_etc++;
	}
}

/* --- runtime ---------------------------------------------------------- */

struct sandbox_runtime *sandbox_runtime_new(const struct sandbox_runtime_options *opts,
					    struct cr_error *err)
{
	struct sandbox_runtime *rt;
	cleanup_free char *max_ns = NULL;
	const char *root = opts && opts->cgroup_root ? opts->cgroup_root : "/sys/fs/cgroup";

	if (geteuid() != 0)
		return cr_error_set(err, 0,
				    "corral must run as root: it maps each sandbox to the unprivileged host uid range and creates cgroups (running as uid %d)",
				    (int)geteuid()), NULL;
	max_ns = read_file("/proc/sys/user/max_user_namespaces", NULL, NULL);
	if (max_ns && strtol(max_ns, NULL, 10) == 0)
		return cr_error_set(err, 0,
				    "user namespaces are disabled on this host (/proc/sys/user/max_user_namespaces is 0)"),
		       NULL;
	/* A sandbox inherits our supplementary groups and, with setgroups
	 * denied in its user namespace, could never shed them; root's group
	 * 0 would then reach host files.  The supervisor needs none. */
	if (setgroups(0, NULL) < 0)
		return cr_error_set(err, errno, "cannot drop supplementary groups"), NULL;

	rt = xzalloc(sizeof(*rt));
	rt->epfd = -1;
	rt->process_argv = opts ? opts->process_argv : NULL;
	rt->checked_uid_base = (uid_t)-1;
	if (cgroup_manager_init(&rt->cgroups, root, opts ? opts->cgroup_version : CGROUP_NONE, err) < 0)
		goto fail;
	sandbox_filter_embedded(&rt->filter, 0);
	sandbox_filter_embedded(&rt->filter_nested, SANDBOX_FILTER_ALLOW_NESTED);
	rt->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rt->epfd < 0) {
		cr_error_set(err, errno, "epoll_create1");
		goto fail;
	}
	load_etc_copies(rt);
	/* cgroups of corral processes that died without cleaning up (a
	 * SIGKILL, a crash) go now; nothing else can remove them. */
	cgroup_manager_reap_stale(&rt->cgroups);
	return rt;
fail:
	sandbox_runtime_free(rt);
	return NULL;
}

int sandbox_runtime_fd(const struct sandbox_runtime *rt)
{
	return rt->epfd;
}

enum cgroup_version sandbox_runtime_cgroup_version(const struct sandbox_runtime *rt)
{
	return rt->cgroups.version;
}

size_t sandbox_runtime_active(const struct sandbox_runtime *rt)
{
	return rt->active;
}

static void finalize(struct sandbox_exec *ex, bool notify);
static void reap(struct sandbox_exec *ex, bool block);

void sandbox_runtime_free(struct sandbox_runtime *rt)
{
	if (rt == NULL)
		return;
	while (rt->live) {
		struct sandbox_exec *ex = rt->live;
		sandbox_exec_cancel(ex);
		reap(ex, true);
		finalize(ex, false);
		ex->rt = NULL;
	}
	close_fd(&rt->epfd);
	cgroup_manager_release(&rt->cgroups);
	for (size_t i = 0; i < rt->n_etc; i++) {
		free(rt->etc[i].name);
		free(rt->etc[i].content);
		free(rt->etc[i].target);
	}
	free(rt->etc);
	free(rt);
}

/* --- starting --------------------------------------------------------- */

/* Everything a plan points at, freed after the clone. */
struct plan_store {
	struct buf strings[32];
	size_t n;
	char **argv;
	char **envp;
	char *path_dirs[16];
	int tree_fds[8];
	size_t n_tree;
};

static char *store(struct plan_store *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *store(struct plan_store *ps, const char *fmt, ...)
{
	va_list ap;
	struct buf *b;
	char *s;

	if (ps->n >= ARRAY_SIZE(ps->strings))
		abort();
	b = &ps->strings[ps->n++];
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	buf_adds(b, s);
	free(s);
	return b->data;
}

static void plan_store_release(struct plan_store *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		buf_release(&ps->strings[i]);
	for (char **a = ps->argv; a && *a; a++)
		free(*a);
	free(ps->argv);
	for (char **e = ps->envp; e && *e; e++)
		free(*e);
	free(ps->envp);
	for (size_t i = 0; i < ARRAY_SIZE(ps->path_dirs); i++)
		free(ps->path_dirs[i]);
	for (size_t i = 0; i < ps->n_tree; i++)
		close(ps->tree_fds[i]);
	ps->n_tree = 0;
}

/* Clone `name` below the directory `dirfd` as a detached, recursively
 * read-only, nosuid, nodev mount.  No symlink is followed: an image whose
 * "usr" points elsewhere (at the host's /, say) is refused rather than
 * exposing that target. */
static int clone_ro_tree(int dirfd, const char *name, const char *shown, int *fd_out,
			 struct cr_error *err)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
	};
	cleanup_close int at = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	int fd;

	if (at < 0)
		return cr_error_set(err, errno, "cannot open '%s' (it must be a directory, not a link)",
				    shown);
	fd = open_tree(at, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (fd < 0)
		return cr_error_set(err, errno, "cannot clone a mount of '%s'", shown);
	if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
		close_keep_errno(fd);
		return cr_error_set(err, errno, "cannot make a mount of '%s' read-only", shown);
	}
	*fd_out = fd;
	return 0;
}

/* The image's /usr and its top-level links (a merged-/usr layout has
 * /bin -> usr/bin; a split one has real directories, bound as well). */
static int plan_image(const char *image, struct sandbox_plan *plan, struct plan_store *ps,
		      struct cr_error *err)
{
	const char *root = image ? image : "/";
	char path[PATH_MAX], target[PATH_MAX];
	cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	int fd;

	if (rootfd < 0)
		return cr_error_set(err, errno, "cannot open image '%s'", root);
	if (fstatat(rootfd, "usr", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return cr_error_set(err, 0, "image '%s' has no usr directory", root);
	snprintf(path, sizeof(path), "%s/usr", image ? image : "");
	if (clone_ro_tree(rootfd, "usr", path, &fd, err) < 0)
		return -1;
	ps->tree_fds[ps->n_tree++] = fd;
	plan->image[plan->n_image++] = (struct plan_entry){ "usr", fd, NULL };
	for (const char *const *l = top_links; *l; l++) {
		ssize_t n;
		if (fstatat(rootfd, *l, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", image ? image : "", *l);
		if (S_ISLNK(st.st_mode)) {
			/* Recreated as a link inside, where it resolves in the
			 * sandbox's own root. */
			n = readlinkat(rootfd, *l, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			plan->image[plan->n_image++] =
				(struct plan_entry){ *l, -1, store(ps, "%s", target) };
		} else if (S_ISDIR(st.st_mode)) {
			if (clone_ro_tree(rootfd, *l, path, &fd, err) < 0)
				return -1;
			ps->tree_fds[ps->n_tree++] = fd;
			plan->image[plan->n_image++] = (struct plan_entry){ *l, fd, NULL };
		}
	}
	return 0;
}

static void env_set(char ***envp, size_t *n, const char *assignment)
{
	size_t nlen = (size_t)(strchr(assignment, '=') - assignment);

	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*envp)[i], assignment, nlen + 1) == 0) {
			free((*envp)[i]);
			(*envp)[i] = xstrdup(assignment);
			return;
		}
	}
	*envp = xrealloc(*envp, sizeof(char *) * (*n + 2));
	(*envp)[(*n)++] = xstrdup(assignment);
	(*envp)[*n] = NULL;
}

static const char *code_suffix(enum sandbox_language lang)
{
	switch (lang) {
	case SANDBOX_LANG_PYTHON: return "py";
	case SANDBOX_LANG_NODE: return "js";
	default: return "sh";
	}
}

/* Make the thread directory exist, be a real directory owned by the
 * sandbox user's host uid, and clone it as a detached mount the child can
 * attach (the child itself may not be able to reach the path: its parent
 * directories can be closed to the unprivileged ids it runs as). */
static bool dir_is_empty(int fd)
{
	char buf[4096];
	long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
	long off = 0;

	/* Only "." and ".." may be listed. */
	while (off < n) {
		struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d =
			(void *)(buf + off);
		if (strcmp(d->name, ".") != 0 && strcmp(d->name, "..") != 0)
			return false;
		off += d->reclen;
	}
	return n >= 0;
}

static int prepare_thread_dir(const char *dir, uid_t host_uid, int *tree_fd, struct cr_error *err)
{
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
	cleanup_close int fd = -1;
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno == ENOENT) {
		/* Create missing parents (root-owned, 0755) like mkdir -p. */
		cleanup_free char *path = xstrdup(dir);
		for (char *p = path + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				return cr_error_set(err, errno, "cannot create '%s' for thread directory '%s'",
						    path, dir);
			*p = '/';
		}
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return cr_error_set(err, errno, "cannot create thread directory '%s'", dir);
	} else if (errno != EEXIST && access(dir, F_OK) < 0) {
		return cr_error_set(err, errno, "cannot create thread directory '%s'", dir);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cr_error_set(err, errno, "cannot open thread directory '%s'", dir);
	if (fstat(fd, &st) < 0)
		return cr_error_set(err, errno, "cannot stat thread directory '%s'", dir);
	if (st.st_uid != host_uid || st.st_gid != host_uid) {
		/* Only a directory corral just made (root's, empty) is handed to
		 * the sandbox's uid: an existing directory of someone else's
		 * would otherwise be exposed read-write to the sandbox. */
		if (st.st_uid != 0 || !dir_is_empty(fd))
			return cr_error_set(err, 0,
					    "thread directory '%s' belongs to uid %u, not the sandbox's host uid %u; refusing to take it over",
					    dir, (unsigned)st.st_uid, host_uid);
		if (fchown(fd, host_uid, host_uid) < 0)
			return cr_error_set(err, errno, "cannot give thread directory '%s' to uid %u", dir,
					    host_uid);
	}
	*tree_fd = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (*tree_fd < 0)
		return cr_error_set(err, errno, "cannot clone a mount of thread directory '%s'", dir);
	if (mount_setattr(*tree_fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		close_fd(tree_fd);
		return cr_error_set(err, errno, "cannot set nosuid,nodev on thread directory '%s'", dir);
	}
	return 0;
}

static int write_id_maps(pid_t pid, uid_t base, struct cr_error *err)
{
	char path[64], map[64];
	int n = snprintf(map, sizeof(map), "0 %u %u\n", base, SANDBOX_ID_RANGE);

	snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
	if (write_file_raw(path, 0, 0, "deny", 4) < 0)
		return cr_error_set(err, errno, "cannot write '%s'", path);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	if (write_file_raw(path, 0, 0, map, (size_t)n) < 0)
		return cr_error_set(err, errno, "cannot map uids %u-%u for the sandbox", base,
				    base + SANDBOX_ID_RANGE - 1);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	if (write_file_raw(path, 0, 0, map, (size_t)n) < 0)
		return cr_error_set(err, errno, "cannot map gids %u-%u for the sandbox", base,
				    base + SANDBOX_ID_RANGE - 1);
	return 0;
}

/* v1: hand the child its cgroups' "tasks" files (see cgroup_join_self).
 * A failed send means the child is gone; its own report says why. */
static void send_cgroup_fds(struct sandbox_exec *ex)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * CG1_COUNT)];
		struct cmsghdr align;
	} u;
	char byte = SYNC_CGROUP;
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * CG1_COUNT);
	memcpy(CMSG_DATA(c), ex->cg.task_fd, sizeof(int) * CG1_COUNT);
	(void)sendmsg(ex->sync_fd, &mh, MSG_NOSIGNAL);
}

static int watch_add(struct sandbox_exec *ex, enum watch_kind kind, int fd, struct cr_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ex->watch[kind] };

	ex->watch[kind].ex = ex;
	ex->watch[kind].kind = kind;
	if (epoll_ctl(ex->rt->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return cr_error_set(err, errno, "epoll_ctl");
	return 0;
}

static void watch_del(struct sandbox_exec *ex, int fd)
{
	if (fd >= 0 && ex->rt)
		epoll_ctl(ex->rt->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void link_live(struct sandbox_exec *ex)
{
	struct sandbox_runtime *rt = ex->rt;
	ex->next = rt->live;
	if (rt->live)
		rt->live->prev = ex;
	rt->live = ex;
	rt->active++;
}

static void unlink_live(struct sandbox_exec *ex)
{
	struct sandbox_runtime *rt = ex->rt;
	if (rt == NULL)
		return;
	if (ex->prev)
		ex->prev->next = ex->next;
	else if (rt->live == ex)
		rt->live = ex->next;
	if (ex->next)
		ex->next->prev = ex->prev;
	ex->prev = ex->next = NULL;
	rt->active--;
}

static void build_plan(struct sandbox_runtime *rt, const struct sandbox_config *cfg,
		       const char *interpreter, struct sandbox_plan *plan, struct plan_store *ps)
{
	const char *user = cfg->user ? cfg->user : SANDBOX_DEFAULT_USER;
	char *home = store(ps, "/home/%s", user);
	size_t nenv = 0, i = 0;

	memset(plan, 0, sizeof(*plan));
	plan->home = home;
	plan->hostname = SANDBOX_HOSTNAME;

	/* argv */
	if (cfg->language == SANDBOX_LANG_NONE) {
		size_t n = 0;
		while (cfg->argv[n])
			n++;
		ps->argv = xzalloc(sizeof(char *) * (n + 1));
		for (size_t k = 0; k < n; k++)
			ps->argv[k] = xstrdup(cfg->argv[k]);
	} else {
		plan->code_path = store(ps, "/tmp/code.%s", code_suffix(cfg->language));
		plan->code = cfg->code;
		plan->code_len = cfg->code_len;
		ps->argv = xzalloc(sizeof(char *) * 3);
		ps->argv[0] = xstrdup(interpreter);
		ps->argv[1] = xstrdup(plan->code_path);
	}
	plan->argv = ps->argv;

	/* PATH: the home's own tool dirs first, so `pip install --user` and
	 * `npm install -g` results run by name. */
	ps->path_dirs[i++] = xasprintf("%s/.local/bin", home);
	ps->path_dirs[i++] = xasprintf("%s/.npm-global/bin", home);
	for (const char *const *d = image_path_dirs; *d; d++)
		ps->path_dirs[i++] = xstrdup(*d);
	plan->path_dirs = (const char *const *)ps->path_dirs;
	{
		struct buf path = BUF_INIT;
		buf_adds(&path, "PATH=");
		for (size_t k = 0; ps->path_dirs[k]; k++)
			buf_addf(&path, "%s%s", k ? ":" : "", ps->path_dirs[k]);
		env_set(&ps->envp, &nenv, path.data);
		buf_release(&path);
	}
	env_set(&ps->envp, &nenv, store(ps, "HOME=%s", home));
	env_set(&ps->envp, &nenv, store(ps, "USER=%s", user));
	env_set(&ps->envp, &nenv, store(ps, "LOGNAME=%s", user));
	env_set(&ps->envp, &nenv, "SHELL=/bin/bash");
	env_set(&ps->envp, &nenv, "LANG=C.UTF-8");
	env_set(&ps->envp, &nenv, "TMPDIR=/tmp");
	/* The image's /usr is read-only, so Debian's "externally managed"
	 * guard has nothing to protect: let `pip install --user` work. */
	env_set(&ps->envp, &nenv, "PIP_BREAK_SYSTEM_PACKAGES=1");
	env_set(&ps->envp, &nenv, store(ps, "NPM_CONFIG_PREFIX=%s/.npm-global", home));
	for (char **e = cfg->env; e && *e; e++)
		env_set(&ps->envp, &nenv, *e);
	plan->envp = ps->envp;

	/* Generated /etc. */
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "passwd", .content = store(ps,
		"root:x:0:0:root:/root:/usr/sbin/nologin\n"
		"%s:x:%u:%u::%s:/bin/bash\n"
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		user, SANDBOX_UID, SANDBOX_UID, home) };
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "group", .content = store(ps,
		"root:x:0:\ntty:x:5:\n%s:x:%u:\nnogroup:x:65534:\n", user, SANDBOX_UID) };
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "hosts", .content =
		"127.0.0.1\tlocalhost " SANDBOX_HOSTNAME "\n::1\tlocalhost ip6-localhost ip6-loopback\n" };
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "hostname", .content = SANDBOX_HOSTNAME "\n" };
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "resolv.conf", .content =
		"nameserver 127.0.0.1\noptions timeout:1 attempts:1\n" };
	plan->etc[plan->n_etc++] = (struct plan_file){ .name = "nsswitch.conf", .content =
		"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
		"networks: files\nprotocols: files\nservices: files\n" };
	for (size_t k = 0; k < plan->n_etc; k++)
		plan->etc[k].len = strlen(plan->etc[k].content);
	for (size_t k = 0; k < rt->n_etc && plan->n_etc < PLAN_MAX_ETC; k++)
		plan->etc[plan->n_etc++] = (struct plan_file){ rt->etc[k].name, rt->etc[k].content,
							       rt->etc[k].len, rt->etc[k].target };
	plan->etc_binds = etc_binds;
	/* The caller's files replace a generated or copied one of the same
	 * name (the copies come first in the list, so search and overwrite). */
	for (size_t k = 0; k < cfg->n_etc_files; k++) {
		const struct sandbox_file *f = &cfg->etc_files[k];
		size_t j;
		for (j = 0; j < plan->n_etc; j++)
			if (strcmp(plan->etc[j].name, f->name) == 0)
				break;
		if (j == plan->n_etc) {
			if (plan->n_etc == PLAN_MAX_ETC)
				break;
			plan->n_etc++;
		}
		plan->etc[j] = (struct plan_file){ .name = f->name, .content = f->content,
						   .len = strlen(f->content) };
	}

	plan->root_opts = "mode=0755,size=16m,nr_inodes=4096";
	plan->dev_opts = "mode=0755,size=64k,nr_inodes=64";
	plan->tmp_opts = store(ps, "mode=1777,size=%llu,nr_inodes=%llu",
			       (unsigned long long)cfg->tmp_size,
			       (unsigned long long)(cfg->tmp_size / 4096 + 1024));
	plan->shm_opts = store(ps, "mode=1777,size=%llu", (unsigned long long)cfg->tmp_size);
	plan->home_opts = store(ps, "mode=0700,uid=%u,gid=%u,size=%llu", SANDBOX_UID, SANDBOX_UID,
				(unsigned long long)cfg->home_size);
	plan->home_tree_fd = -1;
	plan->rl_fsize = (struct rlimit){ cfg->fsize, cfg->fsize };
	plan->rl_nofile = (struct rlimit){ cfg->nofile, cfg->nofile };
	plan->filter = cfg->allow_nested ? &rt->filter_nested : &rt->filter;
	plan->wipe_args = rt->process_argv;

}

struct sandbox_exec *sandbox_start(struct sandbox_runtime *rt, const struct sandbox_config *cfg,
				   const struct sandbox_callbacks *cb, void *userdata,
				   struct cr_error *err)
{
	struct sandbox_exec *ex = NULL;
	struct plan_store ps;
	struct sandbox_plan plan;
	struct cgroup_limits limits = { cfg->memory_bytes, cfg->pids, cfg->cpu_milli };
	const char *interpreter = NULL;
	int out[2][2] = { { -1, -1 }, { -1, -1 } };
	int sync[2] = { -1, -1 };
	int tree_fd = -1;
	struct clone_args args;
	long pid;

	memset(&ps, 0, sizeof(ps));
	if (sandbox_config_check(cfg, err) < 0)
		return NULL;
	if (cfg->language != SANDBOX_LANG_NONE &&
	    sandbox_find_interpreter(cfg->image, cfg->language, &interpreter, err) < 0)
		return NULL;
	if (check_uid_range(rt, cfg->host_uid_base, err) < 0)
		return NULL;

	ex = xzalloc(sizeof(*ex));
	ex->rt = rt;
	ex->pidfd = ex->timer_fd = ex->sync_fd = ex->mntns_fd = -1;
	ex->out_fd[0] = ex->out_fd[1] = -1;
	ex->cg.dirfd = -1;
	for (int i = 0; i < CG1_COUNT; i++)
		ex->cg.task_fd[i] = -1;
	ex->res.exit_code = -1;
	ex->output_limit = cfg->output_limit;
	if (cfg->redact) {
		ex->redactor[0] = redactor_new(cfg->redact);
		ex->redactor[1] = redactor_new(cfg->redact);
	}
	ex->userdata = userdata;
	if (cb)
		ex->cb = *cb;
	ex->start_ns = now_ns();

	if (cfg->thread_dir &&
	    prepare_thread_dir(cfg->thread_dir, cfg->host_uid_base + SANDBOX_UID, &tree_fd, err) < 0)
		goto fail;
	/* v2 clones straight into the cgroup, which must exist first; v1
	 * makes it while the child builds its root (below). */
	if (rt->cgroups.version == CGROUP_V2) {
		if (cgroup_create(&rt->cgroups, &limits, &ex->cg, err) < 0)
			goto fail;
		trace(ex, "cgroup created");
	}
	if (pipe2(out[0], O_CLOEXEC) < 0 || pipe2(out[1], O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
		cr_error_set(err, errno, "cannot create pipes for the sandbox");
		goto fail;
	}

	build_plan(rt, cfg, interpreter, &plan, &ps);
	if (plan_image(cfg->image, &plan, &ps, err) < 0)
		goto fail_plan;
	plan.home_tree_fd = tree_fd;
	plan.join_cgroups = rt->cgroups.version == CGROUP_V1;
	for (size_t i = 0; i < cfg->n_listen && i < ARRAY_SIZE(plan.listen_ports); i++)
		plan.listen_ports[plan.n_listen++] = cfg->listen_ports[i];
	ex->n_listen = plan.n_listen;
	plan.stdout_fd = out[0][1];
	plan.stderr_fd = out[1][1];
	plan.sync_fd = sync[1];

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
		     CLONE_NEWNET | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)&ex->pidfd;
	args.exit_signal = SIGCHLD;
	if (rt->cgroups.version == CGROUP_V2) {
		args.flags |= CLONE_INTO_CGROUP | CLONE_NEWCGROUP;
		args.cgroup = (uint64_t)ex->cg.dirfd;
	}
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		sandbox_child_main(&plan);
	if (pid < 0) {
		cr_error_set(err, errno, "cannot create the sandbox's namespaces (clone3)");
		goto fail_plan;
	}
	ex->pid = (pid_t)pid;
	ex->running = true;
	trace(ex, "cloned");
	{
		char nspath[64];
		snprintf(nspath, sizeof(nspath), "/proc/%d/ns/mnt", ex->pid);
		ex->mntns_fd = open(nspath, O_RDONLY | O_CLOEXEC);
	}
	close_fd(&out[0][1]);
	close_fd(&out[1][1]);
	close_fd(&sync[1]);
	close_fd(&tree_fd);
	plan_store_release(&ps);

	ex->out_fd[0] = out[0][0];
	ex->out_fd[1] = out[1][0];
	ex->sync_fd = sync[0];
	link_live(ex);

	/* The child waits for "go" (its ids) and later for "cgroup". */
	if (write_id_maps(ex->pid, cfg->host_uid_base, err) < 0)
		goto fail_started;
	/* A send that fails means the child already died: its own report
	 * (or its exit) says why, through the normal path. */
	(void)send(ex->sync_fd, &(char){ SYNC_GO }, 1, MSG_NOSIGNAL);
	if (rt->cgroups.version == CGROUP_V1) {
		if (cgroup_create(&rt->cgroups, &limits, &ex->cg, err) < 0)
			goto fail_started;
		trace(ex, "cgroup created");
		send_cgroup_fds(ex);
		/* Our copies are not needed: the child joins through its own. */
		for (int i = 0; i < CG1_COUNT; i++)
			close_fd(&ex->cg.task_fd[i]);
	}
	trace(ex, "ids mapped");

	ex->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ex->timer_fd < 0) {
		cr_error_set(err, errno, "timerfd_create");
		goto fail_started;
	}
	{
		struct itimerspec its = { .it_value = {
			.tv_sec = cfg->timeout_ms / 1000,
			.tv_nsec = (long)(cfg->timeout_ms % 1000) * 1000000L } };
		if (timerfd_settime(ex->timer_fd, 0, &its, NULL) < 0) {
			cr_error_set(err, errno, "timerfd_settime");
			goto fail_started;
		}
	}
	fcntl(ex->out_fd[0], F_SETFL, O_NONBLOCK);
	fcntl(ex->out_fd[1], F_SETFL, O_NONBLOCK);
	fcntl(ex->sync_fd, F_SETFL, O_NONBLOCK);
	if (watch_add(ex, WATCH_PIDFD, ex->pidfd, err) < 0 ||
	    watch_add(ex, WATCH_STDOUT, ex->out_fd[0], err) < 0 ||
	    watch_add(ex, WATCH_STDERR, ex->out_fd[1], err) < 0 ||
	    watch_add(ex, WATCH_TIMER, ex->timer_fd, err) < 0 ||
	    watch_add(ex, WATCH_SYNC, ex->sync_fd, err) < 0)
		goto fail_started;
	return ex;

fail_started:
	/* The child exists: kill it and clean up as for any execution. */
	sandbox_exec_cancel(ex);
	reap(ex, true);
	finalize(ex, false);
	sandbox_exec_free(ex);
	return NULL;
fail_plan:
	plan_store_release(&ps);
fail:
	close_fd(&out[0][0]);
	close_fd(&out[0][1]);
	close_fd(&out[1][0]);
	close_fd(&out[1][1]);
	close_fd(&sync[0]);
	close_fd(&sync[1]);
	close_fd(&tree_fd);
	cgroup_destroy(&ex->cg, NULL);
	redactor_free(ex->redactor[0]);
	redactor_free(ex->redactor[1]);
	free(ex);
	return NULL;
}

/* --- supervising ------------------------------------------------------ */

static void kill_tree(struct sandbox_exec *ex)
{
	if (ex->pidfd >= 0 && !ex->reaped)
		syscall(SYS_pidfd_send_signal, ex->pidfd, SIGKILL, NULL, 0);
	/* The pid namespace dies with its init; the cgroup catches anything
	 * that was still being set up. */
	cgroup_kill(&ex->cg);
}

void sandbox_exec_cancel(struct sandbox_exec *ex)
{
	if (!ex->running || ex->reaped)
		return;
	ex->cancelled = true;
	kill_tree(ex);
}

void sandbox_runtime_cancel_all(struct sandbox_runtime *rt)
{
	for (struct sandbox_exec *ex = rt->live; ex; ex = ex->next)
		sandbox_exec_cancel(ex);
}

/* Read what the sandbox's setup or init reported. */
static void read_sync(struct sandbox_exec *ex)
{
	struct child_msg m;

	while (ex->sync_fd >= 0) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * SANDBOX_MAX_LISTEN)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { &m, sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		int fds[SANDBOX_MAX_LISTEN];
		size_t nfds = 0;
		ssize_t r = recvmsg(ex->sync_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0 || errno != EAGAIN) {
				watch_del(ex, ex->sync_fd);
				close_fd(&ex->sync_fd);
			}
			return;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < SANDBOX_MAX_LISTEN)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
		if ((size_t)r != sizeof(m) || m.kind != CHILD_MSG_LISTEN || ex->got_listen ||
		    nfds != ex->n_listen) {
			for (size_t i = 0; i < nfds; i++)
				close(fds[i]);
			if ((size_t)r != sizeof(m))
				continue;
		}
		m.text[sizeof(m.text) - 1] = '\0';
		if (m.kind == CHILD_MSG_ERROR && ex->child_error == NULL) {
			ex->child_error = m.errnum ? xasprintf("%s: %s", m.text, strerror(m.errnum))
						   : xstrdup(m.text);
		} else if (m.kind == CHILD_MSG_EXIT) {
			ex->got_exit = true;
			ex->exit_status = m.status;
		} else if (m.kind == CHILD_MSG_LISTEN && !ex->got_listen && nfds == ex->n_listen) {
			ex->got_listen = true;
			trace(ex, "listening sockets received");
			if (ex->cb.on_listen) {
				ex->cb.on_listen(ex, fds, nfds, ex->userdata);
			} else {
				for (size_t i = 0; i < nfds; i++)
					close(fds[i]);
			}
		}
	}
}

/* Hand output on: to the callback and, up to the limit, to the result.
 * Past the limit the bytes are dropped so the program never blocks on a
 * full pipe, and `truncated` says so. */
static void deliver(struct sandbox_exec *ex, int s, const char *data, size_t len)
{
	struct buf *b = &ex->res.output[s];
	size_t room = b->len < ex->output_limit ? (size_t)(ex->output_limit - b->len) : 0;
	size_t take = len < room ? len : room;

	if (len == 0)
		return;
	if (ex->cb.on_output)
		ex->cb.on_output(ex, (enum sandbox_stream)s, data, len, ex->userdata);
	if (take)
		buf_add(b, data, take);
	if (take < len)
		ex->res.truncated[s] = true;
}

/* Pass a chunk through the stream's redactor (which may hold back the
 * start of what could be a secret split across reads), then deliver. */
static void deliver_raw(struct sandbox_exec *ex, int s, const char *data, size_t len, bool eof)
{
	struct buf clean = BUF_INIT;

	if (ex->redactor[s] == NULL) {
		deliver(ex, s, data, len);
		return;
	}
	if (len)
		redactor_feed(ex->redactor[s], data, len, &clean);
	if (eof)
		redactor_finish(ex->redactor[s], &clean);
	deliver(ex, s, clean.data, clean.len);
	buf_release(&clean);
}

static void read_output(struct sandbox_exec *ex, int s)
{
	char chunk[65536];
	/* At most 1 MiB per wakeup, so one fast writer cannot starve the
	 * loop (epoll is level-triggered: the rest comes next round).  After
	 * init is reaped nothing writes any more: read to the end. */
	int budget = ex->reaped ? -1 : 16;

	while (ex->out_fd[s] >= 0 && budget-- != 0) {
		ssize_t r = read(ex->out_fd[s], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			watch_del(ex, ex->out_fd[s]);
			close_fd(&ex->out_fd[s]);
			deliver_raw(ex, s, NULL, 0, true);
			return;
		}
		deliver_raw(ex, s, chunk, (size_t)r, false);
		/* Unscrubbed output must not linger on this stack: the next
		 * sandbox is cloned from this thread, and its init (which keeps
		 * its live frames) would start with a copy. */
		explicit_bzero(chunk, (size_t)r);
	}
}

/* Collect init's exit status and resource usage (which includes every
 * process init reaped, and those the pid namespace teardown reaped). */
static void reap(struct sandbox_exec *ex, bool block)
{
	siginfo_t info;

	if (ex->reaped || ex->pidfd < 0)
		return;
	for (;;) {
		memset(&info, 0, sizeof(info));
		long r = syscall(SYS_waitid, P_PIDFD, ex->pidfd, &info,
				 WEXITED | (block ? 0 : WNOHANG), &ex->rusage);
		if (r < 0 && errno == EINTR)
			continue;
		/* ECHILD: something else in this process reaped init (a
		 * waitpid(-1) or SIGCHLD ignored by an embedding program).
		 * Its status is lost, but it is gone: carry on as reaped. */
		if (r < 0 && errno == ECHILD)
			break;
		if (r < 0 || info.si_pid == 0)
			return;
		break;
	}
	ex->reaped = true;
	trace(ex, "reaped");
	watch_del(ex, ex->pidfd);
	/* Everything in the namespace is gone: drain what it wrote. */
	read_sync(ex);
	for (int s = 0; s < 2; s++)
		read_output(ex, s);
}

static void finalize(struct sandbox_exec *ex, bool notify)
{
	struct sandbox_result *res = &ex->res;
	struct cgroup_stats st;

	if (!ex->running)
		return;
	read_sync(ex);
	cgroup_read_stats(&ex->cg, &st);
	res->peak_memory = st.peak_memory;
	res->duration_ms = (now_ns() - ex->start_ns) / 1000000u;
	res->cpu_ms = (uint64_t)(ex->rusage.ru_utime.tv_sec + ex->rusage.ru_stime.tv_sec) * 1000u +
		      (uint64_t)(ex->rusage.ru_utime.tv_usec + ex->rusage.ru_stime.tv_usec) / 1000u;

	if (ex->got_exit) {
		int ws = ex->exit_status;
		if (WIFEXITED(ws)) {
			res->exit_code = WEXITSTATUS(ws);
		} else if (WIFSIGNALED(ws)) {
			res->signal = WTERMSIG(ws);
			res->exit_code = 128 + res->signal;
		}
	}
	if (ex->timed_out) {
		res->status = SANDBOX_TIMEOUT;
		if (!ex->got_exit) {
			res->signal = SIGKILL;
			res->exit_code = 128 + SIGKILL;
		}
		res->error = xasprintf("the execution ran past its timeout and was killed");
	} else if (ex->cancelled) {
		res->status = SANDBOX_CANCELLED;
		res->error = xstrdup("the execution was cancelled");
	} else if (st.oom_kills > 0) {
		res->status = SANDBOX_OOM;
		res->error = xstrdup("the execution ran out of memory and was killed by the memory limit");
		if (!ex->got_exit) {
			res->signal = SIGKILL;
			res->exit_code = 128 + SIGKILL;
		}
	} else if (ex->child_error) {
		res->status = SANDBOX_FAILED;
		res->error = steal_pointer(&ex->child_error);
		if (!ex->got_exit)
			res->exit_code = -1;
	} else if (!ex->got_exit) {
		res->status = SANDBOX_FAILED;
		res->error = xstrdup("the sandbox ended without reporting the program's exit");
	} else if (res->exit_code == 0 && res->signal == 0) {
		res->status = SANDBOX_SUCCESS;
	} else {
		res->status = SANDBOX_FAILED;
	}

	for (int s = 0; s < 2; s++) {
		if (ex->out_fd[s] >= 0)
			deliver_raw(ex, s, NULL, 0, true); /* flush what was held back */
		watch_del(ex, ex->out_fd[s]);
		close_fd(&ex->out_fd[s]);
		redactor_free(ex->redactor[s]);
		ex->redactor[s] = NULL;
	}
	watch_del(ex, ex->timer_fd);
	close_fd(&ex->timer_fd);
	watch_del(ex, ex->sync_fd);
	close_fd(&ex->sync_fd);
	close_fd(&ex->pidfd);
	free(ex->child_error);
	ex->child_error = NULL;
	ex->running = false;
	unlink_live(ex);
	if (notify && ex->cb.on_exit)
		ex->cb.on_exit(ex, ex->userdata);
}

/* Finalise without notifying; returns true when the caller should call
 * on_exit once it no longer touches this batch of events (the callback may
 * free the execution). */
static bool maybe_finish(struct sandbox_exec *ex)
{
	if (ex->running && ex->reaped && ex->out_fd[0] < 0 && ex->out_fd[1] < 0) {
		finalize(ex, false);
		return true;
	}
	return false;
}

int sandbox_runtime_dispatch(struct sandbox_runtime *rt, int timeout_ms, struct cr_error *err)
{
	struct epoll_event evs[64];
	struct sandbox_exec *done[64];
	int n, ndone = 0;

	n = epoll_wait(rt->epfd, evs, (int)ARRAY_SIZE(evs), timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return cr_error_set(err, errno, "epoll_wait");
	}
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;
		struct sandbox_exec *ex = w->ex;

		if (!ex->running)
			continue;
		switch (w->kind) {
		case WATCH_PIDFD:
			reap(ex, false);
			break;
		case WATCH_STDOUT:
		case WATCH_STDERR:
			read_output(ex, w->kind == WATCH_STDOUT ? 0 : 1);
			break;
		case WATCH_TIMER: {
			uint64_t ticks;
			if (read(ex->timer_fd, &ticks, sizeof(ticks)) > 0 && !ex->reaped) {
				ex->timed_out = true;
				kill_tree(ex);
			}
			break;
		}
		case WATCH_SYNC:
			read_sync(ex);
			break;
		case WATCH_COUNT:
			break;
		}
		if (maybe_finish(ex))
			done[ndone++] = ex;
	}
	for (int i = 0; i < ndone; i++)
		if (done[i]->cb.on_exit)
			done[i]->cb.on_exit(done[i], done[i]->userdata);
	return n;
}

/* --- results ---------------------------------------------------------- */

bool sandbox_exec_done(const struct sandbox_exec *ex)
{
	return !ex->running;
}

const struct sandbox_result *sandbox_exec_result(const struct sandbox_exec *ex)
{
	return &ex->res;
}

int sandbox_exec_pid(const struct sandbox_exec *ex)
{
	return ex->pid;
}

void sandbox_exec_free(struct sandbox_exec *ex)
{
	struct cr_error err = CR_ERROR_INIT;

	if (ex == NULL)
		return;
	if (ex->running) {
		sandbox_exec_cancel(ex);
		reap(ex, true);
		finalize(ex, false);
	}
	/* Work that does not change the result happens here, after the
	 * owner has delivered it: removing the cgroup, and (by closing our
	 * reference) tearing down the mount namespace, whose few dozen
	 * unmounts would otherwise delay init's exit and so the result. */
	if (cgroup_destroy(&ex->cg, &err) < 0) {
		fprintf(stderr, "corral: %s\n", err.msg);
		cr_error_release(&err);
	}
	close_fd(&ex->mntns_fd);
	for (int s = 0; s < 2; s++)
		buf_release(&ex->res.output[s]);
	free(ex->res.error);
	free(ex);
}
