/* sandbox-helper.c - escape attempts and probes run inside a sandbox.
 *
 * One static program, so the integration tests do not depend on what the
 * image holds (crun's tests/init.c plays the same part).  The tests copy it
 * into a thread directory and run `/home/baponi/helper SUBCOMMAND ARGS...`.
 *
 * Two kinds of subcommand:
 *
 *  - attempts: try one thing the sandbox must refuse and print one line,
 *      "NAME: errno=1 EPERM"          the kernel refused; exit 0
 *      "NAME: ok <details>"           the attempt worked (an escape); exit 1
 *    x32 and int80 are expected to be killed by SIGSYS before they print
 *    a result; they print "NAME: trying" first.
 *
 *  - probes: report a fact ("caps", "ids", "ls DIR", ...) and exit 0, or
 *    print "NAME: errno=N ENAME" and exit 3 when they cannot.
 *
 * Exit 2 is a usage or setup error.  Attempts that would change the host if
 * the helper were started on it by mistake (as root, outside any user
 * namespace) refuse to run there.
 *
 * Only raw syscall(2) and kernel headers: the build links nothing but libc.
 */
#define _GNU_SOURCE
/* Every command has the same signature; most ignore their arguments. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define EXIT_REFUSED 0
#define EXIT_ESCAPED 1
#define EXIT_USAGE 2
#define EXIT_PROBE_FAILED 3

/* struct clone_args as of Linux 5.5 (CLONE_ARGS_SIZE_VER1 is 80 bytes);
 * declared here because <linux/sched.h> fights with <sched.h>. */
struct clone_args_v1 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size;
};

/* --- reporting ------------------------------------------------------- */

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

/* The kernel said no: that is the expected outcome of an attempt. */
static int refused(const char *name, int e)
{
	printf("%s: errno=%d %s\n", name, e, errname(e));
	return EXIT_REFUSED;
}

/* The attempt worked. */
static int __attribute__((format(printf, 2, 3))) escaped(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ok", name);
	if (fmt && *fmt) {
		putchar(' ');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	putchar('\n');
	return EXIT_ESCAPED;
}

/* An attempt's verdict from a raw syscall's return value. */
static int verdict(const char *name, long r)
{
	if (r < 0)
		return refused(name, errno);
	return escaped(name, "ret=%ld", r);
}

static int probe_failed(const char *name, int e)
{
	printf("%s: errno=%d %s\n", name, e, errname(e));
	return EXIT_PROBE_FAILED;
}

static int __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("helper: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static long parse_long(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || end == s || *end)
		usage_error("%s: '%s' is not a number", what, s);
	return v;
}

/* True when we run in the initial user namespace: the identity map. */
static int on_host(void)
{
	char buf[256] = "";
	unsigned long in, out, count;
	FILE *f = fopen("/proc/self/uid_map", "re");

	if (f == NULL)
		return 1; /* cannot tell: assume the worst */
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	if (sscanf(buf, "%lu %lu %lu", &in, &out, &count) != 3)
		return 1;
	return in == 0 && out == 0 && count == 4294967295ul;
}

/* --- file system layout ---------------------------------------------- */

static int do_mount(int argc, char **argv)
{
	const char *target = argc > 0 ? argv[0] : "/tmp";
	return verdict("mount", mount("tmpfs", target, "tmpfs", 0, "size=1m"));
}

static int do_bind_mount(int argc, char **argv)
{
	const char *src = argc > 0 ? argv[0] : "/usr";
	const char *dst = argc > 1 ? argv[1] : "/tmp";
	return verdict("bind-mount", mount(src, dst, NULL, MS_BIND | MS_REC, NULL));
}

static int do_remount(int argc, char **argv)
{
	const char *target = argc > 0 ? argv[0] : "/usr";
	return verdict("remount", mount(NULL, target, NULL, MS_REMOUNT | MS_BIND, NULL));
}

static int do_umount(int argc, char **argv)
{
	return verdict("umount", umount2(argv[0], MNT_DETACH));
}

/* The *-filtered attempts pass arguments the kernel rejects (EINVAL,
 * ENOENT) before it checks capabilities, so they can never change
 * anything, and EPERM can only come from the seccomp filter: they test the
 * filter rule itself, where the plain attempt would also be refused for
 * lack of CAP_SYS_ADMIN. */
static int do_mount_filtered(int argc, char **argv)
{
	return verdict("mount-filtered", mount("tmpfs", "/tmp", "tmpfs", MS_NOUSER, NULL));
}

static int do_umount_filtered(int argc, char **argv)
{
	return verdict("umount-filtered", umount2("/tmp", 0x40000000));
}

static int do_open_tree_filtered(int argc, char **argv)
{
	return verdict("open-tree-filtered",
		       syscall(SYS_open_tree, AT_FDCWD, "/usr", OPEN_TREE_CLONE | 0x40000000));
}

static int do_chroot_filtered(int argc, char **argv)
{
	return verdict("chroot-filtered", chroot("/corral-no-such-directory"));
}

static int do_fsopen(int argc, char **argv)
{
	return verdict("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
}

static int do_open_tree(int argc, char **argv)
{
	const char *path = argc > 0 ? argv[0] : "/usr";
	return verdict("open-tree", syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE));
}

static int do_pivot_root(int argc, char **argv)
{
	const char *new_root = argc > 0 ? argv[0] : "/tmp";
	const char *put_old = argc > 1 ? argv[1] : new_root;
	return verdict("pivot-root", syscall(SYS_pivot_root, new_root, put_old));
}

static int do_chroot(int argc, char **argv)
{
	const char *dir = argc > 0 ? argv[0] : "/tmp";
	return verdict("chroot", chroot(dir));
}

/* mknod [PATH [c|b MAJOR MINOR]]: a device node, /dev/null's by default. */
static int do_mknod(int argc, char **argv)
{
	const char *path = argc > 0 ? argv[0] : "/tmp/corral-null";
	mode_t type = S_IFCHR;
	unsigned maj = 1, min = 3;

	if (argc > 1) {
		if (argc != 4 || (strcmp(argv[1], "c") != 0 && strcmp(argv[1], "b") != 0))
			usage_error("mknod PATH [c|b MAJOR MINOR]");
		type = argv[1][0] == 'b' ? S_IFBLK : S_IFCHR;
		maj = (unsigned)parse_long(argv[2], "major");
		min = (unsigned)parse_long(argv[3], "minor");
	}
	if (mknod(path, type | 0666, makedev(maj, min)) < 0)
		return refused("mknod", errno);
	unlink(path);
	return escaped("mknod", "%s", path);
}

/* --- namespaces ------------------------------------------------------ */

static const struct {
	const char *name;
	int flag;
} ns_kinds[] = {
	{ "user", CLONE_NEWUSER }, { "mount", CLONE_NEWNS }, { "net", CLONE_NEWNET },
	{ "pid", CLONE_NEWPID }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
	{ "cgroup", CLONE_NEWCGROUP }, { "time", 0x00000080 /* CLONE_NEWTIME */ },
};

static int ns_flag(const char *kind)
{
	for (size_t i = 0; i < sizeof(ns_kinds) / sizeof(ns_kinds[0]); i++)
		if (strcmp(ns_kinds[i].name, kind) == 0)
			return ns_kinds[i].flag;
	usage_error("unknown namespace '%s' (user mount net pid ipc uts cgroup time)", kind);
}

/* unshare KIND...: all the named namespaces in one call. */
static int do_unshare(int argc, char **argv)
{
	int flags = 0;

	for (int i = 0; i < argc; i++)
		flags |= ns_flag(argv[i]);
	return verdict("unshare", unshare(flags));
}

static int unshare_one(const char *kind)
{
	char name[32];
	snprintf(name, sizeof(name), "unshare-%s", kind);
	return verdict(name, unshare(ns_flag(kind)));
}

static int do_unshare_user(int argc, char **argv) { return unshare_one("user"); }
static int do_unshare_mount(int argc, char **argv) { return unshare_one("mount"); }
static int do_unshare_net(int argc, char **argv) { return unshare_one("net"); }
static int do_unshare_pid(int argc, char **argv) { return unshare_one("pid"); }
static int do_unshare_ipc(int argc, char **argv) { return unshare_one("ipc"); }
static int do_unshare_uts(int argc, char **argv) { return unshare_one("uts"); }
static int do_unshare_cgroup(int argc, char **argv) { return unshare_one("cgroup"); }
static int do_unshare_time(int argc, char **argv) { return unshare_one("time"); }

/* setns PATH: open a namespace file and join it.  Failing to open it
 * counts as refused too (its own line says which step failed). */
static int do_setns(int argc, char **argv)
{
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		printf("setns: errno=%d %s (open)\n", errno, errname(errno));
		return EXIT_REFUSED;
	}
	return verdict("setns", setns(fd, 0));
}

/* setns-child: make a user and a net namespace of our own, then join the
 * new net namespace again through its file.  Without a filter this works
 * (we hold CAP_SYS_ADMIN over what we created), so only seccomp can make
 * it fail.  Needs --allow-nested to get past the unshare. */
static int do_setns_child(int argc, char **argv)
{
	int fd;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
		printf("setns-child: errno=%d %s (unshare)\n", errno, errname(errno));
		return EXIT_USAGE;
	}
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("setns-child: errno=%d %s (open)\n", errno, errname(errno));
		return EXIT_USAGE;
	}
	return verdict("setns-child", setns(fd, CLONE_NEWNET));
}

/* nested-mount: in a user and mount namespace of our own (needs
 * --allow-nested), mount a tmpfs, as an inner sandbox such as bubblewrap
 * would. */
static int do_nested_mount(int argc, char **argv)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		printf("nested-mount: errno=%d %s (unshare)\n", errno, errname(errno));
		return EXIT_USAGE;
	}
	return verdict("nested-mount", mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m"));
}

/* Wait for a child whose status does not matter. */
static void reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
}

static int do_clone_newuser(int argc, char **argv)
{
	long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);

	if (r == 0)
		_exit(0);
	if (r < 0)
		return refused("clone-newuser", errno);
	reap((pid_t)r);
	return escaped("clone-newuser", "pid=%ld", r);
}

/* clone3 [user]: plain, or asking for a new user namespace. */
static int do_clone3(int argc, char **argv)
{
	struct clone_args_v1 ca;
	long r;

	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	if (argc > 0)
		ca.flags = (uint64_t)ns_flag(argv[0]);
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	if (r < 0)
		return refused("clone3", errno);
	reap((pid_t)r);
	return escaped("clone3", "pid=%ld", r);
}

/* --- kernel attack surface ------------------------------------------- */

static int do_keyctl(int argc, char **argv)
{
	return verdict("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1));
}

static int do_add_key(int argc, char **argv)
{
	return verdict("add-key", syscall(SYS_add_key, "user", "corral-escape", "x", 1,
					  KEY_SPEC_PROCESS_KEYRING));
}

/* Without a filter this fails too, with ENOKEY: the test looks for EPERM. */
static int do_request_key(int argc, char **argv)
{
	return verdict("request-key", syscall(SYS_request_key, "user", "corral-escape", NULL, 0));
}

static int do_bpf(int argc, char **argv)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	return verdict("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
}

/* A user-space-only software counter on ourselves: allowed to anyone at
 * perf_event_paranoid <= 2, so only the filter refuses it. */
static int do_perf(int argc, char **argv)
{
	struct perf_event_attr pe;

	memset(&pe, 0, sizeof(pe));
	pe.type = PERF_TYPE_SOFTWARE;
	pe.size = sizeof(pe);
	pe.config = PERF_COUNT_SW_TASK_CLOCK;
	pe.disabled = 1;
	pe.exclude_kernel = 1;
	pe.exclude_hv = 1;
	return verdict("perf", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
}

/* UFFD_USER_MODE_ONLY needs no privilege (Linux 5.11). */
static int do_userfaultfd(int argc, char **argv)
{
	return verdict("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY));
}

static int do_io_uring(int argc, char **argv)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	return verdict("io-uring", syscall(SYS_io_uring_setup, 4, &p));
}

/* A socket was made: say which family the kernel gave it.  Nothing is
 * connected or sent. */
static int socket_verdict(const char *name, long fd)
{
	int domain = -1;
	socklen_t len = sizeof(domain);

	if (fd < 0)
		return refused(name, errno);
	getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
	return escaped(name, "fd=%ld domain=%d", fd, domain);
}

static int do_vsock(int argc, char **argv)
{
	return socket_verdict("vsock", syscall(SYS_socket, AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

/* socket() takes an int family: the kernel drops the upper 32 bits of the
 * register, a filter that compares all 64 bits does not. */
static int do_vsock_highbits(int argc, char **argv)
{
	long family = (long)(0xffffffff00000000ul | AF_VSOCK);
	return socket_verdict("vsock-highbits",
			      syscall(SYS_socket, family, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

/* connect-tcp ADDR PORT: an IPv4 connection (tests point it at a listener
 * on the host's loopback, which the sandbox's own loopback must not reach). */
static int do_connect_tcp(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (inet_pton(AF_INET, argv[0], &sa.sin_addr) != 1)
		usage_error("connect-tcp: '%s' is not an IPv4 address", argv[0]);
	sa.sin_port = htons((uint16_t)parse_long(argv[1], "port"));
	if (fd < 0)
		return refused("connect-tcp", errno);
	return verdict("connect-tcp", connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
}

/* connect-unix NAME: a stream unix socket; "@name" is abstract (scoped by
 * the network namespace). */
static int do_connect_unix(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(argv[0]);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (len >= sizeof(sa.sun_path))
		usage_error("connect-unix: name too long");
	memcpy(sa.sun_path, argv[0], len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd < 0)
		return refused("connect-unix", errno);
	return verdict("connect-unix",
		       connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)));
}

/* shm-stat ID: look at a System V shared memory segment by id (scoped by
 * the IPC namespace). */
static int do_shm_stat(int argc, char **argv)
{
	struct shmid_ds ds;
	return verdict("shm-stat", shmctl((int)parse_long(argv[0], "id"), IPC_STAT, &ds));
}

/* The "shocker" attack: open an inode of the host file system by handle.
 * Asks the kernel for a real handle first; if that is refused too, forges
 * one for ext4's root inode (2). */
static int do_open_by_handle(int argc, char **argv)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	const char *path = argc > 0 ? argv[0] : "/usr";
	int mount_id, mfd, fd;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (syscall(SYS_name_to_handle_at, AT_FDCWD, path, &h.fh, &mount_id, 0) < 0) {
		uint32_t ino_gen[2] = { 2, 0 };
		h.fh.handle_bytes = sizeof(ino_gen);
		h.fh.handle_type = 1; /* FILEID_INO32_GEN */
		memcpy(h.fh.f_handle, ino_gen, sizeof(ino_gen));
	}
	mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		printf("open-by-handle: cannot open '%s': %s\n", path, errname(errno));
		return EXIT_USAGE;
	}
	fd = (int)syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDONLY | O_CLOEXEC);
	return verdict("open-by-handle", fd);
}

static int do_name_to_handle(int argc, char **argv)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	int mount_id;

	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	return verdict("name-to-handle",
		       syscall(SYS_name_to_handle_at, AT_FDCWD, argc > 0 ? argv[0] : "/usr", &h.fh,
			       &mount_id, 0));
}

/* Modules: an empty image / an fd of /dev/null, so nothing could load
 * even if the call went through. */
static int do_init_module(int argc, char **argv)
{
	return verdict("init-module", syscall(SYS_init_module, NULL, 0, ""));
}

static int do_finit_module(int argc, char **argv)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return verdict("finit-module", syscall(SYS_finit_module, fd, "", 0));
}

static int do_delete_module(int argc, char **argv)
{
	return verdict("delete-module", syscall(SYS_delete_module, "corral_no_such_module", O_NONBLOCK));
}

static int do_kexec(int argc, char **argv)
{
	return verdict("kexec", syscall(SYS_kexec_load, 0, 0, NULL, 0));
}

/* reboot(2) with wrong magic numbers: the capability check comes first
 * (EPERM), the magic check second (EINVAL), so EINVAL means a caller that
 * could have rebooted, and nothing happens either way. */
static int do_reboot(int argc, char **argv)
{
	if (syscall(SYS_reboot, 0x12345678, 0x87654321, LINUX_REBOOT_CMD_CAD_OFF, NULL) < 0 &&
	    errno != EINVAL)
		return refused("reboot", errno);
	return escaped("reboot", "errno=%d %s (past the capability check)", errno, errname(errno));
}

/* An invalid time: the kernel checks it (EINVAL) before the capability,
 * so EPERM means the filter, and the clock can never change. */
static int do_settime(int argc, char **argv)
{
	struct timespec ts = { 0, 2000000000L };
	/* Raw: glibc checks tv_nsec itself. */
	return verdict("settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
}

static int do_sethostname(int argc, char **argv)
{
	return verdict("sethostname", sethostname(argv[0], strlen(argv[0])));
}

static int do_setuid(int argc, char **argv)
{
	uid_t uid = argc > 0 ? (uid_t)parse_long(argv[0], "uid") : 0;
	return verdict("setuid", setuid(uid));
}

/* --- other processes ------------------------------------------------- */

/* kill PID [SIGNAL]: default SIGKILL.  PID -1 is every process we may
 * signal (never ourselves). */
static int do_kill(int argc, char **argv)
{
	pid_t pid = (pid_t)parse_long(argv[0], "pid");
	int sig = argc > 1 ? (int)parse_long(argv[1], "signal") : SIGKILL;

	return verdict("kill", kill(pid, sig));
}

static int do_ptrace(int argc, char **argv)
{
	pid_t pid = (pid_t)parse_long(argv[0], "pid");

	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
		return refused("ptrace", errno);
	reap(pid);
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	return escaped("ptrace", "attached to %d", (int)pid);
}

/* process-vm-read PID: read a word of PID's stack through
 * process_vm_readv (the same access check as ptrace attach). */
static int do_process_vm_read(int argc, char **argv)
{
	pid_t pid = (pid_t)parse_long(argv[0], "pid");
	char path[64], line[512], buf[64];
	unsigned long start = 0, end = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (strstr(line, "[stack]")) {
				sscanf(line, "%lx-%lx", &start, &end);
				break;
			}
		fclose(f);
	}
	if (start == 0)
		start = 0x400000; /* the maps were hidden: guess the classic base */
	{
		struct iovec local = { buf, sizeof(buf) };
		struct iovec remote = { (void *)start, sizeof(buf) };
		return verdict("process-vm-read", process_vm_readv(pid, &local, 1, &remote, 1, 0));
	}
}

/* --- terminals ------------------------------------------------------- */

/* Open a fresh pty pair and make its slave our controlling terminal (in
 * a new session), so that TIOCSTI would be allowed without a filter.
 * Returns the slave fd, or -1 after printing why. */
static int pty_as_ctty(const char *name)
{
	int m, s, unlock = 0;
	unsigned n;
	char path[64];

	m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &n) < 0) {
		printf("%s: setup failed: ptmx: %s\n", name, errname(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/dev/pts/%u", n);
	if (setsid() < 0) {
		printf("%s: setup failed: setsid: %s\n", name, errname(errno));
		return -1;
	}
	s = open(path, O_RDWR | O_CLOEXEC);
	if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) {
		printf("%s: setup failed: %s: %s\n", name, path, errname(errno));
		return -1;
	}
	return s;
}

/* Run fn in a child (setsid needs a non-leader) and pass on its exit. */
static int in_child(int (*fn)(void))
{
	int st;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		usage_error("fork: %s", strerror(errno));
	if (pid == 0) {
		int r = fn();
		fflush(stdout);
		_exit(r);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			usage_error("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_USAGE;
}

static unsigned long tiocsti_highbits;

static int tiocsti_child(void)
{
	const char *name = tiocsti_highbits ? "tiocsti-highbits" : "tiocsti";
	char c = '\n';
	int s = pty_as_ctty(name);

	if (s < 0)
		return EXIT_USAGE;
	return verdict(name, syscall(SYS_ioctl, s, tiocsti_highbits | TIOCSTI, &c));
}

static int do_tiocsti(int argc, char **argv)
{
	return in_child(tiocsti_child);
}

/* The ioctl command is an unsigned int: bits above 32 must not matter. */
static int do_tiocsti_highbits(int argc, char **argv)
{
	tiocsti_highbits = 0x100000000ul;
	return in_child(tiocsti_child);
}

/* TIOCLINUX on a pty is ENOTTY without a filter; the filter says EPERM. */
static int tioclinux_child(void)
{
	char sub = 7; /* TIOCL_GETSHIFTSTATE: harmless */
	int s = pty_as_ctty("tioclinux");

	if (s < 0)
		return EXIT_USAGE;
	return verdict("tioclinux", ioctl(s, TIOCLINUX, &sub));
}

static int do_tioclinux(int argc, char **argv)
{
	return in_child(tioclinux_child);
}

/* --- foreign syscall ABIs -------------------------------------------- */

#if defined(__x86_64__)
/* getpid through the x32 ABI: the same number with bit 30 set. */
static int do_x32(int argc, char **argv)
{
	long r;

	printf("x32: trying\n");
	fflush(stdout);
	__asm__ volatile("syscall" : "=a"(r) : "a"(0x40000000L | SYS_getpid) : "rcx", "r11", "memory");
	return escaped("x32", "returned %ld (not killed)", r);
}

/* getpid (20 on i386) through the 32-bit entry point. */
static int do_int80(int argc, char **argv)
{
	long r;

	printf("int80: trying\n");
	fflush(stdout);
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	return escaped("int80", "returned %ld (not killed)", r);
}
#else
static int do_x32(int argc, char **argv)
{
	usage_error("x32 exists on x86_64 only");
}

static int do_int80(int argc, char **argv)
{
	usage_error("int80 exists on x86_64 only");
}
#endif

/* --- files ----------------------------------------------------------- */

/* read PATH: an attempt; "ok bytes=N" when the file could be read. */
static int do_read(int argc, char **argv)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n;
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return refused("read", errno);
	/* Cap the read: /dev/zero and friends never end. */
	while (total < (16u << 20) && (n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			printf("read: errno=%d %s (read)\n", errno, errname(errno));
			return EXIT_REFUSED;
		}
		total += (size_t)n;
	}
	return escaped("read", "bytes=%zu", total);
}

/* write PATH DATA: an attempt; creates PATH if it can. */
static int do_write(int argc, char **argv)
{
	size_t len = strlen(argv[1]);
	ssize_t n;
	int fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);

	if (fd < 0)
		return refused("write", errno);
	n = write(fd, argv[1], len);
	if (n < 0)
		return refused("write", errno);
	if (close(fd) < 0)
		return refused("write", errno);
	return escaped("write", "bytes=%zd", n);
}

/* stat PATH: an attempt; a path that exists is "ok". */
static int do_stat(int argc, char **argv)
{
	struct stat st;

	if (lstat(argv[0], &st) < 0)
		return refused("stat", errno);
	return escaped("stat", "mode=%o uid=%u", (unsigned)st.st_mode, (unsigned)st.st_uid);
}

/* cat PATH: a probe; the file's bytes on stdout. */
static int do_cat(int argc, char **argv)
{
	char buf[65536];
	ssize_t n;
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return probe_failed("cat", errno);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return probe_failed("cat", errno);
		}
		fwrite(buf, 1, (size_t)n, stdout);
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ls DIR: a probe; "ls: a b c", sorted, without . and .. */
static int do_ls(int argc, char **argv)
{
	DIR *d = opendir(argv[0]);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (d == NULL)
		return probe_failed("ls", errno);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		names = realloc(names, sizeof(char *) * (n + 1));
		if (names == NULL)
			abort();
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_str);
	printf("ls:");
	for (size_t i = 0; i < n; i++)
		printf(" %s", names[i]);
	putchar('\n');
	return 0;
}

/* Does [p, p+n) contain the needle? */
static int contains(const char *p, size_t n, const char *needle, size_t nlen)
{
	return nlen && n >= nlen && memmem(p, n, needle, nlen) != NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* find-secret HEX: look for a string (given hex-encoded, so that our own
 * command line does not hold it) in our environment and in every
 * /proc/PID/{environ,cmdline} we can read.  Reports where it was found and
 * how many files could not be read. */
static int do_find_secret(int argc, char **argv)
{
	extern char **environ;
	const char *hex = argv[0];
	size_t hlen = strlen(hex), slen = hlen / 2;
	char *secret = malloc(slen + 1), buf[1 << 16];
	int found = 0, readable = 0, unreadable = 0;
	DIR *d;
	struct dirent *e;

	if (secret == NULL || hlen == 0 || hlen % 2)
		usage_error("find-secret HEX");
	for (size_t i = 0; i < slen; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			usage_error("find-secret: '%s' is not hex", hex);
		secret[i] = (char)(hi << 4 | lo);
	}
	secret[slen] = '\0';

	for (char **v = environ; v && *v; v++)
		if (strstr(*v, secret)) {
			printf("find-secret: found in our own environment\n");
			found = 1;
		}
	d = opendir("/proc");
	if (d == NULL)
		return probe_failed("find-secret", errno);
	while ((e = readdir(d)) != NULL) {
		static const char *const files[] = { "environ", "cmdline" };
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		for (size_t k = 0; k < 2; k++) {
			char path[300];
			int fd;
			ssize_t n;
			size_t total = 0;

			snprintf(path, sizeof(path), "/proc/%s/%s", e->d_name, files[k]);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				unreadable++;
				continue;
			}
			while (total < sizeof(buf) && (n = read(fd, buf + total, sizeof(buf) - total)) > 0)
				total += (size_t)n;
			if (total == 0 && n < 0)
				unreadable++;
			else
				readable++;
			close(fd);
			if (contains(buf, total, secret, slen)) {
				printf("find-secret: found in %s\n", path);
				found = 1;
			}
		}
	}
	closedir(d);
	if (found)
		return EXIT_ESCAPED;
	printf("find-secret: not found readable=%d unreadable=%d\n", readable, unreadable);
	return EXIT_REFUSED;
}

/* --- probes ---------------------------------------------------------- */

static int do_caps(int argc, char **argv)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return probe_failed("caps", errno);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Cap", 3) == 0 || strncmp(line, "NoNewPrivs:", 11) == 0 ||
		    strncmp(line, "Seccomp", 7) == 0)
			fputs(line, stdout);
	fclose(f);
	return 0;
}

static void print_file_lines(const char *label, const char *path)
{
	char line[256];
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		printf("%s: errno=%d %s\n", label, errno, errname(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		/* The kernel pads the columns: squeeze them to single spaces. */
		unsigned long a, b, c;
		if (sscanf(line, "%lu %lu %lu", &a, &b, &c) == 3)
			printf("%s: %lu %lu %lu\n", label, a, b, c);
	}
	fclose(f);
}

static int do_ids(int argc, char **argv)
{
	uid_t r, e, s;
	gid_t rg, eg, sg, groups[64];
	int n;

	getresuid(&r, &e, &s);
	getresgid(&rg, &eg, &sg);
	printf("ids: uid=%u euid=%u suid=%u gid=%u egid=%u sgid=%u groups=", r, e, s, rg, eg, sg);
	n = getgroups(64, groups);
	for (int i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", groups[i]);
	putchar('\n');
	print_file_lines("uid_map", "/proc/self/uid_map");
	print_file_lines("gid_map", "/proc/self/gid_map");
	return 0;
}

static int do_hostname(int argc, char **argv)
{
	struct utsname u;

	if (uname(&u) < 0)
		return probe_failed("hostname", errno);
	printf("hostname: %s\n", u.nodename);
	return 0;
}

static int do_pid(int argc, char **argv)
{
	printf("pid: %d ppid=%d\n", (int)getpid(), (int)getppid());
	return 0;
}

/* fds: the descriptors we were started with (other than the one used to
 * list them), with what they point at. */
static int do_fds(int argc, char **argv)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return probe_failed("fds", errno);
	printf("fds:");
	while ((e = readdir(d)) != NULL) {
		char path[300], target[256];
		ssize_t n;
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf(" %s=%s", e->d_name, target);
	}
	closedir(d);
	putchar('\n');
	return 0;
}

/* --- load ------------------------------------------------------------ */

/* fork-bomb [MAX]: fork children that wait, until fork fails or MAX is
 * reached; report the count, then kill them all.  Exit 0 when a limit
 * stopped us, 1 when nothing did. */
static int do_fork_bomb(int argc, char **argv)
{
	long max = argc > 0 ? parse_long(argv[0], "max") : 100000;
	pid_t *pids = calloc((size_t)max, sizeof(pid_t));
	long n = 0;
	int err = 0;

	if (pids == NULL)
		usage_error("out of memory");
	fflush(stdout);
	while (n < max) {
		pid_t p = fork();
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			for (;;)
				pause();
		}
		if (p < 0) {
			err = errno;
			break;
		}
		pids[n++] = p;
	}
	for (long i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (long i = 0; i < n; i++)
		reap(pids[i]);
	if (err == 0) {
		printf("fork-bomb: forks=%ld no limit reached\n", n);
		return EXIT_ESCAPED;
	}
	printf("fork-bomb: forks=%ld errno=%d %s\n", n, err, errname(err));
	return EXIT_REFUSED;
}

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void *wait_at_gate(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate_lock);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	return NULL;
}

/* threads N: start N threads that all wait until the last one is up.
 * Exit 0 when all started, 3 otherwise. */
static int do_threads(int argc, char **argv)
{
	long want = parse_long(argv[0], "count");
	pthread_t *t = calloc(want > 0 ? (size_t)want : 1, sizeof(pthread_t));
	pthread_attr_t attr;
	long n = 0;
	int err = 0;

	if (t == NULL || want < 0)
		usage_error("threads N");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (; n < want; n++) {
		err = pthread_create(&t[n], &attr, wait_at_gate, NULL);
		if (err)
			break;
	}
	pthread_mutex_lock(&gate_lock);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	for (long i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	if (err) {
		printf("threads: created=%ld of %ld errno=%d %s\n", n, want, err, errname(err));
		return EXIT_PROBE_FAILED;
	}
	printf("threads: created=%ld of %ld\n", n, want);
	return 0;
}

/* sleep-daemon [--keep-fds]: leave a grandchild in its own session that
 * sleeps forever, print its pid, and exit.  By default the grandchild
 * lets go of stdin/stdout/stderr, as a daemon does; with --keep-fds it
 * holds the output pipes open. */
static int do_sleep_daemon(int argc, char **argv)
{
	int keep = argc > 0 && strcmp(argv[0], "--keep-fds") == 0;
	pid_t mid, grand;

	fflush(stdout);
	mid = fork();
	if (mid < 0)
		usage_error("fork: %s", strerror(errno));
	if (mid == 0) {
		int ready[2];
		char c;
		if (setsid() < 0 || pipe2(ready, O_CLOEXEC) < 0)
			_exit(EXIT_USAGE);
		grand = fork();
		if (grand < 0)
			_exit(EXIT_USAGE);
		if (grand == 0) {
			if (!keep) {
				int null = open("/dev/null", O_RDWR);
				dup2(null, 0);
				dup2(null, 1);
				dup2(null, 2);
				if (null > 2)
					close(null);
			}
			close(ready[1]); /* tells the middle child we are set */
			for (;;)
				pause();
		}
		close(ready[1]);
		while (read(ready[0], &c, 1) < 0 && errno == EINTR)
			;
		printf("sleep-daemon: pid=%d\n", (int)grand);
		fflush(stdout);
		_exit(0);
	}
	reap(mid);
	return 0;
}

static int do_sleep(int argc, char **argv)
{
	long s = parse_long(argv[0], "seconds");
	struct timespec ts = { s, 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("sleep: done\n");
	return 0;
}

/* spin SECONDS: burn CPU (wall clock) and report how many loops ran. */
static int do_spin(int argc, char **argv)
{
	long s = parse_long(argv[0], "seconds");
	struct timespec start, now;
	volatile unsigned long loops = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 100000; i++)
			loops++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < s);
	printf("spin: loops=%lu\n", (unsigned long)loops);
	return 0;
}

/* --- dispatch -------------------------------------------------------- */

enum { HOST_OK = 0, HOSTILE = 1 };

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	int min_args;
	int flags;
	const char *args;
} commands[] = {
	/* attempts */
	{ "mount", do_mount, 0, HOSTILE, "[TARGET]" },
	{ "bind-mount", do_bind_mount, 0, HOSTILE, "[SRC [DST]]" },
	{ "remount", do_remount, 0, HOSTILE, "[TARGET]" },
	{ "umount", do_umount, 1, HOSTILE, "PATH" },
	{ "mount-filtered", do_mount_filtered, 0, HOST_OK, "" },
	{ "umount-filtered", do_umount_filtered, 0, HOST_OK, "" },
	{ "open-tree-filtered", do_open_tree_filtered, 0, HOST_OK, "" },
	{ "chroot-filtered", do_chroot_filtered, 0, HOST_OK, "" },
	{ "fsopen", do_fsopen, 0, HOST_OK, "" },
	{ "open-tree", do_open_tree, 0, HOST_OK, "[PATH]" },
	{ "pivot-root", do_pivot_root, 0, HOSTILE, "[NEW_ROOT [PUT_OLD]]" },
	{ "chroot", do_chroot, 0, HOST_OK, "[DIR]" },
	{ "mknod", do_mknod, 0, HOSTILE, "[PATH [c|b MAJOR MINOR]]" },
	{ "unshare", do_unshare, 1, HOST_OK, "KIND... (user mount net pid ipc uts cgroup time)" },
	{ "unshare-user", do_unshare_user, 0, HOST_OK, "" },
	{ "unshare-mount", do_unshare_mount, 0, HOST_OK, "" },
	{ "unshare-net", do_unshare_net, 0, HOST_OK, "" },
	{ "unshare-pid", do_unshare_pid, 0, HOST_OK, "" },
	{ "unshare-ipc", do_unshare_ipc, 0, HOST_OK, "" },
	{ "unshare-uts", do_unshare_uts, 0, HOST_OK, "" },
	{ "unshare-cgroup", do_unshare_cgroup, 0, HOST_OK, "" },
	{ "unshare-time", do_unshare_time, 0, HOST_OK, "" },
	{ "setns", do_setns, 1, HOST_OK, "PATH" },
	{ "setns-child", do_setns_child, 0, HOST_OK, "" },
	{ "nested-mount", do_nested_mount, 0, HOST_OK, "" },
	{ "clone-newuser", do_clone_newuser, 0, HOST_OK, "" },
	{ "clone3", do_clone3, 0, HOST_OK, "[KIND]" },
	{ "keyctl", do_keyctl, 0, HOST_OK, "" },
	{ "add-key", do_add_key, 0, HOST_OK, "" },
	{ "request-key", do_request_key, 0, HOST_OK, "" },
	{ "bpf", do_bpf, 0, HOST_OK, "" },
	{ "perf", do_perf, 0, HOST_OK, "" },
	{ "userfaultfd", do_userfaultfd, 0, HOST_OK, "" },
	{ "io-uring", do_io_uring, 0, HOST_OK, "" },
	{ "vsock", do_vsock, 0, HOST_OK, "" },
	{ "vsock-highbits", do_vsock_highbits, 0, HOST_OK, "" },
	{ "connect-tcp", do_connect_tcp, 2, HOST_OK, "ADDR PORT" },
	{ "connect-unix", do_connect_unix, 1, HOST_OK, "PATH|@ABSTRACT" },
	{ "shm-stat", do_shm_stat, 1, HOST_OK, "ID" },
	{ "open-by-handle", do_open_by_handle, 0, HOST_OK, "[MOUNT_DIR]" },
	{ "name-to-handle", do_name_to_handle, 0, HOST_OK, "[PATH]" },
	{ "init-module", do_init_module, 0, HOSTILE, "" },
	{ "finit-module", do_finit_module, 0, HOSTILE, "" },
	{ "delete-module", do_delete_module, 0, HOSTILE, "" },
	{ "kexec", do_kexec, 0, HOSTILE, "" },
	{ "reboot", do_reboot, 0, HOSTILE, "" },
	{ "settime", do_settime, 0, HOST_OK, "" },
	{ "sethostname", do_sethostname, 1, HOSTILE, "NAME" },
	{ "setuid", do_setuid, 0, HOST_OK, "[UID]" },
	{ "kill", do_kill, 1, HOSTILE, "PID [SIGNAL]" },
	{ "ptrace", do_ptrace, 1, HOSTILE, "PID" },
	{ "process-vm-read", do_process_vm_read, 1, HOST_OK, "PID" },
	{ "tiocsti", do_tiocsti, 0, HOST_OK, "" },
	{ "tiocsti-highbits", do_tiocsti_highbits, 0, HOST_OK, "" },
	{ "tioclinux", do_tioclinux, 0, HOST_OK, "" },
	{ "x32", do_x32, 0, HOST_OK, "" },
	{ "int80", do_int80, 0, HOST_OK, "" },
	{ "read", do_read, 1, HOST_OK, "PATH" },
	{ "write", do_write, 2, HOSTILE, "PATH DATA" },
	{ "stat", do_stat, 1, HOST_OK, "PATH" },
	{ "find-secret", do_find_secret, 1, HOST_OK, "HEX" },
	/* probes */
	{ "cat", do_cat, 1, HOST_OK, "PATH" },
	{ "ls", do_ls, 1, HOST_OK, "DIR" },
	{ "caps", do_caps, 0, HOST_OK, "" },
	{ "ids", do_ids, 0, HOST_OK, "" },
	{ "hostname", do_hostname, 0, HOST_OK, "" },
	{ "pid", do_pid, 0, HOST_OK, "" },
	{ "fds", do_fds, 0, HOST_OK, "" },
	{ "fork-bomb", do_fork_bomb, 0, HOSTILE, "[MAX]" },
	{ "threads", do_threads, 1, HOST_OK, "N" },
	{ "sleep-daemon", do_sleep_daemon, 0, HOSTILE, "[--keep-fds]" },
	{ "sleep", do_sleep, 1, HOST_OK, "SECONDS" },
	{ "spin", do_spin, 1, HOST_OK, "SECONDS" },
};

static void list_commands(FILE *f)
{
	fputs("usage: helper COMMAND [ARGS...]\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s%s%s\n", commands[i].name, *commands[i].args ? " " : "",
			commands[i].args);
}

int main(int argc, char **argv)
{
	/* Line-buffered even into a pipe: a process killed by seccomp must
	 * not take printed lines with it. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		list_commands(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];
		if (strcmp(argv[1], c->name) != 0)
			continue;
		if (argc - 2 < c->min_args)
			usage_error("usage: %s %s", c->name, c->args);
		if ((c->flags & HOSTILE) && on_host())
			usage_error("refusing to run '%s' outside a user namespace: it could change the host",
				    c->name);
		return c->fn(argc - 2, argv + 2);
	}
	list_commands(stderr);
	usage_error("unknown command '%s'", argv[1]);
}
