/* seccomp.h - the syscall filter every sandbox runs under.
 *
 * The filter is built once with libseccomp and exported as a classic BPF
 * program; each sandbox loads the ready program with seccomp(2) as the
 * last step before exec, which costs microseconds instead of a compile.
 *
 * Policy (DESIGN.md 4.6): allow by default; EPERM for module loading,
 * kexec, bpf, perf_event_open, keyrings, userfaultfd, open_by_handle_at,
 * io_uring, the mount family, pivot_root, setns, namespace-creating
 * unshare/clone, AF_VSOCK sockets, TIOCSTI/TIOCLINUX, and a few more
 * listed in seccomp.c; ENOSYS for clone3 (its flags live in memory a
 * filter cannot read, and libc falls back to clone); non-native ABIs
 * (x32, i386 on x86_64) are killed.
 */
#ifndef CORRAL_SANDBOX_SECCOMP_H
#define CORRAL_SANDBOX_SECCOMP_H

#include <linux/filter.h>
#include <stdbool.h>

#include "util/error.h"

struct sandbox_filter {
	struct sock_fprog prog;      /* filter points into memory we own */
};

enum sandbox_filter_flags {
	SANDBOX_FILTER_ALLOW_NESTED = 1 << 0,   /* let the sandbox make namespaces */
};

/* Compile the policy with libseccomp (used at build time by seccomp-gen
 * and by tests); the caller releases f. */
int sandbox_filter_build(struct sandbox_filter *f, unsigned flags, struct cr_error *err);
void sandbox_filter_release(struct sandbox_filter *f);

/* The same program, compiled when corral was built: points at static
 * data, so it is never released.  This is what sandboxes load. */
void sandbox_filter_embedded(struct sandbox_filter *f, unsigned flags);

/* Install in the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
 * Async-signal-safe; returns -1 with errno set. */
int sandbox_filter_load(const struct sandbox_filter *f);

#endif
