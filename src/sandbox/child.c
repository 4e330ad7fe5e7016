/* child.c - see child.h.  The steps follow DESIGN.md section 4 in order. */
#define _GNU_SOURCE
#include "sandbox/child.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

/* The new root is assembled on a tmpfs mounted over this path in the
 * child's own mount namespace; the host's /tmp is not touched. */
#define NEWROOT "/tmp"

/* --- reporting ------------------------------------------------------- */

static int sync_fd = -1;

/* Append `s` to dst (size n), always NUL-terminated.  Signal-safe. */
static void cat(char *dst, size_t n, const char *s)
{
	size_t l = strlen(dst);
	while (s && *s && l + 1 < n)
		dst[l++] = *s++;
	dst[l] = '\0';
}

static void send_msg(const struct child_msg *m)
{
	ssize_t r;
	do
		r = send(sync_fd, m, sizeof(*m), MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
}

/* Report "<what> '<arg>'" with errno and exit.  The parent appends the
 * strerror text. */
static void __attribute__((noreturn)) die_code(int code, int errnum, const char *what,
						const char *arg)
{
	struct child_msg m;

	memset(&m, 0, sizeof(m));
	m.kind = CHILD_MSG_ERROR;
	m.errnum = errnum;
	cat(m.text, sizeof(m.text), what);
	if (arg) {
		cat(m.text, sizeof(m.text), " '");
		cat(m.text, sizeof(m.text), arg);
		cat(m.text, sizeof(m.text), "'");
	}
	send_msg(&m);
	_exit(code);
}

static void __attribute__((noreturn)) die2(int errnum, const char *what, const char *arg)
{
	die_code(126, errnum, what, arg);
}

static void __attribute__((noreturn)) die(int errnum, const char *what)
{
	die2(errnum, what, NULL);
}

/* Join a, b (and c) into a fixed buffer; paths here are short and known. */
static const char *path3(char *buf, size_t n, const char *a, const char *b, const char *c)
{
	buf[0] = '\0';
	cat(buf, n, a);
	cat(buf, n, b);
	if (c)
		cat(buf, n, c);
	return buf;
}

/* --- mounts ---------------------------------------------------------- */

/* Flags of an existing mount that a remount inside a user namespace must
 * keep: the kernel locks them when the mount tree is copied into a less
 * privileged namespace (see mount_namespaces(7), "locked" mounts). */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static void bind_ro(const char *src, const char *dst, unsigned long extra)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		die2(errno, "cannot bind-mount", src);
	if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | extra | locked_flags(dst), NULL) < 0)
		die2(errno, "cannot make read-only", dst);
}

static void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		die2(errno, "cannot create directory", path);
}

static void make_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0444);
	if (fd < 0)
		die2(errno, "cannot create mount point", path);
	close(fd);
}

static void mount_tmpfs(const char *dst, unsigned long flags, const char *opts)
{
	if (mount("tmpfs", dst, "tmpfs", flags, opts) < 0)
		die2(errno, "cannot mount tmpfs on", dst);
}

static bool exists(const char *path, bool *is_dir)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return false;
	if (is_dir)
		*is_dir = S_ISDIR(st.st_mode);
	return true;
}

/* /proc entries that show host-wide kernel state or let root poke at it.
 * Files are covered by /dev/null, directories by an empty read-only tmpfs
 * (the lists match what OCI runtimes mask by default). */
/* /proc entries that show host-wide kernel state.  Files are covered by
 * /dev/null, directories by an empty read-only directory.  Only entries a
 * uid-1000 process could otherwise read (or that DESIGN.md names) are
 * listed: the rest belong to the host's root with mode 0400, which the
 * sandbox's ids cannot read, and every mount here costs start-up time. */
static const char *const proc_masked_files[] = {
	"kcore", "keys", "key-users", "timer_list", "timer_stats", "sched_debug",
	"latency_stats", "kallsyms", NULL,
};
static const char *const proc_masked_dirs[] = { "acpi", "scsi", NULL };
/* Knobs the host's root owns; read-only on top of being unwritable. */
static const char *const proc_readonly[] = { "sys", "sysrq-trigger", NULL };

static void setup_proc(void)
{
	char p[PATH_MAX];
	bool dir;

	make_dir(NEWROOT "/proc", 0555);
	if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die(errno, "cannot mount a new /proc (is the host's /proc partly covered?)");
	for (const char *const *f = proc_masked_files; *f; f++) {
		path3(p, sizeof(p), NEWROOT "/proc/", *f, NULL);
		if (!exists(p, &dir) || dir)
			continue;
		if (mount(NEWROOT "/dev/null", p, NULL, MS_BIND, NULL) < 0)
			die2(errno, "cannot mask", p);
	}
	for (const char *const *d = proc_masked_dirs; *d; d++) {
		path3(p, sizeof(p), NEWROOT "/proc/", *d, NULL);
		if (!exists(p, &dir) || !dir)
			continue;
		/* /var/empty lives on the root tmpfs, made read-only later. */
		if (mount(NEWROOT "/var/empty", p, NULL, MS_BIND, NULL) < 0)
			die2(errno, "cannot mask", p);
	}
	for (const char *const *r = proc_readonly; *r; r++) {
		path3(p, sizeof(p), NEWROOT "/proc/", *r, NULL);
		if (!exists(p, NULL))
			continue;
		bind_ro(p, p, MS_NOSUID | MS_NODEV | MS_NOEXEC);
	}
}

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };

static void setup_dev(const struct sandbox_plan *plan)
{
	char src[64], dst[PATH_MAX];

	make_dir(NEWROOT "/dev", 0755);
	mount_tmpfs(NEWROOT "/dev", MS_NOSUID | MS_NOEXEC, plan->dev_opts);
	/* A user namespace cannot mknod devices: bind the host's nodes. */
	for (const char *const *n = dev_nodes; *n; n++) {
		path3(src, sizeof(src), "/dev/", *n, NULL);
		path3(dst, sizeof(dst), NEWROOT "/dev/", *n, NULL);
		make_file(dst);
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			die2(errno, "cannot bind device", src);
	}
	make_dir(NEWROOT "/dev/pts", 0755);
	if (mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=620") < 0)
		die(errno, "cannot mount a new devpts instance");
	if (symlink("pts/ptmx", NEWROOT "/dev/ptmx") < 0)
		die(errno, "cannot create /dev/ptmx");
	make_dir(NEWROOT "/dev/shm", 01777);
	mount_tmpfs(NEWROOT "/dev/shm", MS_NOSUID | MS_NODEV, plan->shm_opts);
	if (symlink("/proc/self/fd", NEWROOT "/dev/fd") < 0 ||
	    symlink("/proc/self/fd/0", NEWROOT "/dev/stdin") < 0 ||
	    symlink("/proc/self/fd/1", NEWROOT "/dev/stdout") < 0 ||
	    symlink("/proc/self/fd/2", NEWROOT "/dev/stderr") < 0)
		die(errno, "cannot create /dev symlinks");
}

static void setup_etc(const struct sandbox_plan *plan)
{
	char p[PATH_MAX], src[PATH_MAX];
	bool dir;

	make_dir(NEWROOT "/etc", 0755);
	for (size_t i = 0; i < plan->n_etc; i++) {
		const struct plan_file *f = &plan->etc[i];
		path3(p, sizeof(p), NEWROOT "/etc/", f->name, NULL);
		if (f->content) {
			if (write_file_raw(p, O_CREAT | O_EXCL, 0644, f->content, f->len) < 0)
				die2(errno, "cannot write", p);
		} else if (symlink(f->target, p) < 0) {
			die2(errno, "cannot create symlink", p);
		}
	}
	for (const char *const *b = plan->etc_binds; b && *b; b++) {
		path3(src, sizeof(src), "/etc/", *b, NULL);
		if (!exists(src, &dir))
			continue;
		path3(p, sizeof(p), NEWROOT "/etc/", *b, NULL);
		if (dir)
			make_dir(p, 0755);
		else
			make_file(p);
		bind_ro(src, p, MS_NOSUID | MS_NODEV);
	}
}

static void setup_home(const struct sandbox_plan *plan)
{
	char p[PATH_MAX];

	make_dir(NEWROOT "/home", 0755);
	path3(p, sizeof(p), NEWROOT, plan->home, NULL);
	make_dir(p, 0700);
	if (plan->home_tree_fd >= 0) {
		if (move_mount(plan->home_tree_fd, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			die2(errno, "cannot attach the thread directory at", plan->home);
	} else {
		mount_tmpfs(p, MS_NOSUID | MS_NODEV, plan->home_opts);
	}
}

static void setup_code(const struct sandbox_plan *plan)
{
	char p[PATH_MAX];
	int fd;

	if (plan->code_path == NULL)
		return;
	path3(p, sizeof(p), NEWROOT, plan->code_path, NULL);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
	if (fd < 0)
		die2(errno, "cannot create code file", plan->code_path);
	if (write_all(fd, plan->code, plan->code_len) < 0)
		die2(errno, "cannot write code file (is /tmp too small?)", plan->code_path);
	if (fchown(fd, 1000, 1000) < 0)
		die2(errno, "cannot chown code file", plan->code_path);
	close(fd);
}

static void setup_root(const struct sandbox_plan *plan)
{
	char p[PATH_MAX];

	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die(errno, "cannot make / private");
	mount_tmpfs(NEWROOT, MS_NOSUID | MS_NODEV, plan->root_opts);

	for (size_t i = 0; i < plan->n_image; i++) {
		const struct plan_entry *e = &plan->image[i];
		path3(p, sizeof(p), NEWROOT "/", e->name, NULL);
		if (e->tree_fd >= 0) {
			make_dir(p, 0755);
			if (move_mount(e->tree_fd, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0)
				die2(errno, "cannot attach the image's", e->name);
		} else if (symlink(e->target, p) < 0) {
			die2(errno, "cannot create symlink", p);
		}
	}
	setup_etc(plan);
	make_dir(NEWROOT "/var", 0755);
	make_dir(NEWROOT "/var/empty", 0555);
	setup_dev(plan);
	setup_proc();

	make_dir(NEWROOT "/tmp", 01777);
	mount_tmpfs(NEWROOT "/tmp", MS_NOSUID | MS_NODEV, plan->tmp_opts);
	if (symlink("/tmp", NEWROOT "/var/tmp") < 0)
		die(errno, "cannot create /var/tmp");
	make_dir(NEWROOT "/run", 0755);
	setup_home(plan);
	setup_code(plan);

	/* The image never changes because of what a sandbox does: the root
	 * and /dev tmpfs become read-only now that they are filled. */
	if (mount(NULL, NEWROOT "/dev", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		die(errno, "cannot make /dev read-only");
	if (mount(NULL, NEWROOT, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		die(errno, "cannot make the root read-only");

	if (chdir(NEWROOT) < 0)
		die(errno, "cannot enter the new root");
	/* pivot_root(".", ".") stacks the old root under the new one; the
	 * detach below then removes it (pivot_root(2), NOTES). */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		die(errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		die(errno, "cannot detach the old root");
	if (chdir("/") < 0)
		die(errno, "chdir /");
}

/* --- network, privileges -------------------------------------------- */

static void loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die(errno, "cannot open a socket to configure loopback");
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		die(errno, "cannot read loopback flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		die(errno, "cannot bring loopback up");
	close(fd);
}

/* Listen on 127.0.0.1:<port> for each port of the plan, inside our new
 * network namespace, and hand the sockets to the parent in one
 * CHILD_MSG_LISTEN (the daemon serves them: egress/egress.h).  Our copies
 * close on exec and are closed below in any case; the program never holds
 * them. */
static void send_listeners(const struct sandbox_plan *plan)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	int fds[4];
	struct child_msg m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * plan->n_listen) };
	struct cmsghdr *c;
	ssize_t r;

	if (plan->n_listen == 0)
		return;
	for (size_t i = 0; i < plan->n_listen; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons(plan->listen_ports[i]),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int one = 1;
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0)
			die(errno, "cannot create the proxy's socket");
		setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fds[i], 128) < 0)
			die(errno, "cannot listen on the proxy's port");
	}
	memset(&m, 0, sizeof(m));
	m.kind = CHILD_MSG_LISTEN;
	memset(u.buf, 0, sizeof(u.buf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * plan->n_listen);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * plan->n_listen);
	do
		r = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof(m))
		_exit(125);
	for (size_t i = 0; i < plan->n_listen; i++)
		close(fds[i]);
}

/* glibc's setresuid() broadcasts the change to every thread of the
 * process (its "setxid" protocol), which in a child cloned from a
 * multi-threaded parent waits on threads that do not exist here.  The
 * raw system calls change only the calling thread: all there is. */
static int raw_setresuid(uid_t id)
{
	return (int)syscall(SYS_setresuid, id, id, id);
}

static int raw_setresgid(gid_t id)
{
	return (int)syscall(SYS_setresgid, id, id, id);
}

static void drop_privileges(const struct sandbox_plan *plan)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &plan->rl_fsize) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &plan->rl_nofile) < 0)
		die(errno, "cannot set resource limits");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die(errno, "cannot set no_new_privs");
	/* Empty the bounding set while we still hold CAP_SETPCAP, and lock
	 * root's special treatment away so no exec can gain anything. */
	for (int cap = 0; cap <= 63; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break; /* past the kernel's last capability */
		die(errno, "cannot drop the capability bounding set");
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		die(errno, "cannot clear ambient capabilities");
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
		  SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0)
		die(errno, "cannot set securebits");
	if (raw_setresgid(1000) < 0)
		die(errno, "cannot switch to gid 1000");
	if (raw_setresuid(1000) < 0)
		die(errno, "cannot switch to uid 1000");
	/* setuid cleared permitted and effective; clear inheritable too. */
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		die(errno, "cannot clear capabilities");
}

/* Search the sandbox PATH ourselves: execvpe() would use the parent's
 * environment, not the sandbox's. */
static void exec_program(const struct sandbox_plan *plan)
{
	const char *prog = plan->argv[0];
	int saved = ENOENT;

	if (strchr(prog, '/')) {
		execve(prog, plan->argv, plan->envp);
		saved = errno;
		die_code(saved == ENOENT ? 127 : 126, saved, "cannot execute", prog);
	}
	for (const char *const *d = plan->path_dirs; *d; d++) {
		char p[PATH_MAX];
		path3(p, sizeof(p), *d, "/", prog);
		execve(p, plan->argv, plan->envp);
		if (errno != ENOENT && errno != ENOTDIR)
			saved = errno;
	}
	die_code(saved == ENOENT ? 127 : 126, saved, "cannot execute", prog);
}

/* --- init's memory --------------------------------------------------- */

/* Parse a hexadecimal number at *p, advancing it. */
static uintptr_t parse_hex(const char **p, const char *end)
{
	uintptr_t v = 0;

	for (; *p < end; (*p)++) {
		char c = **p;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
		if (d == 16)
			break;
		v = v << 4 | d;
	}
	return v;
}

#define PAGE_DOWN(x) ((x) & ~(uintptr_t)4095)
#define PAGE_UP(x) (((x) + 4095) & ~(uintptr_t)4095)
#define KEEP_BELOW_TP (256u << 10)  /* static TLS sits below the thread pointer */
#define KEEP_ABOVE_TP (64u << 10)   /* the thread's control block above it */
#define KEEP_BELOW_SP (16u << 10)   /* what run_init() and its calls may use */

static void drop_range(uintptr_t lo, uintptr_t hi)
{
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* One line of /proc/self/maps, "lo-hi perms offset dev inode   [path]":
 * drop it if it is private, writable and anonymous (no file: unnamed,
 * [heap], [stack] or a named [anon:...] region), except what init still
 * runs on.  MADV_DONTNEED neither splits nor merges mappings, so the
 * maps file read so far stays true. */
static void drop_mapping(const char *line, const char *end, uintptr_t sp, uintptr_t tp)
{
	const char *p = line, *perms, *name;
	uintptr_t lo = parse_hex(&p, end), hi;
	bool anon;

	if (p >= end || *p != '-')
		return;
	p++;
	hi = parse_hex(&p, end);
	if (p >= end)
		return;
	perms = ++p;
	if (end - perms < 4 || perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p')
		return;
	/* Skip perms, offset and dev; the inode then tells anonymous (0)
	 * from file mappings. */
	for (int field = 0; field < 3 && p < end; field++) {
		while (p < end && *p != ' ')
			p++;
		while (p < end && *p == ' ')
			p++;
	}
	anon = p < end && *p == '0' && (p + 1 == end || p[1] == ' ');
	if (!anon)
		return;
	p++;
	while (p < end && *p == ' ')
		p++;
	name = p;
	if (name < end && !(end - name == 6 && memcmp(name, "[heap]", 6) == 0) &&
	    !(end - name == 7 && memcmp(name, "[stack]", 7) == 0) &&
	    !(end - name >= 6 && memcmp(name, "[anon:", 6) == 0))
		return; /* [vvar], [vdso], [vsyscall] and the like */

	if (sp >= lo && sp < hi) {
		/* Our stack: everything below the frames still to run holds
		 * the supervisor's (its loop read every sandbox's output into
		 * buffers there). */
		drop_range(lo, sp > KEEP_BELOW_SP ? PAGE_DOWN(sp - KEEP_BELOW_SP) : lo);
		return;
	}
	if (tp >= lo && tp < hi) {
		/* Our thread control block and static TLS (errno, the stack
		 * protector's canary) live here. */
		uintptr_t keep_lo = tp > KEEP_BELOW_TP ? PAGE_DOWN(tp - KEEP_BELOW_TP) : 0;
		uintptr_t keep_hi = PAGE_UP(tp + KEEP_ABOVE_TP);
		drop_range(lo, keep_lo > lo ? keep_lo : lo);
		drop_range(keep_hi < hi ? keep_hi : hi, hi);
		return;
	}
	drop_range(lo, hi);
}

/* Init starts as a copy of the supervisor, whose memory (a server's)
 * holds other executions' data: connectors' decrypted secrets, request
 * bodies, output, the scrubber's patterns.  Init is non-dumpable, so the
 * program cannot read it; but nothing of it is needed once the program
 * runs, so init drops it: every private anonymous writable mapping reads
 * as zeroes after MADV_DONTNEED, except the frames of its own stack and
 * the window around its thread pointer.  File mappings (code, .data) are
 * left as they are.  After this init calls only system call wrappers
 * that the binary has bound already (the Makefile links with -z now: the
 * dynamic loader's data is gone).  Best effort: what a failure leaves was
 * unreadable anyway. */
static void forget_supervisor_memory(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* A sanitizer's shadow and allocator are such mappings, and its own
	 * code runs on them: a sanitizer build keeps its memory. */
	return;
#else
	char buf[4096];
	size_t have = 0;
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t tp = (uintptr_t)__builtin_thread_pointer();
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	bool eof = false, skipping = false;

	if (fd < 0)
		return;
	while (!eof || have > 0) {
		char *nl;

		if (!eof && have < sizeof(buf)) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				eof = true;
			else
				have += (size_t)r;
		}
		nl = memchr(buf, '\n', have);
		if (nl == NULL) {
			if (have == sizeof(buf)) {
				/* A line longer than the buffer (a long path):
				 * not anonymous; skip to its end. */
				skipping = true;
				have = 0;
				continue;
			}
			if (eof) {
				if (!skipping && have > 0)
					drop_mapping(buf, buf + have, sp, tp);
				break;
			}
			continue;
		}
		if (!skipping)
			drop_mapping(buf, nl, sp, tp);
		skipping = false;
		have -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, have);
	}
	close(fd);
#endif
}

/* pid 1 of the sandbox: reap everything, report the program's status,
 * and exit, which makes the kernel kill whatever the program left behind
 * (daemons, double forks) before our parent sees us go. */
static void __attribute__((noreturn)) run_init(pid_t main_pid)
{
	struct child_msg m;
	int status = 0;

	prctl(PR_SET_NAME, "corral-init", 0, 0, 0);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p == main_pid) {
			status = st;
			break;
		}
	}
	memset(&m, 0, sizeof(m));
	m.kind = CHILD_MSG_EXIT;
	m.status = status;
	send_msg(&m);
	_exit(0);
}

static void setup_fds(const struct sandbox_plan *plan)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (devnull < 0)
		die(errno, "cannot open /dev/null");
	/* Move the sync socket out of the way of 0-2 first. */
	if (sync_fd < 3) {
		int s = fcntl(sync_fd, F_DUPFD_CLOEXEC, 3);
		if (s < 0)
			die(errno, "dup");
		sync_fd = s;
	}
	if (dup2(devnull, 0) < 0 || dup2(plan->stdout_fd, 1) < 0 || dup2(plan->stderr_fd, 2) < 0)
		die(errno, "cannot set up standard streams");
	/* Close everything else; glibc 2.34 has close_range. */
	if (sync_fd > 3)
		close_range(3, (unsigned)sync_fd - 1, 0);
	close_range((unsigned)sync_fd + 1, ~0u, 0);
}

/* Receive SYNC_CGROUP with the CG1_COUNT "tasks" descriptors. */
static void receive_cgroup_fds(int fds[CG1_COUNT])
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * CG1_COUNT)];
		struct cmsghdr align;
	} u;
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t r;

	do
		r = recvmsg(sync_fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	c = CMSG_FIRSTHDR(&mh);
	if (r != 1 || byte != SYNC_CGROUP || c == NULL || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int) * CG1_COUNT))
		_exit(125);
	memcpy(fds, CMSG_DATA(c), sizeof(int) * CG1_COUNT);
}

/* Start from a clean process state whatever the supervisor's: its signal
 * mask and ignored signals (a server ignores SIGPIPE; `corral run` blocks
 * INT, TERM and HUP) would otherwise reach the program, so would its
 * umask; and a new session leaves the caller's terminal behind, so
 * /dev/tty cannot reach it (bubblewrap's CVE-2017-5226).  The copy of the
 * supervisor's command line that /proc/1/cmdline would show is wiped. */
static void reset_process_state(const struct sandbox_plan *plan)
{
	/* The kernel's struct sigaction; glibc's wrapper refuses the two
	 * real-time signals it reserves (32, 33), which may arrive ignored. */
	struct { void (*handler)(int); unsigned long flags; void (*restorer)(void); uint64_t mask; }
		dfl = { SIG_DFL, 0, NULL, 0 };
	uint64_t none = 0;

	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
	umask(022);
	if (setsid() < 0)
		die(errno, "cannot start a new session");
	for (char *const *a = plan->wipe_args; a && *a; a++)
		memset(*a, 0, strlen(*a));
	/* And the supervisor's environment: the program gets plan->envp. */
	for (char **e = environ; e && *e; e++)
		memset(*e, 0, strlen(*e));
}

void sandbox_child_main(const struct sandbox_plan *plan)
{
	char go;
	ssize_t r;
	pid_t pid;

	sync_fd = plan->sync_fd;
	reset_process_state(plan);
	/* Die with the supervisor: a sandbox never outlives it.  (The signal
	 * follows the *thread* that cloned us, so the runtime clones only from
	 * its long-lived loop thread.) */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

	/* Wait until the parent wrote our id maps. */
	do
		r = read(sync_fd, &go, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1 || go != SYNC_GO)
		_exit(125);

	/* We still carry the host's ids, which the new namespace does not
	 * map; become its root (host uid = the range's base) so that what we
	 * create below has an owner inside. */
	if (raw_setresgid(0) < 0 || raw_setresuid(0) < 0)
		die(errno, "cannot become root of the user namespace");
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (sethostname(plan->hostname, strlen(plan->hostname)) < 0)
		die(errno, "cannot set the hostname");
	loopback_up();
	send_listeners(plan);
	setup_root(plan);
	/* v1: the parent made our cgroups while we built the root, and sends
	 * their "tasks" files now; we join them before anything of the program
	 * runs (only the setup's few tmpfs pages were charged outside), then
	 * make the cgroup the root of our cgroup namespace.  v2 cloned us into
	 * ours. */
	if (plan->join_cgroups) {
		int fds[CG1_COUNT];
		receive_cgroup_fds(fds);
		if (cgroup_join_self(fds) < 0)
			die(errno, "cannot join the execution's cgroups");
		for (int i = 0; i < CG1_COUNT; i++)
			close(fds[i]);
		if (unshare(CLONE_NEWCGROUP) < 0)
			die(errno, "cannot create a cgroup namespace");
	}

	setup_fds(plan);
	drop_privileges(plan);
	/* Changing credentials cleared the parent-death signal: set it again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	{
		/* The parent may have died in the window before: its end of
		 * the sync socket is then closed. */
		struct pollfd pfd = { sync_fd, POLLRDHUP, 0 };
		if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP)))
			_exit(125);
	}
	if (chdir(plan->home) < 0)
		die2(errno, "cannot enter home", plan->home);
	/* Last: nothing after this needs a syscall the filter refuses. */
	if (sandbox_filter_load(plan->filter) < 0)
		die(errno, "cannot install the seccomp filter");

	/* init's memory is a copy of the supervisor's: the program must
	 * never read or ptrace it, so it is non-dumpable before the program
	 * exists (exec gives the program a fresh, dumpable mm). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* vfork: nothing to copy, and no atfork handlers (which would take
	 * locks another thread of the parent may have held at clone time).
	 * The child only searches PATH into stack buffers and execs. */
	pid = vfork();
	if (pid < 0)
		die(errno, "cannot fork the program");
	if (pid == 0) {
		exec_program(plan);
		_exit(127);
	}
	/* init keeps no copy of the output pipes, so they reach EOF as soon
	 * as the program's processes are gone; and it cannot be ptraced. */
	dup2(0, 1);
	dup2(0, 2);
	forget_supervisor_memory();
	run_init(pid);
}
