/* seccomp-embedded.c - the filters compiled at build time (see
 * seccomp-gen.c), handed out without copying. */
#define _GNU_SOURCE
#include "sandbox/seccomp.h"

#include <sys/syscall.h>
#include <unistd.h>
#include <linux/seccomp.h>

#include "seccomp-bpf.h"

void sandbox_filter_embedded(struct sandbox_filter *f, unsigned flags)
{
	if (flags & SANDBOX_FILTER_ALLOW_NESTED) {
		f->prog.len = (unsigned short)(sizeof(filter_nested) / sizeof(filter_nested[0]));
		f->prog.filter = (struct sock_filter *)filter_nested;
	} else {
		f->prog.len = (unsigned short)(sizeof(filter_default) / sizeof(filter_default[0]));
		f->prog.filter = (struct sock_filter *)filter_default;
	}
}

int sandbox_filter_load(const struct sandbox_filter *f)
{
	/* TSYNC is not needed: the sandbox is single-threaded at this point. */
	return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &f->prog);
}
