/* seccomp.c - see seccomp.h. */
#define _GNU_SOURCE
#include "sandbox/seccomp.h"
#include "util/util.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/seccomp.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Refused with EPERM.  Most already need a capability the sandbox lacks;
 * the filter removes the kernel code behind them from reach all the same,
 * since a bug there is what an escape would use. */
static const char *const denied[] = {
	/* kernel modules and replacing the kernel */
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	/* attack surface an agent does not need */
	"bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
	"add_key", "request_key", "keyctl",
	"open_by_handle_at", "name_to_handle_at",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"quotactl", "quotactl_fd", "swapon", "swapoff",
	/* host-wide state */
	"reboot", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"syslog", "vhangup", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
	"iopl", "ioperm", "create_module", "get_kernel_syms", "query_module",
	"fanotify_init",
};

/* Refused unless the operator allows nested sandboxes.  A nested sandbox
 * (an agent's own bubblewrap) needs them, but only inside the namespaces
 * it creates: in corral's own, the sandbox user has no capability that
 * would make any of them work. */
static const char *const denied_unless_nested[] = {
	"mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "setns",
};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
		  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWTIME)

static int add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned cnt,
	       const struct scmp_arg_cmp *args, const char *name, struct cr_error *err)
{
	int r = seccomp_rule_add_array(ctx, action, nr, cnt, args);
	if (r < 0)
		return cr_error_set(err, -r, "seccomp rule for '%s'", name);
	return 0;
}

int sandbox_filter_build(struct sandbox_filter *f, unsigned flags, struct cr_error *err)
{
	scmp_filter_ctx ctx;
	char *mem = NULL;
	size_t memlen = 0;
	int r = -1;

	memset(f, 0, sizeof(*f));
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL)
		return cr_error_set(err, ENOMEM, "seccomp_init");
	/* Syscalls of a foreign ABI (x32, or i386 through int 0x80) would
	 * bypass every rule below: kill the process that tries one. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0) {
		cr_error_set(err, 0, "seccomp attributes");
		goto out;
	}

	for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* placeholders and syscalls this arch lacks */
		if (add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0, NULL, denied[i], err) < 0)
			goto out;
	}

	if (add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, "clone3", err) < 0)
		goto out;

	if (!(flags & SANDBOX_FILTER_ALLOW_NESTED)) {
		struct scmp_arg_cmp ns_ne;
		for (size_t i = 0; i < ARRAY_SIZE(denied_unless_nested); i++) {
			int nr = seccomp_syscall_resolve_name(denied_unless_nested[i]);
			if (nr == __NR_SCMP_ERROR)
				continue;
			if (add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0, NULL, denied_unless_nested[i], err) < 0)
				goto out;
		}
		/* libseccomp has no "masked != 0", so deny each flag bit. */
		for (unsigned bit = 0; bit < 64; bit++) {
			uint64_t flag = 1ull << bit;
			if (!(NS_FLAGS & flag))
				continue;
			ns_ne = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
			if (add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, &ns_ne, "unshare", err) < 0 ||
			    add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &ns_ne, "clone", err) < 0)
				goto out;
		}
	}

	{
		/* The kernel reads the family as an int: compare only the low
		 * 32 bits, or 0xffffffff00000028 would pass as AF_VSOCK. */
		struct scmp_arg_cmp vsock = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK);
		struct scmp_arg_cmp sti = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
		struct scmp_arg_cmp linux_ = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX);
		if (add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &vsock, "socket", err) < 0 ||
		    add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1, &vsock, "socketpair", err) < 0 ||
		    add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, &sti, "ioctl", err) < 0 ||
		    add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, &linux_, "ioctl", err) < 0)
			goto out;
	}

	/* Export the compiled program as raw BPF through a memfd. */
	{
		cleanup_close int mfd = memfd_create("corral-seccomp", MFD_CLOEXEC);
		off_t n;
		if (mfd < 0) {
			cr_error_set(err, errno, "memfd_create");
			goto out;
		}
		r = seccomp_export_bpf(ctx, mfd);
		if (r < 0) {
			cr_error_set(err, -r, "seccomp_export_bpf");
			r = -1;
			goto out;
		}
		r = -1;
		n = lseek(mfd, 0, SEEK_END);
		if (n <= 0) {
			cr_error_set(err, errno, "seccomp program is empty");
			goto out;
		}
		mem = xmalloc((size_t)n);
		if (pread(mfd, mem, (size_t)n, 0) != n) {
			cr_error_set(err, errno, "cannot read back the seccomp program");
			goto out;
		}
		memlen = (size_t)n;
	}
	if (memlen % sizeof(struct sock_filter) != 0) {
		cr_error_set(err, 0, "seccomp program has an odd size (%zu bytes)", memlen);
		goto out;
	}
	f->prog.len = (unsigned short)(memlen / sizeof(struct sock_filter));
	f->prog.filter = (struct sock_filter *)steal_pointer(&mem);
	r = 0;
out:
	free(mem);
	seccomp_release(ctx);
	return r;
}

void sandbox_filter_release(struct sandbox_filter *f)
{
	free(f->prog.filter);
	memset(f, 0, sizeof(*f));
}
