/* fuzz-cgroup.c - cgroup_parse_self() and cgroup_join() on arbitrary text.
 *
 * The input is the text of /proc/self/cgroup.  When it holds a NUL byte,
 * the part before it is the controller to look for and the rest is the
 * text; otherwise the usual controllers are tried.  Whatever is found is
 * joined under a mount the way the cgroup manager does, and the joined
 * path must stay below the mount. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/cgroup.h"

static const char mount[] = "/sys/fs/cgroup";

/* A joined path: the mount, then "/name" components none of which is
 * empty, "." or "..", then the leaf. */
static void check_joined(const char *joined, const char *leaf)
{
	size_t ml = sizeof(mount) - 1;
	const char *p;

	if (strncmp(joined, mount, ml) != 0)
		abort();
	p = joined + ml;
	while (*p) {
		const char *next;
		size_t len;
		if (*p != '/')
			abort();
		p++;
		next = strchr(p, '/');
		len = next ? (size_t)(next - p) : strlen(p);
		if (len == 0)
			abort();
		if (!(leaf && p[len] == '\0') &&
		    ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')))
			abort();
		p += len;
	}
	if (leaf) {
		size_t jl = strlen(joined), ll = strlen(leaf);
		if (jl < ll + 1 || strcmp(joined + jl - ll, leaf) != 0 || joined[jl - ll - 1] != '/')
			abort();
	}
}

static void try_one(const char *text, const char *ctrl)
{
	char *path = cgroup_parse_self(text, ctrl);
	char *joined;

	if (path == NULL)
		return;
	/* The path is the rest of one line of the text. */
	if (strchr(path, '\n') != NULL || strstr(text, path) == NULL)
		abort();
	joined = cgroup_join(mount, path, "corral");
	if (joined) {
		check_joined(joined, "corral");
		free(joined);
	}
	free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ctrls[] = { "", "memory", "pids", "cpu", "cpuacct",
					     "name=systemd" };
	char *buf = malloc(size + 1);
	const char *nul;
	char *joined;

	memcpy(buf, data, size);
	buf[size] = '\0';
	nul = memchr(data, '\0', size);
	if (nul) {
		/* buf holds the controller; the text follows its NUL. */
		try_one(buf + (nul - (const char *)data) + 1, buf);
	} else {
		for (size_t i = 0; i < sizeof(ctrls) / sizeof(ctrls[0]); i++)
			try_one(buf, ctrls[i]);
	}

	/* The whole input as a path, with and without a leaf. */
	joined = cgroup_join(mount, buf, NULL);
	if (joined) {
		check_joined(joined, NULL);
		free(joined);
	}
	joined = cgroup_join(mount, buf, "leaf");
	if (joined) {
		check_joined(joined, "leaf");
		free(joined);
	}
	free(buf);
	return 0;
}
