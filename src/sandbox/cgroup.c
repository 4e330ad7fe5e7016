/* cgroup.c - see cgroup.h. */
#define _GNU_SOURCE
#include "sandbox/cgroup.h"
#include "util/buf.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

static const char *const v1_names[CG1_COUNT] = {
	[CG1_MEMORY] = "memory",
	[CG1_PIDS] = "pids",
	[CG1_CPU] = "cpu",
};

char *cgroup_parse_self(const char *text, const char *controller)
{
	const char *line = text;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *c1 = memchr(line, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;

		if (c2) {
			const char *ctrls = c1 + 1;
			size_t clen = (size_t)(c2 - ctrls);
			size_t plen = len - (size_t)(c2 + 1 - line);
			bool match = false;

			if (*controller == '\0') {
				match = clen == 0 && (size_t)(c1 - line) == 1 && line[0] == '0';
			} else {
				/* "cpu,cpuacct" lists several controllers. */
				const char *p = ctrls;
				size_t want = strlen(controller);
				while (p < c2) {
					const char *comma = memchr(p, ',', (size_t)(c2 - p));
					const char *end = comma ? comma : c2;
					if ((size_t)(end - p) == want && memcmp(p, controller, want) == 0)
						match = true;
					p = end + 1;
				}
			}
			if (match)
				return xstrndup(c2 + 1, plen);
		}
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

char *cgroup_join(const char *mount, const char *path, const char *leaf)
{
	struct buf b = BUF_INIT;
	const char *p = path;

	buf_adds(&b, mount);
	while (*p) {
		const char *slash;
		size_t len;
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if ((len == 2 && p[0] == '.' && p[1] == '.') || (len == 1 && p[0] == '.')) {
			buf_release(&b);
			return NULL;
		}
		buf_adds(&b, "/");
		buf_add(&b, p, len);
		p += len;
	}
	if (leaf) {
		buf_adds(&b, "/");
		buf_adds(&b, leaf);
	}
	return buf_detach(&b, NULL);
}

static bool is_fs(const char *path, long magic)
{
	struct statfs sfs;
	return statfs(path, &sfs) == 0 && sfs.f_type == magic;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_ok(const char *path, struct cr_error *err)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return cr_error_set(err, errno, "cannot create cgroup '%s'", path);
	return 0;
}

/* Resolve where this process's cgroup for `controller` lives under
 * `mount`.  When the listed path does not exist below the mount (a
 * container whose cgroup mount is rooted elsewhere) fall back to the mount
 * itself, which is then our own cgroup. */
static char *self_dir(const char *proc_cgroup, const char *mount, const char *controller)
{
	cleanup_free char *rel = cgroup_parse_self(proc_cgroup, controller);
	char *dir;

	if (rel == NULL)
		return NULL;
	dir = cgroup_join(mount, rel, NULL);
	if (dir && is_dir(dir))
		return dir;
	free(dir);
	return xstrdup(mount);
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;
	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
		p += n;
	}
	return false;
}

/* Enable memory, pids and cpu for the children of `dir`. */
static int v2_delegate(const char *dir, struct cr_error *err)
{
	cleanup_free char *path = xasprintf("%s/cgroup.subtree_control", dir);
	cleanup_free char *cur = read_file(path, NULL, err);
	const char *want = "+memory +pids +cpu";

	if (cur == NULL)
		return -1;
	if (has_word(cur, "memory") && has_word(cur, "pids") && has_word(cur, "cpu"))
		return 0;
	if (write_file_raw(path, O_TRUNC, 0, want, strlen(want)) < 0)
		return cr_error_set(err, errno, "cannot enable controllers in '%s'", path);
	return 0;
}

static int init_v2(struct cgroup_manager *m, const char *mount, const char *proc_cgroup,
		   struct cr_error *err)
{
	cleanup_free char *self = self_dir(proc_cgroup, mount, "");
	cleanup_free char *ctrl_path = NULL;
	cleanup_free char *ctrls = NULL;
	cleanup_free char *base = NULL;
	struct cr_error sub = CR_ERROR_INIT;

	if (self == NULL)
		return cr_error_set(err, 0, "/proc/self/cgroup has no cgroup v2 entry");
	ctrl_path = xasprintf("%s/cgroup.controllers", self);
	ctrls = read_file(ctrl_path, NULL, err);
	if (ctrls == NULL)
		return -1;
	if (!has_word(ctrls, "memory") || !has_word(ctrls, "pids") || !has_word(ctrls, "cpu"))
		return cr_error_set(err, 0,
				    "cgroup v2 at '%s' does not offer the memory, pids and cpu controllers (it has: %s); delegate them to corral's cgroup",
				    self, ctrls[0] && ctrls[0] != '\n' ? strtok(ctrls, "\n") : "none");

	if (v2_delegate(self, &sub) < 0) {
		/* "No internal processes": a non-root cgroup that holds processes
		 * cannot hand controllers to children (EBUSY).  Move ourselves to
		 * a leaf beside the sandboxes, then retry. */
		cleanup_free char *leaf = xasprintf("%s/corral-supervisor", self);
		cleanup_free char *procs = xasprintf("%s/cgroup.procs", leaf);
		char pid[32];
		int n = snprintf(pid, sizeof(pid), "%d", getpid());

		if (sub.errnum != EBUSY) {
			cr_error_move(err, &sub);
			return -1;
		}
		cr_error_release(&sub);
		if (mkdir_ok(leaf, err) < 0)
			return -1;
		if (write_file_raw(procs, 0, 0, pid, (size_t)n) < 0)
			return cr_error_set(err, errno, "cannot move corral into '%s'", leaf);
		if (v2_delegate(self, err) < 0)
			return -1;
	}
	base = xasprintf("%s/corral", self);
	if (mkdir_ok(base, err) < 0 || v2_delegate(base, err) < 0)
		return -1;
	m->base[0] = steal_pointer(&base);
	m->version = CGROUP_V2;
	return 0;
}

static int init_v1(struct cgroup_manager *m, const char *root, const char *proc_cgroup,
		   struct cr_error *err)
{
	for (int i = 0; i < CG1_COUNT; i++) {
		cleanup_free char *mount = xasprintf("%s/%s", root, v1_names[i]);
		cleanup_free char *self = NULL;
		char *base;

		if (!is_fs(mount, CGROUP_SUPER_MAGIC))
			return cr_error_set(err, 0, "no cgroup v1 '%s' hierarchy at '%s'", v1_names[i],
					    mount);
		self = self_dir(proc_cgroup, mount, v1_names[i]);
		if (self == NULL)
			return cr_error_set(err, 0, "/proc/self/cgroup does not list the '%s' controller",
					    v1_names[i]);
		base = xasprintf("%s/corral", self);
		m->base[i] = base;
		if (mkdir_ok(base, err) < 0)
			return -1;
	}
	{
		cleanup_free char *memsw = xasprintf("%s/memory.memsw.limit_in_bytes", m->base[CG1_MEMORY]);
		m->v1_memsw = access(memsw, F_OK) == 0;
	}
	m->version = CGROUP_V1;
	return 0;
}

int cgroup_manager_init(struct cgroup_manager *m, const char *root, enum cgroup_version force,
			struct cr_error *err)
{
	cleanup_free char *proc_cgroup = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	proc_cgroup = read_file("/proc/self/cgroup", NULL, err);
	if (proc_cgroup == NULL)
		return -1;

	if (force == CGROUP_V2 || (force == CGROUP_NONE && is_fs(root, CGROUP2_SUPER_MAGIC))) {
		const char *mount = root;
		cleanup_free char *unified = NULL;
		if (!is_fs(root, CGROUP2_SUPER_MAGIC)) {
			unified = xasprintf("%s/unified", root);
			mount = unified;
			if (!is_fs(mount, CGROUP2_SUPER_MAGIC))
				return cr_error_set(err, 0, "no cgroup v2 hierarchy at '%s' or '%s'", root,
						    mount);
		}
		r = init_v2(m, mount, proc_cgroup, err);
	} else {
		r = init_v1(m, root, proc_cgroup, err);
	}
	if (r < 0) {
		cgroup_manager_release(m);
		return cr_error_wrap(err, "cgroups");
	}
	return 0;
}

void cgroup_manager_release(struct cgroup_manager *m)
{
	for (int i = 0; i < CG1_COUNT; i++)
		free(m->base[i]);
	memset(m, 0, sizeof(*m));
}

int cgroup_manager_reap_stale(struct cgroup_manager *m)
{
	int n = 0;
	int levels = m->version == CGROUP_V2 ? 1 : CG1_COUNT;

	for (int i = 0; i < levels; i++) {
		DIR *d = m->base[i] ? opendir(m->base[i]) : NULL;
		struct dirent *e;

		if (d == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			struct sandbox_cgroup cg;
			char *end;
			long pid = strtol(e->d_name, &end, 10);

			if (e->d_type != DT_DIR || end == e->d_name || *end != '-' || pid <= 0)
				continue;
			if (pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
				continue;
			/* Treated as a single directory: kill() then lists its own
			 * cgroup.procs, whatever the hierarchy. */
			memset(&cg, 0, sizeof(cg));
			cg.dirfd = -1;
			cg.version = CGROUP_V2;
			cg.path[0] = xasprintf("%s/%s", m->base[i], e->d_name);
			cgroup_kill(&cg);
			if (cgroup_destroy(&cg, NULL) == 0)
				n++;
		}
		closedir(d);
	}
	return n;
}

static int set_knob(const char *dir, const char *knob, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_knob(const char *dir, const char *knob, const char *fmt, ...)
{
	char value[64], path[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, knob);
	return write_file_raw(path, O_TRUNC, 0, value, (size_t)n);
}

static int apply_v1(struct cgroup_manager *m, struct sandbox_cgroup *cg,
		    const struct cgroup_limits *l, struct cr_error *err)
{
	const char *mem = cg->path[CG1_MEMORY];

	if (l->memory_bytes) {
		if (set_knob(mem, "memory.limit_in_bytes", "%llu", (unsigned long long)l->memory_bytes) < 0)
			return cr_error_set(err, errno, "cannot set memory.limit_in_bytes in '%s'", mem);
		/* memsw = memory: the sandbox may not use swap at all. */
		if (m->v1_memsw &&
		    set_knob(mem, "memory.memsw.limit_in_bytes", "%llu",
			     (unsigned long long)l->memory_bytes) < 0)
			return cr_error_set(err, errno, "cannot set memory.memsw.limit_in_bytes in '%s'", mem);
		if (!m->v1_memsw)
			(void)set_knob(mem, "memory.swappiness", "0");
	}
	if (l->pids && set_knob(cg->path[CG1_PIDS], "pids.max", "%u", l->pids) < 0)
		return cr_error_set(err, errno, "cannot set pids.max in '%s'", cg->path[CG1_PIDS]);
	if (l->cpu_milli) {
		const char *cpu = cg->path[CG1_CPU];
		if (set_knob(cpu, "cpu.cfs_period_us", "100000") < 0 ||
		    set_knob(cpu, "cpu.cfs_quota_us", "%u", l->cpu_milli * 100) < 0)
			return cr_error_set(err, errno, "cannot set the CPU quota in '%s'", cpu);
	}
	return 0;
}

static int apply_v2(struct sandbox_cgroup *cg, const struct cgroup_limits *l, struct cr_error *err)
{
	const char *dir = cg->path[0];

	if (l->memory_bytes) {
		if (set_knob(dir, "memory.max", "%llu", (unsigned long long)l->memory_bytes) < 0)
			return cr_error_set(err, errno, "cannot set memory.max in '%s'", dir);
		if (set_knob(dir, "memory.swap.max", "0") < 0 && errno != ENOENT)
			return cr_error_set(err, errno, "cannot set memory.swap.max in '%s'", dir);
	}
	if (l->pids && set_knob(dir, "pids.max", "%u", l->pids) < 0)
		return cr_error_set(err, errno, "cannot set pids.max in '%s'", dir);
	if (l->cpu_milli && set_knob(dir, "cpu.max", "%u 100000", l->cpu_milli * 100) < 0)
		return cr_error_set(err, errno, "cannot set cpu.max in '%s'", dir);
	return 0;
}

int cgroup_create(struct cgroup_manager *m, const struct cgroup_limits *limits,
		  struct sandbox_cgroup *cg, struct cr_error *err)
{
	char name[64];
	int n = m->version == CGROUP_V2 ? 1 : CG1_COUNT;

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = -1;
	for (int i = 0; i < CG1_COUNT; i++)
		cg->task_fd[i] = -1;
	cg->version = m->version;
	if (m->version == CGROUP_NONE)
		return cr_error_set(err, 0, "cgroups are not initialised");
	snprintf(name, sizeof(name), "%d-%lu", getpid(), ++m->seq);
	for (int i = 0; i < n; i++) {
		cg->path[i] = xasprintf("%s/%s", m->base[i], name);
		if (mkdir(cg->path[i], 0755) < 0) {
			int e = errno;
			free(cg->path[i]);
			cg->path[i] = NULL;
			cgroup_destroy(cg, NULL);
			return cr_error_set(err, e, "cannot create cgroup '%s/%s'", m->base[i], name);
		}
	}
	if ((m->version == CGROUP_V2 ? apply_v2(cg, limits, err) : apply_v1(m, cg, limits, err)) < 0) {
		cgroup_destroy(cg, NULL);
		return -1;
	}
	if (m->version == CGROUP_V1) {
		for (int i = 0; i < CG1_COUNT; i++) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/tasks", cg->path[i]);
			cg->task_fd[i] = open(path, O_WRONLY | O_CLOEXEC);
			if (cg->task_fd[i] < 0) {
				int e = errno;
				cgroup_destroy(cg, NULL);
				return cr_error_set(err, e, "cannot open '%s'", path);
			}
		}
	}
	if (m->version == CGROUP_V2) {
		cg->dirfd = open(cg->path[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cg->dirfd < 0) {
			int e = errno;
			cgroup_destroy(cg, NULL);
			return cr_error_set(err, e, "cannot open cgroup '%s'", name);
		}
	}
	return 0;
}

int cgroup_enter(struct sandbox_cgroup *cg, pid_t pid, struct cr_error *err)
{
	char s[32];
	int len = snprintf(s, sizeof(s), "%d", pid);

	for (int i = 0; i < CG1_COUNT; i++) {
		char path[4096];
		if (cg->path[i] == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->path[i]);
		if (write_file_raw(path, 0, 0, s, (size_t)len) < 0)
			return cr_error_set(err, errno, "cannot move pid %d into '%s'", pid, cg->path[i]);
	}
	return 0;
}

int cgroup_join_self(const int task_fd[CG1_COUNT])
{
	for (int i = 0; i < CG1_COUNT; i++) {
		ssize_t r;
		if (task_fd[i] < 0)
			continue;
		do
			r = write(task_fd[i], "0", 1);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Value of "key N" in a flat-keyed cgroup file, 0 when absent. */
static uint64_t read_keyed(const char *dir, const char *file, const char *key)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, file);
	cleanup_free char *text = read_file(path, NULL, NULL);
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return strtoull(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

static uint64_t read_u64(const char *dir, const char *file)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, file);
	cleanup_free char *text = read_file(path, NULL, NULL);
	return text ? strtoull(text, NULL, 10) : 0;
}

void cgroup_read_stats(const struct sandbox_cgroup *cg, struct cgroup_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (cg->path[0] == NULL)
		return;
	if (cg->version == CGROUP_V2) {
		st->oom_kills = read_keyed(cg->path[0], "memory.events", "oom_kill");
		st->peak_memory = read_u64(cg->path[0], "memory.peak");
	} else {
		st->oom_kills = read_keyed(cg->path[CG1_MEMORY], "memory.oom_control", "oom_kill");
		st->peak_memory = read_u64(cg->path[CG1_MEMORY], "memory.max_usage_in_bytes");
	}
}

static const char *procs_dir(const struct sandbox_cgroup *cg)
{
	return cg->version == CGROUP_V2 ? cg->path[0] : cg->path[CG1_PIDS];
}

bool cgroup_is_empty(const struct sandbox_cgroup *cg)
{
	const char *dir = procs_dir(cg);
	cleanup_free char *path = NULL;
	cleanup_free char *text = NULL;

	if (dir == NULL)
		return true;
	path = xasprintf("%s/cgroup.procs", dir);
	text = read_file(path, NULL, NULL);
	return text == NULL || text[0] == '\0';
}

void cgroup_kill(const struct sandbox_cgroup *cg)
{
	const char *dir = procs_dir(cg);
	cleanup_free char *path = NULL;
	cleanup_free char *text = NULL;

	if (dir == NULL)
		return;
	if (cg->version == CGROUP_V2 && set_knob(dir, "cgroup.kill", "1") == 0)
		return;
	/* v1 (or v2 before 5.14): kill what is listed.  A process forking in
	 * between is caught by the next call; the pid namespace's teardown
	 * kills the rest anyway. */
	path = xasprintf("%s/cgroup.procs", dir);
	text = read_file(path, NULL, NULL);
	for (char *p = text; p && *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
		p = end;
		while (*p == '\n')
			p++;
	}
}

int cgroup_destroy(struct sandbox_cgroup *cg, struct cr_error *err)
{
	int ret = 0;

	if (cg->dirfd >= 0) {
		close(cg->dirfd);
		cg->dirfd = -1;
	}
	for (int i = 0; i < CG1_COUNT; i++) {
		if (cg->task_fd[i] >= 0) {
			close(cg->task_fd[i]);
			cg->task_fd[i] = -1;
		}
	}
	for (int i = 0; i < CG1_COUNT; i++) {
		if (cg->path[i] == NULL)
			continue;
		/* rmdir fails with EBUSY while a process is still exiting; the
		 * kernel finishes that within a few ms. */
		for (int tries = 0; rmdir(cg->path[i]) < 0; tries++) {
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || tries > 200) {
				ret = cr_error_set(err, errno, "cannot remove cgroup '%s'", cg->path[i]);
				break;
			}
			if (tries == 0)
				cgroup_kill(cg);
			usleep(5000);
		}
		free(cg->path[i]);
		cg->path[i] = NULL;
	}
	return ret;
}
